r"""The outer update of row-sparse embedding tables (``rec_meta.embedding_gradients=row_sparse``). No Ray.

Each meta-step records the gradient of every :class:`~ccrs.nn.row_sparse_embedding.RowSparseEmbedding`
the inner loop does not adapt as (touched row ids, summed rows) (a table it adapts, e.g. the user
table under ``inner_only=[user_embedding*]``, keeps the dense path); the data-parallel sync exchanges
those rows (``ray_jobs.meta_driver.allreduce_row_gradients``), the gradient clip counts them, and the
update below moves the touched rows only. Cost per step: O(rows read), whatever the table size.

The update follows the stage's dense optimizer, with its hyper-parameters:

* ``SGD`` (no momentum): identical to the dense path (an untouched row has gradient 0 and does not
  move there either); tested to 1e-6.
* ``Adam``: **lazy Adam** (TensorFlow's ``LazyAdam``, ``torch.optim.SparseAdam``): the moments of a
  touched row are updated as Adam does, with the global step count for the bias corrections; an
  untouched row neither moves nor decays its moments. Dense Adam would keep moving a row on its
  momentum for a few hundred steps after its last gradient (m decays by β₁ = 0.9 per step) and decay
  its v. The first step is identical (moments start at 0); later steps differ only on rows that
  were touched before and not now. The effect on valid NDCG@10 is measured in
  ``results/scaling_sparse.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ccrs.nn.row_sparse_embedding import RowGradient, RowSparseEmbedding

RowSync = Callable[[list[RowGradient]], list[RowGradient]]


def row_sparse_tables(model: nn.Module, exclude: Sequence[str] = ()) -> list[tuple[str, RowSparseEmbedding]]:
    """The model's row-sparse-capable tables, by the name of their weight, minus ``exclude`` (names)."""
    return [(f"{name}.weight", m) for name, m in model.named_modules()
            if isinstance(m, RowSparseEmbedding) and f"{name}.weight" not in exclude]


class RowSparseUpdate:
    """Recording, clipping and the lazy update of a model's outer-only row-sparse tables."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, inner_names: Sequence[str]) -> None:
        # A table the inner loop adapts needs second-order terms through its lookups: it stays dense.
        self.tables = row_sparse_tables(model, exclude=inner_names)
        group = optimizer.param_groups[0]
        if isinstance(optimizer, torch.optim.Adam) and not isinstance(optimizer, torch.optim.AdamW):
            self.kind = "lazy_adam"
            if group.get("weight_decay", 0) or group.get("amsgrad") or group.get("maximize"):
                raise ValueError("row-sparse lazy Adam supports plain Adam only (no weight decay, amsgrad, maximize)")
        elif isinstance(optimizer, torch.optim.SGD):
            self.kind = "sgd"
            if group.get("momentum", 0) or group.get("weight_decay", 0):
                raise ValueError("row-sparse SGD supports plain SGD only (no momentum, weight decay)")
        else:
            raise ValueError(f"no row-sparse update for {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.step_count = 0
        self.state: dict[str, dict[str, Tensor]] = {}
        for _, table in self.tables:
            table.row_sparse = True
            table.weight.grad = None

    # -- one meta-step ----------------------------------------------------------------------------
    def begin(self) -> None:
        for _, table in self.tables:
            table.weight.grad = None  # Adam skips a parameter without gradient: the dense optimizer never sees it
            table.start_recording()

    def flush(self) -> None:
        for _, table in self.tables:
            table.flush()

    def end(self) -> list[RowGradient]:
        return [table.stop_recording() for _, table in self.tables]

    def squared_norm(self, grads: list[RowGradient]) -> Tensor:
        return sum((g.rows.double().pow(2).sum() for g in grads), torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def step(self, grads: list[RowGradient]) -> None:
        """Apply the update to the touched rows of each table (module docstring)."""
        self.step_count += 1
        group = self.optimizer.param_groups[0]
        lr = float(group["lr"])
        for (name, table), g in zip(self.tables, grads, strict=True):
            if g.ids.numel() == 0:
                continue
            w = table.weight
            if self.kind == "sgd":
                w.index_add_(0, g.ids, g.rows, alpha=-lr)
                continue
            b1, b2 = group["betas"]
            eps = group["eps"]
            st = self.state.get(name)
            if st is None:
                st = self.state[name] = {"exp_avg": torch.zeros_like(w), "exp_avg_sq": torch.zeros_like(w)}
            m = st["exp_avg"][g.ids].mul_(b1).add_(g.rows, alpha=1 - b1)
            v = st["exp_avg_sq"][g.ids].mul_(b2).addcmul_(g.rows, g.rows, value=1 - b2)
            st["exp_avg"][g.ids] = m
            st["exp_avg_sq"][g.ids] = v
            bc1 = 1 - b1**self.step_count
            bc2 = 1 - b2**self.step_count
            denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
            w.index_add_(0, g.ids, m / denom, alpha=-lr / bc1)

    # -- state (saved beside the dense optimizer's; plain tensors) ------------------------------------
    def state_dict(self) -> dict:
        return {"kind": self.kind, "step": self.step_count, "state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.state = {k: dict(v) for k, v in state["state"].items()}


def clip_with_rows(parameters: Sequence[Tensor], rows: RowSparseUpdate, grads: list[RowGradient],
                   max_norm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_`` over the dense gradients *and* the row gradients together
    (the same total norm and scale as the dense path, whose table gradient holds the same rows)."""
    dense = [p.grad for p in parameters if p.grad is not None]
    sq = rows.squared_norm(grads)
    for g in dense:
        sq = sq + g.double().pow(2).sum()
    total = float(sq.sqrt())
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in dense:
            g.mul_(coef)
        for g in grads:
            g.rows.mul_(coef)
    return total
