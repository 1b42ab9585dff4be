"""Generation metrics, as CRSLab computes them, with its Dist bug fixed (``shared/notes/crs-evaluation.md``).

All functions take token lists (the generator's word tokens; the item placeholder stays a token on
both sides, so BLEU/F1 judge the wording and the recommender metrics judge the items).

* :func:`sentence_bleu` — CRSLab's "BLEU-k": nltk ``sentence_bleu([ref], hyp, weights=one-hot at k)``
  without smoothing, i.e. the clipped k-gram precision × brevity penalty (0 when nothing matches).
  Averaged over responses, this is **the "BLEU" of our tables**.
* :func:`corpus_bleu4` — sacrebleu's corpus BLEU-4 on the same tokens (``tokenize="none"``), for
  comparison with the MT convention.
* :func:`f1` — ParlAI/CRSLab token-overlap F1 after ParlAI's answer normalisation.
* :func:`distinct` — Dist-k: distinct **word** k-grams over all responses ÷ number of responses (the
  paper's convention, values above 1 are normal; CRSLab counts character k-grams, issue #42), plus
  distinct ÷ total k-grams.
* perplexity — exp(Σ token NLL ÷ number of target tokens), see :func:`perplexity`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_PUNC = re.compile(r"[!\"#$%&()*+,./:;<=>?@\[\]\\^`{|}~_']")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def brevity_penalty(hyp_len: int, ref_len: int) -> float:
    if hyp_len == 0:
        return 0.0
    return 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)


def sentence_bleu(reference: Sequence[str], hypothesis: Sequence[str], n: int) -> float:
    """BLEU-n with one-hot weights: BP × clipped n-gram precision (nltk, no smoothing)."""
    hyp = Counter(ngrams(hypothesis, n))
    if not hyp:
        return 0.0
    ref = Counter(ngrams(reference, n))
    matched = sum(min(c, ref[g]) for g, c in hyp.items())
    if matched == 0:  # nltk: 0 without unigram matches, ~1e-308 (method0) without n-gram matches
        return 0.0
    return brevity_penalty(len(hypothesis), len(reference)) * matched / sum(hyp.values())


def corpus_bleu4(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    """sacrebleu corpus BLEU-4 (0–1) on already tokenized text."""
    import sacrebleu

    out = sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses], [[" ".join(r) for r in references]],
                                tokenize="none", force=True)
    return out.score / 100.0


def normalize_answer(text: str) -> str:
    """ParlAI's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", _PUNC.sub(" ", text.lower()))
    return " ".join(text.split())


def f1(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """Token-overlap F1 (ParlAI/CRSLab) of the normalised texts."""
    gold = normalize_answer(" ".join(reference)).split()
    pred = normalize_answer(" ".join(hypothesis)).split()
    same = sum((Counter(gold) & Counter(pred)).values())
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)


def distinct(hypotheses: Sequence[Sequence[str]], n: int) -> tuple[float, float]:
    """(distinct word n-grams ÷ responses, distinct ÷ total n-grams) over all responses."""
    grams = [g for h in hypotheses for g in ngrams(h, n)]
    if not hypotheses:
        return 0.0, 0.0
    return len(set(grams)) / len(hypotheses), (len(set(grams)) / len(grams) if grams else 0.0)


def perplexity(total_nll: float, n_tokens: int) -> float:
    return math.exp(total_nll / n_tokens) if n_tokens else float("nan")


def generation_metrics(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> dict[str, float]:
    """BLEU-1..4 (sentence, averaged), corpus BLEU-4, F1, Dist-2/3/4 (+ ratios), mean length."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references for {len(hypotheses)} hypotheses")
    if not hypotheses:
        raise ValueError("no responses to score")
    m = len(hypotheses)
    out = {f"bleu{n}": sum(sentence_bleu(r, h, n) for r, h in zip(references, hypotheses, strict=True)) / m
           for n in (1, 2, 3, 4)}
    out["corpus_bleu4"] = corpus_bleu4(references, hypotheses)
    out["f1"] = sum(f1(r, h) for r, h in zip(references, hypotheses, strict=True)) / m
    for n in (2, 3, 4):
        out[f"dist{n}"], out[f"dist{n}_ratio"] = distinct(hypotheses, n)
    out["mean_length"] = sum(len(h) for h in hypotheses) / m
    out["responses"] = m
    return out


#: (key, label) of the figures a console line shows, labelled as the reports' tables label them.
SUMMARY_FIGURES = (("ppl", "PPL"), ("bleu1", "BLEU-1"), ("bleu2", "BLEU-2"), ("f1", "F1"), ("dist2", "Dist-2"),
                   ("dist3", "Dist-3"), ("dist4", "Dist-4"))


def format_generation_summary(m: dict) -> str:
    """One line of generation figures, named as every table names them, with the response count.

    Dist-k (:func:`distinct`) is distinct k-grams ÷ responses, so it falls as the number of responses
    grows: two Dist-2 figures compare only at the same count, which is why the line carries it."""
    parts = [f"{label} {m[key]:.4f}" for key, label in SUMMARY_FIGURES if m.get(key) is not None]
    if m.get("responses"):
        parts.append(f"({m['responses']} responses)")
    return "  ".join(parts)
