"""Plain (non-meta) single-process training of one recommender: setup → train → select → test → save.

    result = train_recommender(cfg, "runs/demo/prepared", split="user", fold=0, out="runs/rec/ccrs/fold0")

Lifecycle, each step restartable:

1. **setup**: seed everything from ``cfg.seed``; read the split (``ccrs.data.rec_examples``); build
   the model (``cfg.recommender.variant``).
2. **train** (neural variants): Adam, gradient-norm clipping, cross-entropy over all items; one
   progress bar per epoch with the running loss; after each epoch the valid metrics. The best
   epoch by ``cfg.rec_train.select_metric`` on valid is kept as ``best.pt``; training stops after
   ``patience`` epochs without improvement or at ``max_epochs``. ``last.pt`` (model, optimizer, RNG,
   history) is written every epoch, so a killed run resumes from its last finished epoch.
3. **select**: the best checkpoint is restored (CRSLab tests the last epoch instead; we do not).
4. **test** once, on valid and test: per-sample predictions + metrics (all / dedup) are written.
5. **done marker**: ``result.json`` is written last; a run whose directory has it is not redone.

``run.json`` (config, split, fold) is written first: a directory holding a run with another
configuration is refused, never silently reused or resumed.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from ccrs import storage
from ccrs.checkpoint import save_checkpoint
from ccrs.config import CCRSConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.eval.rec_evaluator import predict
from ccrs.models.factory import TRAINABLE, build_recommender
from ccrs.progress import bar_disabled
from ccrs.seeding import seed_everything
from ccrs.train.curves import TENSORBOARD_DIR, CurveWriter, curve_metrics
from ccrs.train.resume import resume_or_start, save_progress

CHECKPOINT_FORMAT = "ccrs.recommender/1"
RESULT = "result.json"


@dataclass
class RecRunResult:
    variant: str
    split: str
    fold: int | None
    seed: int
    best_epoch: int
    epochs_run: int
    seconds: float
    valid: dict[str, Any]
    test: dict[str, Any]
    history: list[dict[str, Any]]
    out: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def checkpoint_payload(model, cfg: CCRSConfig, user_index: dict[int, int], extra: dict | None = None) -> dict:
    """Everything needed to rebuild the model elsewhere (serving, meta-training), safe to load."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": cfg.to_dict(),
        "state_dict": model.state_dict(),
        "user_ids": list(user_index.keys()),
        "user_rows": list(user_index.values()),
        **(extra or {}),
    }


_MISSING = object()


def _diff(a: Any, b: Any, prefix: str = "", default: Any = _MISSING) -> list[str]:
    """Differences of run key ``a`` (now) from ``b`` (stored). A config option the stored run predates
    (absent there) is no difference when it is at its default now: new options default to the old
    behaviour, so adding one does not orphan every finished run."""
    if isinstance(a, dict) and isinstance(b, dict):
        sub = default if isinstance(default, dict) else {}
        return [d for k in sorted(set(a) | set(b))
                for d in _diff(a.get(k), b.get(k, _MISSING), f"{prefix}{k}.", sub.get(k, _MISSING))]
    if b is _MISSING and default is not _MISSING and a == default:
        return []
    b = None if b is _MISSING else b
    return [] if a == b else [f"{prefix.rstrip('.')}: {b!r} there, {a!r} now"]


def _check_same_run(out_loc: storage.Location, run_key: dict) -> None:
    """Refuse to resume or reuse a run directory that holds a run of another config/split/fold."""
    key_loc = out_loc.child("run.json")
    if storage.exists(key_loc):
        from ccrs.config import CCRSConfig

        diffs = _diff(run_key, json.loads(storage.read_bytes(key_loc)), default={"config": CCRSConfig().to_dict()})
        if diffs:
            raise ValueError(f"{out_loc.uri} holds a different run ({'; '.join(diffs[:5])}); "
                             "choose another --out / --runs directory")
    else:
        storage.write_bytes(key_loc, json.dumps(run_key, indent=2).encode())


def train_recommender(
    cfg: CCRSConfig,
    prepared: str | PreparedDataset,
    split: str = "user",
    fold: int | None = None,
    out: str | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> RecRunResult:
    out_loc = storage.resolve(out) if out else None
    if split == "user" and fold is None:
        ds = prepared if isinstance(prepared, PreparedDataset) else PreparedDataset.open(prepared)
        fold = ds.manifest["config"]["fold"]
    fold = fold if split == "user" else None
    run_key = {"config": cfg.to_dict(), "split": split, "fold": fold}
    if out_loc is not None:
        _check_same_run(out_loc, run_key)
        if storage.exists(out_loc.child(RESULT)):
            return RecRunResult(**json.loads(storage.read_bytes(out_loc.child(RESULT)))["result"])
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    ds = prepared if isinstance(prepared, PreparedDataset) else PreparedDataset.open(prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    parts, user_index = rec_parts(ds, split, fold, cfg.recommender.max_context_entities, kg,
                                  holdout_adaptation=cfg.rec_train.holdout_adaptation and split == "user",
                                  max_history_entities=cfg.recommender.max_history_entities)
    if len(parts["train"]) == 0 or len(parts["valid"]) == 0:
        raise ValueError(f"{split} split (fold {fold}) has no train or valid samples")
    model = build_recommender(cfg.recommender, kg, len(user_index), parts["train"]).to(device)
    tc = cfg.rec_train
    history: list[dict[str, Any]] = []
    best_epoch, epochs_run = 0, 0
    if cfg.recommender.variant in TRAINABLE:
        best_epoch, epochs_run, history, best_state = _fit(model, parts, cfg, user_index, out_loc, progress, device)
        model.load_state_dict(best_state)  # select: restore the best valid epoch before testing
    elif out_loc is not None:
        save_checkpoint(out_loc.child("best.pt"), checkpoint_payload(model, cfg, user_index))
    meta = {"variant": cfg.recommender.variant, "split": split, "fold": fold, "seed": cfg.seed}
    reports = {}
    for part in ("valid", "test"):
        preds = predict(model, parts[part], tc.eval_batch_size, progress, desc=part)
        reports[part] = preds.save(out_loc, part, meta) if out_loc is not None else {"metrics": preds.metrics()}
    result = RecRunResult(
        variant=cfg.recommender.variant,
        split=split,
        fold=fold,
        seed=cfg.seed,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        seconds=time.perf_counter() - t0,
        valid=reports["valid"]["metrics"],
        test=reports["test"]["metrics"],
        history=history,
        out=out_loc.uri if out_loc else "",
    )
    if out_loc is not None:
        storage.write_bytes(out_loc.child(RESULT), json.dumps({**run_key, "result": result.to_dict()}, indent=2).encode())
    return result


def _fit(model, parts, cfg: CCRSConfig, user_index, out_loc, progress: bool, device: str):
    tc = cfg.rec_train
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    progress_state = resume_or_start(out_loc, model, opt, gen, worst=-math.inf)
    history, best, best_epoch = progress_state.history, progress_state.best, progress_state.best_epoch
    start, best_state = progress_state.start, progress_state.best_state
    train = parts["train"]
    n_batches = (len(train) + tc.batch_size - 1) // tc.batch_size
    curves = CurveWriter(out_loc.child(TENSORBOARD_DIR).uri) if out_loc is not None else None
    epoch = start - 1
    for epoch in range(start, tc.max_epochs + 1):
        if epoch - best_epoch > tc.patience and best_epoch > 0:
            epoch -= 1
            break
        model.train()
        total, seen = 0.0, 0
        bar = tqdm(train.batches(tc.batch_size, shuffle=True, generator=gen), total=n_batches,
                   desc=f"{cfg.recommender.variant} epoch {epoch}", disable=bar_disabled(progress))
        for batch in bar:
            batch = batch.to(device)
            loss = model.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            total += loss.item() * batch.labels.numel()
            seen += batch.labels.numel()
            bar.set_postfix(loss=f"{total / seen:.4f}")
        valid = predict(model, parts["valid"], tc.eval_batch_size).metrics()
        score = valid["all"][tc.select_metric]
        bar.set_postfix(loss=f"{total / max(seen, 1):.4f}", **{f"valid_{tc.select_metric}": f"{score:.4f}"})
        bar.close()
        history.append({"epoch": epoch, "train_loss": total / max(seen, 1), "valid": valid["all"],
                        "valid_dedup": valid["dedup"]})
        if curves is not None:
            curves.log(epoch, {"train/loss": total / max(seen, 1),
                               **curve_metrics({"valid": valid["all"], "valid_dedup": valid["dedup"]})})
        improved = score > best
        if improved:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
            if out_loc is not None:
                save_checkpoint(out_loc.child("best.pt"), checkpoint_payload(model, cfg, user_index, {"epoch": epoch}))
        if progress:
            bar.write(f"epoch {epoch}: loss {total / max(seen, 1):.4f}  valid {tc.select_metric} {score:.4f}  "
                      f"hit@10 {valid['all']['hit@10']:.4f}  hit@50 {valid['all']['hit@50']:.4f}"
                      f"{'  (best)' if improved else ''}")
        if out_loc is not None:
            save_progress(out_loc, CHECKPOINT_FORMAT, model, opt, gen, history, best, best_epoch, epoch)
    if curves is not None:
        curves.close()
    return best_epoch, epoch, history, best_state
