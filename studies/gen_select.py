"""Which generator options Table 2's option row uses: chosen on valid users only (issue 33).

    python -m ray_jobs.gen_table ... --folds 0 --meta-row ccrs_user_bias:ccrs:generator.style_with_user_bias=true ...
    python studies/gen_select.py --runs runs/real/gen33/fold0 --prepared runs/real/prepared \\
        --rec-ckpt runs/real/rec_hist/user/ccrs/fold0/best.pt --fold 0 \\
        --rows ccrs,ccrs_user_bias,ccrs_separation,ccrs_user_bias_separation --save results/gen_select

Two steps, both on the valid users of one fold (their query conversations, each user adapted on
their support samples first, as in training):

1. **Training options.** Each ``--rows`` entry is a meta row of ``ray_jobs.gen_table`` (the paper's
   ``ccrs`` first, then rows made with ``--meta-row``), read from ``<runs>/meta/<row>/eval``
   (greedy valid responses, written when the run finished).
2. **Decoding.** The row chosen in step 1 is decoded on valid under each of :data:`DECODINGS`.

The rule, in both steps: among the candidates whose valid F1 is at least the paper row's greedy
valid F1 (the issue asks for diversity *without losing overlap*), take the highest Dist-2; no
candidate passes → the paper's choice stays. Test users are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: Decoding candidates (``generator.*`` keys; ``ccrs.experiments.decoding``), greedy first.
DECODINGS: dict[str, dict] = {
    "greedy": {"decoding": "greedy"},
    "greedy, no repeated trigram": {"decoding": "greedy", "no_repeat_ngram": 3},
    "greedy, no repeated trigram, ≥ 6 words": {"decoding": "greedy", "no_repeat_ngram": 3, "min_response_tokens": 6},
    "nucleus p=0.9 T=0.5": {"decoding": "nucleus", "top_p": 0.9, "temperature": 0.5},
    "nucleus p=0.9 T=0.5, no repeated trigram": {"decoding": "nucleus", "top_p": 0.9, "temperature": 0.5,
                                                 "no_repeat_ngram": 3},
    "nucleus p=0.9 T=0.7, no repeated trigram": {"decoding": "nucleus", "top_p": 0.9, "temperature": 0.7,
                                                 "no_repeat_ngram": 3},
    "nucleus p=0.9 T=1.0, no repeated trigram": {"decoding": "nucleus", "top_p": 0.9, "temperature": 1.0,
                                                 "no_repeat_ngram": 3},
}
KEYS = ("f1", "bleu2", "dist2", "dist3", "distinct_responses", "top_response_share", "mean_length",
        "recommends_when_asked", "human_recommends_when_asked", "ppl", "responses")


def choose(candidates: dict[str, dict], floor: float) -> str | None:
    """The candidate with the highest Dist-2 among those with F1 ≥ ``floor`` (None: none passes)."""
    ok = {name: m for name, m in candidates.items() if m["f1"] >= floor}
    return max(ok, key=lambda n: (ok[n]["dist2"], ok[n]["distinct_responses"])) if ok else None


def _row_metrics(runs: Path, row: str) -> dict:
    path = runs / "meta" / row / "eval" / "valid_gen_metrics.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: train the row first (ray_jobs.gen_table --meta-row ...)")
    m = json.loads(path.read_text())["metrics"]
    return {k: m.get(k) for k in KEYS}


def select(runs: Path, prepared: str, rec_ckpt: str, fold: int, rows: list[str]) -> dict:
    from ccrs.experiments.decoding import decoding_report

    training = {row: _row_metrics(runs, row) for row in rows}
    floor = training[rows[0]]["f1"]
    chosen_row = choose(training, floor) or rows[0]
    ckpt = str(runs / "meta" / chosen_row / "eval" / "best.pt")
    report = decoding_report(ckpt, prepared, rec_ckpt, fold, "valid", DECODINGS)
    decoding = {name: {k: report["_metrics"][name].get(k) for k in KEYS} for name in DECODINGS}
    chosen_decoding = choose(decoding, floor) or "greedy"
    return {"fold": fold, "part": "valid", "f1_floor": floor, "paper_row": rows[0], "training": training,
            "chosen_row": chosen_row, "decoding": decoding, "decoding_overrides": DECODINGS,
            "chosen_decoding": chosen_decoding, "checkpoint": ckpt}


def _line(name: str, m: dict, chosen: bool) -> str:
    def f(k, fmt="{:.4f}"):
        return "–" if m.get(k) is None else fmt.format(m[k])
    mark = " **← chosen**" if chosen else ""
    return (f"| {name}{mark} | {f('f1')} | {f('bleu2')} | {f('dist2')} | {f('dist3')} | {f('distinct_responses', '{:.3f}')} | "
            f"{f('top_response_share', '{:.3f}')} | {f('mean_length', '{:.2f}')} | {f('recommends_when_asked', '{:.3f}')} | "
            f"{f('ppl', '{:.2f}')} |")


def format_markdown(r: dict) -> str:
    head = ("| candidate | F1 | BLEU-2 | Dist-2 | Dist-3 | distinct | top | mean length | recommends when asked | PPL |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    human = r["training"][r["paper_row"]].get("human_recommends_when_asked")
    lines = ["# Generator options chosen on valid users (issue 33)", "", "Regenerate with:", "", f"    {r['command']}", "",
             f"Fold {r['fold']}, **valid** users only (query conversations; each user adapted on their support samples "
             f"first). Rule: among candidates with valid F1 ≥ {r['f1_floor']:.4f} (the paper's `{r['paper_row']}` row, "
             "greedy), the highest Dist-2. Distinct = distinct responses ÷ responses; top = the most frequent response's "
             "share; recommends when asked: responses to seeker turns that ask for a movie (`results/asks_rule.md`) "
             "that carry a movie slot" + (f" (human: {human:.3f})." if human is not None else "."), "",
             "## 1. Training options (greedy)", "", head]
    lines += [_line(n, m, n == r["chosen_row"]) for n, m in r["training"].items()]
    lines += ["", f"## 2. Decoding of `{r['chosen_row']}`", "", head]
    lines += [_line(n, m, n == r["chosen_decoding"]) for n, m in r["decoding"].items()]
    lines += ["", f"Chosen: row `{r['chosen_row']}`, decoding **{r['chosen_decoding']}** "
              f"(`{json.dumps(r['decoding_overrides'][r['chosen_decoding']])}`)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", required=True, help="one fold's ray_jobs.gen_table directory (<runs>/fold<F>)")
    p.add_argument("--prepared", required=True)
    p.add_argument("--rec-ckpt", required=True)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--rows", required=True, help="meta rows, the paper's first: ccrs,ccrs_user_bias,...")
    p.add_argument("--save", help="write <SAVE>.json and <SAVE>.md")
    args = p.parse_args(argv)
    r = select(Path(args.runs), args.prepared, args.rec_ckpt, args.fold, [x for x in args.rows.split(",") if x])
    r["command"] = "python studies/gen_select.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = format_markdown(r)
    print(text)
    if args.save:
        Path(args.save + ".json").write_text(json.dumps(r, indent=2) + "\n")
        Path(args.save + ".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
