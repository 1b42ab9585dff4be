"""The recommender behind the API, without Ray: free-text turns → entities → ranked movies, per user.

    svc = RecommenderService.load("runs/.../eval/best.pt", "runs/demo/prepared")
    out = svc.recommend([Query(user_id=7, turns=[("seeker", "I loved Alien, any sci-fi?")], k=5)])
    svc.adapt(7, [[("seeker", "..."), ("recommender", "try Alien")], ...])   # per-user MAML inner update

Entities are linked in every turn with the dataset's linker, movie names included (at serving time
movies arrive as text, not ``@id``), in order of first mention; each keeps the turn it was last
mentioned in (the turn encoder's input). The next recommender turn is the one being predicted.

**Users.** A user id the checkpoint was trained with uses its own embedding row; any other id uses
the cold-start row 0 (trained by user dropout: the population-average user, see
``ccrs/models/recommender.py``). **Adaptation**: the user's past conversations become recommendation
samples (every recommender turn × each movie it names, context = what was mentioned before), and
the MAML inner update of ``rec_meta`` (K steps, β) is run on them; the adapted parameters are kept
in a bounded LRU cache keyed by (checkpoint version, user id), so a new checkpoint never serves
another checkpoint's adaptation.

**History.** Every conversation given to :meth:`adapt` or :meth:`remember` is a finished
conversation of that user: its linked entities (who named them; a movie the seeker turned down is
marked disliked) join the user's record (:mod:`ccrs.serving.user_history`, bounded). A model trained
with history (``recommender.history_*``) reads it on every request of that user, exactly as it read
the earlier conversations in training; other models ignore it. :meth:`forget` drops both.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.func import functional_call

from ccrs import storage
from ccrs.data.dataset import PreparedDataset
from ccrs.data.history import EMPTY, History, HistoryEntry, conversation_entries
from ccrs.data.linker import DEFAULT_STOPWORDS, EntityLinker, chat_everyday_words
from ccrs.data.rec_examples import COLD_START_USER, KnowledgeGraph, RecBatch
from ccrs.inference.slots import unambiguous_names
from ccrs.meta.maml import MAML
from ccrs.meta.rec_tasks import rec_loss
from ccrs.models.factory import load_recommender
from ccrs.serving.user_history import HistoryLimits, Record, append_conversation, history_of

Turns = list[tuple[str, str]]  # (role, text)


Params = dict[str, Tensor]  # adapted inner parameters of one user (``MAML.adapt``)


class NoAdaptationSamples(ValueError):
    """The conversations given for adaptation contain no recommendation sample (a client error)."""


class NotAdaptable(ValueError):
    """The served model has no parameters to adapt (popularity, repeat_context)."""


@dataclass
class Query:
    user_id: int | None
    turns: Turns
    k: int = 10
    attention: bool = False  # also return the user's per-relation weights
    exclude_mentioned: bool = True  # never recommend a movie the dialogue already mentions
    ranked_names: bool = False  # also name the top-50 (the generator fills its slots from them)


@dataclass
class Recommendation:
    items: list[tuple[int, str, float]]  # (item index, name, score)
    entities: list[tuple[int, str, int, int, int, str]]  # (id, name, turn, start, end of the last mention, kind)
    user_known: bool
    adapted: bool
    p_u: Tensor = field(repr=False, default=None)  # (d,) user intention (Eq. 8), for the generator
    ranked: list[int] = field(default_factory=list)  # top-50 item indices (slot filling)
    mentioned_items: list[int] = field(default_factory=list)
    attention: dict[str, float] | None = None  # relation name → γ_{r,u} (Eq. 2), mean over heads and layers
    rejected: list[int] = field(default_factory=list)  # item indices the seeker turned down
    version: str = ""  # the checkpoint version that ranked it (rolling updates: every answer says which)
    names: dict[int, str] = field(default_factory=dict)  # item index → name of ``ranked`` (Query.ranked_names)
    history_entities: int = 0  # entries of the user's history the model read (0: none, or a model without history)


#: A seeker turn that turns down what the recommender just proposed.
REJECTION = re.compile(
    r"\b(?:seen (?:it|that|this|them)|already (?:seen|watched)|watched (?:it|that)|not (?:that|this) one|"
    r"not for me|something else|anything else|another one|something (?:newer|older|different)|"
    r"(?:don'?t|do not|didn'?t|did not) (?:like|want|care for) (?:it|that|this)|no thanks|nope|not really|"
    r"not interested|(?:hated|disliked) (?:it|that))\b", re.I)


@dataclass
class DialogueState:
    entities: list[int]  # linked entities, first-mention order, rejected movies left out
    turns: list[int]  # the turn each was last mentioned in
    spans: dict[int, tuple[int, int, int, str]]  # entity → (turn, start, end, kind) of its last mention
    rejected: list[int]  # item indices the seeker turned down


class RecommenderService:
    def __init__(self, model, cfg, user_index: dict[int, int], kg: KnowledgeGraph, linker: EntityLinker,
                 entity_names: list[str], version: str, cache_size: int = 128,
                 relation_names: list[str] | None = None) -> None:
        self.model, self.cfg, self.user_index, self.kg = model.eval(), cfg, user_index, kg
        self.relation_names = relation_names or [f"relation_{r}" for r in range(kg.num_relations)]
        self.linker, self.entity_names, self.version = linker, entity_names, version
        self.entity_to_item = kg.entity_to_item()
        info = getattr(model, "meta_info", {})
        # Parameter-free baselines (popularity, repeat_context) serve rankings but cannot adapt.
        has_params = any(p.requires_grad for p in self.model.parameters())
        self.maml = MAML.from_config(self.model, rec_loss, cfg.rec_meta, info.get("inner_lrs")) if has_params else None
        # A meta checkpoint whose users meta-test from the cold-start row (task_user_row=cold_start, or
        # meta-trained from scratch): every user is ranked from row 0, personalised only by adaptation.
        self.cold_start_rows = bool(info.get("eval_cold_start", False))
        self.cache_size = cache_size
        self._adapted: OrderedDict[tuple[str, int], dict[str, Tensor]] = OrderedDict()
        self.history_limits = HistoryLimits()
        self._records: dict[int, Record] = {}  # user id → history record (this process; Serve keeps them in the store)
        self.reads_history = cfg.recommender.history_in_context or cfg.recommender.uses_history_encoder() or \
            cfg.recommender.variant == "history_popularity"

    @classmethod
    def load(cls, rec_ckpt: str, prepared: str, cache_size: int = 128) -> RecommenderService:
        """Safe loading; a missing or corrupt checkpoint raises ``CheckpointError`` naming it."""
        ds = PreparedDataset.open(prepared)
        kg = KnowledgeGraph.from_dataset(ds)
        model, cfg, user_index = load_recommender(rec_ckpt, kg)
        ents = ds.table("entities")
        linker = EntityLinker.from_entities(
            ents, stopwords=DEFAULT_STOPWORDS | {s.lower() for s in cfg.data.extra_stopwords},
            min_chars=cfg.data.min_entity_name_chars, include_items=True, context_rules=True,
            everyday_words=chat_everyday_words(ds.table("turns").column("text").to_pylist()))
        names = unambiguous_names(ents.column("name").to_pylist())
        version = hashlib.sha256(storage.read_bytes(storage.resolve(rec_ckpt))).hexdigest()[:12]
        relations = ds.table("relations").sort_by("id").column("name").to_pylist()
        return cls(model, cfg, user_index, kg, linker, names, version, cache_size, relations)

    # -- dialogue → recommender input ---------------------------------------------------------------
    def dialogue_state(self, turns: Turns) -> DialogueState:
        """What the dialogue says: linked entities (with the span of their last mention) and the
        movies the seeker turned down.

        A movie the recommender named is *rejected* when the seeker's next turn turns it down
        (:data:`REJECTION`: "seen it", "not that one", "something else", ...): it leaves the context
        (it is not evidence of taste) and is never proposed again. The system's own proposals come
        back through the text of its turns (the client sends them as ``recommender`` turns)."""
        last: dict[int, tuple[int, int, int]] = {}
        rejected: dict[int, None] = {}
        proposed: list[int] = []
        for t, (role, text) in enumerate(turns):
            mentions = self.linker.link(text)
            if role == "seeker" and proposed and REJECTION.search(text):
                rejected.update(dict.fromkeys(proposed))
            proposed = [m.entity_id for m in mentions if self.entity_to_item[m.entity_id] >= 0] if role == "recommender" else []
            for m in mentions:
                last[m.entity_id] = (t, m.start, m.end, m.kind)
        kept = {e: v for e, v in last.items() if e not in rejected}
        return DialogueState(list(kept), [v[0] for v in kept.values()], {e: v for e, v in kept.items()},
                             [int(self.entity_to_item[e]) for e in rejected])

    def link(self, turns: Turns) -> tuple[list[int], list[int]]:
        """Entities of the dialogue in first-mention order (rejected movies left out), and the turn
        each was last mentioned in."""
        state = self.dialogue_state(turns)
        return state.entities, state.turns

    def _row(self, user_id: int | None) -> tuple[int, bool]:
        row = self.user_index.get(user_id) if user_id is not None else None
        if row is not None and self.cold_start_rows:
            return COLD_START_USER, True
        return (row, True) if row is not None else (COLD_START_USER, False)

    def batch(self, queries: list[tuple[int | None, Turns]], labels: list[int] | None = None,
              contexts: list[tuple[list[int], list[int]]] | None = None,
              histories: list[History] | None = None) -> RecBatch:
        """``contexts``: the queries' :meth:`link` results when the caller already has them;
        ``histories``: each query's user history (none: empty)."""
        m = self.cfg.recommender.max_context_entities
        ctxs = contexts if contexts is not None else [self.link(turns) for _, turns in queries]
        width = max([min(len(c), m) for c, _ in ctxs] + [1])
        context = torch.zeros(len(queries), width, dtype=torch.long)
        ctx_turns = torch.zeros_like(context)
        mask = torch.zeros(len(queries), width, dtype=torch.bool)
        for b, (c, t) in enumerate(ctxs):
            c, t = c[-m:], t[-m:]
            context[b, : len(c)], ctx_turns[b, : len(c)], mask[b, : len(c)] = torch.tensor(c), torch.tensor(t), True
        return RecBatch(
            sample_ids=torch.arange(len(queries)),
            labels=torch.tensor(labels if labels is not None else [0] * len(queries), dtype=torch.long),
            users=torch.tensor([self._row(u)[0] for u, _ in queries], dtype=torch.long),
            context=context, context_turns=ctx_turns, context_mask=mask,
            current_turn=torch.tensor([len(turns) for _, turns in queries], dtype=torch.long),
            label_in_context=torch.zeros(len(queries), dtype=torch.bool),
            **_history_tensors(histories or [EMPTY] * len(queries)),
        )

    # -- serving ----------------------------------------------------------------------------------
    @torch.no_grad()
    def recommend(self, queries: list[Query], adapted: dict[int, Params] | None = None,
                  states: list[DialogueState] | None = None,
                  records: dict[int, Record] | None = None) -> list[Recommendation]:
        """One forward pass for the queries that use the global parameters, one per adapted user.

        ``adapted``: user id → adapted parameters held elsewhere (the Serve app keeps them in a
        shared store so every replica sees them); by default this service's own LRU cache.
        ``states``: the queries' :meth:`dialogue_state` when the caller linked them already (the
        Serve replica links while it looks the users up in the store). ``records``: user id → history
        record held elsewhere (the Serve store); by default this service's own.
        """
        if states is None:
            states = [self.dialogue_state(q.turns) for q in queries]
        if adapted is None:
            adapted = {q.user_id: self._adapted_params(q.user_id) for q in queries
                       if (self.version, q.user_id) in self._adapted}
        if records is None:
            records = self._records
        max_h = self.cfg.recommender.max_history_entities
        histories = [history_of(records.get(q.user_id), max_h) if self.reads_history else EMPTY for q in queries]
        out: list[Recommendation | None] = [None] * len(queries)
        groups: dict[int | None, list[int]] = {}
        for i, q in enumerate(queries):
            groups.setdefault(q.user_id if q.user_id in adapted else None, []).append(i)
        for user, idx in groups.items():
            group_states = [states[i] for i in idx]  # linked once, for input and output
            contexts = [(st.entities, st.turns) for st in group_states]
            batch = self.batch([(queries[i].user_id, queries[i].turns) for i in idx], contexts=contexts,
                               histories=[histories[i] for i in idx])
            params = adapted[user] if user is not None else None
            # One encoder pass gives the ranking and p_u. Baselines (popularity, repeat_context) have no
            # user intention p_u and no γ: (B, 0) and None.
            if hasattr(self.model, "scores_with_intention"):
                scores, p_u = _call(self.model, params, "scores_with_intention", batch)
            else:
                scores = functional_call(self.model, params, (batch,)) if params else self.model(batch)
                p_u = torch.zeros(len(idx), 0)
            gamma = None
            if any(queries[i].attention for i in idx) and hasattr(self.model, "relation_weights"):
                gamma = _call(self.model, params, "relation_weights", batch.users)  # (B, L, R) or None
            mentioned_per_query = [[int(self.entity_to_item[e]) for e in c if self.entity_to_item[e] >= 0]
                                   for c, _ in contexts]
            for j, i in enumerate(idx):
                if queries[i].exclude_mentioned and mentioned_per_query[j]:
                    scores[j, mentioned_per_query[j]] = float("-inf")
                if group_states[j].rejected:  # turned down: never again, whatever exclude_mentioned says
                    scores[j, group_states[j].rejected] = float("-inf")
            top = torch.topk(scores, min(50, scores.shape[1]), dim=1)
            for j, i in enumerate(idx):
                q = queries[i]
                ents = contexts[j][0]
                items = [(int(it), self.item_name(int(it)), float(s))
                         for it, s in zip(top.indices[j, : q.k], top.values[j, : q.k], strict=True)]
                mentioned = mentioned_per_query[j]
                attention = None
                if q.attention and gamma is not None:
                    attention = {n: round(float(w), 5) for n, w in zip(self.relation_names, gamma[j].mean(0), strict=True)}
                spans = group_states[j].spans
                ranked = top.indices[j].tolist()
                names = {it: self.item_name(it) for it in ranked} if q.ranked_names else {}
                out[i] = Recommendation(items, [(e, self.entity_names[e], *spans[e]) for e in ents],
                                        self._row(q.user_id)[1], user is not None, p_u[j], ranked,
                                        mentioned, attention, group_states[j].rejected, self.version, names,
                                        len(histories[i]))
        return out  # type: ignore[return-value]

    def item_name(self, item: int) -> str:
        """The display name of item index ``item``."""
        return self.entity_names[int(self.kg.item_entity_ids[item])]

    def _adapted_params(self, user_id: int) -> dict[str, Tensor]:
        key = (self.version, user_id)
        self._adapted.move_to_end(key)
        return self._adapted[key]

    # -- per-user customization ------------------------------------------------------------------------
    def samples(self, user_id: int, conversations: list[Turns]) -> RecBatch | None:
        """Recommendation samples of past conversations: each recommender turn × each movie it names."""
        queries, labels = [], []
        for conv in conversations:
            for t, (role, text) in enumerate(conv):
                if role != "recommender" or t == 0:
                    continue
                items = [int(self.entity_to_item[e]) for e in self.linker.entity_ids(text) if self.entity_to_item[e] >= 0]
                for it in dict.fromkeys(items):
                    queries.append((user_id, conv[:t]))
                    labels.append(it)
        return self.batch(queries, labels) if queries else None

    def adaptation(self, user_id: int, conversations: list[Turns]) -> tuple[Params, int]:
        """MAML inner update (Eq. 13) on the user's past conversations: (adapted params, samples)."""
        if self.maml is None:
            raise NotAdaptable(f"the served recommender ({self.cfg.recommender.variant}) has no parameters to adapt")
        support = self.samples(user_id, conversations)
        if support is None:
            raise NoAdaptationSamples(
                "no recommendation sample in these conversations: no recommender turn names a known movie")
        with torch.enable_grad():
            params = self.maml.adapt(support, create_graph=False)
        # Only what the inner loop changed: the rest is the model's own (functional_call takes a partial
        # dict), so an archived adaptation is the adapted tensors, not a copy of the whole model.
        return {k: params[k].detach() for k in self.maml.inner_names}, len(support.labels)

    def adapt(self, user_id: int, conversations: list[Turns]) -> int:
        """:meth:`adaptation` kept in this service's LRU cache, the conversations remembered as the
        user's history; returns the number of samples."""
        params, n = self.adaptation(user_id, conversations)
        self.remember(user_id, conversations)
        key = (self.version, user_id)
        self._adapted[key] = params
        self._adapted.move_to_end(key)
        while len(self._adapted) > self.cache_size:
            self._adapted.popitem(last=False)
        return n

    # -- what the service remembers of a user ----------------------------------------------------------
    def history_entries(self, conversation: Turns) -> list[HistoryEntry]:
        """The history entries of one finished conversation (:func:`ccrs.data.history.conversation_entries`
        over the linked turns; a movie the seeker turned down is recorded as disliked)."""
        state = self.dialogue_state(conversation)
        rejected = {int(self.kg.item_entity_ids[i]) for i in state.rejected}
        turns = [(role, [m.entity_id for m in self.linker.link(text)]) for role, text in conversation]
        return conversation_entries(turns, dict.fromkeys(rejected, 0))

    def remembered(self, record: Record | None, conversations: list[Turns]) -> Record | None:
        """``record`` with ``conversations`` appended (bounded by :attr:`history_limits`)."""
        for conv in conversations:
            record = append_conversation(record, self.history_entries(conv), self.history_limits)
        return record

    def remember(self, user_id: int, conversations: list[Turns]) -> Record | None:
        """Keep ``conversations`` in this service's own history of ``user_id`` (Serve: the store's)."""
        record = self.remembered(self._records.get(user_id), conversations)
        if record is not None:
            self._records[user_id] = record
        return record

    def forget(self, user_id: int) -> bool:
        """Drop what this service holds of ``user_id`` (history and adaptations); whether it held any."""
        keys = [k for k in self._adapted if k[1] == user_id]
        for k in keys:
            del self._adapted[k]
        return self._records.pop(user_id, None) is not None or bool(keys)

    @property
    def cache_len(self) -> int:
        return len(self._adapted)


def _history_tensors(histories: list[History]) -> dict[str, Tensor]:
    """The history fields of a :class:`RecBatch` for one history per query (0-padded)."""
    width = max([len(h) for h in histories] + [0])
    out = {name: torch.zeros(len(histories), width, dtype=torch.long)
           for name in ("history", "history_age", "history_flag", "history_count")}
    mask = torch.zeros(len(histories), width, dtype=torch.bool)
    for b, h in enumerate(histories):
        n = len(h)
        for name, values in (("history", h.entities), ("history_age", h.age), ("history_flag", h.flag),
                             ("history_count", h.count)):
            out[name][b, :n] = torch.tensor(values, dtype=torch.long)
        mask[b, :n] = True
    return {**out, "history_mask": mask}


class _Method(torch.nn.Module):
    """A method of the model as a module's forward, so ``functional_call`` can swap in adapted params."""

    def __init__(self, model, name: str) -> None:
        super().__init__()
        self.model, self.name = model, name

    def forward(self, *args):
        return getattr(self.model, self.name)(*args)


def _call(model, params: Params | None, name: str, *args):
    """``model.<name>(*args)`` with the global parameters, or with adapted ``params``."""
    if params is None:
        return getattr(model, name)(*args)
    return functional_call(_Method(model, name), {f"model.{k}": v for k, v in params.items()}, args)
