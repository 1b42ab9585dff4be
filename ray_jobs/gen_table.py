"""Table 2 on the user split, folds pooled, every row given the same training budget.

    python -m ray_jobs.gen_table --prepared runs/real/prepared \\
        --rec-ckpt 'runs/real/rec_plain/user/ccrs/fold{fold}/best.pt' --folds 0-2 \\
        --warm-epochs 2 --meta-epochs 1 --runs runs/real/gen --num-workers 2 --save results/generation

Every generator of a fold is conditioned on the same frozen recommender (``--rec-ckpt``; ``{fold}``
is replaced by the fold). The budget is W = ``--warm-epochs`` plain epochs plus M = ``--meta-epochs``
epochs, for every row:

1. ``kbrd_gen_warm``: kbrd_gen trained plainly for W epochs (``ccrs train gen``): the warm start;
2. ``kbrd_gen``: that run *continued* plainly to W + M epochs, and ``transformer`` trained plainly
   for W + M epochs;
3. ``only_meta`` and ``ccrs``: warm-started from ``kbrd_gen_warm`` (the shared seq2seq and, for
   only_meta, the user bias are copied; ccrs's style bias starts fresh), then meta-trained for M
   epochs on Ray Train (``ray_jobs.train_generator``);
4. the table pooled over folds, tests of ``ccrs`` against every row per sample and per user, the
   budgets (epochs and optimizer updates of each row), the style statistic → ``<save>.json``/``.md``
   and the responses → ``<save>_responses/``. ``kbrd_gen_warm`` is reported as the reference with W
   epochs only (not an equal-budget row).

Options beyond the paper get rows of their own, the paper's ``ccrs`` row staying as it is:
``--meta-row NAME:MODEL:KEY=VALUE,...`` adds a meta-trained row warm-started like ``ccrs`` (e.g.
``ccrs_plus:ccrs:generator.style_with_user_bias=true``). ``--decoding KEY=VALUE,...`` re-decodes
every row's best checkpoint on test with the same decoding keys (``ccrs.experiments.decoding``;
meta rows adapt each user first) into ``<runs>/fold<F>/decoded/<tag>/<row>`` and tabulates those
responses instead of the greedy ones (CRSLab's protocol is the same command without it).
``--samples PATH`` writes the page of 40 seeded test contexts with every row's response
(``ccrs.experiments.samples_page``).

Every run is skipped when its result exists (rerunning resumes). Early stopping is off
(``gen_train.patience`` = W + M) so a row cannot stop short of the budget; each row still keeps its
best epoch on valid. Extra ``KEY=VALUE`` overrides apply to every run (e.g. ``generator.word_dim=128``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ccrs import storage
from ccrs.config import load_config
from ccrs.experiments.gen_table import build_report, format_markdown, write_report

PLAIN, META = ("transformer", "kbrd_gen"), ("only_meta", "ccrs")
ORDER = ("transformer", "kbrd_gen_warm", "kbrd_gen", "only_meta", "ccrs")
OWN_KEYS = ("gen_train.max_epochs", "gen_train.patience", "dial_meta.epochs", "generator.variant")


def parse_folds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _result(run: str) -> dict:
    return json.loads(storage.read_bytes(storage.resolve(run).child("result.json")))["result"]


def budgets(results: dict[str, list[dict]], warm: list[dict], meta_rows=META) -> dict[str, dict]:
    """Per row, mean over folds: plain/meta epochs run and optimizer updates (``results[row]`` per fold)."""
    def plain(r: dict) -> tuple[int, int]:
        return len(r["history"]), sum(h.get("updates", 0) for h in r["history"])

    out = {}
    for row, per_fold in results.items():
        pe, pu, me, mu = [], [], [], []
        for i, r in enumerate(per_fold):
            if row in meta_rows:
                w_epochs, w_updates = plain(warm[i])
                pe.append(w_epochs), pu.append(w_updates)
                me.append(len(r["history"])), mu.append(sum(h.get("meta_steps", 0) for h in r["history"]))
            else:
                e, u = plain(r)
                pe.append(e), pu.append(u), me.append(0), mu.append(0)
        n = len(per_fold)
        out[row] = {"plain_epochs": sum(pe) / n, "plain_updates": sum(pu) / n, "meta_epochs": sum(me) / n,
                    "meta_updates": sum(mu) / n,
                    "note": ("warm start of the meta rows: W epochs only (reference, not an equal budget)"
                             if row == "kbrd_gen_warm" else
                             "continues kbrd_gen_warm" if row == "kbrd_gen" else
                             "warm start + meta-training" if row in meta_rows else "")}
    return out


def main(argv: list[str] | None = None) -> int:
    import ray

    from ccrs.train.gen_trainer import train_generator
    from ray_jobs import train_generator as driver
    from ray_jobs.meta_driver import absolute_uri

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True)
    p.add_argument("--rec-ckpt", required=True, help="frozen recommender checkpoint; '{fold}' is replaced by the fold")
    p.add_argument("--folds", default="0", help="user-split test folds, e.g. 0-2 or 0,3")
    p.add_argument("--warm-epochs", type=int, default=2, help="W: plain epochs of the warm start")
    p.add_argument("--meta-epochs", type=int, default=1, help="M: meta-epochs; plain rows get W + M epochs")
    p.add_argument("--runs", required=True, help="root directory of the generator runs")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--save", help="write <SAVE>.json, <SAVE>.md and <SAVE>_responses/")
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--meta-row", action="append", default=[], metavar="NAME:MODEL:KEY=VALUE[,...]",
                   help="an extra meta-trained row with options (repeatable), warm-started like ccrs")
    p.add_argument("--decoding", metavar="KEY=VALUE[,...]",
                   help="re-decode every row on test with these generator.* decoding keys (default: as trained, greedy)")
    p.add_argument("--samples", metavar="PATH", help="write the samples page (40 seeded test contexts) to PATH")
    p.add_argument("--samples-seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = p.parse_intermixed_args(argv)
    clash = [o for o in args.overrides if o.split("=", 1)[0] in OWN_KEYS]
    if clash:
        p.error(f"{', '.join(clash)}: set by this job (use --warm-epochs / --meta-epochs)")
    if args.warm_epochs < 1 or args.meta_epochs < 1:
        p.error("--warm-epochs and --meta-epochs must be >= 1")
    extra = {}
    for spec in args.meta_row:
        name, _, rest = spec.partition(":")
        model, _, keys = rest.partition(":")
        if not name or model not in META or name in ORDER or name in extra:
            p.error(f"--meta-row {spec!r}: expected NEW_NAME:{'|'.join(META)}:KEY=VALUE[,...]")
        extra[name] = (model, [k for k in keys.split(",") if k])
    decoding, tag = None, None
    if args.decoding:
        from ccrs.experiments.decoding import decoding_overrides

        try:
            decoding = decoding_overrides([k for k in args.decoding.split(",") if k])
        except ValueError as exc:
            p.error(f"--decoding: {exc}")
        tag = ",".join(f"{k}={v}" for k, v in sorted(decoding.items()))
    order = (*ORDER, *extra)
    w, m = args.warm_epochs, args.meta_epochs
    common = [*args.overrides, f"gen_train.patience={w + m}", f"dial_meta.epochs={m}"]
    folds: dict[int, dict[str, str]] = {}
    results: dict[str, list[dict]] = {row: [] for row in order}
    for fold in parse_folds(args.folds):
        rec = absolute_uri(args.rec_ckpt.format(fold=fold))
        root = Path(args.runs) / f"fold{fold}"
        rows: dict[str, str] = {}
        for name, variant, epochs, cont in (("kbrd_gen_warm", "kbrd_gen", w, None),
                                            ("kbrd_gen", "kbrd_gen", w + m, root / "kbrd_gen_warm"),
                                            ("transformer", "transformer", w + m, None)):
            cfg = load_config(None, [*common, f"generator.variant={variant}", f"gen_train.max_epochs={epochs}"])
            train_generator(cfg, args.prepared, rec, fold, str(root / name), progress=not args.quiet,
                            continue_from=str(cont) if cont else None)
            rows[name] = str(root / name)
        if not ray.is_initialized():  # a cluster of its own unless RAY_ADDRESS names one (ray job submit sets it)
            ray.init(address=os.environ.get("RAY_ADDRESS", "local"), log_to_driver=not args.quiet)
        for name, (model, keys) in {**{mod: (mod, []) for mod in META}, **extra}.items():
            run = root / "meta" / name / "eval"
            if not (run / "result.json").exists():
                driver.main(["--data", args.prepared, "--rec-ckpt", rec, "--fold", str(fold),
                             "--storage-path", str(root / "meta"), "--run-name", name, "--num-workers",
                             str(args.num_workers), "--model", model, "--init", str(root / "kbrd_gen_warm" / "best.pt"),
                             *(["-q"] if args.quiet else []), *common, *keys, f"gen_train.max_epochs={w}"])
            rows[name] = str(run)
        for row in order:
            results[row].append(_result(rows[row]))
        if decoding is not None:
            from ccrs.experiments.decoding import decode_run

            for row in order:
                rows[row] = str(decode_run(str(Path(rows[row]) / "best.pt"), args.prepared, rec, fold, decoding,
                                           root / "decoded" / tag / row))
        folds[fold] = {row: rows[row] for row in order}
    compare = list(extra)[-1] if extra else "ccrs"  # the tests: the last option row (or ccrs) against every row
    report = build_report(folds, compare, args.resamples,
                          budgets=budgets(results, results["kbrd_gen_warm"], (*META, *extra)))
    report["title"] = (f"Generation on the user split (folds {args.folds} pooled), equal budgets "
                       f"({w} + {m} epochs), same frozen recommender for every row of a fold"
                       + (f", every row decoded with {tag}" if tag else ", greedy decoding"))
    report["decoding"] = decoding or {"decoding": "greedy"}
    report["extra_rows"] = {name: {"model": mod, "options": keys} for name, (mod, keys) in extra.items()}
    report["command"] = "python -m ray_jobs.gen_table " + " ".join(sys.argv[1:] if argv is None else argv)
    report["rec_checkpoint"] = args.rec_ckpt
    if args.samples:
        from ccrs.data.dataset import PreparedDataset
        from ccrs.experiments.samples_page import samples_markdown

        page = samples_markdown(report["_records"], PreparedDataset.open(args.prepared), 40, args.samples_seed,
                                title=f"Test samples, every row side by side ({report['title'][0].lower()}"
                                      f"{report['title'][1:]})", command=report["command"])
        Path(args.samples).parent.mkdir(parents=True, exist_ok=True)
        Path(args.samples).write_text(page)
    print(format_markdown(report))
    if args.save:
        write_report(report, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
