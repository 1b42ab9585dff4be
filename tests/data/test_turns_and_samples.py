from ccrs.data.linker import EntityLinker
from ccrs.data.raw import RawConversation, RawMessage
from ccrs.data.samples import rec_samples
from ccrs.data.turns import TurnStats, build_turns, merge_messages

LINKER = EntityLinker([(100, "Tom Hanks", False, 1.0), (101, "Horror film", False, 1.0)])
MOVIES = {11: 1, 12: 2, 13: 3}  # ReDial movie id → entity id


def conv(messages, merged=False):
    return RawConversation("7", seeker_id=1, recommender_id=2, messages=[RawMessage(s, t) for s, t in messages],
                           movie_mentions={}, source_file="x.jsonl", is_test_side=False, line=1, turns_merged=merged)


UNMERGED = [
    (1, "Hi!"),
    (1, "I like horror movies like @11"),
    (2, "Try @12 with Tom Hanks"),
    (2, "or @13"),
    (1, "Seen @12 already. Anything with Tom Hanks?"),
    (2, "Then @11 again, or @99"),
]
MERGED = [
    (1, "Hi! I like horror movies like @11"),
    (2, "Try @12 with Tom Hanks or @13"),
    (1, "Seen @12 already. Anything with Tom Hanks?"),
    (2, "Then @11 again, or @99"),
]


def test_merged_and_unmerged_variants_give_identical_turns():
    a = build_turns(conv(UNMERGED), MOVIES, LINKER, "__item__", TurnStats())
    b = build_turns(conv(MERGED, merged=True), MOVIES, LINKER, "__item__", TurnStats())
    assert a == b
    assert [t.role for t in a] == ["seeker", "recommender", "seeker", "recommender"]
    assert len(merge_messages(conv(UNMERGED))) == 4


def test_placeholders_items_entities_and_unknown_movies():
    stats = TurnStats()
    turns = build_turns(conv(MERGED), MOVIES, LINKER, "__item__", stats)
    assert turns[1].text == "Try __item__ with Tom Hanks or __item__"
    assert turns[1].movie_ids == [12, 13] and turns[1].item_ids == [2, 3] and turns[1].entity_ids == [100]
    assert turns[0].entity_ids == [101]
    assert turns[3].movie_ids == [11, 99] and turns[3].item_ids == [1]  # 99 unknown: slot kept, no item
    assert stats.unknown_movie_mentions == 1 and stats.unknown_movie_ids == {99}
    assert stats.movie_mentions == 6


def test_rec_samples_follow_crslab():
    turns = build_turns(conv(MERGED), MOVIES, LINKER, "__item__", TurnStats())
    samples = rec_samples("7", 1, turns)
    # recommender turns 1 (items 2, 3) and 3 (item 1); seeker turns are never targets
    assert [(s.turn_index, s.label) for s in samples] == [(1, 2), (1, 3), (3, 1)]
    first = samples[0]
    assert first.context_entity_ids == [101, 1]  # entities then movies, first-mention order
    assert first.context_entity_turns == [0, 0]
    assert not first.label_in_context
    last = samples[2]
    # context: turn0 {101, 1}, turn1 {100, 2, 3}, turn2 {100 again, 2 again}
    assert last.context_entity_ids == [101, 1, 100, 2, 3]
    assert last.context_entity_turns == [0, 0, 2, 2, 1]  # turn each was LAST mentioned
    assert last.label_in_context  # movie 1 was mentioned at turn 0: dropped by the dedup metrics


def test_first_turn_is_never_a_sample():
    turns = build_turns(conv([(2, "Hello, try @11"), (1, "ok")]), MOVIES, LINKER, "__item__", TurnStats())
    assert rec_samples("7", 1, turns) == []
