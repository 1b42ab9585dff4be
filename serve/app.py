"""The HTTP API: a FastAPI ingress composing the ``Recommender`` and ``Generator`` deployments.

    serve run serve/config.yaml                        # the shipped config (edit the URIs)
    ccrs serve --rec-ckpt URI --gen-ckpt URI --data URI --port 8000
    curl -s localhost:8000/v1/recommend -H 'content-type: application/json' \\
         -d '{"user_id": 7, "turns": [{"role": "seeker", "text": "I loved Alien, any sci-fi?"}], "k": 5}'

Endpoints (OpenAPI schema at ``/docs`` and ``/openapi.json``): ``POST /v1/recommend``,
``POST /v1/respond``, ``POST /v1/users/{user_id}/adapt``, ``POST /v1/users/{user_id}/history`` (finished
conversations to remember, no adaptation), ``GET /v1/users/{user_id}`` (what the service holds of a user),
``DELETE /v1/users/{user_id}`` (forget a user everywhere, archive included), ``GET /healthz``, ``GET /v1/info``,
``GET /v1/stats`` (batch sizes each model replica formed), ``POST /v1/noop`` (a recommend body
validated and answered without a model: the floor latency benchmarks compare with), ``GET /`` (the
chat page).

Errors: a body that is not JSON → 400; a body over ``max_body_bytes`` → 413; a body that does not
match the schema → 422 whose ``fields`` name each bad field (``turns.2.text: ...``); adaptation
conversations with no recommendation sample → 422 naming ``conversations``; user ids beyond 64 bits
→ 422 naming ``user_id``; ``GET``/``DELETE`` of a user the service holds nothing of → 404. Anything raised inside a deployment → 500 whose body is only
``{"error": "internal error", "request_id": ...}`` (the id also in the ``x-request-id`` header); the
traceback goes to the log under that id, never into a body; the replica keeps serving.
"""

# no `from __future__ import annotations`: FastAPI must see the request classes built in ingress()
import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated

import ray
from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.serve.handle import DeploymentHandle

from ccrs.checkpoint import CheckpointError
from ccrs.serving.generator_service import Reply
from ccrs.serving.recommender_service import NoAdaptationSamples, NotAdaptable, Query, Recommendation
from ccrs.serving.schemas import (
    MAX_USER_ID,
    AdaptResponse,
    Entity,
    ForgetResponse,
    Item,
    RecommendResponse,
    RespondResponse,
    ServeLimits,
    SlotItem,
    UserResponse,
    api_models,
)
from serve.deployments import AdaptationStore, Generator, Recommender, storage_uri
from serve.metrics import metrics

log = logging.getLogger("ray.serve")
PAGE = Path(__file__).with_name("static") / "index.html"


def _request_id(request: Request | None = None) -> str:
    try:
        return serve.context._get_serve_request_context().request_id  # the id Serve logs and returns
    except Exception:  # outside Serve (unit use)
        return request.headers.get("x-request-id", "") if request is not None else ""


def _error(status: int, message: str, request: Request, fields: list[str] | None = None) -> JSONResponse:
    body = {"error": message, "request_id": _request_id(request)}
    if fields is not None:
        body["fields"] = fields
    return JSONResponse(body, status_code=status)


#: A replica that died (SIGKILL, OOM, node loss) mid-request: the call never reached the model code or
#: its result was lost. Idempotent calls (recommend, respond) are retried on another replica.
REPLICA_DEATH = (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError)
RETRY_BACKOFF_S = (0.05, 0.2, 0.5)


async def retry_on_replica_death(call):
    """Await ``call()`` (a handle call); retried, bounded (:data:`RETRY_BACKOFF_S`), when the replica
    serving it died. Serve routes the retry to a live replica; the request keeps its id (the same
    ingress request). Errors raised by the model code itself are never retried."""
    for wait in (*RETRY_BACKOFF_S, None):
        try:
            return await call()
        except REPLICA_DEATH as exc:
            if wait is None:
                raise
            log.warning("request %s: replica died (%s); retrying in %.2f s", _request_id(), type(exc).__name__, wait)
            await asyncio.sleep(wait)


def domain_message(exc: BaseException) -> str:
    """The one-line message of a domain error raised in a replica.

    Ray re-raises a replica's exception as a class deriving from both ``RayTaskError`` and the
    original one, whose ``str`` is the whole remote traceback (paths, pid, actor id): the message
    is taken from the original exception (``.cause``), first line only."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause.args[0]) if cause.args else str(cause)
    return text.strip().splitlines()[0] if text.strip() else type(cause).__name__


def build_api(limits: ServeLimits) -> FastAPI:
    """The FastAPI app (routes are bound to the ingress class by :func:`ingress`)."""
    models = api_models(limits)
    api = FastAPI(title="ccrs", version="1", description=__doc__.split("\n\n")[2])

    @api.middleware("http")
    async def count_and_time(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"  # the template, not the id
        m = metrics()
        m.requests.inc(tags={"route": route, "status": str(response.status_code)})
        m.latency.observe(1000 * (time.perf_counter() - t0), tags={"route": route})
        return response

    @api.middleware("http")
    async def body_limit(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limits.max_body_bytes):
            return _error(413, f"body: larger than max_body_bytes={limits.max_body_bytes}", request, ["body"])
        return await call_next(request)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            msg = next(e for e in errors if e.get("type") == "json_invalid")
            return _error(400, f"body: malformed JSON ({msg.get('ctx', {}).get('error', msg['msg'])})", request, ["body"])
        fields = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in errors]
        return _error(422, "invalid request", request, fields)

    api.state.models = models
    return api


def ingress(limits: ServeLimits):
    """The ``Ingress`` deployment class for ``limits`` (the request schemas depend on them)."""
    api = build_api(limits)
    m = api.state.models
    RecommendRequest, AdaptRequest = m.RecommendRequest, m.AdaptRequest  # noqa: N806

    class InfoResponse(BaseModel):
        model_config = ConfigDict(extra="allow")

    @serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0.1})
    @serve.ingress(api)
    class Ingress:
        def __init__(self, recommender: DeploymentHandle, generator: DeploymentHandle | None) -> None:
            self.rec, self.gen = recommender, generator  # generator None: a recommender-only app

        async def _recommend(self, req, ranked_names: bool = False) -> Recommendation:
            turns = [(t.role, t.text) for t in req.turns]
            query = Query(req.user_id, turns, req.k, req.attention, req.exclude_mentioned, ranked_names)
            return await retry_on_replica_death(lambda: self.rec.recommend.remote(query))

        @staticmethod
        def _entities(rec: Recommendation) -> list[Entity]:
            return [Entity(entity_id=e, name=n, turn=t, start=a, end=b, kind=k) for e, n, t, a, b, k in rec.entities]

        @staticmethod
        def _items(rec: Recommendation) -> list[Item]:
            return [Item(item_id=i, name=n, score=round(s, 5)) for i, n, s in rec.items]

        @api.post("/v1/recommend", response_model=RecommendResponse)
        async def recommend(self, req: RecommendRequest, request: Request):
            try:
                rec = await self._recommend(req)
            except Exception as exc:
                return self._internal(exc, request)
            return RecommendResponse(items=self._items(rec), user_known=rec.user_known, attention=rec.attention,
                                     entities=self._entities(rec), rejected=rec.rejected,
                                     checkpoint_versions={"recommender": rec.version},
                                     history_entities=rec.history_entities)

        @api.post("/v1/respond", response_model=RespondResponse)
        async def respond(self, req: RecommendRequest, request: Request):
            if self.gen is None:
                return _error(503, "no generator deployed (recommender-only app)", request)
            try:
                rec = await self._recommend(req, ranked_names=True)  # names come back with it: no second hop
                names = rec.names
                reply = Reply([(t.role, t.text) for t in req.turns], rec.p_u, rec.ranked, rec.mentioned_items)
                out = await retry_on_replica_death(lambda: self.gen.respond.remote(req.user_id, reply, names))
            except Exception as exc:
                return self._internal(exc, request)
            return RespondResponse(response=out.text, items=self._items(rec), style_mixture=out.style_mixture,
                                   slot_items=[SlotItem(item_id=i, name=names[i]) for i in out.items],
                                   entities=self._entities(rec), rejected=rec.rejected,
                                   checkpoint_versions={"recommender": rec.version, "generator": out.version})

        @api.post("/v1/users/{user_id}/adapt", response_model=AdaptResponse)
        async def adapt(self, user_id: Annotated[int, PathParam(ge=0, le=MAX_USER_ID)], req: AdaptRequest,
                        request: Request):
            convs = [[(t.role, t.text) for t in conv] for conv in req.conversations]
            try:
                out = AdaptResponse(**await self.rec.adapt.remote(user_id, convs))
            except NoAdaptationSamples as exc:
                metrics().adaptations.inc(tags={"outcome": "no_samples"})
                return _error(422, "invalid request", request, [f"conversations: {domain_message(exc)}"])
            except NotAdaptable as exc:
                metrics().adaptations.inc(tags={"outcome": "not_adaptable"})
                return _error(409, domain_message(exc), request)
            except Exception as exc:
                metrics().adaptations.inc(tags={"outcome": "error"})
                return self._internal(exc, request)
            metrics().adaptations.inc(tags={"outcome": "ok"})
            return out

        @api.post("/v1/users/{user_id}/history", response_model=UserResponse)
        async def remember(self, user_id: Annotated[int, PathParam(ge=0, le=MAX_USER_ID)], req: AdaptRequest,
                           request: Request):
            """Finished conversations of the user: they join the history the model reads (no adaptation)."""
            convs = [[(t.role, t.text) for t in conv] for conv in req.conversations]
            try:
                return UserResponse(**await self.rec.remember.remote(user_id, convs))
            except Exception as exc:
                return self._internal(exc, request)

        @api.get("/v1/users/{user_id}", response_model=UserResponse)
        async def user(self, user_id: Annotated[int, PathParam(ge=0, le=MAX_USER_ID)], request: Request):
            try:
                held = await retry_on_replica_death(lambda: self.rec.user.remote(user_id))
            except Exception as exc:
                return self._internal(exc, request)
            if held is None:
                return _error(404, f"user {user_id}: the service holds nothing of this user", request)
            return UserResponse(**held)

        @api.delete("/v1/users/{user_id}", response_model=ForgetResponse)
        async def forget(self, user_id: Annotated[int, PathParam(ge=0, le=MAX_USER_ID)], request: Request):
            try:
                n = await retry_on_replica_death(lambda: self.rec.forget.remote(user_id))
            except Exception as exc:
                return self._internal(exc, request)
            if n == 0:
                return _error(404, f"user {user_id}: the service holds nothing of this user", request)
            return ForgetResponse(user_id=user_id, forgotten=n)

        @api.get("/healthz")
        async def healthz(self) -> dict:
            return {"status": "ok"}

        @api.post("/v1/noop")
        async def noop(self, req: RecommendRequest) -> dict:
            """The floor of the HTTP path: a recommend body through the same proxy, ingress, validation
            and JSON encoding as ``/v1/recommend``, answered without a model (benchmarks/serve_load.py)."""
            return {"turns": len(req.turns)}

        @api.get("/v1/info", response_model=InfoResponse)
        async def info(self) -> dict:
            rec = await self.rec.info.remote()
            gen = await self.gen.info.remote() if self.gen is not None else None
            versions = {"recommender": rec["version"]} | ({"generator": gen["version"]} if gen else {})
            return {"recommender": rec, "generator": gen, "items": rec["items"], "checkpoint_versions": versions,
                    "limits": vars(limits)}

        @api.get("/v1/stats")
        async def stats(self) -> dict:
            gen = await self.gen.stats.remote() if self.gen is not None else None
            return {"recommender": await self.rec.stats.remote(), "generator": gen}

        @api.get("/", response_class=HTMLResponse, include_in_schema=False)
        async def page(self) -> str:
            return PAGE.read_text()

        @staticmethod
        def _internal(exc: Exception, request: Request) -> JSONResponse:
            rid = _request_id(request)
            log.error("request %s failed: %s", rid, exc, exc_info=exc)
            return _error(500, "internal error", request)

    return Ingress


_LIMITS = ServeLimits()


class AppArgs(BaseModel):
    """Arguments of :func:`build_app` (``serve run serve.app:build_app rec_ckpt=... ...``)."""

    model_config = ConfigDict(extra="forbid")
    rec_ckpt: str = ""  # URIs may instead come from the deployments' user_config (serve/config.yaml)
    gen_ckpt: str = ""
    data: str = ""
    cache_size: int = 1024
    adaptations: str = ""  # URI where adaptations and histories are archived (survive a store replica's death); "": memory only
    history_max_conversations: int = 50  # a user's history keeps the newest this many conversations
    history_max_entities: int = 2000  # ... and at most this many (conversation, entity) entries
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.0  # take what is queued: waiting costs latency, no throughput (bench_serve.md)
    max_turns: int = _LIMITS.max_turns  # request limits: ServeLimits' defaults, in one place
    max_turn_chars: int = _LIMITS.max_turn_chars
    max_k: int = _LIMITS.max_k
    max_conversations: int = _LIMITS.max_conversations
    max_body_bytes: int = _LIMITS.max_body_bytes
    fail_user_ids: list[int] = []  # fault injection: requests for these users raise in the Recommender (tests)
    num_replicas: int = 1  # of Recommender and of Generator (serve/config.yaml autoscales from 2 instead)
    replica_num_cpus: float = 0.5  # CPUs each Recommender / Generator replica reserves
    recommender_only: bool = False  # no Generator deployment: /v1/respond answers 503 (evaluation, ranking APIs)


def check_checkpoints(a: AppArgs) -> None:
    """Fail fast, in the driver, on a missing or corrupt checkpoint given as an argument (the replicas
    check again in ``reconfigure``: URIs that arrive by ``user_config`` are only checked there)."""
    from ccrs.checkpoint import load_checkpoint
    from ccrs.data.dataset import PreparedDataset

    for uri, fmt in ((a.rec_ckpt, "ccrs.recommender/1"), (a.gen_ckpt, "ccrs.generator/1")):
        if uri:
            got = load_checkpoint(storage_uri(uri)).get("format")  # CheckpointError: "<uri>: no checkpoint there" etc.
            if got != fmt:
                raise CheckpointError(f"{uri}: format {got!r}, expected a {fmt} checkpoint")
    if a.data:
        PreparedDataset.open(storage_uri(a.data))  # DatasetError names what is missing


def build_app(args: dict):
    """The application: ``Ingress(Recommender(AdaptationStore), Generator)`` with URIs in ``user_config``."""
    a = AppArgs(**args)
    check_checkpoints(a)
    limits = ServeLimits(max_turns=a.max_turns, max_turn_chars=a.max_turn_chars, max_k=a.max_k,
                         default_k=min(10, a.max_k), max_conversations=a.max_conversations,
                         max_body_bytes=a.max_body_bytes)
    batching = {"max_batch_size": a.max_batch_size, "batch_wait_timeout_s": a.batch_wait_timeout_s}
    # max_ongoing_requests >= max_batch_size, or batches never fill (see ../shared notes)
    ongoing = max(2 * a.max_batch_size, 32)
    store = AdaptationStore.options(user_config={
        "cache_size": a.cache_size, "archive": a.adaptations, "history_max_conversations": a.history_max_conversations,
        "history_max_entities": a.history_max_entities}).bind()
    rec = Recommender.options(user_config={"rec_ckpt": a.rec_ckpt, "data": a.data, **batching,
                                           "fail_user_ids": a.fail_user_ids},
                              max_ongoing_requests=ongoing, num_replicas=a.num_replicas,
                              ray_actor_options={"num_cpus": a.replica_num_cpus}).bind(store)
    if a.recommender_only and a.gen_ckpt:
        raise ValueError("recommender_only=true with a gen_ckpt: drop one of them")
    gen = None if a.recommender_only else Generator.options(
        user_config={"gen_ckpt": a.gen_ckpt, **batching}, max_ongoing_requests=ongoing,
        num_replicas=a.num_replicas, ray_actor_options={"num_cpus": a.replica_num_cpus}).bind()
    return ingress(limits).options(max_ongoing_requests=4 * ongoing).bind(rec, gen)
