r"""An embedding table whose training gradient costs the rows a step reads, not the table size.

    emb = RowSparseEmbedding(500_000, 128)       # a drop-in nn.Embedding (same ``weight``, state dict)
    emb.start_recording()
    loss(emb(ids)).backward()                     # emb.weight.grad stays None: nothing (n x d) is built
    rows = emb.stop_recording()                   # RowGradient: sorted touched ids (k,), summed rows (k, d)

``nn.Embedding``'s backward materialises a dense (num_embeddings × d) gradient however few rows were
read; every optimizer step then updates the whole table and a data-parallel all-reduce ships it
(``docs/scaling.md``: 101 ms per backward and 251 MB per all-reduce at 510k entities, d = 128).
While recording, a lookup's backward instead hands ``(ids, grad_rows)`` to the table and returns no
gradient for ``weight``; :meth:`stop_recording` sums them per row. The update is then applied to the
touched rows only (:class:`ccrs.meta.row_sparse.RowSparseUpdate`).

The table must be a constant of every ``torch.autograd.grad`` that asks for second-order terms
(MAML's inner loop: the table is ``outer_only``), because the recorded backward is not itself
differentiable; :class:`~ccrs.meta.row_sparse.RowSparseUpdate` refuses a table the inner loop adapts.
Outside recording (evaluation, plain training) it is exactly ``nn.Embedding``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class RowGradient:
    """A row-sparse gradient: ``rows[i]`` is the gradient of table row ``ids[i]`` (ids sorted, unique)."""

    ids: Tensor  # (k,) int64
    rows: Tensor  # (k, d)
    num_rows: int = 0  # rows of the whole table

    def nbytes(self) -> int:
        return self.ids.numel() * self.ids.element_size() + self.rows.numel() * self.rows.element_size()


def coalesce(ids: Tensor, rows: Tensor, dim: int) -> RowGradient:
    """Sum the rows of equal ids: ``ids`` (n,), ``rows`` (n, d) → sorted unique ids and summed rows."""
    if ids.numel() == 0:
        return RowGradient(ids.new_zeros(0), rows.new_zeros(0, dim))
    uniq, inverse = torch.unique(ids, return_inverse=True)
    out = rows.new_zeros(uniq.numel(), dim).index_add_(0, inverse, rows)
    return RowGradient(uniq, out)


class _RecordRowGradient(torch.autograd.Function):
    """``weight[ids]`` whose backward records ``(ids, grad)`` on ``table`` instead of a dense gradient."""

    @staticmethod
    def forward(ctx, weight: Tensor, ids: Tensor, table: RowSparseEmbedding) -> Tensor:  # noqa: ANN001
        ctx.ids, ctx.table = ids, table
        return F.embedding(ids, weight)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        ctx.table._record(ctx.ids.reshape(-1), grad.reshape(-1, grad.size(-1)))
        return None, None, None


class RowSparseEmbedding(nn.Embedding):
    """``nn.Embedding`` that can record row-sparse gradients (module docstring)."""

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__(num_embeddings, embedding_dim)
        #: Set by the training loop that owns the update of this table (RowSparseUpdate): its weight
        #: then never gets a dense gradient, and dense gradient collectives must skip it.
        self.row_sparse = False
        self._recording: list[tuple[Tensor, Tensor]] | None = None
        self._pending: RowGradient | None = None

    def forward(self, ids: Tensor) -> Tensor:
        if self._recording is not None and torch.is_grad_enabled():
            return _RecordRowGradient.apply(self.weight, ids, self)
        return super().forward(ids)

    def start_recording(self) -> None:
        self._recording, self._pending = [], None

    def _record(self, ids: Tensor, rows: Tensor) -> None:
        if self._recording is None:
            raise RuntimeError("a recorded lookup was back-propagated after stop_recording()")
        self._recording.append((ids, rows))

    def flush(self) -> None:
        """Sum what was recorded so far into one row gradient (bounds memory to the rows touched:
        the meta-step calls it after each task's backward)."""
        if not self._recording:
            return
        parts = self._recording
        if self._pending is not None:
            parts = [(self._pending.ids, self._pending.rows), *parts]
        self._pending = coalesce(torch.cat([i for i, _ in parts]), torch.cat([r for _, r in parts]),
                                 self.embedding_dim)
        self._recording = []

    def stop_recording(self) -> RowGradient:
        """The summed row gradient of every recorded lookup since :meth:`start_recording`."""
        self.flush()
        out = self._pending
        self._recording, self._pending = None, None
        if out is None:
            w = self.weight
            return RowGradient(torch.zeros(0, dtype=torch.long, device=w.device), w.new_zeros(0, self.embedding_dim),
                               self.num_embeddings)
        out.num_rows = self.num_embeddings
        return out
