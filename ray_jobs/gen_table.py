"""Table 2 on the user split: transformer, kbrd_gen (plain) and only_meta, ccrs (meta-trained on Ray Train).

    python -m ray_jobs.gen_table --prepared runs/demo/prepared \\
        --rec-ckpt runs/rec_meta/ccrs-fold0/eval/best.pt --fold 0 \\
        --runs runs/gen --num-workers 2 --save results/generation

Every generator is conditioned on the same frozen recommender (``--rec-ckpt``, fold ``--fold``).
Steps, each skipped when its result exists (rerunning resumes):

1. ``kbrd_gen`` and ``transformer`` trained plainly (``ccrs train gen``) under ``<runs>/fold<f>/<model>``;
2. ``only_meta`` and ``ccrs`` meta-trained with ``ray_jobs.train_generator`` (runs
   ``<runs>/fold<f>/meta/<model>``), both warm-started from the plain ``kbrd_gen`` checkpoint (the
   shared seq2seq and, for only_meta, the user bias are copied; ccrs's style bias starts fresh), as
   the recommender's meta rows start from plain checkpoints;
3. the table (test samples, paired tests of ``ccrs`` against every row, genre examples) →
   ``<save>.json``/``.md`` and the responses → ``<save>_responses/``.

Extra ``KEY=VALUE`` overrides apply to every run (e.g. ``gen_train.max_epochs=4``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ccrs.config import load_config
from ccrs.experiments.gen_table import build_report, format_markdown, write_report

PLAIN, META = ("kbrd_gen", "transformer"), ("only_meta", "ccrs")


def main(argv: list[str] | None = None) -> int:
    import ray

    from ccrs.train.gen_trainer import train_generator
    from ray_jobs import train_generator as driver
    from ray_jobs.meta_driver import absolute_uri

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True)
    p.add_argument("--rec-ckpt", required=True)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--runs", required=True, help="root directory of the generator runs")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--save", help="write <SAVE>.json, <SAVE>.md and <SAVE>_responses/")
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = p.parse_intermixed_args(argv)
    root = Path(args.runs) / f"fold{args.fold}"
    rows: dict[str, str] = {}
    for model in PLAIN:
        cfg = load_config(None, [*args.overrides, f"generator.variant={model}"])
        out = root / model
        train_generator(cfg, args.prepared, absolute_uri(args.rec_ckpt), args.fold, str(out), progress=not args.quiet)
        rows[model] = str(out)
    if not ray.is_initialized():  # a cluster of its own unless RAY_ADDRESS names one (ray job submit sets it)
        ray.init(address=os.environ.get("RAY_ADDRESS", "local"), log_to_driver=not args.quiet)
    for model in META:
        run = root / "meta" / model / "eval"
        if not (run / "result.json").exists():
            driver.main(["--data", args.prepared, "--rec-ckpt", args.rec_ckpt, "--fold", str(args.fold),
                         "--storage-path", str(root / "meta"), "--run-name", model, "--num-workers",
                         str(args.num_workers), "--model", model, "--init", str(root / "kbrd_gen" / "best.pt"),
                         *(["-q"] if args.quiet else []), *args.overrides])
        rows[model] = str(run)
    order = ["transformer", "kbrd_gen", "only_meta", "ccrs"]
    report = build_report({m: rows[m] for m in order}, "ccrs", args.resamples)
    report["title"] = f"Generation on the user split (fold {args.fold}), same frozen recommender for every row"
    report["command"] = "python -m ray_jobs.gen_table " + " ".join(sys.argv[1:] if argv is None else argv)
    report["rec_checkpoint"] = args.rec_ckpt
    print(format_markdown(report))
    if args.save:
        write_report(report, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
