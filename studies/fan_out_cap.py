"""Effect of the fan-out cap (``recommender.max_in_edges``) on valid metrics: plain ccrs, fold 0, L = 1.

    for K in 0 8 16; do ccrs eval rec --prepared runs/real/prepared --runs runs/real/cap_select/cap$K \\
        --splits user --folds 0 --models ccrs --part valid --compare '' --jobs 1 -q \\
        --save results/cap_select/cap$K rec_train.lr=0.01 recommender.gamma_form=relation_softmax \\
        recommender.max_in_edges=$K; done
    python studies/fan_out_cap.py --runs runs/real/cap_select --caps 0 8 16

Reads each run's valid predictions (rank of the label per sample) and compares every cap with the
uncapped KG on the same valid samples, per sample and with whole users resampled. Valid users only:
this is a choice of option, so test is not looked at. Writes results/fan_out_cap.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ccrs.eval.significance import paired_tests

RESULTS = Path(__file__).resolve().parents[1] / "results"


def ndcg10(rank: np.ndarray) -> np.ndarray:
    return np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)  # rank is 0-based (0 = first)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/real/cap_select")
    ap.add_argument("--caps", type=int, nargs="+", default=[0, 8, 16])
    ap.add_argument("--fold", type=int, default=0)
    args = ap.parse_args()
    preds = {}
    for k in args.caps:
        t = pq.read_table(Path(args.runs) / f"cap{k}" / "user" / "ccrs" / f"fold{args.fold}" / "valid_predictions.parquet")
        d = t.select(["sample_id", "user_id", "rank"]).to_pydict()
        order = np.argsort(d["sample_id"])
        preds[k] = {c: np.asarray(v)[order] for c, v in d.items()}
    base = preds[0]
    rows = []
    for k in args.caps:
        p = preds[k]
        assert np.array_equal(p["sample_id"], base["sample_id"]), "runs scored different samples"
        row = {"max_in_edges": k, "samples": int(p["rank"].size), "ndcg@10": float(ndcg10(p["rank"]).mean()),
               "hit@10": float((p["rank"] < 10).mean()), "hit@50": float((p["rank"] < 50).mean())}
        if k:
            row["vs_uncapped_ndcg@10"] = paired_tests(ndcg10(p["rank"]), ndcg10(base["rank"]), p["user_id"], 10_000)
        rows.append(row)
    command = "python studies/fan_out_cap.py " + " ".join(sys.argv[1:])
    (RESULTS / "fan_out_cap.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    md = ["# Fan-out cap: effect on valid metrics (plain ccrs, fold 0, L = 1, valid users)", "",
          "    " + "\n    ".join(ln.strip() for ln in __doc__.split("\n\n")[1].strip().splitlines()), "",
          "| max in-edges per node | KG edges kept | valid samples | NDCG@10 | HR@10 | HR@50 | Δ NDCG@10 vs uncapped | p sample | p user |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    kept = {0: "191,952 (all)", 8: "131,935 (69%)", 16: "173,040 (90%)"}
    for r in rows:
        t = r.get("vs_uncapped_ndcg@10")
        md.append(f"| {r['max_in_edges'] or 'no cap'} | {kept.get(r['max_in_edges'], '')} | {r['samples']} | {r['ndcg@10']:.4f} | "
                  f"{r['hit@10']:.4f} | {r['hit@50']:.4f} | " +
                  (f"{t['diff']:+.4f} | {t['p_permutation']:.3f} | {t['p_user_permutation']:.3f} |" if t else "— | — | — |"))
    md += ["", "Cost of the same caps per meta-batch at L = 1, 2, 3: `results/meta_layers_cost.md`."]
    (RESULTS / "fan_out_cap.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
