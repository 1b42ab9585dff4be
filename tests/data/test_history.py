"""A user's history (ccrs/data/history.py): earlier conversations only, merged per entity."""

import torch

from ccrs.data.dataset import PreparedDataset
from ccrs.data.history import (
    BOTH_ROLES,
    LIKED_UNKNOWN,
    MAX_AGE,
    RECOMMENDER_ROLE,
    SEEKER_ROLE,
    conversation_entries,
    dataset_conversation_entries,
    merge_history,
)
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.data.splits import conversation_sort_key


def test_conversation_entries_mark_who_named_an_entity_and_the_seekers_answer():
    entries = conversation_entries([("seeker", [1, 2]), ("recommender", [2, 3]), ("seeker", [4])], liked={3: 1})
    by = {e.entity: e for e in entries}
    assert [e.entity for e in entries] == [1, 2, 3, 4]  # order of first mention
    assert by[1].role == SEEKER_ROLE and by[2].role == BOTH_ROLES and by[3].role == RECOMMENDER_ROLE
    assert by[3].liked == 1 and by[1].liked == LIKED_UNKNOWN
    assert by[3].flag == RECOMMENDER_ROLE * 3 + 1


def test_merge_keeps_one_entry_per_entity_from_its_latest_mention():
    old = conversation_entries([("seeker", [1, 2])], liked={1: 0})
    new = conversation_entries([("recommender", [1, 5])], liked={1: 1})
    hist = merge_history([old, new])
    assert hist.entities == [2, 1, 5]  # oldest last mention first
    assert hist.age == [2, 1, 1] and hist.count == [1, 2, 1]
    assert hist.flag[1] == RECOMMENDER_ROLE * 3 + 1  # the newer mention's role and answer
    capped = merge_history([old, new], max_entities=2)
    assert capped.entities == [1, 5]  # the most recent entries are the ones kept
    many = merge_history([conversation_entries([("seeker", [i])]) for i in range(12)])
    assert max(many.age) == MAX_AGE and many.age[-1] == 1


def test_every_sample_history_comes_from_earlier_conversations_of_its_own_user(synth_prepared):
    """The leakage check: rebuild each sample's allowed entities from the raw turns of the user's
    conversations strictly before the sample's; the history must be inside them and never use the
    current conversation or a later one."""
    ds = PreparedDataset.open(synth_prepared)
    convs = ds.table("conversations")
    seeker = dict(zip(convs.column("conversation_id").to_pylist(), convs.column("seeker_id").to_pylist(), strict=True))
    by_user: dict[int, list[str]] = {}
    for c, u in seeker.items():
        by_user.setdefault(u, []).append(c)
    entries = dataset_conversation_entries(ds)
    parts, _ = rec_parts(ds, "user", 0, 64, KnowledgeGraph.from_dataset(ds))
    checked = non_empty = 0
    for part in parts.values():
        for i in range(len(part)):
            conv, user = part.conversation_ids[i], part.user_ids[i]
            earlier = [c for c in by_user[user] if conversation_sort_key(c) < conversation_sort_key(conv)]
            allowed = {e.entity for c in earlier for e in entries.get(c, [])}
            hist = part.history_of(i)[0].tolist()
            assert set(hist) <= allowed, (conv, set(hist) - allowed)
            assert len(hist) == len(allowed)  # nothing of an earlier conversation is dropped (no cap here)
            if not earlier:
                assert hist == []
            checked += 1
            non_empty += bool(hist)
    assert checked > 100 and non_empty > 20


def test_batches_carry_the_padded_history(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    parts, _ = rec_parts(ds, "user", 0, 64, KnowledgeGraph.from_dataset(ds), max_history_entities=5)
    test = parts["test"]
    batch = test.batch(torch.arange(len(test)))
    lengths = batch.history_mask.sum(1)
    assert batch.history.shape == batch.history_age.shape == batch.history_flag.shape == batch.history_mask.shape
    assert int(lengths.max()) <= 5 and int(lengths.max()) > 0
    for b in range(len(test)):
        n = int(lengths[b])
        assert batch.history[b, :n].tolist() == test.history_of(b)[0].tolist()
        assert (batch.history[b, n:] == 0).all()
    # every test sample comes after its user's support conversations: its history is not empty
    assert (lengths > 0).all()
