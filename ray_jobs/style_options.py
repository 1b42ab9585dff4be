"""Style options of the ccrs generator chosen on *valid* users: the paper's plain mixture against a
load-balancing term and a temperature on μ (``generator.style_balance``, ``generator.style_temperature``).

    python -m ray_jobs.style_options --prepared runs/real/prepared \\
        --rec-ckpt runs/real/rec_plain/user/ccrs/fold0/best.pt --fold 0 \\
        --init runs/real/gen/fold0/kbrd_gen_warm/best.pt --runs runs/real/gen/fold0/style_options \\
        --baseline runs/real/gen/fold0/meta/ccrs/eval --save results/style_options_fold0 [KEY=VALUE ...]

Each option is a meta-training run of ccrs from the same warm start as Table 2's ccrs row (same
overrides: pass Table 2's), on Ray Train; ``--baseline`` is Table 2's own ccrs run (the paper's
options) so it is not trained twice. The choice is made on the valid users' perplexity, the
criterion every generator run selects with; valid F1/Dist and the style statistics of the valid
responses are shown beside it, the test numbers of the chosen option only after the choice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ccrs import storage
from ccrs.eval.style_stats import style_report
from ccrs.experiments.gen_table import context_genre

OPTIONS: dict[str, list[str]] = {
    "balance λ=0.1": ["generator.style_balance=0.1"],
    "temperature τ=2": ["generator.style_temperature=2.0"],
}
COLUMNS = ("ppl", "f1", "bleu2", "dist2", "dist4")


def _read(run: str, name: str):
    return storage.read_bytes(storage.resolve(run).child(name)).decode()


def option_row(run: str) -> dict:
    """Valid and test metrics and the valid responses' style statistics of one eval directory."""
    out = {"run": run}
    for part in ("valid", "test"):
        m = json.loads(_read(run, f"{part}_gen_metrics.json"))["metrics"]
        out[part] = {k: m.get(k) for k in COLUMNS}
    records = [json.loads(line) for line in _read(run, "valid_responses.jsonl").splitlines() if line.strip()]
    st = style_report(records, context_genre, n_resamples=1000)
    out["valid_styles"] = {"mean_largest_weight": st["collapse"]["mean_largest_weight"],
                           "entropy_norm": st["collapse"]["mean_entropy_norm"],
                           "r2_users": st["by_user"]["r2"], "p_users": st["by_user"]["p_permutation"],
                           "r2_genre": st.get("by_genre_within_user", {}).get("r2"),
                           "p_genre": st.get("by_genre_within_user", {}).get("p_permutation")}
    return out


def choose(rows: dict[str, dict]) -> str:
    """The option with the lowest valid perplexity (test numbers play no part)."""
    return min(rows, key=lambda n: rows[n]["valid"]["ppl"])


def format_markdown(report: dict) -> str:
    lines = ["# Style options of the ccrs generator, chosen on valid users", "", "Regenerate with:", "",
             f"    {report['command']}", "",
             "Selection: lowest valid perplexity (the criterion of every generator run). Valid columns decide; "
             "the test columns are shown for the record.", "",
             "| option | valid ppl | valid F1 | valid Dist-2 | valid Dist-4 | largest μ weight | R² users (p) | "
             "R² genre (p) | test F1 | test Dist-2 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["options"].items():
        v, t, s = r["valid"], r["test"], r["valid_styles"]
        genre = "–" if s["r2_genre"] is None else f"{s['r2_genre']:.3f} ({s['p_genre']:.3g})"
        lines.append(f"| {name}{' **(chosen)**' if name == report['chosen'] else ''} | {v['ppl']:.3f} | "
                     f"{v['f1']:.4f} | {v['dist2']:.4f} | {v['dist4']:.4f} | {s['mean_largest_weight']:.3f} | "
                     f"{s['r2_users']:.3f} ({s['p_users']:.3g}) | {genre} | {t['f1']:.4f} | {t['dist2']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import ray

    from ray_jobs import train_generator as driver

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True)
    p.add_argument("--rec-ckpt", required=True)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--init", required=True, help="the warm start (Table 2's kbrd_gen_warm best.pt)")
    p.add_argument("--runs", required=True)
    p.add_argument("--baseline", required=True, help="eval directory of the ccrs run with the paper's options")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--save")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = p.parse_intermixed_args(argv)
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS", "local"), log_to_driver=not args.quiet)
    rows = {"paper (λ=0, τ=1)": option_row(args.baseline)}
    for i, (name, extra) in enumerate(OPTIONS.items()):
        run = Path(args.runs) / f"option{i}" / "eval"
        if not (run / "result.json").exists():
            driver.main(["--data", args.prepared, "--rec-ckpt", args.rec_ckpt, "--fold", str(args.fold),
                         "--storage-path", args.runs, "--run-name", f"option{i}", "--num-workers",
                         str(args.num_workers), "--model", "ccrs", "--init", args.init,
                         *(["-q"] if args.quiet else []), *args.overrides, *extra])
        rows[name] = option_row(str(run))
    chosen = choose(rows)
    report = {"command": "python -m ray_jobs.style_options " + " ".join(sys.argv[1:] if argv is None else argv),
              "options": rows, "chosen": chosen,
              "overrides": {name: extra for name, extra in OPTIONS.items()}}
    print(format_markdown(report))
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save + ".json").write_text(json.dumps(report, indent=2) + "\n")
        Path(args.save + ".md").write_text(format_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
