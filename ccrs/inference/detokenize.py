"""Readable text from the generator's word tokens (what a person reads; metrics stay on the tokens).

    detokenize(["i", "'", "m", "good", ".", "have", "you", "seen", "Alien", "?"])
    # "I'm good. Have you seen Alien?"

The protocol's tokenizer (:func:`ccrs.data.tokenizer.tokenize`) lower-cases and splits every
punctuation mark off, so ``i ' m``, ``don ' t`` and ``seen it ?`` are what BLEU / F1 / Dist count
(CRSLab and KBRD score the same tokens). Only text shown to people (serving responses, the
``response`` field of the responses files) goes through this function; the ``generated`` field keeps
the tokens. The rules, in order:

* contractions rejoin: ``' s``, ``' m``, ``' re``, ``' ve``, ``' ll``, ``' d``, ``' t`` attach to the
  word before (``don ' t`` → ``don't``);
* closing punctuation (``. , ! ? ; : ) ] } %`` and ``...`` runs) attaches to the word before, opening
  brackets and ``$`` to the word after, hyphens join their neighbours (``sci - fi`` → ``sci-fi``);
* double quotes alternate: the first opens (attaches to the word after), the next closes;
* the first letter of every sentence (not after an ellipsis) and a standalone ``i`` are capitalised; slot fills (movie names)
  keep their own case because nothing else is lower-cased.
"""

from __future__ import annotations

_CONTRACTIONS = frozenset({"s", "m", "re", "ve", "ll", "d", "t"})
_CLOSING = frozenset(".,!?;:)]}%")
_OPENING = frozenset("([{$")
_SENTENCE_END = frozenset(".!?")


def detokenize(tokens: list[str]) -> str:
    """One string from ``tokens`` with English spacing and capitalisation (see the module doc)."""
    out: list[str] = []  # pieces; a piece is glued to the previous one when it starts with ""
    glue_next = False  # the previous token asked the next one to attach (opening bracket, quote, hyphen)
    quote_open = False
    i = 0
    n = len(tokens)
    while i < n:
        w = tokens[i]
        # a contraction: "'" followed by s/m/re/ve/ll/d/t, after a word
        if w == "'" and out and i + 1 < n and tokens[i + 1] in _CONTRACTIONS:
            out[-1] += "'" + tokens[i + 1]
            i += 2
            continue
        if w == '"':
            if quote_open:
                _attach(out, w)
                glue_next = False
            else:
                _append(out, w, glue_next)
                glue_next = True
            quote_open = not quote_open
        elif w == "-" and out:
            out[-1] += "-"
            glue_next = True
        elif w in _CLOSING and out:
            _attach(out, w)
            glue_next = False
        elif w in _OPENING:
            _append(out, w, glue_next)
            glue_next = True
        else:
            _append(out, w, glue_next)
            glue_next = False
        i += 1
    return _capitalise(" ".join(out))


def _append(out: list[str], w: str, glued: bool) -> None:
    if glued and out:
        out[-1] += w
    else:
        out.append(w)


def _attach(out: list[str], w: str) -> None:
    if out:
        out[-1] += w
    else:
        out.append(w)


def _capitalise(text: str) -> str:
    words = text.split(" ")
    start = True
    for k, w in enumerate(words):
        if not w:
            continue
        if w == "i" or w.startswith("i'"):
            w = "I" + w[1:]
        lead = next((j for j, c in enumerate(w) if c.isalnum()), None)
        if start and lead is not None:
            w = w[:lead] + w[lead].upper() + w[lead + 1:]
        words[k] = w
        if lead is not None or w in _SENTENCE_END:
            start = not w.endswith("...") and (
                w[-1] in _SENTENCE_END or (w.endswith('"') and len(w) > 1 and w[-2] in _SENTENCE_END))
    return " ".join(words)
