"""Word-level tokenizer of the generator (paper §2.3; KBRD/CRSLab tokenize ReDial into words).

    tok = WordTokenizer.build(train_texts, min_count=3, item_placeholder="__item__")
    ids = tok.encode("I loved __item__!")    # [id(i), id(loved), id(__item__), id(!)]
    tok.decode(ids)                          # "i loved __item__ !"
    WordTokenizer.from_dict(tok.to_dict())   # what checkpoints store (plain lists: weights_only-safe)

Text is lower-cased and split into runs of word characters and single punctuation marks, so the
item placeholder (``__item__``, all word characters) stays one token. Words seen fewer than
``min_count`` times in the training split map to ``__unk__``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PAD, START, END, UNK = "__pad__", "__start__", "__end__", "__unk__"
SPECIALS = (PAD, START, END, UNK)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks, in order."""
    return _TOKEN.findall(text.lower())


class WordTokenizer:
    def __init__(self, words: list[str], item_placeholder: str) -> None:
        if list(words[: len(SPECIALS)]) != list(SPECIALS) or item_placeholder not in words:
            raise ValueError(f"vocabulary must start with {SPECIALS} and contain {item_placeholder!r}")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary has duplicate words")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.item_placeholder = item_placeholder
        self.pad_id, self.start_id, self.end_id, self.unk_id = (self.index[s] for s in SPECIALS)
        self.item_id = self.index[item_placeholder]

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int, item_placeholder: str) -> WordTokenizer:
        """Vocabulary of the words seen at least ``min_count`` times (most frequent first, ties by word)."""
        counts = Counter(w for t in texts for w in tokenize(t))
        keep = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIALS and w != item_placeholder),
                      key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, item_placeholder, *keep], item_placeholder)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, self.unk_id) for w in tokenize(text)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        return " ".join(self.tokens(ids, skip_special))

    def tokens(self, ids: Iterable[int], skip_special: bool = True) -> list[str]:
        """Words of ``ids``, stopping at ``__end__`` (specials other than ``__unk__`` dropped)."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.end_id and skip_special:
                break
            w = self.words[i]
            if skip_special and w in (PAD, START, END):
                continue
            out.append(w)
        return out

    def to_dict(self) -> dict:
        return {"format": "ccrs.word_tokenizer/1", "words": self.words, "item_placeholder": self.item_placeholder}

    @classmethod
    def from_dict(cls, d: dict) -> WordTokenizer:
        if d.get("format") != "ccrs.word_tokenizer/1":
            raise ValueError(f"not a ccrs word tokenizer: format {d.get('format')!r}")
        return cls(list(d["words"]), d["item_placeholder"])
