"""The recommender as MAML tasks: one task per user of the ``user`` split, and meta-test evaluation.

    tasks = RecTaskSet.from_dataset(ds, fold=0, kg=kg, user_index=users)
    tasks.tasks("train")                  # [MetaTask]: support = support conversations' samples, query = query's
    preds = meta_predict(maml, tasks, "test")   # adapt on each test user's support, rank their query samples

Training tasks are the train users with both a support and a query sample. Valid/test users are
adapted on their support samples and scored on their query samples, exactly the samples the plain
models of ``ccrs eval rec`` are scored on (``rec_parts``), so rows of one table compare.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import (
    COLD_START_USER,
    KnowledgeGraph,
    RecBatch,
    RecExamples,
    rec_samples_with_history,
)
from ccrs.eval.rec_evaluator import RecPredictions, predict
from ccrs.meta.maml import MAML, MetaTask


def rec_loss(model: nn.Module, params: dict[str, Tensor], batch: RecBatch) -> Tensor:
    """Cross-entropy over all items with the given (possibly adapted) parameters."""
    return F.cross_entropy(functional_call(model, params, (batch,)), batch.labels)


class AdaptedModel(nn.Module):
    """``model`` evaluated with adapted parameters (for the evaluator, which calls ``model(batch)``)."""

    def __init__(self, model: nn.Module, params: dict[str, Tensor]) -> None:
        super().__init__()
        self.inner = model
        self.params = params

    def forward(self, batch: RecBatch) -> Tensor:
        return functional_call(self.inner, self.params, (batch,))


@dataclass
class UserTask:
    user_id: int
    role: str  # train | valid | test
    support: Tensor  # indices into RecTaskSet.examples
    query: Tensor


class RecTaskSet:
    """All samples of the users that have meta-tasks, indexed per user and role."""

    def __init__(self, examples: RecExamples, users: list[UserTask]) -> None:
        self.examples = examples
        self.users = users

    @classmethod
    def from_dataset(
        cls, ds: PreparedDataset, fold: int, kg: KnowledgeGraph, user_index: dict[int, int], max_context_entities: int = 64,
        max_history_entities: int = 0,
    ) -> RecTaskSet:
        roles = ds.user_splits(fold)
        parts = ds.conversation_parts()
        tasks_table = ds.table("tasks")
        with_task = {u for u, f in zip(tasks_table.column("user_id").to_pylist(), tasks_table.column("fold").to_pylist(),
                                       strict=True) if f >= 0}
        samples = rec_samples_with_history(ds, max_history_entities)
        keep = [i for i, u in enumerate(samples.column("user_id").to_pylist()) if u in with_task]
        examples = RecExamples(samples.take(keep), kg.entity_to_item(), user_index, max_context_entities)
        by_user: dict[int, dict[str, list[int]]] = defaultdict(lambda: {"support": [], "query": []})
        for i, (u, c) in enumerate(zip(examples.user_ids, examples.conversation_ids, strict=True)):
            by_user[u][parts[c]].append(i)
        # Training users need both sets; a valid/test user whose support conversations hold no rec
        # sample is still scored on their query samples (with the unadapted parameters), so the meta
        # rows are scored on exactly the plain rows' samples.
        users = [
            UserTask(u, roles[u], torch.tensor(p["support"], dtype=torch.long), torch.tensor(p["query"], dtype=torch.long))
            for u, p in sorted(by_user.items())
            if p["query"] and (p["support"] or roles[u] != "train")
        ]
        return cls(examples, users)

    def of_role(self, role: str) -> list[UserTask]:
        return [u for u in self.users if u.role == role]

    def batch(self, index: Tensor, cold_start: bool = False) -> RecBatch:
        """Samples at ``index``; ``cold_start`` puts every sample on the cold-start user row."""
        batch = self.examples.batch(index)
        if cold_start:
            batch.users = torch.full_like(batch.users, COLD_START_USER)
        return batch

    def tasks(self, role: str, cold_start: bool = False) -> list[MetaTask]:
        return [MetaTask(u.user_id, self.batch(u.support, cold_start), self.batch(u.query, cold_start))
                for u in self.of_role(role)]


def meta_predict(maml: MAML, task_set: RecTaskSet, role: str, batch_size: int = 256, cold_start: bool = False,
                 adapt: bool = True) -> RecPredictions:
    """Meta-test: per user, adapt on the support samples (same K, β), rank the query samples.

    ``cold_start``: every user starts from the cold-start row (their own row was never trained, or the
    inner loop is what personalises row 0). ``adapt=False`` ranks with the global parameters (β = 0).
    """
    model = maml.model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts = []
    for user in task_set.of_role(role):
        if adapt and user.support.numel():
            params = maml.adapt(task_set.batch(user.support, cold_start).to(device), create_graph=False)
        else:  # nothing to adapt on
            params = maml.parameters_dict()
        params = {k: v.detach() for k, v in params.items()}
        parts.append(predict(AdaptedModel(model, params), task_set.examples.select(user.query, cold_start), batch_size))
    model.train(was_training)
    return concat_predictions(parts)


def concat_predictions(parts: list[RecPredictions]) -> RecPredictions:
    if not parts:
        raise ValueError("no users to evaluate")
    cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
    return RecPredictions(
        sample_ids=cat("sample_ids"),
        conversation_ids=[c for p in parts for c in p.conversation_ids],
        user_ids=[u for p in parts for u in p.user_ids],
        labels=cat("labels"),
        label_entities=cat("label_entities"),
        ranks=cat("ranks"),
        label_in_context=cat("label_in_context"),
        top=cat("top"),
    )
