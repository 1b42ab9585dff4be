"""The two splits, selected by name: ``user`` (the paper's per-user meta-tasks) and ``standard`` (CRSLab).

``user`` (paper §3.1; default)
    All loaded conversations are pooled and grouped by seeker (the official train and test files have
    disjoint workers, so grouping is unaffected by pooling). Seekers with ≥ 2 conversations get a fold
    ``sha256(f"{seed}:{user_id}") mod n_folds``: a user's fold never depends on which other users are
    loaded, so adding the full official train file keeps every existing user's fold. Fold ``f`` uses
    fold ``f`` as test users, fold ``f+1 (mod n)`` as valid users and the rest as train users (8:1:1
    with 10 folds); rotating ``f`` puts every user in test once. Each user's conversations, ordered
    by conversation id, are split into support (the first ``max(1, floor(n·support_fraction))``) and
    query (the rest). Users with a single conversation have fold -1: they join the training pool of
    every fold (support = their conversation, query empty), so they help baselines and
    pre-training but form no meta-task.

    Fairness rule for non-meta baselines (paper §3.1): they train on the train users' conversations
    **plus the test (and valid) users' support conversations**, and are evaluated on the same query
    conversations as the meta-learned models. :func:`user_split_roles` encodes this.

``standard`` (CRSLab / KGSF)
    The official test file(s) (name contains ``test``) are test; the other conversations are split
    9:1 into train/valid by ``sha256(f"{seed}:{conversation_id}") mod valid_every == 0`` → valid.
"""

from __future__ import annotations

import hashlib

SPLITS = ("user", "standard")


def stable_hash(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")


def conversation_sort_key(conversation_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, then any non-numeric ids in string order."""
    return (0, int(conversation_id), "") if conversation_id.isdigit() else (1, 0, conversation_id)


def user_fold(user_id: int, n_conversations: int, seed: int, n_folds: int) -> int:
    if n_conversations < 2:
        return -1
    return stable_hash(seed, str(user_id)) % n_folds


def fold_role(fold: int, test_fold: int, n_folds: int) -> str:
    """train / valid / test of a user whose fold is ``fold`` when ``test_fold`` is the test fold."""
    if not 0 <= test_fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds}), got {test_fold}")
    if fold == test_fold:
        return "test"
    if fold == (test_fold + 1) % n_folds:
        return "valid"
    return "train"


def support_query(conversation_ids: list[str], support_fraction: float) -> tuple[list[str], list[str]]:
    ordered = sorted(conversation_ids, key=conversation_sort_key)
    if len(ordered) < 2:
        return ordered, []
    n_support = min(len(ordered) - 1, max(1, int(len(ordered) * support_fraction)))
    return ordered[:n_support], ordered[n_support:]


def standard_role(conversation_id: str, is_test_side: bool, seed: int, valid_every: int) -> str:
    if is_test_side:
        return "test"
    return "valid" if stable_hash(seed, conversation_id) % valid_every == 0 else "train"


def user_split_roles(split: str, part: str) -> str:
    """Which conversations a model trains on, for the fairness rule (see module docstring).

    ``split`` is the user's split, ``part`` the conversation's ``support``/``query`` role; returns
    ``train`` (a baseline may train on it), or ``valid``/``test`` (held-out evaluation conversation).
    """
    if split == "train" or part == "support":
        return "train"
    return split
