import pytest

from ccrs.data.tokenizer import tokenize
from ccrs.inference.detokenize import detokenize


@pytest.mark.parametrize("tokens, text", [
    ("i ' m good . have you seen Alien ?", "I'm good. Have you seen Alien?"),
    ("i ' ve seen it , don ' t like it !", "I've seen it, don't like it!"),
    ("it ' s a sci - fi movie ( from 1979 ) .", "It's a sci-fi movie (from 1979)."),
    ('he said " great movie " and left', 'He said "great movie" and left'),
    ("you ' ll love it . . . trust me", "You'll love it... trust me"),
    ("", ""),
    ("? ok", "? Ok"),
])
def test_detokenize_rejoins_english_spacing(tokens, text):
    assert detokenize(tokens.split()) == text


def test_detokenize_keeps_slot_names_and_words_the_tokenizer_splits_back():
    words = ["have", "you", "seen", "The Dark Knight", "?", "i", "think", "it", "'", "s", "great"]
    text = detokenize(words)
    assert text == "Have you seen The Dark Knight? I think it's great"
    # the metrics' tokens are recoverable from what people read (up to case)
    assert tokenize(text) == tokenize(" ".join(words))


def test_a_lone_apostrophe_that_is_no_contraction_stays_a_word():
    assert detokenize(["the", "kids", "'", "movie"]) == "The kids ' movie"
