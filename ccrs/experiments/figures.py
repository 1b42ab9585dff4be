"""The paper's interpretability figures from our own checkpoints: Fig. 3 (left, right) and Fig. 4.

    ccrs figures --rec-ckpt runs/real/rec_meta/ccrs-fold0/eval/best.pt --prepared runs/real/prepared \\
        --fold 0 --responses runs/gen/fold0/meta/ccrs/eval/test_responses.jsonl --out results/figures

Each figure is a PNG with the numbers behind it in a JSON of the same name:

``relation_attention`` (Fig. 3 left)
    For a few well-known movies of the KG (the most mentioned ones that have ``director``,
    ``starring`` and ``producer`` edges) and several test users (those with the most support samples),
    the attention mass the movie's node puts on its neighbours of each relation type (Eqs. 1–3,
    layer 1, mean over heads), with each user's parameters after adaptation on their support
    conversations (β, K of the checkpoint; the cold-start row when the checkpoint meta-tests from it).
    Rows that do not differ between users say the user-guided weight does not personalise.
``turn_attention`` (Fig. 3 right)
    The turn encoder's weight μ^o (Eq. 7) by turn distance τ = t − t_j, averaged over the test users'
    query samples, beside the learned logit w_oᵀ tanh(W_o P(τ)) of each distance.
``style_by_genre`` (Fig. 4)
    The mean style mixture μ_u^m (Eq. 9) of generated responses, by the genre the seeker's last turn
    names (:func:`ccrs.experiments.gen_table.context_genre`); needs a generator run's
    ``test_responses.jsonl`` (the one under ``runs/``: it keeps the seeker's turn, which the files
    under ``results/`` leave out).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call

FIG3_RELATIONS = ("director", "starring", "producer")


# -- numbers -----------------------------------------------------------------------------------------------
def pick_movies(ds, n: int = 4, relations=FIG3_RELATIONS) -> list[dict]:
    """The ``n`` most mentioned movies whose KG node has an edge of every relation in ``relations``."""
    rel = ds.table("relations").to_pydict()
    rel_id = {name: i for i, name in zip(rel["id"], rel["name"], strict=True)}
    missing = [r for r in relations if r not in rel_id]
    if missing:
        raise ValueError(f"the prepared KG has no relation {', '.join(missing)} (it has {', '.join(rel['name'])})")
    edges = ds.table("kg_edges").to_pydict()
    has: dict[int, set[int]] = defaultdict(set)
    for h, r, t in zip(edges["head"], edges["relation"], edges["tail"], strict=True):
        has[h].add(r)
        has[t].add(r)
    want = {rel_id[r] for r in relations}
    movies = ds.table("movies").to_pydict()
    ranked = sorted((m for m in range(len(movies["movie_id"])) if movies["entity_id"][m] is not None
                     and movies["entity_id"][m] >= 0 and want <= has[movies["entity_id"][m]]),
                    key=lambda m: (-movies["n_mentions"][m], movies["name"][m]))
    return [{"name": movies["name"][m], "entity_id": int(movies["entity_id"][m]),
             "n_mentions": int(movies["n_mentions"][m])} for m in ranked[:n]]


def relation_attention(maml, tasks, movies: list[dict], relation_names: list[str], users: list, cold_start: bool,
                       adapt: bool = True) -> dict:
    """Attention mass per relation of each movie node, per user: ``mass[u][m][r]`` (first layer)."""
    from ccrs.experiments.personalization import EncoderProbe, user_params

    model = maml.model
    was = model.training
    model.eval()
    probe = EncoderProbe(model)
    n_rel = len(relation_names)
    mass = []
    for user in users:
        params = user_params(maml, tasks, user, cold_start, adapt)
        one = tasks.batch(user.query[:1], cold_start)  # the user's row
        m = len(movies)
        batch = dataclasses.replace(
            one, sample_ids=torch.arange(m), labels=torch.zeros(m, dtype=torch.long), users=one.users.expand(m),
            context=torch.tensor([[mv["entity_id"]] for mv in movies]), context_turns=torch.zeros(m, 1, dtype=torch.long),
            context_mask=torch.ones(m, 1, dtype=torch.bool), current_turn=torch.zeros(m, dtype=torch.long),
            label_in_context=torch.zeros(m, dtype=torch.bool))
        with torch.no_grad():
            layers, _, nb = functional_call(probe, params, (batch,))
        alpha = layers[0]["alpha"].float().mean(1)  # (E,) mean over heads
        target = nb.edge_index[1]
        per_movie = []
        for i in range(len(movies)):
            sel = target == nb.context_index[i, 0]  # edges into the movie's own node of sample i
            row = torch.zeros(n_rel).index_add_(0, nb.edge_type[sel], alpha[sel])
            per_movie.append([round(float(v), 6) for v in row])
        mass.append(per_movie)
    model.train(was)
    return {"relations": relation_names, "movies": [mv["name"] for mv in movies],
            "users": [int(u.user_id) for u in users], "adapted": adapt, "cold_start": cold_start, "mass": mass}


def turn_attention(model, tasks, role: str = "test", max_distance: int = 12) -> dict:
    """Mean μ^o by turn distance over ``role`` users' query samples, and the learned logit per distance."""
    enc = getattr(model, "turn_encoder", None)
    if enc is None:
        raise ValueError("this recommender has no turn encoder (variant kbrd / ccrs_no_turn)")
    was = model.training
    model.eval()
    sums, counts = np.zeros(enc.max_turns), np.zeros(enc.max_turns)
    with torch.no_grad():
        for user in tasks.of_role(role):
            b = tasks.batch(user.query)
            w = enc(b.context_turns, b.current_turn, b.context_mask)  # (B, m)
            pos = enc.turn_positions(b.context_turns, b.current_turn)
            sel = b.context_mask
            np.add.at(sums, pos[sel].numpy(), w[sel].numpy())
            np.add.at(counts, pos[sel].numpy(), 1)
        emb = enc.turn_embedding.weight  # (max_turns, d)
        att = enc.attention
        logits = att.score(torch.tanh(att.proj(emb))).squeeze(-1)  # (max_turns,) before Eq. 7's softmax
    model.train(was)
    k = min(max_distance, enc.max_turns)
    return {"distance": list(range(k)), "mean_weight": [float(s / c) if c else None for s, c in zip(sums[:k], counts[:k], strict=True)],
            "mentions": [int(c) for c in counts[:k]], "logit": [float(v) for v in logits[:k]], "mode": enc.mode}


def style_by_genre(records: list[dict]) -> dict:
    """Mean style mixture per genre named in the seeker's last turn (records with ``style_mixture``)."""
    from ccrs.experiments.gen_table import context_genre

    by: dict[str, list] = defaultdict(list)
    for r in records:
        if r.get("style_mixture") is None:
            continue
        if "context_last" not in r:
            raise ValueError("responses records carry no context_last: pass the run's test_responses.jsonl "
                             "(under runs/), not the committed copy under results/")
        by[context_genre(r) or "other"].append(r["style_mixture"])
    if not by:
        raise ValueError("no record carries a style_mixture: the generator variant has no styles")
    order = sorted(by, key=lambda g: (g == "other", g))
    return {"genres": order, "count": [len(by[g]) for g in order],
            "mean_mixture": [[round(float(v), 4) for v in np.mean(by[g], axis=0)] for g in order]}


def read_records(path: str) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# -- pictures ----------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_relation_attention(data: dict, path: Path, show: tuple[str, ...] = FIG3_RELATIONS) -> None:
    plt = _plt()
    cols = [data["relations"].index(r) for r in show]
    n = len(data["movies"])
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 1, 0.35 * len(data["users"]) + 1.6), squeeze=False)
    m = np.array(data["mass"])  # (U, M, R)
    vmax = float(m[:, :, cols].max()) if m.size else 1.0
    for j, ax in enumerate(axes[0]):
        im = ax.imshow(m[:, j, cols], vmin=0, vmax=vmax or 1.0, cmap="Blues", aspect="auto")
        ax.set_title(data["movies"][j], fontsize=9)
        ax.set_xticks(range(len(cols)), show, rotation=45, fontsize=8)
        ax.set_yticks(range(len(data["users"])), [f"user {u}" for u in data["users"]] if j == 0 else [], fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="attention mass")
    fig.suptitle("Attention on relations per user (Fig. 3 left analogue)", fontsize=10)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_turn_attention(data: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    d = [x for x, w in zip(data["distance"], data["mean_weight"], strict=True) if w is not None]
    ax.plot(d, [w for w in data["mean_weight"] if w is not None], marker="o", label="mean μ° of a mention")
    ax.set_xlabel("turn distance τ = t − t_j")
    ax.set_ylabel("attention weight")
    ax2 = ax.twinx()
    ax2.bar(data["distance"], data["logit"], alpha=0.25, color="gray", label="learned logit")
    ax2.set_ylabel("learned logit of the distance")
    ax.set_title("Attention by turn distance (Fig. 3 right analogue)", fontsize=10)
    fig.legend(loc="upper right", bbox_to_anchor=(0.88, 0.86), fontsize=7)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_style_by_genre(data: dict, path: Path) -> None:
    plt = _plt()
    mix = np.array(data["mean_mixture"])  # (G, S)
    fig, ax = plt.subplots(figsize=(5, 3))
    left = np.zeros(len(data["genres"]))
    for s in range(mix.shape[1]):
        ax.barh(range(len(data["genres"])), mix[:, s], left=left, label=f"style {s}")
        left += mix[:, s]
    ax.set_yticks(range(len(data["genres"])), [f"{g} (n={c})" for g, c in zip(data["genres"], data["count"], strict=True)])
    ax.set_xlabel("mean style mixture μ")
    ax.set_title("Style mixture by genre (Fig. 4 analogue)", fontsize=10)
    ax.legend(fontsize=7, ncol=min(4, mix.shape[1]), loc="lower center", bbox_to_anchor=(0.5, -0.55))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


# -- the command -----------------------------------------------------------------------------------------------
def make_figures(rec_ckpt: str, prepared: str, fold: int, out: str | Path, responses: str | None = None,
                 n_movies: int = 4, n_users: int = 8, relations: tuple[str, ...] = FIG3_RELATIONS) -> dict[str, str]:
    """Every figure above into ``out`` (PNG + JSON); returns name → PNG path."""
    from ccrs.experiments.personalization import load_for_meta_test

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_for_meta_test(rec_ckpt, prepared, fold)
    maml, cfg, tasks, ds, model = loaded.maml, loaded.cfg, loaded.tasks, loaded.dataset, loaded.maml.model
    made: dict[str, str] = {}

    def save(name: str, data: dict, plot) -> None:
        data = {"checkpoint": rec_ckpt, "prepared": prepared, "fold": fold, **data}
        (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        plot(data, out / f"{name}.png")
        made[name] = str(out / f"{name}.png")

    if cfg.recommender.variant != "kbrd":
        rel = ds.table("relations").to_pydict()
        users = sorted(tasks.of_role("test"), key=lambda u: (-u.support.numel(), u.user_id))[:n_users]
        data = relation_attention(maml, tasks, pick_movies(ds, n_movies, relations), list(rel["name"]), users,
                                  loaded.eval_cold_start)
        save("relation_attention", {**data, "shown": list(relations)},
             lambda d, path: plot_relation_attention(d, path, tuple(relations)))
    if getattr(model, "turn_encoder", None) is not None:
        save("turn_attention", turn_attention(model, tasks), plot_turn_attention)
    if responses:
        save("style_by_genre", {"responses": responses, **style_by_genre(read_records(responses))}, plot_style_by_genre)
    return made
