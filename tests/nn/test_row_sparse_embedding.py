import pytest
import torch
from torch import nn

from ccrs.nn.row_sparse_embedding import RowSparseEmbedding, coalesce


def test_recorded_rows_equal_the_dense_gradient_and_no_dense_gradient_is_built():
    torch.manual_seed(0)
    sparse = RowSparseEmbedding(50, 4)
    dense = nn.Embedding(50, 4)
    dense.weight.data.copy_(sparse.weight.data)
    ids_a, ids_b = torch.tensor([[3, 7, 3], [9, 9, 1]]), torch.tensor([7, 40])
    w = torch.randn(2, 3, 4)

    def loss(emb):
        return (emb(ids_a) * w).sum() + emb(ids_b).pow(2).sum()

    sparse.start_recording()
    loss(sparse).backward()
    got = sparse.stop_recording()
    loss(dense).backward()
    assert sparse.weight.grad is None
    assert got.ids.tolist() == [1, 3, 7, 9, 40]
    torch.testing.assert_close(got.rows, dense.weight.grad[got.ids])
    untouched = torch.ones(50, dtype=torch.bool)
    untouched[got.ids] = False
    assert dense.weight.grad[untouched].abs().sum() == 0
    assert got.nbytes() == 5 * 8 + 5 * 4 * 4


def test_flush_between_backwards_keeps_the_sum_and_outside_recording_it_is_nn_embedding():
    torch.manual_seed(1)
    emb = RowSparseEmbedding(10, 2)
    emb.start_recording()
    emb(torch.tensor([1, 2])).sum().backward()
    emb.flush()
    emb(torch.tensor([2, 5])).mul(2).sum().backward()
    got = emb.stop_recording()
    assert got.ids.tolist() == [1, 2, 5]
    torch.testing.assert_close(got.rows, torch.tensor([[1.0, 1.0], [3.0, 3.0], [2.0, 2.0]]))
    emb(torch.tensor([4])).sum().backward()  # not recording: the ordinary dense gradient
    assert emb.weight.grad is not None and emb.weight.grad[4].tolist() == [1.0, 1.0]
    with torch.no_grad():
        emb.start_recording()
        out = emb(torch.tensor([4]))  # no grad mode: a plain lookup, nothing recorded
        assert not out.requires_grad and emb.stop_recording().ids.numel() == 0


def test_backward_after_stop_is_an_error():
    emb = RowSparseEmbedding(5, 2)
    emb.start_recording()
    out = emb(torch.tensor([1]))
    emb.stop_recording()
    with pytest.raises(RuntimeError, match="after stop_recording"):
        out.sum().backward()


def test_coalesce_sums_duplicates():
    got = coalesce(torch.tensor([4, 1, 4]), torch.tensor([[1.0], [2.0], [3.0]]), 1)
    assert got.ids.tolist() == [1, 4] and got.rows.squeeze(1).tolist() == [2.0, 4.0]
