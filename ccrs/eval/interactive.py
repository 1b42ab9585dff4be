"""Interactive evaluation: simulated seekers (:mod:`ccrs.eval.simulator`) talk to a served system over HTTP.

    sessions, support = build_sessions(ds, fold=0)
    run = run_interactive(InteractiveConfig(endpoint="http://127.0.0.1:8000/", rounds=5, k=10, adapt=True),
                          sessions, support, simulator)
    summary = summarize(run.records, rounds=5)

Each run starts from users the service does not know: every session user is forgotten first
(``DELETE /v1/users/{id}``; 404 for a user it never held). Then, once per user and before any of that
user's sessions, the user's support conversations (their earlier conversations) are sent — to
``POST /v1/users/{id}/adapt`` with ``adapt`` (which also remembers them as the user's history), else
to ``POST /v1/users/{id}/history`` with ``history`` (remembered, no adaptation): the user returns.
Each round the dialogue so far goes to
``POST /v1/recommend`` (``k`` items, the user's id) and the session succeeds at the first round whose
top-k holds a target. Sessions run on ``concurrency`` threads, each bounded by ``session_timeout_s``;
every HTTP call has ``timeout_s``. A failed call (connection error, timeout, non-2xx) is counted and
ends its session as an error — never retried, never counted as a failure of the model.

Per-session records hold ids and timings only (no dialogue text): targets, the ranked item ids of each
round, the clues' kinds and entity ids, whether the system understood each clue (its entity is in
the next answer's ``entities``) and how many proposals it recorded as rejected.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np

from ccrs.eval.significance import paired_tests
from ccrs.eval.simulator import KGFacts, SeekerSimulator, Session, render_turn


@dataclass
class InteractiveConfig:
    endpoint: str
    rounds: int = 5
    k: int = 10
    adapt: bool = False  # support conversations to /adapt (adapted and remembered)
    concurrency: int = 4
    timeout_s: float = 30.0  # one HTTP call
    session_timeout_s: float = 300.0  # one session, all rounds
    seed: int = 0
    max_conversations: int = 50  # per adaptation request (``ServeLimits.max_conversations``)
    max_turns: int = 50  # the dialogue's last N turns are sent (the app's limit, ``ServeLimits.max_turns``)
    history: bool = False  # support conversations to /history (remembered only); ``adapt`` implies it

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.k < 1 or self.concurrency < 1:
            raise ValueError(f"rounds, k and concurrency must be >= 1, got {self.rounds}, {self.k}, {self.concurrency}")
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http(s) URL, got {self.endpoint!r}")


class HttpError(RuntimeError):
    def __init__(self, path: str, status: int | None, message: str) -> None:
        super().__init__(f"{path}: {status or 'no answer'}: {message}")
        self.path, self.status = path, status


def post_json(endpoint: str, path: str, body: dict | None, timeout_s: float, method: str = "POST") -> tuple[dict, float]:
    """``method`` ``body`` as JSON; returns (answer, milliseconds). Raises :class:`HttpError` on any failure."""
    url = endpoint.rstrip("/") + path
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            data = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise HttpError(path, exc.code, exc.read()[:300].decode(errors="replace")) from None
    except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError) as exc:
        raise HttpError(path, None, str(exc)) from None
    return data, 1000 * (time.perf_counter() - t0)


def build_sessions(ds, fold: int, simulator: SeekerSimulator, split: str = "user", part: str = "test",
                   max_sessions: int | None = None) -> tuple[list[Session], dict[int, list[list[dict]]], dict]:
    """Sessions for the ``part`` users of ``fold`` (their query conversations) and each user's support
    conversations as adaptation bodies. Returns ``(sessions, support, counts)``; targets are item
    indices (the ids the API answers with)."""
    from ccrs.data.dataset import user_splits

    if split != "user":
        raise ValueError(f"interactive evaluation runs on the user split (support/query per user), got {split!r}")
    tasks = ds.table("tasks")
    roles = user_splits(tasks, fold, ds.n_folds)
    turns: dict[str, list[dict]] = defaultdict(list)
    for t in ds.table("turns").to_pylist():
        turns[t["conversation_id"]].append(t)
    feedback: dict[str, list[dict]] = defaultdict(list)
    for f in ds.table("movie_feedback").to_pylist():
        feedback[f["conversation_id"]].append(f)
    mv = ds.table("movies").to_pydict()
    movie_names = dict(zip(mv["movie_id"], mv["name"], strict=True))
    item_index = ds.table("entities").column("item_index").to_pylist()
    sessions, support, counts = [], {}, {"conversations": 0, "without_target": 0}
    for row in tasks.to_pylist():
        user = row["user_id"]
        if roles.get(user) != part:
            continue
        support[user] = [conversation_body(turns[c], movie_names) for c in row["support_conversation_ids"]]
        support[user] = [c for c in support[user] if c]
        for cid in row["query_conversation_ids"]:
            counts["conversations"] += 1
            s = simulator.session(cid, user, turns[cid], feedback[cid], movie_names)
            if s is None:
                counts["without_target"] += 1
                continue
            s.targets = [item_index[e] for e in s.targets if item_index[e] >= 0]
            if s.targets:
                sessions.append(s)
    sessions.sort(key=lambda s: (s.user_id, s.conversation_id))
    if max_sessions is not None:
        sessions = sessions[:max_sessions]
    counts["sessions"] = len(sessions)
    counts["users"] = len({s.user_id for s in sessions})
    return sessions, {u: support[u] for u in {s.user_id for s in sessions}}, counts


def targets_in_support(ds, sessions: list[Session]) -> dict[tuple[int, str], bool]:
    """Per session ``(user_id, conversation_id)``: is one of its targets a movie of the user's support
    conversations (what a returning user's history holds)? Splits a table into the sessions a
    history can help and those where remembered movies only take top-k slots."""
    from ccrs.data.history import dataset_conversation_entries

    entries = dataset_conversation_entries(ds)
    support = {r["user_id"]: r["support_conversation_ids"] for r in ds.table("tasks").to_pylist()}
    item_index = ds.table("entities").column("item_index").to_pylist()
    out = {}
    for s in sessions:
        items = {item_index[e.entity] for c in support.get(s.user_id, []) for e in entries.get(c, [])}
        out[(s.user_id, s.conversation_id)] = bool(items & set(s.targets))
    return out


def conversation_body(turns: list[dict], movie_names: dict[int, str]) -> list[dict]:
    """One prepared conversation as API turns (names rendered; empty turns dropped)."""
    out = []
    for t in sorted(turns, key=lambda t: t["turn_index"]):
        text = render_turn(t["text"], t["movie_ids"], movie_names)[:2000]
        if text:
            out.append({"role": t["role"], "text": text})
    return out[:50]


@dataclass
class InteractiveRun:
    records: list[dict]
    http_calls: int = 0
    http_errors: int = 0
    error_messages: list[str] = field(default_factory=list)
    adapt_ms: dict[int, float] = field(default_factory=dict)
    wall_s: float = 0.0


def run_interactive(cfg: InteractiveConfig, sessions: list[Session], support: dict[int, list[list[dict]]],
                    simulator: SeekerSimulator, progress: bool = True) -> InteractiveRun:
    """Every session against ``cfg.endpoint`` (see the module docstring)."""
    from tqdm import tqdm

    from ccrs.progress import bar_disabled

    run = InteractiveRun(records=[])
    lock = threading.Lock()
    t0 = time.perf_counter()

    def call(path: str, body: dict | None, method: str = "POST", expected: tuple[int, ...] = ()) -> tuple[dict, float]:
        with lock:
            run.http_calls += 1
        try:
            return post_json(cfg.endpoint, path, body, cfg.timeout_s, method)
        except HttpError as exc:
            if exc.status in expected:
                return {}, 0.0
            with lock:
                run.http_errors += 1
                if len(run.error_messages) < 20:
                    run.error_messages.append(str(exc))
            raise

    adapted: dict[int, bool] = {}
    remembered: dict[int, bool] = {}

    def prime(user: int) -> None:
        """Forget the user, then (per the config) hand over their support conversations."""
        adapted[user] = remembered[user] = False
        try:
            call(f"/v1/users/{user}", None, "DELETE", expected=(404,))
        except HttpError:
            return
        convs = [c[: cfg.max_turns] for c in support.get(user, []) if c][: cfg.max_conversations]
        if not convs or not (cfg.adapt or cfg.history):
            return
        body = {"conversations": convs}
        try:
            if cfg.adapt:  # 422: no recommendation sample to adapt on; the conversations are still remembered
                ans, ms = call(f"/v1/users/{user}/adapt", body, expected=(422,))
                if ans:
                    run.adapt_ms[user] = ms
                    adapted[user] = remembered[user] = True
                    return
            call(f"/v1/users/{user}/history", body)
            remembered[user] = True
        except HttpError:
            return

    users = sorted({s.user_id for s in sessions})  # once per user, before any session of theirs
    with ThreadPoolExecutor(cfg.concurrency) as pool:
        list(tqdm(pool.map(prime, users), total=len(users), desc="prime users", disable=bar_disabled(progress),
                  leave=False))

    def one(s: Session) -> dict:
        s = copy.deepcopy(s)  # the simulator's state (clues left, its rng) is per run: reruns replay exactly
        rec = {"conversation_id": s.conversation_id, "user_id": s.user_id, "targets": s.targets,
               "adapted": adapted.get(s.user_id, False), "remembered": remembered.get(s.user_id, False),
               "rounds": [], "success_round": None, "error": None, "clues": []}
        dialogue = [{"role": r, "text": x} for r, x in s.opening]
        start = time.perf_counter()
        last_clue = None
        for r in range(1, cfg.rounds + 1):
            if time.perf_counter() - start > cfg.session_timeout_s:
                rec["error"] = "session timeout"
                break
            body = {"user_id": s.user_id, "turns": dialogue[-cfg.max_turns:], "k": cfg.k}
            try:
                ans, ms = call("/v1/recommend", body)
            except HttpError as exc:
                rec["error"] = str(exc)[:200]
                break
            ranked = [it["item_id"] for it in ans["items"]]
            understood = {e["entity_id"] for e in ans.get("entities", [])}
            rec["rounds"].append({"ranked": ranked, "ms": round(ms, 2), "rejected": len(ans.get("rejected", [])),
                                  "user_known": ans.get("user_known"),
                                  "history_entities": ans.get("history_entities", 0)})
            if last_clue is not None:
                rec["clues"][-1]["understood"] = last_clue.entity_id in understood
            if s.succeeded(ranked):
                rec["success_round"] = r
                break
            if r == cfg.rounds:
                break
            before = len(s.clues)
            turns = simulator.next_turns(s, [it["name"] for it in ans["items"]])
            dialogue += [{"role": role, "text": text} for role, text in turns]
            last_clue = s.clues[-1] if len(s.clues) > before else None
            if last_clue is not None:
                rec["clues"].append({"kind": last_clue.kind, "entity_id": last_clue.entity_id, "understood": None})
        rec["session_ms"] = round(sum(x["ms"] for x in rec["rounds"]), 2)
        return rec

    with ThreadPoolExecutor(cfg.concurrency) as pool:
        futures = [pool.submit(one, s) for s in sessions]
        for f in tqdm(as_completed(futures), total=len(futures), desc="sessions", disable=bar_disabled(progress), leave=False):
            run.records.append(f.result())
    run.records.sort(key=lambda r: (r["user_id"], r["conversation_id"]))
    run.wall_s = time.perf_counter() - t0
    return run


def success_matrix(records: list[dict], rounds: int) -> np.ndarray:
    """(sessions, rounds) 0/1: succeeded at or before round r (errors count as not succeeded)."""
    out = np.zeros((len(records), rounds))
    for i, r in enumerate(records):
        if r["success_round"] is not None:
            out[i, r["success_round"] - 1:] = 1.0
    return out


def target_recall(record: dict) -> float:
    """Share of the session's targets that appeared in any of its top-k lists."""
    seen = {i for rd in record["rounds"] for i in rd["ranked"]}
    return len(seen & set(record["targets"])) / max(len(record["targets"]), 1)


def summarize(records: list[dict], rounds: int) -> dict:
    ok = [r for r in records if r["error"] is None]
    succ = success_matrix(ok, rounds)
    won = [r["success_round"] for r in ok if r["success_round"] is not None]
    clues = [c for r in ok for c in r["clues"] if c["understood"] is not None]
    return {
        "sessions": len(ok),
        "users": len({r["user_id"] for r in ok}),
        "errors": len(records) - len(ok),
        "success_at": [float(x) for x in succ.mean(0)] if ok else [0.0] * rounds,
        "mean_rounds_to_success": float(np.mean(won)) if won else None,
        "mean_rounds_failures_as_T_plus_1": float(np.mean([r["success_round"] or rounds + 1 for r in ok])) if ok else None,
        "target_recall": float(np.mean([target_recall(r) for r in ok])) if ok else 0.0,
        "clues_understood": float(np.mean([c["understood"] for c in clues])) if clues else None,
        "session_ms_mean": float(np.mean([r["session_ms"] for r in ok])) if ok else None,
        "round_ms_p50": float(np.median([rd["ms"] for r in ok for rd in r["rounds"]])) if ok else None,
    }


def compare(a: list[dict], b: list[dict], rounds: int, n_resamples: int = 10_000) -> dict:
    """Paired tests of success@1, success@T and target recall on the sessions both runs completed (a − b)."""
    key = lambda r: (r["user_id"], r["conversation_id"])  # noqa: E731
    ra = {key(r): r for r in a if r["error"] is None}
    rb = {key(r): r for r in b if r["error"] is None}
    both = sorted(ra.keys() & rb.keys())
    if not both:
        return {"sessions": 0}
    users = [k[0] for k in both]
    sa = success_matrix([ra[k] for k in both], rounds)[:, -1]
    sb = success_matrix([rb[k] for k in both], rounds)[:, -1]
    s1a = success_matrix([ra[k] for k in both], rounds)[:, 0]
    s1b = success_matrix([rb[k] for k in both], rounds)[:, 0]
    out = {"sessions": len(both), "success": paired_tests(sa, sb, users, n_resamples),
           "success_round1": paired_tests(s1a, s1b, users, n_resamples),
           # does the top-k differ at all? (adaptation that never changes a list cannot change success)
           "first_round_topk_differs": float(np.mean([ra[k]["rounds"][0]["ranked"] != rb[k]["rounds"][0]["ranked"]
                                                      for k in both if ra[k]["rounds"] and rb[k]["rounds"]]))}
    out["recall"] = paired_tests([target_recall(ra[k]) for k in both], [target_recall(rb[k]) for k in both],
                                 users, n_resamples)
    return out


def simulator_for(ds, seed: int = 0) -> SeekerSimulator:
    return SeekerSimulator(KGFacts.from_dataset(ds), seed=seed)


def chance_success(n_items: int, n_targets: int, k: int, rounds: int) -> float:
    """Success@rounds of a uniformly random ranker that never repeats a proposal: 1 − C(n−t, kT)/C(n, kT)."""
    from math import comb

    drawn = min(k * rounds, n_items)
    return 1.0 - comb(n_items - n_targets, drawn) / comb(n_items, drawn)
