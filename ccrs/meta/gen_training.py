"""Meta-training the generator (paper §2.4 applied to §2.3), one rank's share of it. No Ray.

    training = GenMetaTraining(cfg, "runs/demo/prepared", fold=0, rec_ckpt=".../best.pt")
    training.train_epoch()                       # MAML over users, the engine of ``ccrs.meta.maml``
    report = training.evaluate("valid")          # adapt per valid user on support, perplexity on query

A task is a user: support = generation samples of the user's support conversations, query = those
of the query conversations (``tasks`` of the prepared data). Inner parameters by default: the
encoder and the style embeddings L (``dial_meta.outer_only`` keeps the rest global; paper:
{Encoder', W^L}); inner/outer rates 0.0003 / 0.001. The recommender is frozen: p_u is precomputed.
``dial_meta.max_task_samples`` caps each set (a fresh seeded draw per epoch for training users).
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ccrs.config import CCRSConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.gen_examples import GenBatch
from ccrs.eval.gen_evaluator import GenReport, evaluate_generator
from ccrs.meta.maml import MAML, MetaTask
from ccrs.meta.training import MetaTraining
from ccrs.models.generator import META_VARIANTS, build_generator, generator_payload
from ccrs.seeding import seed_everything
from ccrs.train.gen_data import GenData, load_gen_data


def gen_loss(model: nn.Module, params: dict[str, Tensor], batch: GenBatch) -> Tensor:
    """Mean token cross-entropy of the response with the given (possibly adapted) parameters, plus
    the style balance term when ``generator.style_balance`` > 0."""
    logits, penalty = functional_call(model, params, (batch,), {"with_penalty": True})
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.response_out.reshape(-1),
                           ignore_index=model.pad_id) + penalty


@dataclass
class GenUserTask:
    user_id: int
    role: str
    support: Tensor  # indices into GenData.examples
    query: Tensor


def user_tasks(data: GenData) -> list[GenUserTask]:
    """Users with query samples (training users also need support samples), by user id."""
    by_user: dict[int, dict[str, list[int]]] = defaultdict(lambda: {"support": [], "query": []})
    for i, s in enumerate(data.examples.samples):
        part = data.conversation_part.get(s.conversation_id)
        if part in ("support", "query") and s.user_id in data.user_role:
            by_user[s.user_id][part].append(i)
    return [GenUserTask(u, data.user_role[u], torch.tensor(p["support"], dtype=torch.long),
                        torch.tensor(p["query"], dtype=torch.long))
            for u, p in sorted(by_user.items()) if p["query"] and (p["support"] or data.user_role[u] != "train")]


def warm_start(model: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Copy every parameter of ``state`` whose name and shape match; returns the names copied.

    Lets a variant start from another variant's plain checkpoint (e.g. ``ccrs`` from ``kbrd_gen``:
    the seq2seq is copied, the style bias starts fresh). Refuses when nothing at all matches.
    """
    own = model.state_dict()
    copied = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not copied:
        raise ValueError("the init checkpoint shares no parameter with this generator (other vocabulary or sizes?)")
    model.load_state_dict(copied, strict=False)
    return sorted(copied)


def adapted_copy(maml: MAML, params: dict[str, Tensor]) -> nn.Module:
    """A detached copy of the model holding ``params`` (for decoding, which is not ``forward``)."""
    model = copy.deepcopy(maml.model)
    model.load_state_dict({k: v.detach() for k, v in params.items()}, strict=False)
    return model.eval()


def meta_evaluate(maml: MAML, data: GenData, users: list[GenUserTask], gen_cfg, cap: int, batch_size: int = 64,
                  generate_responses: bool = False) -> GenReport:
    """Meta-test: per user, adapt on (up to ``cap``) support samples, then score the query samples."""
    was = maml.model.training
    maml.model.eval()
    device = next(maml.model.parameters()).device
    report = GenReport()
    for user in users:
        support = user.support[:cap] if cap else user.support
        if support.numel():
            params = maml.adapt(data.examples.batch(support).to(device), create_graph=False)
            model = adapted_copy(maml, params)
        else:  # nothing to adapt on
            model = maml.model
        report.extend(evaluate_generator(model, data, user.query, gen_cfg, batch_size, generate_responses))
    maml.model.train(was)
    return report


class GenMetaTraining(MetaTraining):
    stage = "dial"

    def __init__(self, cfg: CCRSConfig, prepared: str | PreparedDataset, fold: int, rec_ckpt: str, rank: int = 0,
                 world_size: int = 1, device: str | torch.device = "cpu", init: dict[str, Any] | None = None) -> None:
        if cfg.generator.variant not in META_VARIANTS:
            raise ValueError(f"meta-training is for generator variants {META_VARIANTS}, not {cfg.generator.variant!r}")
        seed_everything(cfg.seed)
        from ccrs.data.tokenizer import WordTokenizer

        tokenizer = WordTokenizer.from_dict(init["tokenizer"]) if init else None
        self.fold, self.rec_ckpt = fold, rec_ckpt
        self.data = load_gen_data(prepared, fold, cfg, rec_ckpt, tokenizer, device="cpu")
        self.users = user_tasks(self.data)
        self.train_users = [u for u in self.users if u.role == "train"]
        self.user_dim = self.data.examples.user_vectors.shape[1]
        model = build_generator(cfg.generator, self.data.tokenizer, self.user_dim)
        self.warm_started: list[str] = []
        if init:
            self.warm_started = warm_start(model, init["state_dict"])
        super().__init__(cfg, cfg.dial_meta, model, gen_loss, len(self.train_users), cfg.gen_train.patience, rank,
                         world_size, device)

    def _draw(self, index: Tensor, salt: int) -> Tensor:
        cap = self.meta_cfg.max_task_samples
        if not cap or index.numel() <= cap:
            return index
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.epoch * 7919 + salt)
        return index[torch.randperm(index.numel(), generator=gen)[:cap]]

    def task(self, i: int) -> MetaTask:
        user = self.train_users[i]
        ex = self.data.examples
        return MetaTask(user.user_id, ex.batch(self._draw(user.support, 2 * user.user_id)).to(self.device),
                        ex.batch(self._draw(user.query, 2 * user.user_id + 1)).to(self.device))

    def evaluate(self, role: str, generate_responses: bool | None = None) -> GenReport:
        """Meta-test ``role`` users; responses are generated when asked or when selection needs them."""
        if generate_responses is None:
            generate_responses = self.cfg.gen_train.select_metric != "ppl"
        users = [u for u in self.users if u.role == role]
        return meta_evaluate(self.maml, self.data, users, self.cfg.generator, self.meta_cfg.max_task_samples,
                             self.cfg.gen_train.eval_batch_size, generate_responses)

    def select_score(self, metrics: dict) -> float:
        """−ln(perplexity) (same order as perplexity, reversed) or the chosen generation metric."""
        metric = self.cfg.gen_train.select_metric
        return -math.log(metrics["ppl"]) if metric == "ppl" else metrics[metric]

    def summary(self, metrics: dict) -> dict[str, float]:
        return {"valid_ppl": metrics["ppl"]}

    def checkpoint_payload(self) -> dict[str, Any]:
        """``best.pt`` of the run: the best state as a generator checkpoint (``load_generator`` reads it)."""
        model = build_generator(self.cfg.generator, self.data.tokenizer, self.user_dim)
        model.load_state_dict(self.best_state)
        return generator_payload(model, self.cfg, self.data.tokenizer, self.user_dim,
                                 {"epoch": self.best_epoch, "fold": self.fold, "rec_checkpoint": self.rec_ckpt,
                                  "meta": True})
