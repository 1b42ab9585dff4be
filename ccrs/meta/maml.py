r"""MAML per user (CCRS paper §2.4, Algorithm 1, Eqs. 11–14), model-agnostic and without Ray.

A *task* is one user: a support set (the user's support conversations) and a query set (the query
conversations). With θ the global parameters split into inner θ_I (adapted per user) and outer-only
θ_O (global, never adapted: by default the user and entity embeddings):

.. math::
    \theta_I' = \theta_I - \beta \nabla_{\theta_I} \mathcal L_{S_u}(\theta_I, \theta_O)
        \quad\text{(Eq. 13, K times)}

    \theta \leftarrow \theta - \nu \nabla_\theta \sum_{u \in \mathcal B}
        \big[\mathcal L_{Q_u}(\theta_I', \theta_O) + \mathcal L_{S_u}(\theta)\big]
        \quad\text{(Eq. 14 and Algorithm 1; Adam in place of SGD)}

* The inner update is **functional** (``torch.func.functional_call`` + ``torch.autograd.grad``): the
  module's parameters are never modified in place, so the outer gradient flows through θ_I'.
  Second order by default (``create_graph=True``); ``first_order=True`` treats ∇L_S as a constant.
* Algorithm 1 sums ∇L₂ (query, adapted) and ∇L₁ (support, global) in the global update; the support
  term is ``include_support_loss`` (default on). The sum over the meta-batch is a sum, as written.
* Parameter split (``outer_only`` patterns, fnmatch on parameter names): the paper's notation for the
  split is inconsistent between §2.4 and Algorithm 1; we read it as "embeddings are global, the
  encoders adapt", and keep it a config key. ``inner_only`` (patterns) restricts θ_I further: e.g.
  ``("user_embedding*",)`` adapts only the user's own embedding row (the other reading of the split:
  the user representation is what customizes; only the rows a batch uses get a gradient).
* ``learn_inner_lr`` (Meta-SGD, Li et al. 2017, as an option): one learned inner rate per adapted
  parameter tensor, :math:`\theta_I' = \theta_I - \beta_p \odot \nabla`, with
  :math:`\beta_p = \exp(\log\beta_p)` initialised to β and trained by the outer update.
* Task weights (``MetaTask.weight``): the sum of Eq. 14 weights each user equally; a task may carry
  a weight (e.g. its number of query samples), normalised to mean 1 over the meta-batch.

The model is reached only through ``loss_fn(model, params, batch) -> scalar``, so the same engine
serves the recommender and the generator.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ccrs.meta.row_sparse import RowSparseUpdate, RowSync, clip_with_rows

LossFn = Callable[[nn.Module, dict[str, Tensor], Any], Tensor]


def differentiable_attention(second_order: bool) -> AbstractContextManager:
    """Scaled dot-product attention on its math kernel while a second-order graph is built.

    The fused kernels PyTorch picks when attention dropout is 0 (flash on CPU, memory-efficient on
    CUDA) have no double backward (pytorch issue 116350), so second-order MAML through the
    generator's attention would fail; the math kernel is differentiable twice. First order and
    evaluation keep the fused kernels."""
    return sdpa_kernel(SDPBackend.MATH) if second_order else nullcontext()


def split_parameters(model: nn.Module, outer_only: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(inner, outer_only)`` parameter names; ``outer_only`` holds fnmatch patterns."""
    patterns = tuple(outer_only)
    inner, outer = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (outer if any(fnmatch.fnmatchcase(name, pat) for pat in patterns) else inner).append(name)
    if not inner:
        raise ValueError(f"outer_only patterns {patterns} leave no parameter to adapt in the inner loop")
    return inner, outer


@dataclass
class MetaTask:
    """One user: support and query batches (anything ``loss_fn`` accepts)."""

    user_id: int
    support: Any
    query: Any
    weight: float = 1.0


class MAML:
    """Inner adaptation and per-task meta-loss (module docstring). Holds no optimizer."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inner_lr: float,
        inner_steps: int = 1,
        first_order: bool = False,
        include_support_loss: bool = True,
        outer_only: Sequence[str] = (),
        inner_only: Sequence[str] = (),
        learn_inner_lr: bool = False,
    ) -> None:
        if inner_steps < 1:
            raise ValueError(f"inner_steps must be >= 1, got {inner_steps}")
        self.model = model
        self.loss_fn = loss_fn
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.first_order = first_order
        self.include_support_loss = include_support_loss
        self.inner_names, self.outer_names = split_parameters(model, outer_only)
        if inner_only:
            keep = [n for n in self.inner_names if any(fnmatch.fnmatchcase(n, pat) for pat in inner_only)]
            if not keep:
                raise ValueError(f"inner_only patterns {tuple(inner_only)} match no adaptable parameter "
                                 f"(adaptable: {self.inner_names[:8]})")
            self.outer_names += [n for n in self.inner_names if n not in keep]
            self.inner_names = keep
        self.log_inner_lrs: dict[str, Tensor] = {}
        #: The Meta-SGD log-rates as one module, so that data-parallel training all-reduces their
        #: gradients like the model's (``meta_step``) and checksums can cover them.
        self.meta_module = nn.ParameterList()
        if learn_inner_lr:
            device = next(model.parameters()).device
            self.log_inner_lrs = {n: nn.Parameter(torch.tensor(float(torch.log(torch.tensor(inner_lr))), device=device))
                                  for n in self.inner_names}
            self.meta_module.extend(self.log_inner_lrs.values())

    @classmethod
    def from_config(cls, model: nn.Module, loss_fn: LossFn, cfg, inner_lrs: dict[str, float] | None = None) -> MAML:
        """From a :class:`ccrs.config.MetaConfig`; ``inner_lrs``: learned Meta-SGD rates of a checkpoint."""
        maml = cls(model, loss_fn, cfg.inner_lr, cfg.inner_steps, cfg.first_order, cfg.include_support_loss,
                   cfg.outer_only, cfg.inner_only, cfg.learn_inner_lr)
        if inner_lrs:
            maml.load_inner_lrs(inner_lrs)
        return maml

    def meta_parameters(self) -> list[Tensor]:
        """Tensors the outer optimizer trains besides the model's (the Meta-SGD log-rates)."""
        return list(self.log_inner_lrs.values())

    def inner_lrs(self) -> dict[str, float]:
        """The inner rate of each adapted tensor (β everywhere unless Meta-SGD learned them)."""
        if not self.log_inner_lrs:
            return {n: self.inner_lr for n in self.inner_names}
        return {n: float(v.detach().exp()) for n, v in self.log_inner_lrs.items()}

    def load_inner_lrs(self, rates: dict[str, float]) -> None:
        for n, v in self.log_inner_lrs.items():
            if n in rates:
                with torch.no_grad():
                    v.fill_(float(torch.log(torch.tensor(rates[n]))))

    def parameters_dict(self) -> dict[str, Tensor]:
        return dict(self.model.named_parameters())

    def adapt(
        self, support: Any, params: dict[str, Tensor] | None = None, create_graph: bool | None = None
    ) -> dict[str, Tensor]:
        """θ' after K inner SGD steps on the support loss (Eq. 13); outer-only parameters unchanged.

        ``create_graph`` defaults to ``not first_order`` while the model is training, and to False in
        eval mode (meta-test adaptation needs no second order).
        """
        params = dict(params) if params is not None else self.parameters_dict()
        if create_graph is None:
            create_graph = self.model.training and not self.first_order
        for _ in range(self.inner_steps):
            with differentiable_attention(create_graph):
                loss = self.loss_fn(self.model, params, support)
            inner = [params[n] for n in self.inner_names]
            grads = torch.autograd.grad(loss, inner, create_graph=create_graph, allow_unused=True)
            for name, g in zip(self.inner_names, grads, strict=True):
                if g is not None:
                    lr = self.log_inner_lrs[name].exp() if self.log_inner_lrs else self.inner_lr
                    params[name] = params[name] - lr * g
        return params

    def task_loss(self, task: MetaTask) -> tuple[Tensor, dict[str, float]]:
        """L_Q(θ') (+ L_S(θ)) for one user; backward() of it gives this task's meta-gradient."""
        params = self.parameters_dict()
        adapted = self.adapt(task.support, params)
        query_loss = self.loss_fn(self.model, adapted, task.query)  # differentiated once: any kernel
        total = query_loss
        stats = {"query_loss": float(query_loss.detach())}
        if self.include_support_loss:
            support_loss = self.loss_fn(self.model, params, task.support)
            total = total + support_loss
            stats["support_loss"] = float(support_loss.detach())
        return total, stats


def meta_step(
    maml: MAML,
    tasks: Sequence[MetaTask],
    optimizer: torch.optim.Optimizer,
    grad_clip: float = 0.0,
    sync_grads: Callable[[nn.Module], None] | None = None,
    rows: RowSparseUpdate | None = None,
    sync_rows: RowSync | None = None,
) -> dict[str, float]:
    """One global update on a meta-batch (Algorithm 1): Σ_u task losses → backward → (sync) → clip → step.

    Each task's graph is freed right after its backward (memory stays one task deep). ``sync_grads``
    averages the gradients across data-parallel ranks (``ray_jobs`` passes an all-reduce); it is
    called even when this rank has no task, so every rank runs the same collectives. With ``rows``
    (``embedding_gradients=row_sparse``), the outer-only embedding tables get row gradients instead of
    dense ones (:mod:`ccrs.meta.row_sparse`), exchanged by ``sync_rows`` and applied to those rows only.
    ``busy_s`` in the result: seconds of this rank's own work (tasks, backward), before any collective.
    """
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=False)
    if rows is not None:
        rows.begin()
    sums: dict[str, float] = {}
    mean_weight = sum(t.weight for t in tasks) / max(len(tasks), 1)
    for task in tasks:
        loss, stats = maml.task_loss(task)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"meta-loss of user {task.user_id} is {loss.item()} ({stats})")
        (loss * (task.weight / mean_weight) if task.weight != mean_weight else loss).backward()
        if rows is not None:
            rows.flush()
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
    row_grads = rows.end() if rows is not None else []
    busy = time.perf_counter() - start  # this rank's own work; the collectives below wait for the slowest rank
    if sync_grads is not None:
        sync_grads(maml.model)
        if maml.log_inner_lrs:  # every rank learns the same rates (the config is the same everywhere)
            sync_grads(maml.meta_module)
    if sync_rows is not None and rows is not None:
        row_grads = sync_rows(row_grads)
    if grad_clip > 0:
        params = [*maml.model.parameters(), *maml.meta_parameters()]
        if rows is not None:
            clip_with_rows(params, rows, row_grads, grad_clip)
        else:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if rows is not None:
        rows.step(row_grads)
    return {k: v / max(len(tasks), 1) for k, v in sums.items()} | {"tasks": len(tasks), "busy_s": busy}
