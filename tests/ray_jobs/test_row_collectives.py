"""``allreduce_row_gradients`` on a real 2-process gloo group: the same average as a dense all-reduce."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ccrs.nn.row_sparse_embedding import RowGradient
from ray_jobs.meta_driver import allreduce_row_gradients

N, D = 30, 3


def _grads(rank: int) -> list[RowGradient]:
    ids = [torch.tensor([1, 4, 9]), torch.tensor([4, 20])][rank]  # overlap on row 4, different counts
    rows = torch.arange(ids.numel() * D, dtype=torch.float32).view(-1, D) + 10 * rank
    small = RowGradient(torch.tensor([rank]), torch.ones(1, D) * (rank + 1), 3)  # union covers 2 of 3 rows: dense path
    return [RowGradient(ids, rows, N), RowGradient(torch.zeros(0, dtype=torch.long), torch.zeros(0, D), N), small]


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    got = allreduce_row_gradients(_grads(rank))
    dense = torch.zeros(N, D).index_add_(0, _grads(rank)[0].ids, _grads(rank)[0].rows)
    dist.all_reduce(dense)
    torch.save({"ids": got[0].ids, "rows": got[0].rows, "dense": dense / 2, "empty": got[1].ids.numel(),
                "small_ids": got[2].ids, "small_rows": got[2].rows}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_rows_average_like_the_dense_all_reduce(tmp_path):
    out = str(tmp_path / "r")
    mp.spawn(_worker, args=(f"file://{tmp_path / 'store'}", out), nprocs=2, join=True)
    r0, r1 = (torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1))
    assert r0["ids"].tolist() == [1, 4, 9, 20] and torch.equal(r0["ids"], r1["ids"])
    torch.testing.assert_close(r0["rows"], r0["dense"][r0["ids"]], atol=0, rtol=0)
    torch.testing.assert_close(r0["rows"], r1["rows"], atol=0, rtol=0)
    assert r0["empty"] == 0
    assert r0["small_ids"].tolist() == [0, 1] and r0["small_rows"][:, 0].tolist() == [0.5, 1.0]
