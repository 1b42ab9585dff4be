"""Screen encoder options by **plain** training on many planted/control datasets, valid users only.

    .venv/bin/python studies/planted_plain_screen.py --taste control --seeds 0 1 2 3 4 5 6 7 8 9 10 11 \\
        --candidate kbrd=recommender.variant=kbrd --candidate heads1=recommender.n_heads=1 \\
        --work-dir /tmp/screen --save results/planted_plain_screen_control

Plain rows train in seconds (no meta-training), so an option can be read on a dozen data seeds
(~470 valid users) before the costlier :mod:`planted_select` round: where does ccrs lose to kbrd
when users have no taste? Each candidate is ``NAME=OVERRIDE,...`` on top of
:data:`ccrs.experiments.planted.SMALL_MODEL` (``recommender.variant=ccrs`` unless given). Valid
users of every seed are pooled; each candidate is compared with ``--reference`` by the user-level
paired test (whole users resampled). Test figures are never read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ccrs.experiments.planted import SMALL_MODEL, PlantedSpec, prepare_planted, train_plain_row

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planted_signal import FULL  # noqa: E402  (the benchmark's data size)

from ccrs.experiments.report_files import command_line, save_report  # noqa: E402


def valid_ranks(taste: str, seed: int, candidates: dict[str, list[str]], work: Path) -> dict[str, dict]:
    """Valid ranks of every candidate on one dataset: {name: {"sample_id", "user_id", "rank"}}."""
    from ccrs import storage
    from ccrs.config import load_config
    from ccrs.eval.rec_evaluator import RecPredictions

    spec = PlantedSpec(taste=taste, seed=seed, **FULL)
    out = work / f"{taste}-s{seed}"
    prepared = prepare_planted(out, spec)
    ranks = {}
    for name, overrides in candidates.items():
        info, _ = train_plain_row(load_config(None, [*SMALL_MODEL, *overrides]), prepared, spec.fold, out / "plain" / name)
        p = RecPredictions.from_table(storage.read_parquet(storage.resolve(info["out"]).child("valid_predictions.parquet")))
        order = np.argsort(p.sample_ids.numpy(), kind="stable")
        ranks[name] = {"sample_id": p.sample_ids.numpy()[order], "user_id": np.asarray(p.user_ids)[order],
                       "rank": p.ranks.numpy()[order]}
    return ranks


def screen(taste: str, seeds: list[int], candidates: dict[str, list[str]], reference: str, work: Path) -> dict:
    from ccrs.eval.rec_metrics import per_sample_metrics
    from ccrs.eval.significance import user_paired_test

    def ndcg10(rank: np.ndarray) -> np.ndarray:
        return per_sample_metrics(torch.from_numpy(rank), ks=(10,))["ndcg@10"].numpy()

    per_seed = [valid_ranks(taste, s, candidates, work) for s in seeds]
    users = np.concatenate([[f"{s}:{u}" for u in r[reference]["user_id"]]  # seeds reuse user ids
                            for s, r in zip(seeds, per_seed, strict=True)])
    ndcg = {name: np.concatenate([ndcg10(r[name]["rank"]) for r in per_seed]) for name in candidates}
    rows = {}
    for name in candidates:
        test = user_paired_test(ndcg[name], ndcg[reference], users, n_resamples=5000)
        rows[name] = {"overrides": candidates[name], "ndcg@10": float(ndcg[name].mean()),
                      "per_seed": [float(ndcg10(r[name]["rank"]).mean()) for r in per_seed],
                      "relative_to_reference": float(ndcg[name].mean() / ndcg[reference].mean() - 1),
                      "p_user": test["p_user_permutation"], "user_wins": test["user_wins"],
                      "user_losses": test["user_losses"]}
    return {"taste": taste, "seeds": seeds, "reference": reference, "users": int(np.unique(users).size),
            "samples": int(users.size), "rows": rows}


def format_markdown(body: dict) -> str:
    lines = ["# Planted benchmark: plain-training screen of encoder options (valid users only)", "",
             "Regenerate with:", "", "```", body["command"], "```", ""]
    for rep in body["screens"]:
        lines += [f"## {rep['taste']} (data seeds {rep['seeds'][0]}–{rep['seeds'][-1]}: {rep['users']} valid users, "
                  f"{rep['samples']} samples)", "",
                  f"Plain rows only (no meta-training); compared with `{rep['reference']}` by the user-level paired test.", "",
                  f"| candidate | overrides | valid NDCG@10 | vs {rep['reference']} | p (users) | user wins/losses |",
                  "|---|---|---:|---:|---:|---|"]
        for name, r in rep["rows"].items():
            lines.append(f"| {name} | `{', '.join(r['overrides']) or '–'}` | {r['ndcg@10']:.4f} | "
                         f"{100 * r['relative_to_reference']:+.1f}% | {r['p_user']:.4f} | "
                         f"{r['user_wins']}/{r['user_losses']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidate", action="append", required=True, help="NAME=OVERRIDE,OVERRIDE...")
    ap.add_argument("--taste", nargs="+", default=["control"], choices=["planted", "control"])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(12)))
    ap.add_argument("--reference", default="kbrd")
    ap.add_argument("--work-dir", type=Path, required=True, help="plain rows are cached here by configuration")
    ap.add_argument("--save")
    args = ap.parse_args(argv)
    candidates = {}
    for text in args.candidate:
        name, _, rest = text.partition("=")
        overrides = [o for o in rest.split(",") if o]
        if not any(o.startswith("recommender.variant=") for o in overrides):
            overrides.insert(0, "recommender.variant=ccrs")
        candidates[name] = overrides
    if args.reference not in candidates:
        ap.error(f"--reference {args.reference!r} is not a candidate")
    screens = []
    for taste in args.taste:
        rep = screen(taste, args.seeds, candidates, args.reference, args.work_dir)
        screens.append(rep)
        for name, r in rep["rows"].items():
            print(f"{taste:8s} {name:12s} valid ndcg@10 {r['ndcg@10']:.4f} {100 * r['relative_to_reference']:+.1f}% "
                  f"p_user {r['p_user']:.4f}", flush=True)
    if args.save:
        save_report(args.save, {"command": command_line("planted_plain_screen.py", argv), "screens": screens},
                    format_markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
