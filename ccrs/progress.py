"""How long work reports progress: a tqdm bar on a terminal, the per-epoch lines everywhere."""

from __future__ import annotations


def bar_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` flag: off when asked, and hidden whenever the output is
    not a terminal (``None``): logs of Ray tasks, ``ray job submit`` and CI get the one line per
    epoch the trainers print instead of carriage-return bars."""
    return None if progress else True
