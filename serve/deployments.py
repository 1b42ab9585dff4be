"""The model deployments: ``Recommender``, ``Generator`` and the shared ``AdaptationStore``.

Each model deployment is a thin shell around a Ray-free service of ``ccrs.serving``. Checkpoint
URIs arrive through ``user_config`` (:meth:`reconfigure`), so ``serve deploy`` with a new URI rolls a
checkpoint out without restarting replicas; a missing or corrupt checkpoint raises in
``reconfigure`` and the deployment fails to start with that message (an update keeps the old
replicas serving). Model calls go through ``@serve.batch``; the batch size and wait are part of the
``user_config`` too, and every replica counts the batch sizes it formed (``stats``).

**Adaptation across replicas.** ``POST /v1/users/{id}/adapt`` runs the MAML inner update on one
Recommender replica and puts the adapted parameters into ``AdaptationStore`` (one replica, a
bounded LRU keyed by (checkpoint version, user id)); every Recommender replica looks the batch's
users up there, so an adapted user is served customised by any replica, including ones autoscaling
starts later. A rollout changes the version, so old adaptations are never applied to a new model.

**Where adaptations live, and what a death costs.** With the store's ``archive`` (the shipped
config: ``$CCRS_STORAGE_PATH/adaptations``) a put is written there before the adaptation is
acknowledged; the store's memory is a cache of it. If the store replica dies, Serve restarts it and
it lists the archive again: no adaptation is lost. While it is down, Recommender replicas answer
every request with the adapted parameters they already hold (users they do not hold are served
unadapted for those seconds; ``ccrs_adaptation_lookups{result="store_unavailable"}`` counts them)
and an adaptation waits for the restart. A Recommender replica's death loses nothing: it holds
only copies. Without an archive (``adaptations=""``) the store's death loses every adaptation.

**No store call for users who never adapted.** Each Recommender replica holds an index of the
(version, user) keys the store holds, with a tag of each key's last put, kept current by a long poll
(:meth:`AdaptationStore.keys_after` returns as soon as a put changes the keys); only users in the
index are fetched, and a replica keeps what it fetched (:data:`LOCAL_PARAMS` users) until the index
shows a newer put of that user. An adaptation returns once every replica that is subscribed has
acknowledged the new keys (bounded wait: :data:`ACK_TIMEOUT_S`), so a request after ``POST /adapt``
returns is customised whichever replica serves it. Until a replica's first poll answers it asks the
store for every user. Each hop measured in ``results/serve_hops.md``.

**Histories** (:mod:`ccrs.serving.user_history`) live in the same store under the namespace
:data:`HISTORY` in place of a checkpoint version, so they are archived, indexed, fetched and kept by
replicas exactly like adaptations, and survive the same deaths. A history is not tied to a checkpoint:
a rollout keeps every user's history. ``forget`` removes a user's history and every adaptation of any
version, from memory and from the archive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, fields

from ray import serve
from ray.serve.handle import DeploymentHandle

from ccrs.data.history import HistoryEntry
from ccrs.serving.adaptation_archive import AdaptationArchive
from ccrs.serving.generator_service import GeneratorService, Reply, Response
from ccrs.serving.recommender_service import Params, Query, Recommendation, RecommenderService
from ccrs.serving.user_history import HistoryLimits, append_conversation, describe
from serve.metrics import metrics

log = logging.getLogger("ray.serve")
#: How long an adaptation waits for the Recommender replicas to learn its key (a replica that died
#: without unsubscribing is waited for this long, once), and how long one long poll is held.
ACK_TIMEOUT_S, POLL_S = 1.0, 20.0
#: How long a request waits for the store while the replica's subscription is down (store restarting),
#: and at most otherwise; past it the replica answers with the adaptations it holds, and asks the store
#: again only after STORE_RETRY_S.
STORE_WAIT_S, STORE_TIMEOUT_S, STORE_RETRY_S = 0.25, 5.0, 1.0
#: Adapted users whose parameters a Recommender replica keeps between requests.
LOCAL_PARAMS = 64
STORAGE_ENV, STORAGE_DEFAULT = "CCRS_STORAGE_PATH", "runs/demo"
#: The store's namespace of user histories (where adaptations have a checkpoint version: never hex-only).
HISTORY = "history"


def storage_uri(uri: str) -> str:
    """A URI of ``user_config``: absolute (``/...``, ``s3://...``) as is, relative ones under the pipeline's
    ``--storage-path`` from ``$CCRS_STORAGE_PATH`` (default ``runs/demo``, where ``make demo`` writes), so
    one Serve config serves a local demo and an S3 deployment (cluster/k8s/rayservice.yaml sets it)."""
    if "://" in uri or uri.startswith("/"):
        return uri
    root = os.environ.get(STORAGE_ENV, STORAGE_DEFAULT).rstrip("/")
    return f"{root}/{uri}" if "://" in root else os.path.abspath(os.path.join(root, uri))


class InjectedFault(RuntimeError):
    """Raised for ``fail_user_ids`` (a documented fault-injection knob for testing the 5xx path)."""


_REQUIRED = ""  # default of the required URIs: absent or empty is an error


def _settings(cls, config: dict, deployment: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"{deployment} user_config: unknown key(s) {unknown}; known: {sorted(known)}")
    missing = [f.name for f in fields(cls) if f.default == _REQUIRED and not config.get(f.name)]
    if missing:
        raise ValueError(f"{deployment} user_config: missing {missing}")
    s = cls(**config)
    if s.max_batch_size < 1 or s.batch_wait_timeout_s < 0:
        raise ValueError(f"{deployment} user_config: max_batch_size must be >= 1 and batch_wait_timeout_s >= 0")
    return s


@dataclass
class RecommenderSettings:
    rec_ckpt: str = _REQUIRED
    data: str = _REQUIRED  # the prepared dataset: KG, entity names, linker
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.0  # take what is queued: waiting costs latency, no throughput (bench_serve.md)
    fail_user_ids: list[int] = field(default_factory=list)


@dataclass
class GeneratorSettings:
    gen_ckpt: str = _REQUIRED
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.0  # take what is queued: waiting costs latency, no throughput (bench_serve.md)
    fail_user_ids: list[int] = field(default_factory=list)


# Every Recommender replica holds one long poll open here: max_ongoing_requests must exceed the replicas.
@serve.deployment(name="AdaptationStore", num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class AdaptationStore:
    """Adapted inner parameters per (checkpoint version, user id).

    The newest ``cache_size`` are in memory (least recently used evicted first). With ``archive``
    (a URI of ``user_config``; relative URIs under ``$CCRS_STORAGE_PATH``) every adaptation is also
    written there before ``put`` returns (:class:`ccrs.serving.adaptation_archive.AdaptationArchive`),
    so an adaptation survives this replica's death: a restarted store lists the archive, and
    parameters evicted from memory or lost with a process are read back on the first request.
    Without ``archive`` adaptations live only in this process (lost when it dies)."""

    def __init__(self) -> None:
        self.capacity = 1024
        self.archive: AdaptationArchive | None = None
        self._lru: OrderedDict[tuple[str, int], Params] = OrderedDict()  # parameters in memory
        # Every key the store holds (in memory or in the archive) → the tag of its last put. Tags name
        # this process too, so a replica never mistakes a put of a restarted store for one it holds.
        self._put_at: dict[tuple[str, int], str] = {}
        self._incarnation = uuid.uuid4().hex[:8]
        self.generation = 0  # bumped by every change of the keys
        self._changed = asyncio.Event()
        self._seen: dict[str, tuple[int, float]] = {}  # subscriber → (generation it holds, last contact)
        self.history_limits = HistoryLimits()
        self._user_locks: dict[int, asyncio.Lock] = {}  # one writer of a user's history at a time

    async def reconfigure(self, config: dict) -> None:  # async: every method runs on the loop (the Event)
        known = ["archive", "cache_size", "history_max_conversations", "history_max_entities"]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f"AdaptationStore user_config: unknown key(s) {unknown}; known: {known}")
        self.history_limits = HistoryLimits(
            int(config.get("history_max_conversations", HistoryLimits.max_conversations)),
            int(config.get("history_max_entities", HistoryLimits.max_entities)))
        self.capacity = int(config.get("cache_size", self.capacity))
        if self.capacity < 1:
            raise ValueError("AdaptationStore user_config: cache_size must be >= 1")
        uri = storage_uri(config["archive"]) if config.get("archive") else ""
        if uri and (self.archive is None or self.archive.uri != uri):
            self.archive = AdaptationArchive(uri)
            archived = await asyncio.to_thread(self.archive.keys)
            for key in archived:
                self._put_at.setdefault(key, self._tag())
            log.info("AdaptationStore: %d adaptations in the archive %s", len(archived), uri)
        elif not uri:
            self.archive = None
        self._trim()
        self._bump()

    def _tag(self) -> str:
        return f"{self._incarnation}.{self.generation}"

    def _trim(self) -> None:
        """Evict from memory; without an archive an evicted adaptation is gone (its key too)."""
        while len(self._lru) > self.capacity:
            key, _ = self._lru.popitem(last=False)
            if self.archive is None:
                self._put_at.pop(key, None)

    def _bump(self) -> None:
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def put(self, version: str, user_id: int, params: Params) -> tuple[int, int]:
        """Store an adaptation (archived first, when there is an archive: a put that returns is
        durable); returns (keys held, generation of the keys that include it)."""
        if self.archive is not None:
            await asyncio.to_thread(self.archive.save, version, user_id, params)
        self._lru[(version, user_id)] = params
        self._lru.move_to_end((version, user_id))
        self._trim()  # the newest key is never the one evicted
        self._bump()
        self._put_at[(version, user_id)] = self._tag()
        return len(self._put_at), self.generation

    async def keys_after(self, subscriber: str, seen: int) -> tuple[int, list[tuple[str, int, str]]]:
        """Long poll: the keys, each as (version, user id, tag of its last put), as soon as their
        generation differs from ``seen`` (at most :data:`POLL_S` later). Calling it again with the
        generation received acknowledges it."""
        self._seen[subscriber] = (seen, time.monotonic())  # the acknowledgement
        if seen == self.generation:
            try:
                await asyncio.wait_for(self._changed.wait(), POLL_S)
            except TimeoutError:
                pass
        self._seen[subscriber] = (seen, time.monotonic())  # still alive after a quiet poll
        return self.generation, [(v, u, tag) for (v, u), tag in self._put_at.items()]

    async def wait_acknowledged(self, generation: int) -> bool:
        """Wait (≤ :data:`ACK_TIMEOUT_S`) until every live subscriber holds ``generation`` or later."""
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while time.monotonic() < deadline:
            live = [g for g, t in self._seen.values() if time.monotonic() - t < POLL_S + 5]
            if all(g >= generation for g in live):
                return True
            await asyncio.sleep(0.002)
        log.warning("AdaptationStore: generation %d not acknowledged by every replica in %.1f s", generation,
                    ACK_TIMEOUT_S)
        return False

    async def get_many(self, version: str, user_ids: list[int]) -> dict[int, Params]:
        out = {}
        for u in user_ids:
            key = (version, u)
            if key in self._lru:
                self._lru.move_to_end(key)
                out[u] = self._lru[key]
            elif self.archive is not None and key in self._put_at:  # evicted, or held by a dead process
                params = await asyncio.to_thread(self.archive.load, version, u)
                if params is not None:
                    self._lru[key] = out[u] = params
                    self._trim()
        return out

    async def size(self) -> int:
        return len(self._put_at)

    async def append_history(self, user_id: int, conversations: list[list[HistoryEntry]]) -> tuple[int, int]:
        """Add finished conversations (their entries) to ``user_id``'s history; durable like :meth:`put`."""
        lock = self._user_locks.setdefault(user_id, asyncio.Lock())
        async with lock:  # read-modify-write: two appends of one user never lose each other
            record = (await self.get_many(HISTORY, [user_id])).get(user_id)
            for entries in conversations:
                record = append_conversation(record, entries, self.history_limits)
            return await self.put(HISTORY, user_id, record)

    async def user(self, user_id: int) -> tuple[dict | None, list[str]]:
        """What the store holds of ``user_id``: its history record (or None) and adapted checkpoint versions."""
        record = (await self.get_many(HISTORY, [user_id])).get(user_id)
        return record, sorted(v for v, u in self._put_at if u == user_id and v != HISTORY)

    async def forget(self, user_id: int) -> int:
        """Remove every key of ``user_id`` (history and adaptations of any version), archive included;
        returns how many keys there were."""
        lock = self._user_locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            keys = [k for k in self._put_at if k[1] == user_id]
            if self.archive is not None:  # the archive may hold versions this process never listed
                keys = sorted(set(keys) | {k for k in await asyncio.to_thread(self.archive.keys) if k[1] == user_id})
                for version, u in keys:
                    await asyncio.to_thread(self.archive.delete, version, u)
            for key in keys:
                self._put_at.pop(key, None)
                self._lru.pop(key, None)
            if keys:
                self._bump()
            return len(keys)


# A bad checkpoint URI does not heal by retrying: fail the start after a few tries, with the message.
@serve.deployment(name="Recommender", ray_actor_options={"num_cpus": 0.5}, max_constructor_retry_count=3)
class Recommender:
    def __init__(self, store: DeploymentHandle) -> None:
        self.store = store
        self.svc: RecommenderService | None = None
        self.settings: RecommenderSettings | None = None
        self.batch_sizes: Counter[int] = Counter()
        self.store_calls = 0
        # The store's keys → tag of their last put; None until the first poll answers (then every user is
        # looked up and nothing is kept). While the store restarts the last index stays.
        self._adapted_keys: dict[tuple[str, int], int] | None = None
        # Adapted parameters fetched before, while the store holds the same put of them: an adapted
        # user costs a store call (~1 MB of parameters) once per adaptation, not once per request.
        self._params: OrderedDict[tuple[str, int], tuple[int, Params]] = OrderedDict()
        self._store_up = False  # the subscription is live (else the store is restarting, or not yet polled)
        self._skip_store_until = 0.0  # after a failed lookup, answer without the store until then
        self._subscriber = uuid.uuid4().hex
        self._poller: asyncio.Task | None = None

    def _ensure_following(self) -> None:
        if self._poller is None or self._poller.done():  # started on the replica's event loop
            self._poller = asyncio.get_running_loop().create_task(self._follow_store())

    async def _follow_store(self) -> None:
        """Keep :attr:`_adapted_keys` equal to the store's keys (module docstring)."""
        seen = -1
        while True:
            try:
                seen, keys = await self.store.keys_after.remote(self._subscriber, seen)
                self._adapted_keys = {(v, u): g for v, u, g in keys}
                self._store_up = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # store restarting: the last index stays (archived keys do not vanish)
                self._store_up, seen = False, -1
                log.warning("Recommender: adaptation store unavailable (%s); serving the adaptations held here",
                            type(exc).__name__)
                await asyncio.sleep(0.5)

    async def reconfigure(self, config: dict) -> None:
        # async, the load in a thread: the replica keeps answering with the old model while the new
        # one loads (a rollout under load), then one assignment swaps them
        s = _settings(RecommenderSettings, config, "Recommender")
        self._ensure_following()
        if self.svc is None or (s.rec_ckpt, s.data) != (self.settings.rec_ckpt, self.settings.data):
            self.svc = await asyncio.to_thread(RecommenderService.load, storage_uri(s.rec_ckpt),
                                               storage_uri(s.data))  # errors name the URI
            log.info("Recommender: loaded %s (version %s, %d items)", s.rec_ckpt, self.svc.version, self.svc.kg.num_items)
        self.settings = s
        self._batch.set_max_batch_size(s.max_batch_size)
        self._batch.set_batch_wait_timeout_s(s.batch_wait_timeout_s)

    async def recommend(self, query: Query) -> Recommendation:
        return await self._batch(query)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _batch(self, queries: list[Query]) -> list[Recommendation]:
        self.batch_sizes[len(queries)] += 1
        metrics().batch_size.observe(len(queries), tags={"model": "recommender"})
        if any(q.user_id in self.settings.fail_user_ids for q in queries):
            raise InjectedFault(f"injected fault for user ids {self.settings.fail_user_ids}")
        svc = self.svc  # a reconfigure during the forward pass must not mix two models
        self._ensure_following()
        known = {q.user_id for q in queries if q.user_id is not None}
        index = self._adapted_keys
        # adaptations of this checkpoint, and histories when the model reads them: one lookup each
        spaces = (svc.version, HISTORY) if svc.reads_history else (svc.version,)
        wanted = {ns: sorted(known if index is None else (u for u in known if (ns, u) in index)) for ns in spaces}
        fetch = {ns: self._not_held(ns, users, index) for ns, users in wanted.items()}
        fetched: dict = {}
        states = None  # linked in the same thread as the forward pass unless a store call overlaps
        # a store that is restarting (subscription down, or a lookup failed moments ago) is not waited for
        store_down = any(fetch.values()) and not self._store_up and time.monotonic() < self._skip_store_until
        if any(fetch.values()) and not store_down:
            # the store round trips overlap the linking of the texts (which needs no parameters)
            self.store_calls += 1
            lookups = {ns: self.store.get_many.remote(ns, users) for ns, users in fetch.items() if users}
            states = await asyncio.to_thread(lambda: [svc.dialogue_state(q.turns) for q in queries])
            try:
                timeout = STORE_TIMEOUT_S if self._store_up else STORE_WAIT_S
                fetched = {ns: await asyncio.wait_for(call, timeout) for ns, call in lookups.items()}
            except Exception as exc:  # store dead or restarting: answer with what this replica holds
                store_down, self._skip_store_until = True, time.monotonic() + STORE_RETRY_S
                log.warning("Recommender: adaptation lookup failed (%s); serving the adaptations held here",
                            type(exc).__name__)
        held = {ns: self._held(ns, users) if store_down else self._keep(ns, users, fetched.get(ns, {}), index)
                for ns, users in wanted.items()}
        adapted, records = held[svc.version], held.get(HISTORY, {})
        users = wanted[svc.version]
        looked_up = (("store_unavailable", len(users)),) if store_down else (
            ("hit", len(adapted)), ("miss", len(users) - len(adapted)))
        for result, n in (*looked_up, ("not_adapted", len(known) - len(users))):
            if n:  # Ray counters take positive increments only
                metrics().lookups.inc(n, tags={"result": result})
        return await asyncio.to_thread(svc.recommend, queries, adapted, states, records)  # the loop keeps batching

    def _not_held(self, version: str, users: list[int], index: dict | None) -> list[int]:
        """Adapted users whose parameters this replica does not hold at the store's current put."""
        if index is None:
            return users
        return [u for u in users if self._params.get((version, u), (None,))[0] != index[(version, u)]]

    def _held(self, version: str, users: list[int]) -> dict:
        """The parameters this replica holds for ``users``, whatever put they came from (store down)."""
        return {u: self._params[(version, u)][1] for u in users if (version, u) in self._params}

    def _keep(self, version: str, users: list[int], fetched: dict[int, Params], index: dict | None) -> dict:
        """Keep what was fetched (labelled with the put it came from) and return the parameters of
        ``users`` at the store's current put; without an index nothing is kept."""
        if index is None:
            return fetched
        for u, params in fetched.items():
            self._params[(version, u)] = (index[(version, u)], params)
            self._params.move_to_end((version, u))
        while len(self._params) > LOCAL_PARAMS:
            self._params.popitem(last=False)
        held = ((u, self._params.get((version, u))) for u in users)
        return {u: h[1] for u, h in held if h is not None and h[0] == index[(version, u)]}

    async def adapt(self, user_id: int, conversations: list[list[tuple[str, str]]]) -> dict:
        """The MAML inner update on ``conversations``, which also join the user's history."""
        svc = self.svc
        params, n = await asyncio.to_thread(svc.adaptation, user_id, conversations)
        entries = await asyncio.to_thread(lambda: [svc.history_entries(c) for c in conversations])
        await self.store.append_history.remote(user_id, entries)
        size, generation = await self.store.put.remote(svc.version, user_id, params)
        await self.store.wait_acknowledged.remote(generation)  # every replica now knows this user adapted
        return {"user_id": user_id, "support_samples": n, "cache_size": size, "checkpoint_version": svc.version}

    async def remember(self, user_id: int, conversations: list[list[tuple[str, str]]]) -> dict:
        """Add finished conversations to the user's history (no adaptation)."""
        svc = self.svc
        entries = await asyncio.to_thread(lambda: [svc.history_entries(c) for c in conversations])
        _, generation = await self.store.append_history.remote(user_id, entries)
        await self.store.wait_acknowledged.remote(generation)
        return await self.user(user_id)

    async def user(self, user_id: int) -> dict | None:
        """What the service holds of ``user_id`` (entity names from this replica's dataset), or None."""
        svc = self.svc
        record, versions = await self.store.user.remote(user_id)
        if record is None and not versions:
            return None
        is_item = lambda e: bool(svc.entity_to_item[e] >= 0)  # noqa: E731
        return {"user_id": user_id, "history": describe(record, svc.entity_names, is_item) if record else None,
                "adapted_versions": versions}

    async def forget(self, user_id: int) -> int:
        n = await self.store.forget.remote(user_id)
        self._params = OrderedDict((k, v) for k, v in self._params.items() if k[1] != user_id)
        return n

    def info(self) -> dict:
        return {"checkpoint": self.settings.rec_ckpt, "data": self.settings.data, "version": self.svc.version,
                "variant": self.svc.cfg.recommender.variant, "items": self.svc.kg.num_items,
                "known_users": len(self.svc.user_index)}

    def stats(self) -> dict:
        return {"batch_sizes": dict(self.batch_sizes), "store_calls": self.store_calls,
                "adaptation_index": None if self._adapted_keys is None else len(self._adapted_keys)}


@serve.deployment(name="Generator", ray_actor_options={"num_cpus": 0.5}, max_constructor_retry_count=3)
class Generator:
    def __init__(self) -> None:
        self.svc: GeneratorService | None = None
        self.settings: GeneratorSettings | None = None
        self.batch_sizes: Counter[int] = Counter()

    async def reconfigure(self, config: dict) -> None:
        s = _settings(GeneratorSettings, config, "Generator")
        if self.svc is None or s.gen_ckpt != self.settings.gen_ckpt:
            self.svc = await asyncio.to_thread(GeneratorService.load, storage_uri(s.gen_ckpt))
            log.info("Generator: loaded %s (version %s)", s.gen_ckpt, self.svc.version)
        self.settings = s
        self._batch.set_max_batch_size(s.max_batch_size)
        self._batch.set_batch_wait_timeout_s(s.batch_wait_timeout_s)

    async def respond(self, user_id: int | None, reply: Reply, item_names: dict[int, str]) -> Response:
        return await self._batch((user_id, reply, item_names))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _batch(self, requests: list[tuple[int | None, Reply, dict[int, str]]]) -> list[Response]:
        self.batch_sizes[len(requests)] += 1
        metrics().batch_size.observe(len(requests), tags={"model": "generator"})
        if any(u in self.settings.fail_user_ids for u, _, _ in requests):
            raise InjectedFault(f"injected fault for user ids {self.settings.fail_user_ids}")
        names: dict[int, str] = {}
        for _, _, n in requests:
            names.update(n)
        return await asyncio.to_thread(self.svc.respond, [r for _, r, _ in requests], names)

    def info(self) -> dict:
        g = self.svc.cfg.generator
        return {"checkpoint": self.settings.gen_ckpt, "version": self.svc.version, "variant": g.variant,
                "vocabulary": len(self.svc.tok), "decoding": g.decoding, "styles": g.n_styles}

    def stats(self) -> dict:
        return {"batch_sizes": dict(self.batch_sizes)}
