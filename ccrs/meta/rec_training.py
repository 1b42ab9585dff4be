"""Meta-training the recommender (paper §2.4), one rank's share of it. No Ray.

``ray_jobs/train_recommender.py`` runs one :class:`RecMetaTraining` per Ray Train worker; the loop,
the data-parallel schedule over users and the state live in :class:`ccrs.meta.training.MetaTraining`.
"""

from __future__ import annotations

from typing import Any

import torch

from ccrs.config import CCRSConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, build_user_index, part_of_conversations
from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.meta.maml import MetaTask
from ccrs.meta.rec_tasks import RecTaskSet, meta_predict, rec_loss
from ccrs.meta.training import GradSync, MetaTraining
from ccrs.models.factory import TRAINABLE, build_recommender
from ccrs.seeding import seed_everything

__all__ = ["GradSync", "RecMetaTraining"]

#: The fixed part of a task's cost in units of one sample's (RecMetaTraining.task_cost).
TASK_FIXED_COST_SAMPLES = 170


class RecMetaTraining(MetaTraining):
    stage = "rec"

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
        seed_everything(cfg.seed)
        ds = prepared if isinstance(prepared, PreparedDataset) else PreparedDataset.open(prepared)
        self.fold = fold
        self.kg = KnowledgeGraph.from_dataset(ds)
        # Same user numbering as the plain trainer, so a plain checkpoint can initialise meta-training.
        self.user_index = build_user_index(
            ds.table("rec_samples"), part_of_conversations(ds, "user", fold, cfg.rec_train.holdout_adaptation))
        self.tasks = RecTaskSet.from_dataset(ds, fold, self.kg, self.user_index, cfg.recommender.max_context_entities,
                                            cfg.recommender.max_history_entities)
        self.train_users = self.tasks.of_role("train")
        model = build_recommender(cfg.recommender, self.kg, len(self.user_index))
        if init_state is not None:
            model.load_state_dict(init_state)
        # Rows no task trains: from scratch, the valid/test users' own rows stay random (only training
        # users' tasks reach the user table), so they meta-test from the cold-start row; with
        # ``task_user_row=cold_start`` every task starts from row 0.
        self.task_cold_start = cfg.rec_meta.task_user_row == "cold_start"
        self.eval_cold_start = self.task_cold_start or init_state is None
        super().__init__(cfg, cfg.rec_meta, model, rec_loss, len(self.train_users), cfg.rec_train.patience, rank,
                         world_size, device)

    def task(self, i: int) -> MetaTask:
        user = self.train_users[i]
        cold = self.task_cold_start
        weight = float(user.query.numel()) if self.meta_cfg.weight_by_query else 1.0
        return MetaTask(user.user_id, self.tasks.batch(user.support, cold).to(self.device),
                        self.tasks.batch(user.query, cold).to(self.device), weight)

    def task_cost(self, i: int) -> float:
        """Support + query samples plus a fixed per-task cost worth 170 samples. Fitted on fold 0 of
        the real data (120 training users, one thread, second order, L = 1): a task costs
        0.19 s + 1.1 ms × samples (R² 0.61; a task's item scoring and its three passes are the fixed
        part); the mentions add nothing once samples are counted."""
        user = self.train_users[i]
        return TASK_FIXED_COST_SAMPLES + user.support.numel() + user.query.numel()

    def evaluate(self, role: str, adapt: bool = True) -> RecPredictions:
        """Meta-test on valid/test users: adapt on support, rank query (both metric variants)."""
        return meta_predict(self.maml, self.tasks, role, cold_start=self.eval_cold_start, adapt=adapt)

    def select_score(self, metrics: dict) -> float:
        return metrics["all"][self.cfg.rec_train.select_metric]

    def summary(self, metrics: dict) -> dict[str, float]:
        return {"valid_ndcg@10": metrics["all"]["ndcg@10"], "valid_hit@10": metrics["all"]["hit@10"]}

    def history_entry(self, metrics: dict) -> dict[str, Any]:
        return {"valid": metrics["all"], "valid_dedup": metrics["dedup"]}

    def extra_state(self) -> dict[str, Any]:
        return {"fold": self.fold, "user_ids": list(self.user_index.keys()), "user_rows": list(self.user_index.values()),
                "eval_cold_start": self.eval_cold_start}
