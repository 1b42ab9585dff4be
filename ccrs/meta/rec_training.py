"""Meta-training the recommender, one rank's share of it: setup, meta-epochs, meta-test, state. No Ray.

``ray_jobs/train_recommender.py`` runs one :class:`RecMetaTraining` per Ray Train worker and passes
in the collectives (gradient all-reduce, parameter broadcast); with ``world_size=1`` and no
collectives the same object is the plain single-process loop (``benchmarks/meta_train.py`` (a)).

Data parallelism over users (Algorithm 1's meta-batch):

* every epoch, all ranks shuffle the training users with the same seed (``seed``, epoch) and cut
  the permutation into meta-batches of ``meta_batch_size`` users; the last incomplete meta-batch is
  dropped, and so are ``meta_batch_size mod world_size`` users of every meta-batch, so every rank
  runs the same number of meta-steps with the same number of users (no rank waits at a collective
  another rank never reaches);
* rank r takes users ``r, r + W, r + 2W, ...`` of each meta-batch, sums their task losses (Eq. 14),
  back-propagates, and the gradients are **averaged** across ranks before the Adam step, so every
  replica applies the same update and stays identical (initial weights broadcast from rank 0).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ccrs.config import CCRSConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, build_user_index, part_of_conversations
from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.meta.maml import MAML, MetaTask, meta_step
from ccrs.meta.rec_tasks import RecTaskSet, meta_predict, rec_loss
from ccrs.models.factory import TRAINABLE, build_recommender
from ccrs.train.rec_trainer import seed_everything

GradSync = Callable[[nn.Module], None]


class RecMetaTraining:
    def __init__(
        self,
        cfg: CCRSConfig,
        prepared: str | PreparedDataset,
        fold: int,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
        init_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if cfg.recommender.variant not in TRAINABLE:
            raise ValueError(f"meta-training needs a neural recommender, not {cfg.recommender.variant!r}")
        if cfg.rec_meta.meta_batch_size < world_size:
            raise ValueError(f"rec_meta.meta_batch_size={cfg.rec_meta.meta_batch_size} < {world_size} workers: "
                             "some workers would get no user")
        self.cfg, self.fold, self.rank, self.world_size = cfg, fold, rank, world_size
        self.device = torch.device(device)
        seed_everything(cfg.seed)
        ds = prepared if isinstance(prepared, PreparedDataset) else PreparedDataset.open(prepared)
        self.kg = KnowledgeGraph.from_dataset(ds)
        # Same user numbering as the plain trainer, so a plain checkpoint can initialise meta-training.
        self.user_index = build_user_index(ds.table("rec_samples"), part_of_conversations(ds, "user", fold))
        self.tasks = RecTaskSet.from_dataset(ds, fold, self.kg, self.user_index, cfg.recommender.max_context_entities)
        self.train_users = self.tasks.of_role("train")
        self.model = build_recommender(cfg.recommender, self.kg, len(self.user_index)).to(self.device)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.maml = MAML.from_config(self.model, rec_loss, cfg.rec_meta)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.rec_meta.outer_lr)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_score = -math.inf
        self.best_epoch = 0
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.resumed_at: list[int] = []  # epochs this run was resumed after (failures, reruns)

    # -- schedule ---------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return len(self.train_users) // self.cfg.rec_meta.meta_batch_size

    def meta_batches(self, epoch: int) -> list[list[int]]:
        """This rank's user indices (into ``train_users``) for each meta-step of ``epoch``."""
        b, w = self.cfg.rec_meta.meta_batch_size, self.world_size
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        perm = torch.randperm(len(self.train_users), generator=gen).tolist()
        usable = b - b % w
        return [perm[s * b : s * b + usable][self.rank :: w] for s in range(self.steps_per_epoch())]

    # -- training -----------------------------------------------------------------------------------
    def train_epoch(self, sync_grads: GradSync | None = None, progress: bool = False) -> dict[str, float]:
        """One meta-epoch (every rank calls it; collectives inside ``sync_grads``)."""
        from tqdm.auto import tqdm

        self.epoch += 1
        self.model.train()
        t0 = time.perf_counter()
        totals: dict[str, float] = {}
        batches = self.meta_batches(self.epoch)
        for users in tqdm(batches, desc=f"meta epoch {self.epoch}", disable=not progress):
            tasks = [self._task(i) for i in users]
            stats = meta_step(self.maml, tasks, self.optimizer, self.cfg.rec_meta.grad_clip, sync_grads)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
        n = max(len(batches), 1)
        out = {k: v / n for k, v in totals.items() if k != "tasks"}
        return out | {"epoch": self.epoch, "meta_steps": len(batches), "seconds": time.perf_counter() - t0}

    def _task(self, i: int) -> MetaTask:
        user = self.train_users[i]
        ex = self.tasks.examples
        return MetaTask(user.user_id, ex.batch(user.support).to(self.device), ex.batch(user.query).to(self.device))

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluate(self, role: str) -> RecPredictions:
        """Meta-test on valid/test users: adapt on support, rank query (both metric variants)."""
        return meta_predict(self.maml, self.tasks, role)

    def record_valid(self, metrics: dict[str, dict[str, float]], train_stats: dict[str, float]) -> bool:
        """Keep the history and the best state by valid ``rec_train.select_metric``; True if improved."""
        score = metrics["all"][self.cfg.rec_train.select_metric]
        self.history.append({**train_stats, "valid": metrics["all"], "valid_dedup": metrics["dedup"]})
        if score > self.best_score:
            self.best_score, self.best_epoch = score, self.epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
            return True
        return False

    def should_stop(self) -> bool:
        return self.epoch >= self.cfg.rec_meta.epochs or (
            self.best_epoch > 0 and self.epoch - self.best_epoch > self.cfg.rec_train.patience
        )

    # -- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and Python values only: saved/loaded with ``weights_only=True``."""
        return {
            "format": "ccrs.rec_meta/1",
            "config": self.cfg.to_dict(),
            "fold": self.fold,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "user_ids": list(self.user_index.keys()),
            "user_rows": list(self.user_index.values()),
            "resumed_at": self.resumed_at,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.history = state["epoch"], state["history"]
        self.best_score, self.best_epoch, self.best_state = state["best_score"], state["best_epoch"], state["best_state"]
        self.resumed_at = [*state.get("resumed_at", []), self.epoch]
