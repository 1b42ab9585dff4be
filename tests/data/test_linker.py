from ccrs.data.linker import EntityLinker, surface_forms


def make(names, **kw):
    return EntityLinker([(i, n, item, prio) for i, (n, item, prio) in enumerate(names)], **kw)


NAMES = [
    ("Tom Hanks", False, 10),  # 0
    ("Tom", False, 1),  # 1: shorter name inside a longer one
    ("Horror film", False, 4),  # 2: genre alias "horror"
    ("Titanic (1997 film)", True, 30),  # 3: item, excluded by default
    ("Steven Spielberg", False, 8),  # 4
    ("It (2017 film)", True, 5),  # 5: item
    ("Love", False, 2),  # 6: stoplisted surface
    ("Comedy film", False, 3),  # 7: plural "comedies"
    ("Chris Evans (actor)", False, 6),  # 8: disambiguation stripped
    ("Chris Evans (presenter)", False, 1),  # 9: same surface, lower priority
    ("Science fiction film", False, 2),  # 10
]


def test_longest_match_first_and_word_boundaries():
    linker = make(NAMES)
    mentions = linker.link("I love Tom Hanks and tomatoes, but Tom alone is fine")
    assert [(m.entity_id, m.surface) for m in mentions] == [(0, "Tom Hanks"), (1, "Tom")]


def test_case_insensitive_and_offsets():
    linker = make(NAMES)
    text = "anything by STEVEN spielberg?"
    (m,) = linker.link(text)
    assert m.entity_id == 4
    assert text[m.start : m.end] == "STEVEN spielberg"


def test_genre_alias_plural_and_stoplist():
    linker = make(NAMES)
    assert linker.entity_ids("a good horror movie, I love comedies and science fiction") == [2, 7, 10]
    assert linker.entity_ids("love love love") == []  # "Love" is too generic


def test_items_excluded_unless_asked():
    assert make(NAMES).entity_ids("Titanic is great") == []
    with_items = make(NAMES, include_items=True)
    assert with_items.entity_ids("Titanic is great") == [3]
    assert with_items.entity_ids("it was good") == []  # "It" is a stopword even as an item


def test_disambiguation_and_priority():
    linker = make(NAMES)
    assert linker.entity_ids("chris evans was great") == [8]


def test_dedup_in_order_of_first_appearance():
    linker = make(NAMES)
    assert linker.entity_ids("Tom Hanks, horror, Tom Hanks again, horror") == [0, 2]


def test_punctuation_and_apostrophes():
    linker = make([("Schindler's List", False, 1), ("O'Brien", False, 1)])
    assert linker.entity_ids("Have you seen Schindler’s List? o'brien was in it") == [0, 1]


def test_min_chars_and_numbers():
    linker = make([("Up", False, 1), ("1917", False, 1), ("Her", False, 1)])
    assert linker.entity_ids("Up 1917 her") == []


def test_surface_forms():
    assert surface_forms("Horror film") == ["Horror film", "Horror", "Horrors"]
    assert surface_forms("Comedy film") == ["Comedy film", "Comedy", "Comedies"]
    assert surface_forms("Titanic (1997 film)", is_item=True) == ["Titanic (1997 film)", "Titanic"]


def _hard_cases():
    import json
    from pathlib import Path

    return json.loads((Path(__file__).with_name("linker_hard_cases.json")).read_text())


def test_context_rules_on_the_hard_cases():
    """Common-word titles need evidence, genre words map to genres, companies are not genres."""
    spec = _hard_cases()
    names = [n for n, _, _ in spec["names"]]
    linker = make([tuple(x) for x in spec["names"]], include_items=True, context_rules=True,
                  everyday_words=spec["everyday_words"])
    failures = []
    for case in spec["cases"]:
        got = {names[e] for e in linker.entity_ids(case["text"])}
        missing = set(case.get("linked", [])) - got
        wrong = set(case.get("not_linked", [])) & got
        if missing or wrong:
            failures.append(f"{case['text']!r}: missing {sorted(missing)}, wrongly linked {sorted(wrong)}")
    assert not failures, "\n".join(failures)


def test_plain_rules_are_unchanged_by_the_context_option():
    linker = make(NAMES)
    assert linker.entity_ids("It was scary, a horror with Chris Evans") == [2, 8]
    assert make([("Constantin Film", False, 1)]).entity_ids("constantin") == [0]  # prepared data's rule


def test_genre_words_are_marked_as_understood_not_named():
    spec = _hard_cases()
    names = [n for n, _, _ in spec["names"]]
    linker = make([tuple(x) for x in spec["names"]], include_items=True, context_rules=True)
    got = [(names[m.entity_id], m.surface, m.kind) for m in linker.link("A scary movie or comedies like Get Out?")]
    assert got == [("Horror film", "scary", "genre_word"), ("Comedy film", "comedies", "name"),
                   ("Get Out", "Get Out", "name")]


def test_chat_everyday_words_are_the_frequent_words_of_the_turns():
    from ccrs.data.linker import chat_everyday_words

    turns = ["lol that was great"] * 600 + ["have you seen @123 lol"] * 300 + ["I loved Alien"] * 99 + ["alien vs it"]
    words = chat_everyday_words(turns, per_mille=200)  # in at least 200 of the 1,000 turns
    assert {"lol", "that", "have", "seen"} <= words and "alien" not in words and "vs" not in words
