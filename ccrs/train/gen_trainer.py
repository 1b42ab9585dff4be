"""Plain (non-meta) training of the generator: setup → train → select → evaluate → save.

    result = train_generator(cfg, "runs/demo/prepared", rec_ckpt=".../best.pt", fold=0, out="runs/gen/kbrd_gen")

The recommender is frozen (p_u precomputed, ``ccrs.train.gen_data``). Adam on the token
cross-entropy, gradient clipping, one progress bar per epoch; after each epoch the valid perplexity;
the lowest-perplexity epoch is ``best.pt`` and is restored before the final evaluation (valid and
test: perplexity + generated responses + BLEU/F1/Dist). ``last.pt`` every epoch (a killed run
resumes), ``run.json`` first (another config in the same directory is refused), ``result.json``
last (a finished run is not redone).

``continue_from`` (a finished or killed run directory of the same data, vocabulary and sizes)
continues that run: its ``last.pt``/``best.pt`` seed this one, which then trains on up to
``gen_train.max_epochs`` *in total*, as if the first run had been given the larger budget (the
equal-budget rows of Table 2 continue the meta rows' warm start this way).

``print_results`` (default: as ``progress``) prints the final ``valid:``/``test:`` lines; a caller that
runs this in a Ray task prints them from the driver instead, so that they keep their place in its log.
"""

from __future__ import annotations

import copy
import json
import math
import time
from typing import Any

import torch
from tqdm.auto import tqdm

from ccrs import storage
from ccrs.checkpoint import save_checkpoint
from ccrs.config import CCRSConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.eval.gen_evaluator import evaluate_generator, token_nll
from ccrs.eval.gen_metrics import format_generation_summary, perplexity
from ccrs.models.generator import build_generator, generator_payload
from ccrs.progress import bar_disabled
from ccrs.seeding import seed_everything
from ccrs.train.curves import TENSORBOARD_DIR, CurveWriter
from ccrs.train.gen_data import GenData, load_gen_data
from ccrs.train.rec_trainer import _check_same_run
from ccrs.train.resume import LAST, resume_or_start, save_progress

RESULT = "result.json"


def evaluate_and_save(model, data: GenData, cfg: CCRSConfig, out_loc, meta: dict,
                      progress: bool = False) -> dict[str, dict]:
    """Valid and test reports (written under ``out_loc`` when given); ``{part: metrics}``."""
    reports = {}
    for part in ("valid", "test"):
        index = data.part_index[part]
        if cfg.gen_train.max_generate:
            index = index[: cfg.gen_train.max_generate]
        report = evaluate_generator(model, data, index, cfg.generator, cfg.gen_train.eval_batch_size)
        reports[part] = report.save(out_loc, part, meta)["metrics"] if out_loc is not None else report.metrics()
        if progress:
            print(f"{part}: {format_generation_summary(reports[part])}", flush=True)
    return reports


def train_generator(cfg: CCRSConfig, prepared: str | PreparedDataset, rec_ckpt: str, fold: int = 0,
                    out: str | None = None, progress: bool = True, device: str = "cpu",
                    continue_from: str | None = None, print_results: bool | None = None) -> dict[str, Any]:
    out_loc = storage.resolve(out) if out else None
    run_key = {"config": cfg.to_dict(), "fold": fold, "rec_checkpoint": rec_ckpt}
    if continue_from:
        run_key["continue_from"] = continue_from
        if out_loc is None:
            raise ValueError("continue_from needs an output directory (out) to continue in")
    if out_loc is not None:
        _check_same_run(out_loc, run_key)
        if storage.exists(out_loc.child(RESULT)):
            return json.loads(storage.read_bytes(out_loc.child(RESULT)))["result"]
        if continue_from and not storage.exists(out_loc.child(LAST)):
            _seed_from(storage.resolve(continue_from), out_loc)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    data = load_gen_data(prepared, fold, cfg, rec_ckpt, progress=progress, device=device)
    user_dim = data.examples.user_vectors.shape[1]
    model = build_generator(cfg.generator, data.tokenizer, user_dim).to(device)
    best_epoch, epochs_run, history, best_state = _fit(model, data, cfg, user_dim, out_loc, progress, device)
    model.load_state_dict(best_state)
    meta = {"variant": cfg.generator.variant, "training": "plain", "fold": fold, "seed": cfg.seed,
            "best_epoch": best_epoch}
    reports = evaluate_and_save(model, data, cfg, out_loc, meta, progress if print_results is None else print_results)
    result = {**meta, "epochs_run": epochs_run, "seconds": time.perf_counter() - t0, "valid": reports["valid"],
              "test": reports["test"], "history": history, "vocab_size": len(data.tokenizer),
              "out": out_loc.uri if out_loc else ""}
    if out_loc is not None:
        storage.write_bytes(out_loc.child(RESULT), json.dumps({**run_key, "result": result}, indent=2).encode())
    return result


def _seed_from(src: storage.Location, out_loc: storage.Location) -> None:
    """Copy a run's progress (``best.pt`` first, ``last.pt`` last: a crash in between restarts the copy)."""
    for name in ("best.pt", LAST):
        if not storage.exists(src.child(name)):
            raise FileNotFoundError(f"continue_from: {src.child(name).uri} does not exist (train that run first)")
    for name in ("best.pt", LAST):
        storage.write_bytes(out_loc.child(name), storage.read_bytes(src.child(name)))


def _fit(model, data: GenData, cfg: CCRSConfig, user_dim: int, out_loc, progress: bool, device: str):
    tc = cfg.gen_train
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    train, valid = data.part("train"), data.part("valid")
    progress_state = resume_or_start(out_loc, model, opt, gen, worst=math.inf)
    history, best, best_epoch = progress_state.history, progress_state.best, progress_state.best_epoch
    start, best_state = progress_state.start, progress_state.best_state
    n_batches = (len(train) + tc.batch_size - 1) // tc.batch_size
    curves = CurveWriter(out_loc.child(TENSORBOARD_DIR).uri) if out_loc is not None else None
    epoch = start - 1
    for epoch in range(start, tc.max_epochs + 1):
        if best_epoch > 0 and epoch - best_epoch > tc.patience:
            epoch -= 1
            break
        model.train()
        total, tokens = 0.0, 0
        bar = tqdm(train.batches(tc.batch_size, shuffle=True, generator=gen), total=n_batches,
                   desc=f"{cfg.generator.variant} epoch {epoch}", disable=bar_disabled(progress))
        for batch in bar:
            batch = batch.to(device)
            logits, penalty = model(batch, with_penalty=True)
            nll, k = model.token_nll(batch, logits)
            opt.zero_grad(set_to_none=True)
            (nll / max(k, 1) + penalty).backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            total, tokens = total + nll.item(), tokens + k
            bar.set_postfix(ppl=f"{perplexity(total, tokens):.2f}")
        bar.close()
        valid_ppl = perplexity(*token_nll(model, valid, tc.eval_batch_size))
        history.append({"epoch": epoch, "train_ppl": perplexity(total, tokens), "valid_ppl": valid_ppl,
                        "updates": n_batches, "samples": len(train)})
        if curves is not None:
            curves.log(epoch, {"train/ppl": perplexity(total, tokens), "valid/ppl": valid_ppl})
        improved = valid_ppl < best
        if improved:
            best, best_epoch = valid_ppl, epoch
            best_state = copy.deepcopy(model.state_dict())
            if out_loc is not None:
                save_checkpoint(out_loc.child("best.pt"),
                                generator_payload(model, cfg, data.tokenizer, user_dim,
                                                  {"epoch": epoch, "rec_checkpoint": data.rec_checkpoint}))
        if progress:
            print(f"epoch {epoch}: train ppl {perplexity(total, tokens):.2f}  valid ppl {valid_ppl:.2f}"
                  f"{'  (best)' if improved else ''}", flush=True)
        if out_loc is not None:
            save_progress(out_loc, "ccrs.generator_train_state/1", model, opt, gen, history, best, best_epoch, epoch)
    if curves is not None:
        curves.close()
    return best_epoch, epoch, history, best_state
