import json
import shutil
from collections import Counter

import pytest

from ccrs import storage
from ccrs.config import DataConfig
from ccrs.data import prepare as prepare_mod
from ccrs.data.dataset import DatasetError, PreparedDataset
from ccrs.data.prepare import prepare
from ccrs.data.raw import RawDataError
from ccrs.data.schema import TABLES


@pytest.fixture(scope="module")
def prepared(synth_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "ds"
    result = prepare(synth_raw, str(out), progress=False)
    return PreparedDataset.open(str(out), verify=True), result


def test_every_table_has_its_schema(prepared):
    ds, _ = prepared
    assert set(ds.manifest["tables"]) == set(TABLES)
    for name, schema in TABLES.items():
        table = ds.table(name)
        assert table.schema.equals(schema), name
        assert table.num_rows == ds.manifest["tables"][name]["rows"] > 0


def test_manifest_records_sources_counts_and_seed(prepared):
    ds, result = prepared
    m = ds.manifest
    assert m["schema_version"] == 2 and m["split_seed"] == 42
    assert set(m["sources"]) >= {"movies_with_mentions.csv", "dialogs/train_data.jsonl", "dialogs/test_data.jsonl"}
    assert all(len(h) == 64 for h in m["sources"].values())
    assert m["summary"]["conversations"] == 30 * 4
    assert m["stats"]["movie_mention_kg_coverage"] >= 0.9
    assert not result.skipped


def test_movies_link_by_id_by_name_or_become_isolated_items(prepared):
    ds, _ = prepared
    movies = ds.table("movies").to_pylist()
    methods = Counter(m["link_method"] for m in movies)
    assert methods["id2entity"] > 0 and methods["name"] > 0 and methods["none"] > 0
    entities = ds.table("entities").to_pylist()
    n_kg = ds.manifest["stats"]["kg_entities"]
    for m in movies:
        e = entities[m["entity_id"]]
        assert e["is_item"]
        if m["link_method"] == "none":
            assert e["id"] >= n_kg and e["uri"] == f"redial:movie/{m['movie_id']}"
        else:
            assert e["id"] < n_kg and "film" in e["name"]  # synthetic movie URIs are Title_(YEAR_film)
    items = [e for e in entities if e["is_item"]]
    assert [e["item_index"] for e in items] == list(range(len(items)))


def test_turn_and_sample_references_are_consistent(prepared):
    ds, _ = prepared
    n_entities = ds.table("entities").num_rows
    items = {e["id"] for e in ds.table("entities").to_pylist() if e["is_item"]}
    turns = ds.table("turns").to_pylist()
    assert all(t["text"].count("__item__") == len(t["movie_ids"]) for t in turns)
    assert any(t["entity_ids"] for t in turns)  # the linker found directors/actors/genres
    samples = ds.table("rec_samples").to_pylist()
    flags = [s["label_in_context"] for s in samples]
    assert any(flags) and not all(flags)  # both metric variants have data
    for s in samples:
        assert s["label"] in items
        assert len(s["context_entity_ids"]) == len(s["context_entity_turns"])
        assert all(0 <= e < n_entities for e in s["context_entity_ids"])
        assert all(t < s["turn_index"] for t in s["context_entity_turns"])
        assert s["label_in_context"] == (s["label"] in s["context_entity_ids"])


def test_user_split_rules(prepared):
    ds, _ = prepared
    tasks = ds.table("tasks").to_pylist()
    conv_seeker = {c["conversation_id"]: c["seeker_id"] for c in ds.table("conversations").to_pylist()}
    for t in tasks:
        sup, qry = t["support_conversation_ids"], t["query_conversation_ids"]
        assert sup and (qry or t["fold"] == -1)
        assert max(int(c) for c in sup) < min((int(c) for c in qry), default=10**9)  # support precedes query
        assert all(conv_seeker[c] == t["user_id"] for c in sup + qry)
    seen_in_test = Counter()
    for fold in range(10):
        roles = ds.user_splits(fold)
        for u, r in roles.items():
            seen_in_test[u] += r == "test"
        conv_roles = ds.conversation_splits("user", fold)
        # a user's conversations never straddle splits
        by_user = {}
        for c, r in conv_roles.items():
            by_user.setdefault(conv_seeker[c], set()).add(r)
        assert all(len(v) == 1 for v in by_user.values())
    multi = [t["user_id"] for t in tasks if t["fold"] >= 0]
    assert all(seen_in_test[u] == 1 for u in multi)  # rotating folds puts every user in test once


def test_standard_split(prepared):
    ds, _ = prepared
    convs = ds.table("conversations").to_pylist()
    roles = ds.conversation_splits("standard")
    for c in convs:
        assert (roles[c["conversation_id"]] == "test") == c["is_test_side"]
    counts = Counter(roles[c["conversation_id"]] for c in convs if not c["is_test_side"])
    assert counts["valid"] > 0 and counts["train"] > 5 * counts["valid"]


def test_rerun_is_skipped_and_force_gives_identical_bytes(prepared, synth_raw):
    ds, _ = prepared
    again = prepare(synth_raw, ds.location.uri, progress=False)
    assert again.skipped
    before = {n: storage.read_bytes(ds.location.child(e["file"])) for n, e in ds.manifest["tables"].items()}
    forced = prepare(synth_raw, ds.location.uri, force=True, progress=False)
    assert not forced.skipped
    after = {n: storage.read_bytes(ds.location.child(e["file"])) for n, e in forced.manifest["tables"].items()}
    assert before == after
    assert not [p for p in storage.list_files(ds.location) if "staging" in p or ".tmp" in p]


def test_kgsf_format(synth_raw, tmp_path):
    result = prepare(synth_raw, str(tmp_path / "k"), DataConfig(kg_format="kgsf"), progress=False)
    ds = PreparedDataset.open(str(tmp_path / "k"))
    assert result.manifest["stats"]["kg_format"] == "kgsf"
    assert ds.table("relations").column("name").to_pylist() == ["relation_2", "relation_5", "relation_9", "self_loop"]
    assert ds.table("rec_samples").num_rows > 0


def test_bad_input_writes_nothing(synth_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(synth_raw, raw)
    path = raw / "dialogs" / "train_data.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = lines[4][:-5]  # truncate line 5
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    with pytest.raises(RawDataError, match=r"train_data\.jsonl:5: invalid JSON"):
        prepare(raw, str(out), progress=False)
    assert not out.exists()
    result = prepare(raw, str(out), skip_bad_lines=True, progress=False)
    assert result.manifest["stats"]["dialog_files"]["train_data.jsonl"]["skipped_bad_lines"] == 1
    assert result.manifest["stats"]["dialog_files"]["train_data.jsonl"]["skipped_line_numbers"] == [5]


def fail_on_call(monkeypatch, name, nth, message):
    """Make ``storage.<name>`` raise OSError(message) on its ``nth`` call (fault injection)."""
    real = getattr(storage, name)
    calls = []

    def wrapper(*args):
        calls.append(args)
        if len(calls) == nth:
            raise OSError(message)
        return real(*args)

    monkeypatch.setattr(prepare_mod.storage, name, wrapper)


def test_crash_while_staging_keeps_the_previous_dataset(synth_raw, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    prepare(synth_raw, str(out), progress=False)
    old_manifest = (out / "manifest.json").read_text()
    fail_on_call(monkeypatch, "write_bytes", 3, "disk full (injected)")
    with pytest.raises(OSError, match="injected"):
        prepare(synth_raw, str(out), DataConfig(split_seed=1), progress=False)
    monkeypatch.undo()
    assert (out / "manifest.json").read_text() == old_manifest
    PreparedDataset.open(str(out), verify=True)  # still complete and consistent
    assert not [p for p in storage.list_files(storage.resolve(str(out))) if "staging" in p]


def test_crash_while_swapping_leaves_no_manifest(synth_raw, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    prepare(synth_raw, str(out), progress=False)
    fail_on_call(monkeypatch, "move", 2, "killed (injected)")
    with pytest.raises(OSError, match="injected"):
        prepare(synth_raw, str(out), DataConfig(split_seed=1), progress=False)
    monkeypatch.undo()
    with pytest.raises(DatasetError, match="interrupted prepare"):
        PreparedDataset.open(str(out))
    # and re-running publishes a complete dataset again (resume after a crash)
    assert not prepare(synth_raw, str(out), DataConfig(split_seed=1), progress=False).skipped
    PreparedDataset.open(str(out), verify=True)


def test_manifest_is_json_with_table_hashes(prepared):
    ds, _ = prepared
    text = storage.read_bytes(ds.location.child("manifest.json")).decode()
    m = json.loads(text)
    assert all(len(e["sha256"]) == 64 for e in m["tables"].values())


def test_synthetic_users_each_prefer_one_relation(prepared):
    """Each synthetic user's movies share one director, actor or genre: the signal CCRS should find."""
    ds, _ = prepared
    edges = ds.table("kg_edges").to_pylist()
    rel_names = ds.table("relations").column("name").to_pylist()
    attrs: dict[int, set] = {}
    for e in edges:
        if rel_names[e["relation"]] != "self_loop":
            attrs.setdefault(e["head"], set()).add((e["relation"], e["tail"]))
    turns = ds.table("turns").to_pylist()
    seeker = {c["conversation_id"]: c["seeker_id"] for c in ds.table("conversations").to_pylist()}
    by_user: dict[int, list[int]] = {}
    for t in turns:
        by_user.setdefault(seeker[t["conversation_id"]], []).extend(t["item_ids"])
    shared = 0
    for items in by_user.values():
        linked = [attrs[i] for i in set(items) if i in attrs]
        if linked and set.intersection(*linked):
            shared += 1
    assert shared >= 0.9 * len(by_user)
