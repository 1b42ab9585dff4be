"""Meta-training of one stage, one rank's share of it: meta-epochs, selection, state. No Ray.

Subclasses (:class:`~ccrs.meta.rec_training.RecMetaTraining`,
:class:`~ccrs.meta.gen_training.GenMetaTraining`) provide the model, the loss, the training users'
tasks and the meta-test; this class owns what both stages share. ``ray_jobs/meta_driver.py`` runs
one object per Ray Train worker and passes in the collectives; with ``world_size=1`` and no
collectives the same object is the plain single-process loop.

Data parallelism over users (Algorithm 1's meta-batch):

* every epoch, all ranks shuffle the training users with the same seed (``seed``, epoch) and cut
  the permutation into meta-batches of ``meta_batch_size`` users; the last incomplete meta-batch is
  dropped, so every rank runs the same number of meta-steps (no rank waits at a collective another
  rank never reaches);
* ``meta.sharding=cost`` (default): the users of a meta-batch are dealt to the ranks by their
  estimated cost (:meth:`MetaTraining.task_cost`), largest first to the least-loaded rank (LPT), so
  the ranks finish their share together; ``count``: rank r takes users ``r, r + W, ...`` and
  ``meta_batch_size mod world_size`` users of every meta-batch are dropped (equal counts);
* each rank sums its users' task losses (Eq. 14), back-propagates, and the gradients are
  **averaged** across ranks before the Adam step, so every replica applies the same update and stays
  identical (initial weights broadcast from rank 0). The sum over the meta-batch does not depend on
  how its users are dealt.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ccrs.config import CCRSConfig, MetaConfig
from ccrs.meta.maml import MAML, LossFn, MetaTask, meta_step
from ccrs.meta.row_sparse import RowSparseUpdate, RowSync

GradSync = Callable[[nn.Module], None]


class MetaTraining:
    """Shared meta-training loop. Subclasses set ``stage`` and implement the hooks below."""

    stage = "stage"

    def __init__(self, cfg: CCRSConfig, meta_cfg: MetaConfig, model: nn.Module, loss_fn: LossFn, n_train_users: int,
                 patience: int, rank: int = 0, world_size: int = 1, device: str | torch.device = "cpu") -> None:
        if meta_cfg.meta_batch_size < world_size:
            raise ValueError(f"meta_batch_size={meta_cfg.meta_batch_size} < {world_size} workers: "
                             "some workers would get no user")
        self.cfg, self.meta_cfg, self.patience = cfg, meta_cfg, patience
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        self.model = model.to(self.device)
        self.n_train_users = n_train_users
        self.maml = MAML.from_config(self.model, loss_fn, meta_cfg)
        groups = [{"params": list(self.model.parameters())}]
        if self.maml.meta_parameters():
            groups.append({"params": self.maml.meta_parameters(), "lr": meta_cfg.meta_sgd_lr or meta_cfg.outer_lr})
        self.optimizer = torch.optim.Adam(groups, lr=meta_cfg.outer_lr)
        self.rows = (RowSparseUpdate(self.model, self.optimizer, self.maml.inner_names)
                     if meta_cfg.embedding_gradients == "row_sparse" else None)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []  # one entry per meta-epoch (1, 2, ...)
        self.start: dict[str, Any] | None = None  # the starting point's valid meta-test (epoch 0), if evaluated
        self.best_score = -math.inf
        self.best_epoch = 0
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.best_inner_lrs = self.maml.inner_lrs()
        self.resumed_at: list[int] = []  # epochs this run was resumed after (failures, reruns)

    # -- hooks ----------------------------------------------------------------------------------
    def task(self, i: int) -> MetaTask:
        """Training user ``i``'s support and query batches, on ``self.device``."""
        raise NotImplementedError

    def evaluate(self, role: str) -> Any:
        """Meta-test on ``role`` (valid/test) users; the result has ``metrics()``."""
        raise NotImplementedError

    def select_score(self, metrics: dict) -> float:
        """Higher is better: the model-selection criterion on valid metrics."""
        raise NotImplementedError

    def summary(self, metrics: dict) -> dict[str, float]:
        """A few valid metrics for the per-epoch progress line."""
        return {}

    def history_entry(self, metrics: dict) -> dict[str, Any]:
        return {"valid": metrics}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def task_cost(self, i: int) -> float:
        """Estimated cost of training user ``i``'s task (``meta.sharding=cost``); all equal by default."""
        return 1.0

    # -- schedule ---------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return self.n_train_users // self.meta_cfg.meta_batch_size

    def meta_batches(self, epoch: int) -> list[list[int]]:
        """This rank's user indices (into the training users) for each meta-step of ``epoch``."""
        b, w = self.meta_cfg.meta_batch_size, self.world_size
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        perm = torch.randperm(self.n_train_users, generator=gen).tolist()
        if self.meta_cfg.sharding == "count":
            usable = b - b % w
            return [perm[s * b : s * b + usable][self.rank :: w] for s in range(self.steps_per_epoch())]
        return [deal_by_cost(perm[s * b : (s + 1) * b], [self.task_cost(i) for i in perm[s * b : (s + 1) * b]], w)[self.rank]
                for s in range(self.steps_per_epoch())]

    # -- training -----------------------------------------------------------------------------------
    def train_epoch(self, sync_grads: GradSync | None = None, progress: bool = False,
                    sync_rows: RowSync | None = None) -> dict[str, float]:
        """One meta-epoch (every rank calls it; collectives inside ``sync_grads`` and ``sync_rows``)."""
        from tqdm.auto import tqdm

        from ccrs.progress import bar_disabled

        self.epoch += 1
        self.model.train()
        t0 = time.perf_counter()
        totals: dict[str, float] = {}
        self.step_busy: list[float] = []  # this rank's busy seconds per meta-step (idle_shares)
        batches = self.meta_batches(self.epoch)
        for users in tqdm(batches, desc=f"{self.stage} meta epoch {self.epoch}", disable=bar_disabled(progress)):
            tasks = [self.task(i) for i in users]
            stats = meta_step(self.maml, tasks, self.optimizer, self.meta_cfg.grad_clip, sync_grads, self.rows, sync_rows)
            self.step_busy.append(stats.pop("busy_s"))
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
        n = max(len(batches), 1)
        out = {k: v / n for k, v in totals.items() if k != "tasks"}
        return out | {"epoch": self.epoch, "meta_steps": len(batches), "seconds": time.perf_counter() - t0}

    def record_valid(self, metrics: dict, train_stats: dict[str, float]) -> bool:
        """Keep the history and the best state by :meth:`select_score`; True if improved."""
        self.history.append({**train_stats, **self.history_entry(metrics)})
        return self._keep_if_best(metrics)

    def _keep_if_best(self, metrics: dict) -> bool:
        score = self.select_score(metrics)
        if score > self.best_score:
            self.best_score, self.best_epoch = score, self.epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.best_inner_lrs = self.maml.inner_lrs()
            return True
        return False

    def needs_start_evaluation(self) -> bool:
        """``eval_start``: the starting point is meta-tested (epoch 0) before the first meta-step."""
        return self.meta_cfg.eval_start and self.epoch == 0 and self.start is None

    def record_start(self, metrics: dict) -> None:
        """Epoch 0 = the starting point, adapted as at meta-test: the best state unless a meta-epoch beats it.

        Kept in ``self.start``, not in ``history``, so ``history[e - 1]`` stays meta-epoch ``e``."""
        self.start = {"epoch": 0, "meta_steps": 0, **self.history_entry(metrics)}
        self._keep_if_best(metrics)

    def restore_best(self) -> None:
        self.model.load_state_dict(self.best_state)
        self.maml.load_inner_lrs(self.best_inner_lrs)

    def should_stop(self) -> bool:
        return self.epoch >= self.meta_cfg.epochs or self.epoch - self.best_epoch > self.patience

    # -- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and Python values only: saved/loaded with ``weights_only=True``."""
        return {
            "format": f"ccrs.{self.stage}_meta/1",
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "row_optimizer": self.rows.state_dict() if self.rows is not None else None,
            "history": self.history,
            "start": self.start,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "inner_lrs": self.maml.inner_lrs(),
            "best_inner_lrs": self.best_inner_lrs,
            "resumed_at": self.resumed_at,
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.rows is not None and state.get("row_optimizer"):
            self.rows.load_state_dict(state["row_optimizer"])
        self.epoch, self.history, self.start = state["epoch"], state["history"], state.get("start")
        self.best_score, self.best_epoch, self.best_state = state["best_score"], state["best_epoch"], state["best_state"]
        self.maml.load_inner_lrs(state.get("inner_lrs", {}))
        self.best_inner_lrs = state.get("best_inner_lrs", self.maml.inner_lrs())
        self.resumed_at = [*state.get("resumed_at", []), self.epoch]


def deal_by_cost(users: list[int], costs: list[float], world_size: int) -> list[list[int]]:
    """Users dealt to ``world_size`` ranks, largest cost first to the least-loaded rank (ties: the
    lower rank), each rank's users in meta-batch order. Deterministic: every rank computes the same."""
    loads = [0.0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for pos in sorted(range(len(users)), key=lambda j: (-costs[j], j)):
        r = min(range(world_size), key=lambda k: (loads[k], k))
        loads[r] += costs[pos]
        shares[r].append(pos)
    return [[users[j] for j in sorted(share)] for share in shares]


def idle_shares(busy_by_rank: list[list[float]]) -> list[float]:
    """Per meta-step, the share of the ranks' time spent waiting for the slowest rank at the gradient
    collective: Σ_r (max busy − busy_r) / (W · max busy). ``busy_by_rank[r][s]``: rank r's busy
    seconds at step s (``meta_step``'s ``busy_s``)."""
    out = []
    for step in zip(*busy_by_rank, strict=True):
        top = max(step)
        out.append(sum(top - b for b in step) / (len(step) * top) if top > 0 else 0.0)
    return out


def fit_in_process(training: MetaTraining, progress: bool = False) -> MetaTraining:
    """The single-process meta-training loop (no Ray): the same lifecycle as
    ``ray_jobs.meta_driver.run_meta_loop`` with one rank — start evaluation (``eval_start``),
    meta-epochs with a valid meta-test after each, early stopping, best state restored."""
    if training.needs_start_evaluation():
        training.record_start(training.evaluate("valid").metrics())
    while not training.should_stop():
        stats = training.train_epoch(progress=progress)
        training.record_valid(training.evaluate("valid").metrics(), stats)
    training.restore_best()
    return training
