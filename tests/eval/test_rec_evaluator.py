import json

import torch

from ccrs import storage
from ccrs.config import RecommenderConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.eval.rec_evaluator import RecPredictions, predict
from ccrs.eval.rec_metrics import metrics_from_ranks
from ccrs.models import build_recommender


def test_saved_predictions_recompute_the_metrics(synth_prepared, tmp_path):
    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    parts, users = rec_parts(ds, "user", 0, 64, kg)
    model = build_recommender(RecommenderConfig(variant="ccrs", entity_dim=16, user_dim=8), kg, len(users))
    preds = predict(model, parts["test"], batch_size=7)
    loc = storage.resolve(str(tmp_path))
    report = preds.save(loc, "test", {"variant": "ccrs"})
    table = storage.read_parquet(loc.child("test_predictions.parquet"))
    back = RecPredictions.from_table(table)
    assert len(table) == len(parts["test"]) and back.top.shape == (len(table), 50)
    # every number can be recomputed from the file: ranks → metrics, and the rank agrees with the top-50
    saved = json.loads((tmp_path / "test_metrics.json").read_text())
    assert saved["metrics"] == report["metrics"] == back.metrics()
    assert metrics_from_ranks(back.ranks[~back.label_in_context])["count"] == int((~back.label_in_context).sum())
    for rank, label, top in zip(back.ranks.tolist(), back.labels.tolist(), back.top.tolist(), strict=True):
        assert (top.index(label) == rank) if rank < 50 else (label not in top)
    # batch size does not change predictions
    again = predict(model, parts["test"], batch_size=64)
    assert torch.equal(again.ranks, preds.ranks)
