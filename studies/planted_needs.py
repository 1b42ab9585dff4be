"""How strong a per-user taste, and how many conversations per user, customization needs to pay off.

    .venv/bin/python studies/planted_needs.py                     # → results/planted_needs.{json,md}
    .venv/bin/python studies/planted_needs.py --strengths 1 0.5 --conversations 8 --no-save

Runs the planted benchmark (:mod:`ccrs.experiments.planted`, the configuration it ships) on a grid of
taste strengths s (the chance that a conversation follows the user's relation; s = 1 is the
planted benchmark, lower s is closer to real users) and conversations per user (half support, half
query), and reports, on the test users, ccrs_meta against kbrd and against its own β = 0, each with
the user-level paired test, beside the two Bayes rows (how much knowing the user *can* be worth at
that strength). Nothing is selected here: the configuration was chosen on valid users beforehand.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planted_signal import FULL, RESULTS  # noqa: E402

from ccrs.experiments.planted import PlantedSpec, run_planted  # noqa: E402
from ccrs.experiments.report_files import command_line, save_report  # noqa: E402

ROWS = ("kbrd", "ccrs", "ccrs_meta", "ccrs_meta_beta0", "bayes_agnostic", "bayes_support")


def cell(rep: dict) -> dict:
    ndcg = {row: rep["rows"][row]["test"]["ndcg@10"] for row in ROWS}
    tests = {f"{t['a']} vs {t['b']}": {k: t[k] for k in ("diff", "relative", "p_user_permutation")}
             for t in rep["significance"] if t["metric"] == "ndcg@10"}
    return {"ndcg@10": ndcg, "tests": tests, "test_users": rep["test_users"], "test_samples": rep["test_samples"]}


def format_markdown(body: dict) -> str:
    lines = ["# What customization needs: taste strength × conversations per user (planted data)", "",
             "Regenerate with:", "", "```", body["command"], "```", "",
             "Test NDCG@10 of one planted dataset per cell (seed 0, 240 users); s = chance that a conversation",
             "follows the user's hidden relation. `meta vs …` columns: ccrs_meta's relative difference and the",
             "user-level p (whole users sign-flipped). `bayes` columns bound what a ranking can reach without",
             "the user (agnostic) and from the user's support conversations (support).", "",
             "| s | conv./user | users | kbrd | ccrs | ccrs_meta | β = 0 | bayes agnostic | bayes support | "
             "meta vs kbrd (p users) | meta vs β = 0 (p users) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for c in body["cells"]:
        n, t = c["ndcg@10"], c["tests"]
        vk, vb = t["ccrs_meta vs kbrd"], t["ccrs_meta vs ccrs_meta_beta0"]
        lines.append(f"| {c['strength']:g} | {c['conversations']} | {c['test_users']} | {n['kbrd']:.4f} | {n['ccrs']:.4f} | "
                     f"{n['ccrs_meta']:.4f} | {n['ccrs_meta_beta0']:.4f} | {n['bayes_agnostic']:.4f} | "
                     f"{n['bayes_support']:.4f} | {vk['relative']:+.1%} ({vk['p_user_permutation']:.4f}) | "
                     f"{vb['relative']:+.1%} ({vb['p_user_permutation']:.4f}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strengths", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    ap.add_argument("--conversations", type=int, nargs="+", default=[8, 4])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path)
    ap.add_argument("--save", default=str(RESULTS / "planted_needs"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="planted-needs-"))
    cells = []
    for conversations in args.conversations:
        for strength in args.strengths:
            spec = PlantedSpec(taste="planted", seed=args.seed, n_users=FULL["n_users"],
                               conversations_per_user=conversations, taste_strength=strength)
            rep = run_planted(work / f"s{strength:g}-c{conversations}-seed{args.seed}", spec)
            c = {"strength": strength, "conversations": conversations, **cell(rep)}
            cells.append(c)
            print(json.dumps({k: c[k] for k in ("strength", "conversations", "ndcg@10")}), flush=True)
    if not args.no_save:
        save_report(args.save, {"command": command_line("planted_needs.py", argv).strip(), "cells": cells},
                    format_markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
