"""Rank every item for every sample, keep per-sample predictions, and compute the metrics from them.

    preds = predict(model, examples, batch_size=256)
    preds.metrics()          # {"all": {...}, "dedup": {...}}  (see ccrs.eval.rec_metrics)
    preds.save(location)     # predictions.parquet + metrics.json, so any number can be recomputed

The Parquet file has one row per sample: ``sample_id``, ``conversation_id``, ``user_id``, ``label``
(item index), ``label_entity``, ``rank`` (0-based rank of the label among all items),
``label_in_context`` and ``top`` (the 50 best item indices, best first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ccrs import storage
from ccrs.data.rec_examples import RecExamples
from ccrs.eval.rec_metrics import label_ranks, metrics_from_ranks
from ccrs.progress import bar_disabled

TOP_K = 50


@dataclass
class RecPredictions:
    sample_ids: Tensor
    conversation_ids: list[str]
    user_ids: list[int]
    labels: Tensor
    label_entities: Tensor
    ranks: Tensor
    label_in_context: Tensor
    top: Tensor  # (n, TOP_K)

    def metrics(self) -> dict[str, dict[str, float]]:
        return {
            "all": metrics_from_ranks(self.ranks),
            "dedup": metrics_from_ranks(self.ranks[~self.label_in_context]),
        }

    def to_table(self) -> pa.Table:
        return pa.table(
            {
                "sample_id": pa.array(self.sample_ids.tolist(), pa.int64()),
                "conversation_id": pa.array(self.conversation_ids, pa.string()),
                "user_id": pa.array(self.user_ids, pa.int64()),
                "label": pa.array(self.labels.tolist(), pa.int64()),
                "label_entity": pa.array(self.label_entities.tolist(), pa.int64()),
                "rank": pa.array(self.ranks.tolist(), pa.int64()),
                "label_in_context": pa.array(self.label_in_context.tolist(), pa.bool_()),
                "top": pa.array(self.top.tolist(), pa.list_(pa.int64())),
            }
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> RecPredictions:
        col = table.column
        return cls(
            sample_ids=torch.tensor(col("sample_id").to_pylist(), dtype=torch.long),
            conversation_ids=col("conversation_id").to_pylist(),
            user_ids=col("user_id").to_pylist(),
            labels=torch.tensor(col("label").to_pylist(), dtype=torch.long),
            label_entities=torch.tensor(col("label_entity").to_pylist(), dtype=torch.long),
            ranks=torch.tensor(col("rank").to_pylist(), dtype=torch.long),
            label_in_context=torch.tensor(col("label_in_context").to_pylist(), dtype=torch.bool),
            top=torch.tensor(col("top").to_pylist(), dtype=torch.long).reshape(len(table), -1),
        )

    def save(self, directory: storage.Location, name: str, extra: dict | None = None) -> dict:
        """``<name>_predictions.parquet`` then ``<name>_metrics.json`` (written last, atomically)."""
        storage.write_bytes(directory.child(f"{name}_predictions.parquet"), storage.table_to_parquet_bytes(self.to_table()))
        report = {"metrics": self.metrics(), **(extra or {})}
        storage.write_bytes(directory.child(f"{name}_metrics.json"), json.dumps(report, indent=2).encode())
        return report


@torch.no_grad()
def predict(
    model: nn.Module, examples: RecExamples, batch_size: int = 256, progress: bool = False, desc: str = "eval"
) -> RecPredictions:
    """Scores every item for each sample with ``model(batch)`` (model put in eval mode and restored)."""
    was_training = model.training
    model.eval()
    device = next((t.device for t in model.buffers()), torch.device("cpu"))
    ranks, tops = [], []
    n_batches = (len(examples) + batch_size - 1) // batch_size
    for batch in tqdm(examples.batches(batch_size), total=n_batches, desc=desc, disable=bar_disabled(progress), leave=False):
        batch = batch.to(device)
        scores = model(batch)
        if not torch.isfinite(scores).all():
            raise FloatingPointError(f"{desc}: the model produced non-finite scores (samples "
                                     f"{batch.sample_ids[~torch.isfinite(scores).all(1)][:5].tolist()}...)")
        ranks.append(label_ranks(scores, batch.labels).cpu())
        tops.append(scores.topk(min(TOP_K, scores.size(1)), dim=1).indices.cpu())
    model.train(was_training)
    empty = torch.zeros(0, dtype=torch.long)
    return RecPredictions(
        sample_ids=examples.sample_ids,
        conversation_ids=examples.conversation_ids,
        user_ids=examples.user_ids,
        labels=examples.labels,
        label_entities=examples.label_entities,
        ranks=torch.cat(ranks) if ranks else empty,
        label_in_context=examples.label_in_context.bool(),
        top=torch.cat(tops) if tops else empty.reshape(0, TOP_K),
    )
