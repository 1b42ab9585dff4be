import math

import pytest
import torch

from ccrs.eval.rec_metrics import label_ranks, metrics_from_ranks, per_sample_metrics


def test_ranks_by_hand():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [4.0, 3.0, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    labels = torch.tensor([2, 3, 2])
    # sample 0: only item 1 scores higher → rank 1; sample 1: last → rank 3; sample 2: ties broken by index → 2
    assert label_ranks(scores, labels).tolist() == [1, 3, 2]


def test_metrics_by_hand():
    m = metrics_from_ranks(torch.tensor([0, 1, 9, 10, 60]), ks=(1, 10, 50))
    assert m["count"] == 5
    assert m["hit@1"] == pytest.approx(1 / 5)
    assert m["hit@10"] == pytest.approx(3 / 5)
    assert m["hit@50"] == pytest.approx(4 / 5)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 10) / 5)
    assert m["mrr@50"] == pytest.approx((1 + 1 / 2 + 1 / 10 + 1 / 11) / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)
    assert m["ndcg@1"] == pytest.approx(1 / 5)


def test_per_sample_values_average_to_the_metrics():
    ranks = torch.randint(0, 100, (200,))
    m = metrics_from_ranks(ranks)
    for key, values in per_sample_metrics(ranks).items():
        assert values.mean().item() == pytest.approx(m[key])


def test_empty():
    assert metrics_from_ranks(torch.tensor([]))["hit@10"] == 0.0
