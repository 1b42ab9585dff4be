"""Do a user's support conversations reveal which KG relation leads to their picks? ReDial vs planted.

    .venv/bin/python studies/relation_taste.py --prepared runs/real/prepared --save results/relation_taste

:func:`ccrs.eval.relation_taste.relation_taste` (no model) on the real prepared data, beside the same
statistic on planted data of known taste strength s (1, 0.5, 0.25) and on the control, so the real
figure reads on a scale where the planted benchmark says what customization gains
(``results/planted_needs.md``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planted_signal import FULL  # noqa: E402

from ccrs.data.dataset import PreparedDataset  # noqa: E402
from ccrs.eval.relation_taste import relation_taste  # noqa: E402
from ccrs.experiments.planted import PlantedSpec, prepare_planted  # noqa: E402
from ccrs.experiments.report_files import command_line, save_report  # noqa: E402

PLANTED = (("planted", 1.0), ("planted", 0.5), ("planted", 0.25), ("control", 1.0))
PLANTED_RELATIONS = ("director", "starring", "genre")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepared", required=True, help="the real prepared dataset")
    ap.add_argument("--save")
    args = ap.parse_args(argv)
    rows = []
    ds = PreparedDataset.open(args.prepared)
    every = tuple(r["name"] for r in ds.table("relations").to_pylist() if r["name"] != "self_loop")
    for name, relations in (("ReDial, director/starring/genre", PLANTED_RELATIONS), ("ReDial, every relation", every)):
        rows.append({"data": name, **relation_taste(ds, relations)})
    work = Path(tempfile.mkdtemp(prefix="relation-taste-"))
    for taste, s in PLANTED:
        spec = PlantedSpec(taste=taste, taste_strength=s, **FULL)
        prepared = prepare_planted(work / f"{taste}-{s:g}", spec)
        label = f"planted, s = {s:g}" if taste == "planted" else "control (no user taste)"
        rows.append({"data": label, **relation_taste(PreparedDataset.open(prepared), PLANTED_RELATIONS)})
    for r in rows:
        print(f"{r['data']:34s} users {r['users']:4d}  own {r['own']:.4f}  other {r['other']:.4f}  "
              f"own-other {r['own_minus_other']:+.4f}  p_user {r['p_user']:.4f}", flush=True)
    if args.save:
        save_report(args.save, {"command": command_line("relation_taste.py", argv), "rows": rows}, format_markdown)
    return 0


def format_markdown(body: dict) -> str:
    lines = ["# Do a user's support conversations reveal which KG relation leads to their picks?", "",
             "Regenerate with:", "", "```", body["command"], "```", "",
             "A rec sample is *explained by* relation r when its label shares an r-neighbour with a movie of its",
             "context. Each user's relation is the one with the largest lift on their support samples; `own` = share",
             "of their query samples it explains, `other` = the same with a random other user's relation",
             "(`ccrs/eval/relation_taste.py`). Planted rows: 240 users × 8 conversations of known taste strength s",
             "(chance a conversation follows the user's relation); what customization gains at each s is in",
             "`results/planted_needs.md`. p: sign flips of the per-user differences.", "",
             "| data | users | rec samples | own | other | own − other | p (users) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in body["rows"]:
        lines.append(f"| {r['data']} | {r['users']} | {r['samples']} | {r['own']:.4f} | {r['other']:.4f} | "
                     f"{r['own_minus_other']:+.4f} | {r['p_user']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
