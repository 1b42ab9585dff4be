"""Planted-signal benchmark: ccrs with meta-training against kbrd / popularity on a hidden per-user taste.

    .venv/bin/python studies/planted_signal.py                       # planted + control → results/planted.*
    .venv/bin/python studies/planted_signal.py --taste planted --no-save --meta rec_meta.inner_lr=2
    .venv/bin/python studies/planted_signal.py --taste control --seeds 0 1 2 3 --jobs 2  # 2 processes

Each taste trains every row of :mod:`ccrs.experiments.planted` on its own synthetic dataset (no Ray,
one process per run; ``--jobs N`` runs N of the (taste, seed) runs at once, each single-threaded,
with the same numbers as one after the other). ``--meta`` adds overrides to the customized configuration; ``--every-row`` to all rows.
Options are chosen on the ``valid`` lines this prints (valid users only); test figures are reported,
never selected on.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from ccrs.experiments.planted import PlantedSpec, pool_reports, run_planted, save

RESULTS = Path(__file__).resolve().parents[1] / "results"
#: The benchmark's data size (the `make test` version is smaller: tests/experiments/test_planted.py).
FULL = {"n_users": 240, "conversations_per_user": 8}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--taste", nargs="+", default=["planted", "control"], choices=["planted", "control", "visible"])
    ap.add_argument("--n-users", type=int, default=FULL["n_users"])
    ap.add_argument("--conversations-per-user", type=int, default=FULL["conversations_per_user"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="data seeds; with several, the tables pool their test users (tests resample whole users)")
    ap.add_argument("--n-directors", type=int, default=PlantedSpec.n_directors)
    ap.add_argument("--n-actors", type=int, default=PlantedSpec.n_actors)
    ap.add_argument("--meta", nargs="*", default=[], help="overrides of the customized (ccrs_meta) configuration")
    ap.add_argument("--every-row", nargs="*", default=[], help="overrides for every row")
    ap.add_argument("--work-dir", type=Path, help="reuse plain rows across runs (default: a temporary folder)")
    ap.add_argument("--jobs", type=int, default=1, help="(taste, seed) runs at once, one thread each")
    ap.add_argument("--save", default=str(RESULTS / "planted"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="planted-"))
    runs = []
    for taste in args.taste:
        for seed in args.seeds:
            spec = PlantedSpec(taste=taste, seed=seed, n_users=args.n_users,
                               conversations_per_user=args.conversations_per_user,
                               n_directors=args.n_directors, n_actors=args.n_actors,
                               overrides=tuple(args.every_row), meta_overrides=tuple(args.meta))
            folder = work / (f"{taste}-{args.n_users}x{args.conversations_per_user}-s{seed}"
                             f"-d{args.n_directors}a{args.n_actors}")
            runs.append((folder, spec))
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"), initializer=_one_thread) as pool:
            done = list(pool.map(_run, runs))
    else:
        done = [_run(run) for run in runs]
    reports = {}
    for taste in args.taste:
        per_seed = [rep for (_, spec), rep in zip(runs, done, strict=True) if spec.taste == taste]
        reports[taste] = per_seed[0] if len(per_seed) == 1 else pool_reports(per_seed)
    if not args.no_save:
        command = "python studies/planted_signal.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        save(reports, args.save, command.strip())
        print(f"saved {args.save}.json and {args.save}.md")
    return 0


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run(run: tuple[Path, PlantedSpec]) -> dict:
    """One (taste, seed) run of every row, with its valid/test lines printed as it ends."""
    folder, spec = run
    rep = run_planted(folder, spec)
    for name, row in rep["rows"].items():
        v, t = row.get("valid", {}), row["test"]
        print(f"{spec.taste:8s} seed {spec.seed} {name:16s} valid ndcg@10 {v.get('ndcg@10', float('nan')):.4f} "
              f"hit@10 {v.get('hit@10', float('nan')):.4f} | test ndcg@10 {t['ndcg@10']:.4f}", flush=True)
    print(json.dumps({"taste": spec.taste, "seed": spec.seed,
                      "warm_start_valid_ndcg@10": rep["rows"]["ccrs_meta"]["warm_start_valid"]["ndcg@10"],
                      "meta_valid_history": rep["rows"]["ccrs_meta"]["valid_history"],
                      "seconds": round(rep["seconds"], 1)}), flush=True)
    return rep


if __name__ == "__main__":
    raise SystemExit(main())
