"""``last.pt``: what a plain trainer needs to resume a killed run exactly (weights, optimizer, RNGs, history).

    progress = resume_or_start(out_loc, model, opt, gen, worst=-math.inf)   # restores if last.pt exists
    ... train epoch ...
    save_progress(out_loc, fmt, model, opt, gen, history, best, best_epoch, epoch)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from ccrs import storage
from ccrs.checkpoint import load_checkpoint, save_checkpoint

LAST = "last.pt"


@dataclass
class Progress:
    history: list[dict[str, Any]]
    best: float
    best_epoch: int
    start: int  # first epoch still to run
    best_state: dict[str, torch.Tensor]


def resume_or_start(out_loc: storage.Location | None, model, opt, gen: torch.Generator, worst: float) -> Progress:
    """Restore model, optimizer, data-order and torch RNGs from ``last.pt`` (and the best weights
    from ``best.pt``) when the run directory has them; otherwise a fresh start."""
    if out_loc is None or not storage.exists(out_loc.child(LAST)):
        return Progress([], worst, 0, 1, copy.deepcopy(model.state_dict()))
    state = load_checkpoint(out_loc.child(LAST))
    model.load_state_dict(state["state_dict"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return Progress(state["history"], state["best"], state["best_epoch"], state["epoch"] + 1,
                    load_checkpoint(out_loc.child("best.pt"))["state_dict"])


def save_progress(out_loc: storage.Location, fmt: str, model, opt, gen: torch.Generator, history: list, best: float,
                  best_epoch: int, epoch: int) -> None:
    save_checkpoint(out_loc.child(LAST), {
        "format": fmt, "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(), "history": history, "best": best, "best_epoch": best_epoch, "epoch": epoch,
    })
