import math

import pytest

from ccrs.eval.gen_metrics import corpus_bleu4, distinct, f1, generation_metrics, perplexity, sentence_bleu


def test_sentence_bleu_is_clipped_precision_times_brevity_penalty():
    ref = "the cat is on the mat".split()
    hyp = "the the cat".split()
    # unigrams: the(2, clipped to 2 in ref) + cat(1) = 3/3; BP = exp(1 - 6/3)
    assert sentence_bleu(ref, hyp, 1) == pytest.approx(math.exp(1 - 2))
    # bigrams: (the,the) no, (the,cat) yes → 1/2
    assert sentence_bleu(ref, hyp, 2) == pytest.approx(0.5 * math.exp(-1))
    assert sentence_bleu(ref, hyp, 3) == 0.0  # no matching trigram: 0 without smoothing
    assert sentence_bleu(ref, ref, 4) == pytest.approx(1.0)
    assert sentence_bleu(ref, "a b c d e f g".split(), 1) == 0.0
    assert sentence_bleu(ref, [], 1) == 0.0
    # longer than the reference: no brevity penalty
    assert sentence_bleu("a b".split(), "a b c".split(), 1) == pytest.approx(2 / 3)


def test_clipping_limits_repeated_words():
    assert sentence_bleu(["the", "cat"], ["the", "the", "the"], 1) == pytest.approx(1 / 3)


def test_f1_uses_parlai_normalisation():
    # articles and punctuation dropped: gold {cat, sat}, pred {cat, sat, down}
    assert f1("The cat sat .".split(), "a cat sat down".split()) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert f1("hello".split(), "bye".split()) == 0.0


def test_distinct_counts_word_ngrams_not_character_ngrams():
    hyps = [["ab", "ab"], ["ab", "ab"]]
    # word bigrams: {(ab, ab)} → 1 distinct over 2 responses; 2 total bigrams
    assert distinct(hyps, 2) == (0.5, 0.5)
    # CRSLab's character count would see "ab ab" → bigrams {ab, "b ", " a"}: 3 distinct — not what we count
    hyps = [["i", "like", "it"], ["i", "like", "that"]]
    assert distinct(hyps, 2) == (3 / 2, 3 / 4)
    assert distinct(hyps, 4) == (0.0, 0.0)


def test_perplexity_and_corpus_bleu():
    assert perplexity(2 * math.log(3), 2) == pytest.approx(3.0)
    refs = ["the cat is on the mat today".split()]
    assert corpus_bleu4(refs, refs) == pytest.approx(1.0)
    m = generation_metrics(refs, [["the", "cat"]])
    assert set(m) >= {"bleu1", "bleu2", "bleu3", "bleu4", "corpus_bleu4", "f1", "dist2", "dist3", "dist4", "dist2_ratio"}
    with pytest.raises(ValueError):
        generation_metrics(refs, [])
