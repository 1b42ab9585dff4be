r"""Does the customization customize? Diagnostics of one recommender checkpoint on one role's users (no Ray).

    report = diagnose_checkpoint("runs/.../best.pt", "runs/prepared", fold=0, role="valid")
    save(report, "results/personalization")          # .json + .md
    # CLI: ccrs diagnose rec --ckpt best.pt --prepared URI --fold 0 --role valid --save results/personalization

Each diagnostic is a plain function of a model and a :class:`~ccrs.meta.rec_tasks.RecTaskSet`:

:func:`beta_sweep`
    Meta-test (adapt on each user's support samples, rank their query samples, as
    :func:`~ccrs.meta.rec_tasks.meta_predict`) with the inner rate scaled by 0 (no adaptation),
    1 (the configured β, or the learned Meta-SGD rates) and 10. Against β = 0: the mean absolute
    shift of the labels' ranks, the share of samples whose label moved, the share of users whose
    top-10 changed on some query sample, and the user-level paired test
    (:func:`~ccrs.eval.significance.paired_tests`) of NDCG@10 and HR@10.
:func:`attention_health`
    Per encoder layer and head, over the query samples' neighbourhoods: the entropy of the
    attention distribution of Eq. 3 (also divided by log of the neighbour count: 1 = uniform,
    0 = one neighbour takes all) and its largest weight, for nodes with at least ``min_degree``
    neighbours; the user-guided weight γ of Eq. 2 on those edges (median \|γ\|, share negative);
    and γ's spread across users: the standard deviation over users of each user's per-relation γ,
    relative to its mean \|γ\|, and the share of users whose most-weighted relation differs from the
    cold-start row's.
:func:`cold_start_effect`
    Every user mapped to the cold-start row (row 0), β = 0, against their own rows: metrics, the
    share of ranks changed and the user-level test. For a checkpoint that meta-tests every user from
    the cold-start row (``eval_cold_start``) the two coincide by construction and this says so.
:func:`support_gradient_norms`
    The support-loss gradient norm of each parameter where the inner loop starts: 0 for the user
    row means no β can adapt it.
:func:`user_history_overlap`
    The share of a user's query labels that were mentioned (context or label) in that user's own
    support conversations, against the same share for a random other user's support conversations:
    how much per-user signal there is to adapt on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ccrs.data.rec_examples import COLD_START_USER, RecBatch
from ccrs.eval.rec_comparison import compare_predictions
from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.meta.maml import MAML
from ccrs.meta.rec_tasks import RecTaskSet, meta_predict

BETA_FACTORS = (0.0, 1.0, 10.0)


# -- β sweep ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def scaled_inner_rates(maml: MAML, factor: float) -> Iterator[MAML]:
    """``maml`` with every inner rate multiplied by ``factor`` > 0 (β, or each learned Meta-SGD rate)."""
    if factor <= 0:
        raise ValueError(f"factor must be > 0 (use adapt=False for β = 0), got {factor}")
    saved_lr, saved_logs = maml.inner_lr, {n: v.detach().clone() for n, v in maml.log_inner_lrs.items()}
    maml.inner_lr = saved_lr * factor
    with torch.no_grad():
        for v in maml.log_inner_lrs.values():
            v.add_(math.log(factor))
    try:
        yield maml
    finally:
        maml.inner_lr = saved_lr
        with torch.no_grad():
            for n, v in maml.log_inner_lrs.items():
                v.copy_(saved_logs[n])


def predict_at(maml: MAML, tasks: RecTaskSet, role: str, factor: float, cold_start: bool) -> RecPredictions:
    """Meta-test predictions of ``role`` with the inner rates scaled by ``factor`` (0 = no adaptation)."""
    if factor == 0:
        return meta_predict(maml, tasks, role, cold_start=cold_start, adapt=False)
    with scaled_inner_rates(maml, factor):
        return meta_predict(maml, tasks, role, cold_start=cold_start)


def beta_sweep(maml: MAML, tasks: RecTaskSet, role: str, factors: Sequence[float] = BETA_FACTORS,
               cold_start: bool = False) -> dict[str, Any]:
    """Metrics at each inner-rate factor, and each factor's difference from β = 0 (module docstring)."""
    preds = {f: predict_at(maml, tasks, role, f, cold_start) for f in sorted({0.0, *factors})}
    out = {"factors": {}, "inner_lrs": maml.inner_lrs(), "inner_steps": maml.inner_steps,
           "adapted": list(maml.inner_names)}
    for f, p in preds.items():
        entry = {"metrics": p.metrics()}
        if f != 0:
            entry["vs_beta0"] = compare_predictions(p, preds[0.0])
        out["factors"][f"{f:g}"] = entry
    return out


# -- attention and γ ------------------------------------------------------------------------------------
class EncoderProbe(nn.Module):
    """Runs the user-guided layers on a batch's neighbourhoods and returns what each layer attended,
    the per-user γ of each layer, and the neighbourhood it ran on."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: RecBatch) -> tuple[list[dict[str, Tensor]], list[Tensor]]:
        model = self.model
        nb = model.neighbourhoods(batch)
        x = model.entity_embedding(nb.node_ids)  # (N, d)
        users = model.user_embedding(model.table_rows(batch.users))  # (B, user_dim); eval mode: no user dropout
        layers, gammas = [], []
        for conv in model.encoder:
            gamma_u = conv.user_gamma(users) if conv.use_user else x.new_ones(users.size(0), conv.num_relations,
                                                                               conv.heads)  # (B, R, k)
            x, alpha = conv(x, nb.edge_index, nb.edge_type, users, nb.edge_sample, return_attention=True)
            layers.append({"alpha": alpha, "gamma": gamma_u[nb.edge_sample, nb.edge_type], "target": nb.edge_index[1],
                           "n_nodes": torch.tensor(x.size(0))})
            gammas.append(gamma_u)
        return layers, gammas, nb


def user_params(maml: MAML, tasks: RecTaskSet, user, cold_start: bool, adapt: bool) -> dict[str, Tensor]:
    """``user``'s parameters for :class:`EncoderProbe`: adapted on their support samples, or global."""
    if adapt and user.support.numel():
        params = maml.adapt(tasks.batch(user.support, cold_start), create_graph=False)
    else:
        params = maml.parameters_dict()
    return {f"model.{k}": v.detach() for k, v in params.items()}


def attention_health(maml: MAML, tasks: RecTaskSet, role: str, cold_start: bool = False, adapt: bool = True,
                     min_degree: int = 5, max_users: int | None = None) -> dict[str, Any] | None:
    """Attention entropy / largest weight per layer and head, and γ statistics (module docstring).

    ``None`` for a model without user-guided attention (``kbrd``)."""
    model = maml.model
    if getattr(model, "variant", None) == "kbrd":
        return None
    was_training = model.training
    model.eval()
    probe = EncoderProbe(model)
    users = tasks.of_role(role)[:max_users]
    acc: list[dict[str, list]] = []
    user_gammas: list[list[Tensor]] = []  # per user: per layer (R, k)
    cold_gammas: list[Tensor] = []
    with torch.no_grad():
        cold = model.user_embedding.weight[COLD_START_USER : COLD_START_USER + 1]
        cold_gammas = [conv.user_gamma(cold)[0] for conv in model.encoder]
    for user in users:
        params = user_params(maml, tasks, user, cold_start, adapt)
        with torch.no_grad():
            layers, gammas, _ = functional_call(probe, params, (tasks.batch(user.query, cold_start),))
        user_gammas.append([g[0] for g in gammas])  # the user's samples share one row
        for i, layer in enumerate(layers):
            if len(acc) <= i:
                acc.append({"entropy": [], "norm_entropy": [], "max": [], "gamma": []})
            _accumulate(acc[i], layer, min_degree)
    model.train(was_training)
    out_layers = []
    for i, a in enumerate(acc):
        entropy = torch.cat(a["entropy"]) if a["entropy"] else torch.zeros(0, 1)
        norm = torch.cat(a["norm_entropy"]) if a["norm_entropy"] else torch.zeros(0, 1)
        largest = torch.cat(a["max"]) if a["max"] else torch.zeros(0, 1)
        gamma = torch.cat(a["gamma"]) if a["gamma"] else torch.zeros(0, 1)
        per_user = torch.stack([g[i] for g in user_gammas]) if user_gammas else torch.zeros(0, 1, 1)  # (U, R, k)
        out_layers.append({
            "layer": i, "nodes": int(entropy.size(0)),
            "heads": [{"head": h, "mean_entropy": _mean(entropy[:, h]), "mean_normalised_entropy": _mean(norm[:, h]),
                       "mean_largest_weight": _mean(largest[:, h])} for h in range(entropy.size(1))],
            "gamma_on_edges": {"median_abs": float(gamma.abs().median()) if gamma.numel() else float("nan"),
                               "share_negative": _mean((gamma < 0).float().flatten()),
                               "mean": _mean(gamma.flatten())},
            "gamma_across_users": _spread(per_user, cold_gammas[i]),
        })
    return {"min_degree": min_degree, "users": len(users), "adapted": adapt, "layers": out_layers}


def _accumulate(acc: dict[str, list], layer: dict[str, Tensor], min_degree: int) -> None:
    alpha, target, gamma = layer["alpha"], layer["target"], layer["gamma"]  # (E, k), (E,), (E, k)
    n = int(layer["n_nodes"])
    if alpha is None or alpha.numel() == 0:
        return
    deg = torch.bincount(target, minlength=n)
    nodes = torch.nonzero(deg >= min_degree).flatten()
    if nodes.numel() == 0:
        return
    k = alpha.size(1)
    plogp = torch.where(alpha > 0, alpha * alpha.clamp_min(1e-30).log(), torch.zeros_like(alpha))
    entropy = torch.zeros(n, k).index_add_(0, target, -plogp)[nodes]  # (n', k)
    largest = torch.zeros(n, k).scatter_reduce_(0, target.unsqueeze(1).expand(-1, k), alpha, "amax")[nodes]
    acc["entropy"].append(entropy)
    acc["norm_entropy"].append(entropy / deg[nodes].double().log().float().unsqueeze(1))
    acc["max"].append(largest)
    acc["gamma"].append(gamma[deg[target] >= min_degree])


def _spread(per_user: Tensor, cold: Tensor) -> dict[str, float]:
    """γ's variation over users (U, R, k) against the cold-start row's (R, k)."""
    if per_user.size(0) == 0:
        return {"users": 0}
    std = per_user.std(0, unbiased=False) if per_user.size(0) > 1 else torch.zeros_like(per_user[0])
    top = per_user.mean(-1).argmax(-1)  # each user's most-weighted relation (mean over heads)
    return {"users": int(per_user.size(0)), "mean_std_over_users": float(std.mean()),
            "relative_std_over_users": float(std.mean() / per_user.abs().mean().clamp_min(1e-12)),
            "share_users_top_relation_differs_from_cold_start": float((top != cold.mean(-1).argmax()).float().mean())}


def _mean(x: Tensor) -> float:
    return float(x.float().mean()) if x.numel() else float("nan")


# -- cold start ------------------------------------------------------------------------------------------
def cold_start_effect(maml: MAML, tasks: RecTaskSet, role: str, eval_cold_start: bool) -> dict[str, Any]:
    """β = 0 with every user on the cold-start row against their own rows (module docstring)."""
    own = meta_predict(maml, tasks, role, cold_start=False, adapt=False)
    cold = meta_predict(maml, tasks, role, cold_start=True, adapt=False)
    return {"eval_cold_start": eval_cold_start,
            "note": ("this checkpoint meta-tests every user from the cold-start row: its own-row figures use "
                     "rows no meta-test reads") if eval_cold_start else "",
            "own_rows": own.metrics(), "cold_start_row": cold.metrics(), "cold_vs_own": compare_predictions(cold, own)}


# -- user signal ------------------------------------------------------------------------------------------
def _mentioned(tasks: RecTaskSet, index: Tensor) -> set[int]:
    ex = tasks.examples
    seen: set[int] = set()
    for i in index.tolist():
        seen.update(ex.context_of(i)[0].tolist())
        seen.add(int(ex.label_entities[i]))
    return seen


def user_history_overlap(tasks: RecTaskSet, role: str | None = None, draws: int = 20, seed: int = 0) -> dict[str, Any]:
    """Share of query labels mentioned in the user's own support conversations vs a random other user's."""
    users = [u for u in tasks.users if role is None or u.role == role]
    pool = tasks.users
    support = {u.user_id: _mentioned(tasks, u.support) for u in pool}
    rng = random.Random(seed)
    own_hits = other_hits = total = 0
    for u in users:
        labels = tasks.examples.label_entities[u.query].tolist()
        total += len(labels)
        own_hits += sum(lab in support[u.user_id] for lab in labels)
        others = [v.user_id for v in pool if v.user_id != u.user_id]
        for _ in range(draws if others else 0):
            other = support[rng.choice(others)]
            other_hits += sum(lab in other for lab in labels)
    own = own_hits / max(total, 1)
    other = other_hits / max(total * draws, 1)
    return {"users": len(users), "query_labels": total, "own_support": own, "other_user_support": other,
            "ratio": own / other if other > 0 else float("inf"), "draws": draws}


# -- gradients ---------------------------------------------------------------------------------------------
def support_gradient_norms(maml: MAML, tasks: RecTaskSet, role: str, cold_start: bool = False) -> dict[str, float]:
    """Mean over ``role`` users of the support-loss gradient norm of each parameter, at the point the
    inner loop starts from. A user-guided part whose norm is 0 cannot adapt at any β (e.g. a
    saturated relation softmax)."""
    model = maml.model
    was_training = model.training
    model.eval()
    params = maml.parameters_dict()
    names = list(params)
    sums: dict[str, float] = dict.fromkeys(names, 0.0)
    users = [u for u in tasks.of_role(role) if u.support.numel()]
    for user in users:
        loss = maml.loss_fn(model, params, tasks.batch(user.support, cold_start))
        grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
        for n, g in zip(names, grads, strict=True):
            sums[n] += float(g.norm()) if g is not None else 0.0
    model.train(was_training)
    return {n: v / max(len(users), 1) for n, v in sums.items()}


# -- one checkpoint ------------------------------------------------------------------------------------------
def diagnose(model: nn.Module, cfg, tasks: RecTaskSet, role: str, eval_cold_start: bool = False,
             inner_lrs: dict[str, float] | None = None, factors: Sequence[float] = BETA_FACTORS,
             max_attention_users: int | None = None) -> dict[str, Any]:
    """Every diagnostic of the module docstring for ``model`` on ``role`` users."""
    from ccrs.meta.rec_tasks import rec_loss

    maml = MAML.from_config(model, rec_loss, cfg.rec_meta, inner_lrs)
    return {
        "role": role, "variant": cfg.recommender.variant, "gamma_form": cfg.recommender.gamma_form,
        "eval_cold_start": eval_cold_start,
        "beta": beta_sweep(maml, tasks, role, factors, cold_start=eval_cold_start),
        "attention": {
            "beta0": attention_health(maml, tasks, role, eval_cold_start, adapt=False, max_users=max_attention_users),
            "adapted": attention_health(maml, tasks, role, eval_cold_start, adapt=True, max_users=max_attention_users),
        },
        "cold_start": cold_start_effect(maml, tasks, role, eval_cold_start),
        "support_gradient_norms": support_gradient_norms(maml, tasks, role, eval_cold_start),
        "user_history_overlap": user_history_overlap(tasks, role),
    }


@dataclasses.dataclass
class MetaTestSetup:
    """A recommender checkpoint ready for meta-test on one fold: its MAML wrapper (inner rates and
    parameter split of the checkpoint's config), the fold's user tasks, and how it meta-tests."""

    maml: MAML
    cfg: Any
    tasks: RecTaskSet
    dataset: Any
    eval_cold_start: bool
    inner_lrs: dict[str, float] | None


def load_for_meta_test(ckpt: str, prepared: str, fold: int) -> MetaTestSetup:
    """Load ``ckpt`` (plain or meta ``best.pt``) with the prepared data's ``fold`` for meta-test."""
    from ccrs.data.dataset import PreparedDataset
    from ccrs.data.rec_examples import KnowledgeGraph
    from ccrs.meta.rec_tasks import rec_loss
    from ccrs.models.factory import load_recommender

    ds = PreparedDataset.open(prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    model, cfg, user_index = load_recommender(ckpt, kg)
    tasks = RecTaskSet.from_dataset(ds, fold, kg, user_index, cfg.recommender.max_context_entities,
                                   cfg.recommender.max_history_entities)
    info = getattr(model, "meta_info", {})
    inner_lrs = info.get("inner_lrs") or None
    return MetaTestSetup(MAML.from_config(model, rec_loss, cfg.rec_meta, inner_lrs), cfg, tasks, ds,
                         bool(info.get("eval_cold_start")), inner_lrs)


def diagnose_checkpoint(ckpt: str, prepared: str, fold: int, role: str = "valid", factors=BETA_FACTORS,
                        max_attention_users: int | None = None) -> dict[str, Any]:
    """:func:`diagnose` for a ``best.pt`` (plain or meta) on the prepared data's ``fold``."""
    loaded = load_for_meta_test(ckpt, prepared, fold)
    report = diagnose(loaded.maml.model, loaded.cfg, loaded.tasks, role, loaded.eval_cold_start,
                      loaded.inner_lrs, factors, max_attention_users)
    return {"checkpoint": ckpt, "prepared": prepared, "fold": fold, **report}



def unadapted_predictions(ckpt: str, prepared: str, fold: int, role: str = "test") -> RecPredictions:
    """Meta-test predictions of a checkpoint with β = 0: the same users, rows and samples as its
    meta-test, ranked by the global parameters (the "no adaptation" row of Table 1)."""
    loaded = load_for_meta_test(ckpt, prepared, fold)
    return predict_at(loaded.maml, loaded.tasks, role, 0.0, loaded.eval_cold_start)


# -- files ------------------------------------------------------------------------------------------------------
def format_markdown(reports: dict[str, dict], command: str = "") -> str:
    """One section per checkpoint (``reports``: name → :func:`diagnose_checkpoint` report)."""
    lines = ["# Personalization diagnostics", ""]
    if command:
        lines += ["Regenerate with:", "", "```", command, "```", ""]
    for name, r in reports.items():
        lines += [f"## {name} ({r['variant']}, γ form `{r['gamma_form']}`, {r['role']} users of fold {r['fold']})", ""]
        b = r["beta"]
        lines += [f"Inner loop: {b['inner_steps']} step(s) on {', '.join(b['adapted'][:4])}"
                  f"{' …' if len(b['adapted']) > 4 else ''}; meta-test from the "
                  f"{'cold-start row' if r['eval_cold_start'] else 'own user rows'}.", "",
                  "| β factor | NDCG@10 | HR@10 | HR@50 | mean rank shift | samples moved | users' top-10 changed "
                  "| Δ NDCG@10 | p (users) |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for f, e in b["factors"].items():
            m, v = e["metrics"]["all"], e.get("vs_beta0")
            tail = (f"{v['mean_abs_rank_shift']:.2f} | {v['share_samples_rank_changed']:.1%} | "
                    f"{v['share_users_top10_changed']:.1%} | {v['tests']['ndcg@10']['diff']:+.4f} | "
                    f"{v['tests']['ndcg@10']['p_user_permutation']:.4f}") if v else "– | – | – | – | –"
            lines.append(f"| {f} | {m['ndcg@10']:.4f} | {m['hit@10']:.4f} | {m['hit@50']:.4f} | {tail} |")
        lines.append("")
        for when, att in r["attention"].items():
            if att is None:
                lines += [f"Attention ({when}): no user-guided attention in this variant.", ""]
                continue
            lines += [f"Attention ({when}, nodes with ≥ {att['min_degree']} neighbours, {att['users']} users):", "",
                      "| layer | head | entropy | entropy / log(deg) | largest weight | median abs γ | γ < 0 "
                      "| γ std over users (rel.) | users' top relation ≠ cold |",
                      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for layer in att["layers"]:
                g, s = layer["gamma_on_edges"], layer["gamma_across_users"]
                for h in layer["heads"]:
                    lines.append(f"| {layer['layer']} | {h['head']} | {h['mean_entropy']:.3f} | "
                                 f"{h['mean_normalised_entropy']:.3f} | {h['mean_largest_weight']:.3f} | "
                                 f"{g['median_abs']:.3f} | {g['share_negative']:.1%} | "
                                 f"{s.get('relative_std_over_users', float('nan')):.3f} | "
                                 f"{s.get('share_users_top_relation_differs_from_cold_start', float('nan')):.1%} |")
            lines.append("")
        c = r["cold_start"]
        lines += ["Every user on the cold-start row (β = 0) against own rows: NDCG@10 "
                  f"{c['cold_start_row']['all']['ndcg@10']:.4f} vs {c['own_rows']['all']['ndcg@10']:.4f}, HR@50 "
                  f"{c['cold_start_row']['all']['hit@50']:.4f} vs {c['own_rows']['all']['hit@50']:.4f}; ranks changed "
                  f"{c['cold_vs_own']['share_samples_rank_changed']:.1%}, user-level p "
                  f"{c['cold_vs_own']['tests']['ndcg@10']['p_user_permutation']:.4f}. {c['note']}", ""]
        g = r.get("support_gradient_norms", {})
        if g:
            shown = [n for n in ("user_embedding.weight", "encoder.0.user_proj.weight", "item_bias",
                                 "entity_embedding.weight") if n in g]
            lines += ["Support-loss gradient norm where the inner loop starts (mean over users): "
                      + ", ".join(f"`{n}` {g[n]:.2e}" for n in shown) + ".", ""]
        o = r["user_history_overlap"]
        lines += [f"User signal: {o['own_support']:.1%} of {o['query_labels']} query labels were mentioned in the "
                  f"user's own support conversations, {o['other_user_support']:.1%} in a random other user's "
                  f"(×{o['ratio']:.2f}).", ""]
    return "\n".join(lines)


def save(reports: dict[str, dict], path: str, command: str = "") -> None:
    from ccrs import storage

    body = {"command": command, "reports": reports}
    storage.write_bytes(storage.resolve(path + ".json"), json.dumps(body, indent=2, default=float).encode())
    storage.write_bytes(storage.resolve(path + ".md"), format_markdown(reports, command).encode())
