import gzip
import json
import shutil

import numpy as np
import pytest

from ccrs.data import kg as kgmod
from ccrs.data.raw import MissingRawFiles, RawDataError, read_dialog_file, read_movies_csv, split_title_year


def test_gzip_and_plain_dialogs_read_the_same(tmp_path, synth_raw):
    plain = synth_raw / "dialogs" / "train_data.jsonl"
    gz = tmp_path / "train_data.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a, _ = read_dialog_file(plain, progress=False)
    b, _ = read_dialog_file(gz, progress=False)
    assert [c.messages for c in a] == [c.messages for c in b] and len(a) > 0
    assert any(c.turns_merged for c in a) and not all(c.turns_merged for c in a)


def _write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")


GOOD = json.dumps({"conversationId": "1", "initiatorWorkerId": 1, "respondentWorkerId": 2,
                   "messages": [{"senderWorkerId": 1, "text": "hi"}], "movieMentions": {}})


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", r"bad\.jsonl:2: invalid JSON"),
        (json.dumps({"conversationId": "2", "initiatorWorkerId": 1, "messages": []}), r"bad\.jsonl:2: missing field 'respondentWorkerId'"),
        (json.dumps({"conversationId": "2", "initiatorWorkerId": 1, "respondentWorkerId": 2, "messages": [{"text": "x"}]}),
         r"bad\.jsonl:2: messages\[0\]"),
        (json.dumps({"conversationId": "2", "initiatorWorkerId": "1", "respondentWorkerId": 2, "messages": []}),
         r"bad\.jsonl:2: field 'initiatorWorkerId'"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, bad, message):
    path = tmp_path / "bad.jsonl"
    _write_lines(path, [GOOD, bad, GOOD])
    with pytest.raises(RawDataError, match=message):
        read_dialog_file(path, progress=False)
    convs, report = read_dialog_file(path, skip_bad_lines=True, progress=False)
    assert len(convs) == 2 and report.skipped_lines == [2]


def test_movies_csv(tmp_path, synth_raw):
    movies = read_movies_csv(synth_raw / "movies_with_mentions.csv")
    assert len(movies) == 520
    bad = tmp_path / "m.csv"
    bad.write_text("movieId,movieName,nbMentions\n1,A (2000),3\nx,B,1\n")
    with pytest.raises(RawDataError, match=r"m\.csv:3"):
        read_movies_csv(bad)
    bad.write_text("id,name\n")
    with pytest.raises(RawDataError, match=r"m\.csv:1: expected header"):
        read_movies_csv(bad)


def test_split_title_year():
    assert split_title_year("Police Academy  (1984)") == ("Police Academy", 1984)
    assert split_title_year("American Pie ") == ("American Pie", None)


def test_readable_name():
    assert kgmod.readable_name("<http://dbpedia.org/resource/The_Thin_Red_Line_(1998_film)>") == "The Thin Red Line (1998 film)"
    assert kgmod.readable_name("<http://dbpedia.org/resource/Am%C3%A9lie>") == "Amélie"


def test_both_kg_formats_give_the_same_graph(synth_raw):
    a = kgmod.load_kg(synth_raw, "crslab")
    b = kgmod.load_kg(synth_raw, "kgsf")
    assert a.uris == b.uris
    assert a.relation_names[:3] == ["director", "starring", "genre"]
    assert b.relation_names[2] == "relation_2"
    assert len(a.triples) == len(b.triples) > 0
    assert a.movie_entities == b.movie_entities
    na, ea, _ = kgmod.build_edges(a, a.n_entities, 1000)
    nb, eb, _ = kgmod.build_edges(b, b.n_entities, 1000)
    assert len(na) == len(nb) == 4  # three relations kept + self_loop
    assert set(map(tuple, ea[:, [0, 2]])) == set(map(tuple, eb[:, [0, 2]]))


def test_edges_are_bidirectional_with_self_loops_and_filtered(synth_raw):
    kg = kgmod.load_kg(synth_raw, "crslab")
    n = kg.n_entities + 5  # five isolated entities appended
    names, edges, dropped = kgmod.build_edges(kg, n, 1000)
    loop = names.index("self_loop")
    assert loop == len(names) - 1
    triples = set(map(tuple, edges.tolist()))
    for h, r, t in list(triples)[:500]:
        assert (t, r, h) in triples
    loops = edges[edges[:, 1] == loop]
    assert sorted(loops[:, 0].tolist()) == list(range(n)) and (loops[:, 0] == loops[:, 2]).all()
    assert (np.diff(edges[:, 0]) >= 0).all()  # sorted
    # a threshold above every relation's count keeps only self-loops and reports what it dropped
    names2, edges2, dropped2 = kgmod.build_edges(kg, n, 10**9)
    assert names2 == ["self_loop"] and set(dropped2) == {"director", "starring", "genre"}
    assert len(edges2) == n


def test_missing_kg_files_are_listed(tmp_path, synth_raw):
    raw = tmp_path / "raw"
    shutil.copytree(synth_raw, raw)
    (raw / "kg_unicrs_crslab" / "entity2id.json").unlink()
    with pytest.raises(MissingRawFiles, match=r"entity2id\.json"):
        kgmod.load_kg(raw, "crslab")
    kgmod.load_kg(raw, "kgsf")  # the other format is still complete
