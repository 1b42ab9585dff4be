"""Side-by-side comparison on the same samples: alignment by sample id, refusal of other samples, user-level p."""

import pytest
import torch

from ccrs.eval.rec_comparison import compare_on_same_samples, comparison_markdown
from ccrs.eval.rec_evaluator import RecPredictions


def _pred(ranks, sample_ids, users) -> RecPredictions:
    n = len(ranks)
    return RecPredictions(sample_ids=torch.tensor(sample_ids), conversation_ids=["c"] * n, user_ids=list(users),
                          labels=torch.zeros(n, dtype=torch.long), label_entities=torch.zeros(n, dtype=torch.long),
                          ranks=torch.tensor(ranks), label_in_context=torch.zeros(n, dtype=torch.bool),
                          top=torch.zeros(n, 1, dtype=torch.long))


def test_rows_are_aligned_by_sample_id_and_tested_against_the_reference():
    ids = list(range(40))
    users = [i // 4 for i in ids]  # 10 users, 4 samples each
    ref = _pred([20] * 40, ids, users)  # never in the top 10
    better = _pred([0] * 40, ids[::-1], users[::-1])  # same samples, another order: always first
    rows = compare_on_same_samples({"kbrd": ref, "ccrs": better}, reference="kbrd", n_resamples=2000)
    assert rows[0]["vs"] is None and rows[0]["ndcg@10"] == 0
    assert rows[1]["ndcg@10"] == 1 and rows[1]["diff_ndcg@10"] == pytest.approx(1.0)
    assert rows[1]["users"] == 10 and rows[1]["p_user"] < 0.01  # 10 users all better: 2/2^10 two-sided
    table = "\n".join(comparison_markdown(rows))
    assert "| ccrs | 40 | 10 | 1.0000 |" in table and "Δ NDCG@10 vs kbrd" in table


def test_predictions_on_other_samples_are_refused():
    a = _pred([1, 2], [0, 1], [0, 0])
    b = _pred([1, 2], [0, 2], [0, 0])
    with pytest.raises(ValueError, match="other samples"):
        compare_on_same_samples({"kbrd": a, "ccrs": b}, reference="kbrd")
    with pytest.raises(ValueError, match="reference"):
        compare_on_same_samples({"ccrs": b}, reference="kbrd")
