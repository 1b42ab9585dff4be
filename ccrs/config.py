"""One configuration for every entry point: frozen dataclasses, YAML files and ``key=value`` overrides.

Defaults are the paper's (Li et al., ECML-PKDD 2022, §3.1 "Implementation details"): entity dim 128,
L=1 entity-encoder layer with k=4 heads, word dim 300, n_s=4 speaking styles, recommender inner/outer
learning rates 0.006/0.003, dialogue inner/outer 0.0003/0.001, Adam, gradient clipping 0.1.

Usage::

    cfg = load_config("my.yaml", ["recommender.n_layers=2", "data.split=standard"])
    cfg.recommender.entity_dim  # 128

Every section is a frozen dataclass; :func:`load_config` rejects unknown keys and wrong types with the
dotted key in the message, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class DataConfig:
    """Raw data → prepared dataset (``ccrs data prepare``)."""

    #: KG file format: ``crslab`` (CRSLab/UniCRS ``dbpedia_subkg.json`` with named relations) or
    #: ``kgsf`` (KBRD/KGSF ``subkg.json`` with numeric relation ids).
    kg_format: str = "crslab"
    #: Keep a relation only if it has at least this many (directed, bidirectional-expanded) edges.
    #: CRSLab and KBRD keep relations with more than 1000 edges; 0 keeps every relation.
    min_relation_edges: int = 1000
    #: Token that replaces each ``@movieId`` mention in turn text (one token: the generator copies it
    #: and the recommender fills it at inference time).
    item_placeholder: str = "__item__"
    #: Seed of the hash that assigns users to folds (``user`` split) and conversations to
    #: train/valid (``standard`` split).
    split_seed: int = 42
    #: Number of folds of the ``user`` split: fold f = test, fold f+1 = valid, the rest train.
    n_folds: int = 10
    #: Fold used for the ``split`` column written into ``tasks`` (any fold can be chosen at load time).
    fold: int = 0
    #: Fraction of a user's conversations (ordered by id) that form the support set; at least one
    #: conversation each in support and query.
    support_fraction: float = 0.5
    #: ``standard`` split: one train-side conversation in this many goes to valid (9:1 → 10).
    valid_every: int = 10
    #: Names too generic to link as entities (added to the built-in stoplist).
    extra_stopwords: tuple[str, ...] = ()
    #: Shortest entity name (characters) the text linker considers.
    min_entity_name_chars: int = 3


REC_VARIANTS = ("ccrs", "ccrs_no_turn", "kbrd", "popularity", "repeat_context", "history_popularity")


@dataclass(frozen=True)
class RecommenderConfig:
    """Recommender (paper §2.2): user-guided relation-aware entity encoder, turn and intention encoders.

    ``variant``: ``ccrs`` (full), ``ccrs_no_turn`` (paper "w/o TE"), ``kbrd`` (RGCN + self-attention,
    as CRSLab; the paper's "w/o RE&TE"), ``popularity`` (training-label frequency), ``repeat_context``
    (movies already mentioned, most recent first, then popularity), ``history_popularity`` (movies of
    the user's earlier conversations, most recent first, then popularity).

    The ``history_*`` keys feed the user's history (their earlier conversations,
    ccrs/data/history.py) into the model; all off is the paper. ``history_in_context`` is how
    ``kbrd_history`` sees it; ``history_user``/``history_intent``/``history_items`` are the three reads
    of ccrs/nn/history_encoder.py (Eqs. H2–H4).
    """

    variant: str = "ccrs"
    entity_dim: int = 128
    user_dim: int = 128
    n_layers: int = 1  # L
    n_heads: int = 4  # k
    dropout: float = 0.0
    max_context_entities: int = 64
    max_turns: int = 64
    n_bases: int = 8  # RGCN basis decomposition (kbrd variant, and ccrs's attention_rgcn_branch)
    #: γ_0 in γ = γ_0 + Vec(A_r^i) W_u U_id (Eq. 2); the paper's form is 0, which starts training at
    #: a saddle (see ccrs/nn/user_relational_conv.py); 1 starts from plain relation-aware attention.
    gamma_offset: float = 1.0
    #: How the user term of Eq. 2 becomes γ: ``linear`` (Eq. 2 as written, unbounded), ``tanh``
    #: (γ_0 + tanh), ``softplus`` or ``relation_softmax`` (bounded, γ > 0; ccrs/nn/user_relational_conv.py).
    gamma_form: str = "linear"
    #: τ dividing the user term of Eq. 2 before ``gamma_form``.
    gamma_temperature: float = 1.0
    #: A learned per-(relation, head) logit added to Eq. 2 after the user scaling (not in the paper;
    #: a population prior over relations: ccrs/nn/user_relational_conv.py).
    attention_relation_bias: bool = False
    #: Add a user-independent R-GCN message (per-relation means, ``n_bases`` bases) beside the
    #: user-guided attention in every layer (not in the paper; ccrs/nn/user_relational_conv.py).
    attention_rgcn_branch: bool = False
    #: λ of a penalty λ·mean(z²) on that user term, added to the plain training loss (0 = off, the
    #: paper). Keeps γ out of saturation so the user row keeps a gradient (UserRelationalConv.gamma_penalty).
    gamma_penalty: float = 0.0
    #: Encode each (user row, entity) once per batch instead of once per sample: the samples of a
    #: user share their neighbourhood nodes (same outputs; False = the per-sample path, for checks).
    share_user_neighbourhoods: bool = True
    #: Optional fan-out cap: every KG node keeps at most this many in-edges (a uniform sample drawn
    #: once, seed 0; the same graph in training and serving). 0 = the whole KG (the paper). Bounds the
    #: memory of deep encoders (L = 3); its effect on valid metrics: results/meta_layers_cost.md.
    max_in_edges: int = 0
    #: Turn index embedded by the turn encoder (Eq. 7): ``recency`` (t - t_j) or ``absolute`` (t_j).
    turn_mode: str = "recency"
    #: √d of Eq. 2: ``head`` (per-head dim) or ``model`` (full d).
    attention_scale: str = "head"
    #: H̃ of Eq. 8: ``embedding`` (the entity embedding rows of the items, layer 0: user-independent
    #: and free), ``encoder`` (a user-independent full-KG pass: kbrd only, as CRSLab), ``auto``
    #: (``encoder`` for kbrd, ``embedding`` otherwise).
    item_table: str = "auto"
    #: A learned linear map W_p on p_u before scoring: ŷ = (W_p p_u) H̃ᵀ (see ccrs/models/recommender.py).
    score_projection: bool = False
    #: A learned per-item bias added to the scores (CRSLab's ``rec_bias``).
    item_bias: bool = True
    #: Probability of replacing a training sample's user by the cold-start user (index 0), so the
    #: cold-start representation is trained (used for users with no training conversation).
    user_dropout: float = 0.1
    #: Entries of the user's history a sample carries (the most recently mentioned kept; 0 = all).
    max_history_entities: int = 128
    #: Prepend the history's entities to the context (as earlier mentions at turn 0): the only way
    #: ``kbrd_history`` sees the history. Not in the paper.
    history_in_context: bool = False
    #: Eq. 2's user = user row + a pooled history encoding (Eq. H2). Not in the paper.
    history_user: bool = False
    #: Eq. 8's intention + a gated read of the history with the intention as query (Eq. H3, UCCR-like).
    history_intent: bool = False
    #: A learned score for each movie of the history from its flags and its fit to p_u (Eq. H4).
    history_items: bool = False
    #: The per-user embedding table of Eq. 2. False: every sample reads the cold-start row (plus its
    #: history with ``history_user``), so known and unknown users are treated alike.
    user_table: bool = True

    def uses_history_encoder(self) -> bool:
        return self.history_user or self.history_intent or self.history_items

    def __post_init__(self) -> None:
        _one_of("recommender.variant", self.variant, REC_VARIANTS)
        if self.history_user and self.variant == "kbrd":
            raise ConfigError("recommender.history_user: kbrd has no user term (Eq. 2) to read the history into")
        if self.max_history_entities < 0:
            raise ConfigError(f"recommender.max_history_entities must be >= 0 (0 = all), got {self.max_history_entities}")
        _one_of("recommender.turn_mode", self.turn_mode, ("recency", "absolute"))
        _one_of("recommender.attention_scale", self.attention_scale, ("head", "model"))
        _one_of("recommender.gamma_form", self.gamma_form, ("linear", "tanh", "softplus", "relation_softmax"))
        if self.gamma_temperature <= 0:
            raise ConfigError(f"recommender.gamma_temperature must be > 0, got {self.gamma_temperature}")
        if self.gamma_penalty < 0:
            raise ConfigError(f"recommender.gamma_penalty must be >= 0, got {self.gamma_penalty}")
        if self.max_in_edges < 0:
            raise ConfigError(f"recommender.max_in_edges must be >= 0 (0 = no cap), got {self.max_in_edges}")
        _one_of("recommender.item_table", self.item_table, ("auto", "embedding", "encoder"))
        if self.entity_dim % self.n_heads:
            raise ConfigError(f"recommender.entity_dim={self.entity_dim} must be divisible by n_heads={self.n_heads}")
        if not 0 <= self.user_dropout < 1:
            raise ConfigError(f"recommender.user_dropout must be in [0, 1), got {self.user_dropout}")

    def resolved_item_table(self) -> str:
        if self.item_table != "auto":
            return self.item_table
        return "encoder" if self.variant == "kbrd" else "embedding"


@dataclass(frozen=True)
class RecTrainConfig:
    """Plain (non-meta) single-process training of the recommender."""

    lr: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 10
    #: Stop after this many evaluations without a better valid ``select_metric``.
    patience: int = 2
    grad_clip: float = 0.1
    weight_decay: float = 0.0
    #: Valid metric used for model selection and early stopping (the best checkpoint is restored).
    select_metric: str = "ndcg@10"
    eval_batch_size: int = 256
    #: ``user`` split: leave the valid/test users' support conversations out of training (they are
    #: kept for the meta-test adaptation, so the warm start has not fitted them already). False is
    #: the paper's fairness rule for baselines (they train on those support conversations).
    holdout_adaptation: bool = False

    def __post_init__(self) -> None:
        _one_of("rec_train.select_metric", self.select_metric,
                tuple(f"{m}@{k}" for m in ("hit", "mrr", "ndcg") for k in (1, 10, 50)))


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class GeneratorConfig:
    """Generator (paper §2.3): Transformer seq2seq with a multi-style vocabulary bias."""

    variant: str = "ccrs"  # ccrs | only_meta | kbrd_gen | transformer
    word_dim: int = 300
    n_layers: int = 2
    n_heads: int = 2
    ffn_dim: int = 300
    n_styles: int = 4  # n_s
    #: τ of the style mixture μ = softmax(p_u W^C L / τ) (Eq. 9; 1 = the paper). τ > 1 spreads μ.
    style_temperature: float = 1.0
    #: λ of the load-balancing term λ·(log n_s − H(batch-mean μ)) added to the training loss, plain
    #: and meta (0 = off, the paper): keeps the styles from collapsing to one for everyone.
    style_balance: float = 0.0
    #: λ of the style separation term λ·mean_{k≠l} cos²(F(L_k), F(L_l)) (0 = off, the paper): the
    #: styles' own vocabulary biases (output bias b₂ left out) kept apart, so styles say different words.
    style_separation: float = 0.0
    #: Beyond the paper: ``ccrs`` adds KBRD's bias F'(p_u) to F(g_u) (Eq. 10 becomes W^G q + F(g_u) +
    #: F'(p_u) + b), keeping the context's entities in the bias that g_u, a mixture of n_s styles, drops.
    style_with_user_bias: bool = False
    max_context_tokens: int = 256
    max_response_tokens: int = 30
    min_word_count: int = 3
    dropout: float = 0.1
    #: Hidden width of F, the two fully connected layers d → hidden → |V| of Eq. 10 (KBRD: 512).
    bias_hidden: int = 512
    #: Inference: ``greedy`` (CRSLab's evaluation), ``beam`` (``beam_width``) or ``nucleus`` sampling
    #: (``top_p``, seeded by ``sampling_seed``: the same batch gives the same responses).
    decoding: str = "greedy"
    beam_width: int = 4
    top_p: float = 0.9
    sampling_seed: int = 0
    #: Forbid repeating any n-gram of this length inside a response (3 = no repeated trigram; 0 = off).
    no_repeat_ngram: int = 0
    #: Nucleus sampling: softmax(logits / temperature) (1 = the model's distribution; 0 = greedy).
    temperature: float = 1.0
    #: Length prior, every decoding: ``__end__`` is forbidden before this many words (0 = off).
    min_response_tokens: int = 0

    def __post_init__(self) -> None:
        _one_of("generator.variant", self.variant, ("ccrs", "only_meta", "kbrd_gen", "transformer"))
        _one_of("generator.decoding", self.decoding, ("greedy", "beam", "nucleus"))
        if not 0.0 <= self.top_p <= 1.0:
            raise ConfigError(f"generator.top_p must be in [0, 1], got {self.top_p}")
        if self.word_dim % self.n_heads:
            raise ConfigError(f"generator.word_dim={self.word_dim} must be divisible by n_heads={self.n_heads}")
        if self.n_styles < 1:
            raise ConfigError(f"generator.n_styles must be >= 1, got {self.n_styles}")
        if self.style_temperature <= 0 or self.style_balance < 0 or self.style_separation < 0:
            raise ConfigError(f"generator.style_temperature must be > 0 and style_balance, style_separation >= 0, "
                              f"got {self.style_temperature}, {self.style_balance}, {self.style_separation}")
        if self.temperature < 0 or not 0 <= self.min_response_tokens < self.max_response_tokens:
            raise ConfigError(f"generator.temperature must be >= 0 and 0 <= min_response_tokens < "
                              f"max_response_tokens, got {self.temperature} and {self.min_response_tokens}")
        if self.beam_width < 1 or self.max_response_tokens < 2 or self.max_context_tokens < 1:
            raise ConfigError("generator.beam_width >= 1, max_response_tokens >= 2, max_context_tokens >= 1")


@dataclass(frozen=True)
class GenTrainConfig:
    """Plain (non-meta) training of the generator (``ccrs train gen``), and its evaluation."""

    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 10
    patience: int = 2  # evaluations without a lower valid perplexity
    grad_clip: float = 0.1
    eval_batch_size: int = 64
    #: Limit on generated responses per evaluation part (0 = all); perplexity always uses all.
    max_generate: int = 0
    #: Valid criterion of meta-training (and of sweeps): ``ppl`` (lower is better; no generation
    #: needed) or a generation metric, higher is better (valid responses are then generated).
    select_metric: str = "ppl"

    def __post_init__(self) -> None:
        _one_of("gen_train.select_metric", self.select_metric, ("ppl", "bleu1", "bleu2", "bleu3", "bleu4", "f1",
                                                                 "dist2", "dist3", "dist4"))


@dataclass(frozen=True)
class MetaConfig:
    """MAML meta-training (paper §2.4, Algorithm 1) for one stage."""

    inner_lr: float = 0.006  # β
    outer_lr: float = 0.003  # ν
    inner_steps: int = 1
    first_order: bool = False
    include_support_loss: bool = True
    optimizer: str = "adam"
    grad_clip: float = 0.1
    meta_batch_size: int = 8
    epochs: int = 10
    #: Cap on the samples of a task's support and of its query set (0 = all). Drawn afresh each
    #: epoch for training users (seeded); the first ones for meta-test users. Bounds the memory and
    #: time of the second-order pass on users with many conversations.
    max_task_samples: int = 0
    #: Parameter-name patterns (fnmatch) kept global-only in the inner loop.
    outer_only: tuple[str, ...] = ("user_embedding*", "entity_embedding*")
    #: If set, only parameters matching these patterns adapt (e.g. ``user_embedding*``: the user's own row).
    inner_only: tuple[str, ...] = ()
    #: Meta-SGD: learn one inner rate per adapted tensor (initialised to ``inner_lr``).
    learn_inner_lr: bool = False
    #: Outer learning rate of the Meta-SGD log-rates (0 = ``outer_lr``). At ν = 3e-4 a rate moves by
    #: ~10% in 300 meta-steps, too little to learn whether the data rewards adapting at all.
    meta_sgd_lr: float = 0.0
    #: Which user row a task adapts from: ``own`` (the user's row of the warm start) or ``cold_start``
    #: (row 0 for every user: row 0 is then the meta-learned initialisation that the inner loop
    #: personalises, for training and meta-test users alike).
    task_user_row: str = "own"
    #: Weight each task of a meta-batch by its number of query samples (normalised to mean 1).
    weight_by_query: bool = False
    #: Meta-test the starting point (warm start or random init) on valid before the first meta-step
    #: and keep it as the best state unless a meta-epoch beats it.
    eval_start: bool = True
    #: How the outer-only embedding tables (entities, users) get their gradient: ``dense`` (a full
    #: table gradient, Adam over every row, all-reduced whole) or ``row_sparse`` (the rows a step reads:
    #: cost O(rows read), lazy Adam on those rows; ccrs/meta/row_sparse.py, results/scaling_sparse.md).
    embedding_gradients: str = "dense"
    #: How a meta-batch's users are dealt to Ray Train workers: ``cost`` (by estimated task cost,
    #: largest first to the least-loaded worker) or ``count`` (equal numbers, round robin).
    sharding: str = "cost"

    def __post_init__(self) -> None:
        _one_of("meta.sharding", self.sharding, ("cost", "count"))
        _one_of("meta.embedding_gradients", self.embedding_gradients, ("dense", "row_sparse"))
        _one_of("meta.task_user_row", self.task_user_row, ("own", "cold_start"))
        if self.inner_steps < 1:
            raise ConfigError(f"meta.inner_steps must be >= 1, got {self.inner_steps}")
        if self.meta_sgd_lr < 0:
            raise ConfigError(f"meta.meta_sgd_lr must be >= 0 (0 = outer_lr), got {self.meta_sgd_lr}")


def _dial_meta() -> MetaConfig:
    return MetaConfig(
        inner_lr=0.0003,
        outer_lr=0.001,
        max_task_samples=16,
        # Paper §2.4: the generator adapts {Encoder', W^L} per user: the encoder and the style
        # embeddings L; embeddings, decoder, output bias, style selector W^C and F stay global.
        outer_only=("token_embedding*", "decoder*", "output_bias", "style_bias.selector*", "style_bias.to_vocab*",
                    "user_bias*"),
    )


@dataclass(frozen=True)
class CCRSConfig:
    """The whole configuration: one object every entry point reads."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    recommender: RecommenderConfig = field(default_factory=RecommenderConfig)
    rec_train: RecTrainConfig = field(default_factory=RecTrainConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    gen_train: GenTrainConfig = field(default_factory=GenTrainConfig)
    rec_meta: MetaConfig = field(default_factory=MetaConfig)
    dial_meta: MetaConfig = field(default_factory=_dial_meta)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names the dotted key."""


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_plain(v) for v in obj]
    return obj


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Coerce a YAML/CLI value to a field's annotated type, or raise ConfigError naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(annotation)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(v, inner, key) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return value.lower() in {"true", "1", "yes", "on"}
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, values: dict[str, Any], prefix: str, base: Any = None) -> Any:
    """``base`` (default ``cls()``) supplies unset fields: a section's own defaults, e.g. ``dial_meta``'s."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)} in {where}; "
            f"known: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping of {hint.__name__} fields, got {value!r}")
            kwargs[name] = _build(hint, value, key + ".", getattr(base if base is not None else cls(), name))
        else:
            kwargs[name] = _coerce(value, hint, key)
    return dataclasses.replace(base if base is not None else cls(), **kwargs)


def _merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["recommender.n_layers=2", "seed=3"]`` → nested dict (values parsed as YAML scalars)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return nested


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> CCRSConfig:
    """Defaults ← YAML file (if any) ← ``key=value`` overrides; unknown keys raise :class:`ConfigError`."""
    values: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
        values = loaded
    values = _merge(values, parse_overrides(overrides))
    try:
        return _build(CCRSConfig, values, "")
    except ConfigError as exc:
        if path is not None:
            raise ConfigError(f"{path}: {exc}") from None
        raise


#: Table rows that are a variant plus options. A preset's name is accepted wherever a variant's is
#: (``--model``, ``--models``); its options come before any override, so an override wins.
MODEL_PRESETS: dict[str, tuple[str, ...]] = {
    # kbrd reading the history as earlier mentions (issue 30's history baseline)
    "kbrd_history": ("recommender.variant=kbrd", "recommender.history_in_context=true"),
    # CCRS with the user's history (ccrs/nn/history_encoder.py). Of the three reads, the copy term alone
    # (Eq. H4) was best on valid users (folds 0-1, results/history_select.md); the others stay options.
    "ccrs_history": ("recommender.variant=ccrs", "recommender.history_items=true"),
}


def model_overrides(name: str) -> list[str]:
    """The overrides that make table row ``name``: a preset's options, or ``recommender.variant=name``."""
    if name in MODEL_PRESETS:
        return list(MODEL_PRESETS[name])
    if name not in REC_VARIANTS:
        raise ConfigError(f"model {name!r} is neither a recommender variant ({', '.join(REC_VARIANTS)}) "
                          f"nor a preset ({', '.join(MODEL_PRESETS)})")
    return [f"recommender.variant={name}"]


def load_run_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), variant: str | None = None,
    seed: int | None = None,
) -> CCRSConfig:
    """:func:`load_config` plus the ``--model`` / ``--seed`` shortcuts every training entry point has."""
    preset = model_overrides(variant) if variant else []
    extra = [f"seed={seed}"] if seed is not None else []
    return load_config(path, [*preset, *overrides, *extra])


def config_from_dict(values: dict[str, Any]) -> CCRSConfig:
    """The inverse of ``CCRSConfig.to_dict`` (checkpoints, worker processes); validated like a file."""
    return _build(CCRSConfig, values, "")


def dump_config(cfg: CCRSConfig) -> str:
    """YAML text that :func:`load_config` reads back to an equal config."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
