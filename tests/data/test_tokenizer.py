import pytest

from ccrs.data.tokenizer import SPECIALS, WordTokenizer, tokenize


def test_tokenize_lowercases_and_splits_punctuation_keeping_the_placeholder():
    assert tokenize("Have you seen __item__? It's GREAT!") == [
        "have", "you", "seen", "__item__", "?", "it", "'", "s", "great", "!"]


def test_vocabulary_min_count_specials_first_and_unknown_words():
    tok = WordTokenizer.build(["a b b c c c", "c __item__"], min_count=2, item_placeholder="__item__")
    assert tok.words[: len(SPECIALS)] == list(SPECIALS) and tok.words[len(SPECIALS)] == "__item__"
    assert tok.words[len(SPECIALS) + 1 :] == ["c", "b"]  # most frequent first; "a" below min_count
    assert tok.encode("a b") == [tok.unk_id, tok.index["b"]]


def test_round_trip_text_ids_and_saved_form():
    texts = ["I loved __item__ , have you seen __item__ ?", "yes ! it is a classic ."]
    tok = WordTokenizer.build(texts, min_count=1, item_placeholder="__item__")
    for t in texts:
        ids = tok.encode(t)
        assert tok.decode(ids) == " ".join(tokenize(t))
        assert tok.encode(tok.decode(ids)) == ids
    again = WordTokenizer.from_dict(tok.to_dict())
    assert again.words == tok.words and again.encode(texts[0]) == tok.encode(texts[0])
    assert tok.decode([*tok.encode("yes !"), tok.end_id, tok.index["classic"]]) == "yes !"  # stops at __end__


def test_bad_vocabularies_are_refused():
    with pytest.raises(ValueError, match="must start with"):
        WordTokenizer(["x", *SPECIALS, "__item__"], "__item__")
    with pytest.raises(ValueError, match="not a ccrs word tokenizer"):
        WordTokenizer.from_dict({"words": []})
