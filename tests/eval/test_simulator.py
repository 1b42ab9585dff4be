"""The simulated seeker: targets from the questionnaire, clues from the KG, never a target's title."""

import pytest

from ccrs.data.dataset import PreparedDataset
from ccrs.eval.interactive import build_sessions, simulator_for
from ccrs.eval.simulator import CLUE_RELATIONS, REJECTIONS, Session, mentions_title, title_of


def _play_all(sim, sessions, rounds=6):
    """Every seeker turn the simulator would say over ``rounds`` failed rounds, per session."""
    said = {}
    for s in sessions:
        turns = [t for _ in range(rounds) for role, t in sim.next_turns(s, ["Some Movie", "Another"]) if role == "seeker"]
        said[s.conversation_id] = turns
    return said


def _check_sessions(ds, sim, sessions):
    names = ds.table("entities").column("name").to_pylist()
    item_entity = {i: e for e, i in enumerate(ds.table("entities").column("item_index").to_pylist()) if i >= 0}
    for s in sessions:
        titles = [title_of(names[item_entity[t]]) for t in s.targets]
        for _, text in s.opening:
            assert not any(mentions_title(text, t) for t in titles), (s.conversation_id, text)
    said = _play_all(sim, sessions)
    leaks, clues = [], 0
    for s in sessions:
        titles = [title_of(names[item_entity[t]]) for t in s.targets]
        leaks += [(s.conversation_id, t) for t in said[s.conversation_id] if any(mentions_title(t, x) for x in titles)]
        first = s.described
        assert (first is None) == (not s.clues) and (first is None or first in {item_entity[t] for t in s.targets})
        for c in s.clues:  # every clue is a KG fact about the described target
            clues += 1
            if c.kind == "related":
                people = {p for r in CLUE_RELATIONS["related"] for p in sim.facts.neighbours[r].get(first, [])}
                assert any(c.entity_id in sim.facts.neighbours[r].get(p, []) for r in CLUE_RELATIONS["related"]
                           for p in people), c
                assert c.entity_id not in {item_entity[t] for t in s.targets}
            else:
                (rel,) = CLUE_RELATIONS[c.kind]
                assert c.entity_id in sim.facts.neighbours[rel].get(first, []), c
    assert not leaks
    return clues


def test_synthetic_sessions_never_state_a_target_and_clues_come_from_the_kg(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    sim = simulator_for(ds)
    sessions, support, counts = build_sessions(ds, 0, sim)
    assert sessions and counts["sessions"] == len(sessions)
    assert set(support) == {s.user_id for s in sessions} and all(support[u] for u in support)
    fb = ds.table("movie_feedback").to_pylist()
    liked = {(f["conversation_id"], f["entity_id"]) for f in fb if f["suggested"] == 1 and f["liked"] == 1}
    item_entity = {i: e for e, i in enumerate(ds.table("entities").column("item_index").to_pylist()) if i >= 0}
    for s in sessions:  # targets: suggested and liked in that very conversation
        assert all((s.conversation_id, item_entity[t]) in liked for t in s.targets)
        assert s.opening[-1][0] == "seeker" or any(r == "seeker" for r, _ in s.opening)
    assert _check_sessions(ds, sim, sessions) > 0


def test_real_sessions_never_state_a_target(shared_raw, tmp_path):
    from ccrs.data.prepare import prepare

    prepare(shared_raw, str(tmp_path / "prepared"), progress=False)
    ds = PreparedDataset.open(str(tmp_path / "prepared"))
    sim = simulator_for(ds)
    sessions, _, counts = build_sessions(ds, 0, sim)
    assert counts["sessions"] > 50 and counts["users"] > 10
    assert _check_sessions(ds, sim, sessions) > 3 * len(sessions)  # several clues per session on the real KG


def test_success_is_exact_and_rejections_match_the_served_dialogue_state():
    from ccrs.serving.recommender_service import REJECTION

    s = Session("c", 1, targets=[5, 9], opening=[("seeker", "hi")])
    assert s.succeeded([1, 2, 9]) and s.succeeded([5]) and not s.succeeded([1, 2, 3]) and not s.succeeded([])
    assert all(REJECTION.search(r) for r in REJECTIONS)  # the system can tell the seeker turned them down


@pytest.mark.parametrize("text,title,hit", [("I loved It (2017)", "It", True), ("something with him in it", "It", False),
                                            ("have you seen up?", "Up", False), ("The Matrix rocks", "the matrix", True),
                                            ("Matrixes", "Matrix", False), ("Toy Story 2 is fun", "Toy Story", True)])
def test_mentions_title(text, title, hit):
    assert mentions_title(text, title) is hit
