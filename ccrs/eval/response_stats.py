"""How generic a set of responses is, and whether they recommend when the seeker asks (issue 33).

Dist-k (:func:`ccrs.eval.gen_metrics.distinct`) counts k-grams; a generator that says "have you seen
__item__ ?" to every third seeker can still score well on it. These figures look at whole responses:

* :func:`response_diversity` — the share of responses that are distinct strings, the share taken by
  the most frequent one (and which it is), the mean length in words;
* :func:`asks_for_recommendation` — a documented rule on the seeker's turn text: does it ask for a
  movie? (a request verb, a "something like/funny/new" phrase, or a question for other titles);
* :func:`recommendation_shares` — among the responses to turns that ask, the share that carry an item
  slot, for the generated responses and for the human ones, so the two can be compared.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

#: The rule of :func:`asks_for_recommendation`, on lower-cased text; each alternative is a way ReDial
#: seekers ask for a movie ("any suggestions?", "I'm looking for a comedy", "something like Alien",
#: "I want a movie for date night", "comedies like Superbad").
ASK_PATTERNS = (
    r"\b(recommend|recommendation|recommendations|suggest|suggestion|suggestions|ideas?)\b",
    r"\b(looking for|in the mood for|i want to (watch|see)|i'd like to (watch|see)|i would like to (watch|see))\b",
    r"\bi (need|want|would like|'d like) (a|an|some|to find) ?(good |new |great |fun |funny |scary |family )?"
    r"(movies?|films?|comed(y|ies)|something)\b",
    r"\bwhat (should|could|can|would) (i|we) (watch|see)\b",
    r"\b(something|anything|movies?|films?) (like|similar|else|new|newer|funny|scary|good|fun)\b",
    r"\b(something|anything) (with|for|to watch)\b",
    r"\b(comed(y|ies)|dramas?|thrillers?|horrors?|romances?|cartoons?|documentar(y|ies)|musicals?|westerns?) like\b",
    r"\b(any|some) (other|more|good|new|great) (movies?|films?|ones?|titles?)\b",
    r"\b(what|which) (else|other|movies?|films?)\b.*\?",
    r"\bknow (of )?any(thing)?\b",
)
#: Removed before the rule reads a turn: a thanks for earlier suggestions is not a new request (the
#: commonest false positive on the labelled sample, ``studies/asks_rule.py``).
THANKS_PATTERN = (r"\b(thanks?|thank you|thx|ty)( so much| very much| a lot)? (for|4) (all )?(the|your|those|these|all|my)? ?"
                  r"(great |good |awesome |wonderful |excellent )?(suggestions?|recommendations?|recs|ideas?|help)\b")
_ASK = re.compile("|".join(f"(?:{p})" for p in ASK_PATTERNS))
_THANKS = re.compile(THANKS_PATTERN)


def asks_for_recommendation(text: str) -> bool:
    """Does the seeker's turn ask for a movie? (:data:`ASK_PATTERNS` on the text without its
    :data:`THANKS_PATTERN` phrases)."""
    return bool(_ASK.search(_THANKS.sub(" ", text.lower())))


def response_diversity(responses: Sequence[str]) -> dict[str, float | str]:
    """Distinct-response share, the most frequent response and its share, mean length (words)."""
    if not responses:
        raise ValueError("no responses")
    normal = [" ".join(r.split()) for r in responses]
    counts = Counter(normal)
    top, n_top = counts.most_common(1)[0]
    return {"distinct_responses": len(counts) / len(normal), "top_response_share": n_top / len(normal),
            "top_response": top, "mean_length": sum(len(r.split()) for r in normal) / len(normal)}


def recommendation_shares(records: Iterable[dict], placeholder: str = "__item__") -> dict[str, float | int | None]:
    """Among records whose last context turn asks for a recommendation (``context_last``), the share
    of generated responses (``generated``) and of human ones (``reference``) with an item slot."""
    asked = [r for r in records if asks_for_recommendation(r.get("context_last", ""))]
    if not asked:
        return {"asked": 0, "recommends_when_asked": None, "human_recommends_when_asked": None}  # JSON-clean
    gen = sum(placeholder in r["generated"].split() for r in asked)
    human = sum(placeholder in r["reference"] for r in asked)
    return {"asked": len(asked), "recommends_when_asked": gen / len(asked),
            "human_recommends_when_asked": human / len(asked)}
