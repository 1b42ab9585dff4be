"""Choose the planted benchmark's configuration on valid users only, over several data seeds.

    .venv/bin/python studies/planted_select.py --candidate base \\
        --candidate udrop=recommender.user_dropout=0.5 --seeds 0 1 2 --save results/planted_select

Each candidate is ``NAME[=OVERRIDE,OVERRIDE...]``: overrides for every row (``every:`` prefix) or for
the customized row only (``meta:`` prefix; none = every row). Every candidate trains the rows of
:mod:`ccrs.experiments.planted` on the planted and the control data of each seed and this prints
and saves the **valid** NDCG@10 of kbrd, ccrs and ccrs_meta (mean over seeds), and ccrs_meta's
valid margin over kbrd per seed: one configuration must win on planted without losing to kbrd on
control. Test figures are never read here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ccrs.experiments.planted import SMALL_MODEL, PlantedSpec, run_planted

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planted_signal import FULL  # noqa: E402  (the benchmark's data size)

from ccrs.experiments.report_files import command_line, save_report  # noqa: E402

ROWS = ("kbrd", "ccrs", "ccrs_meta", "ccrs_meta_beta0")


def parse_candidate(text: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    name, _, rest = text.partition("=")
    every, meta = [], []
    for item in filter(None, rest.split(",")):
        if item.startswith("meta:"):
            meta.append(item.removeprefix("meta:"))
        else:
            every.append(item.removeprefix("every:"))
    return name, tuple(every), tuple(meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidate", action="append", default=[])
    ap.add_argument("--merge", nargs="+", type=Path, help="combine saved runs of this script into --save")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tastes", nargs="+", default=["planted", "control"])
    ap.add_argument("--work-dir", type=Path)
    ap.add_argument("--save")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.save)
    if not args.candidate:
        ap.error("give at least one --candidate (or --merge)")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="planted-select-"))
    out: dict[str, dict] = {}
    for text in args.candidate:
        name, every, meta = parse_candidate(text)
        res = {"base": list(SMALL_MODEL), "every_row": every, "ccrs_meta": meta, "valid": {}}
        for taste in args.tastes:
            per_seed = []
            for seed in args.seeds:
                spec = PlantedSpec(taste=taste, seed=seed, overrides=every, meta_overrides=meta, **FULL)
                rep = run_planted(work / f"{taste}-s{seed}", spec)
                per_seed.append({row: rep["rows"][row]["valid"]["ndcg@10"] for row in ROWS})
            mean = {row: float(np.mean([s[row] for s in per_seed])) for row in ROWS}
            margins = [s["ccrs_meta"] - s["kbrd"] for s in per_seed]
            res["valid"][taste] = {"seeds": list(args.seeds), "per_seed": per_seed, "mean": mean,
                                   "meta_minus_kbrd": margins}
            print(f"{name:14s} {taste:8s} valid ndcg@10 " + " ".join(f"{r} {mean[r]:.4f}" for r in ROWS)
                  + "  meta-kbrd per seed " + " ".join(f"{m:+.4f}" for m in margins), flush=True)
        out[name] = res
    if args.save:
        command = command_line("planted_select.py", argv)
        body = {"command": command, "seeds": args.seeds, "candidates": out}
        save_report(args.save, body, format_markdown)
    return 0


def merge(paths: list[Path], save: str | None) -> int:
    """One file from several runs (each keeps its command): the candidates side by side."""
    if not save:
        raise SystemExit("--merge needs --save")
    bodies = [json.loads(p.read_text()) for p in paths]
    candidates: dict[str, dict] = {}
    for b in bodies:  # one candidate may come from several runs (e.g. control and planted seeds apart)
        for name, c in b["candidates"].items():
            for v in c["valid"].values():
                v.setdefault("seeds", b["seeds"])
            if name in candidates:
                if (candidates[name]["every_row"], candidates[name]["ccrs_meta"]) != (c["every_row"], c["ccrs_meta"]):
                    raise SystemExit(f"candidate {name!r} has different overrides in the merged runs")
                for taste, v in c["valid"].items():
                    candidates[name]["valid"][taste] = _join(candidates[name]["valid"].get(taste), v)
            else:
                candidates[name] = c
    body = {"commands": [c for b in bodies for c in b.get("commands", [b.get("command")]) if c],
            "seeds": bodies[0]["seeds"], "candidates": candidates}
    save_report(save, body, format_markdown)
    return 0


def format_markdown(body: dict) -> str:
    commands = body.get("commands") or [body["command"]]
    lines = ["# Planted benchmark: configuration chosen on valid users (mean over data seeds)", "",
             "Regenerate with:", "", "```", *commands, "```", "",
             "Valid NDCG@10, mean over the data seeds of each row; 'meta − kbrd' lists ccrs_meta's valid margin",
             "per seed.",
             "No test figure is read.", "",
             "| candidate | overrides | taste | seeds | kbrd | ccrs | ccrs_meta | ccrs_meta β=0 | meta − kbrd per seed |",
             "|---|---|---|---|---:|---:|---:|---:|---|"]
    for name, c in body["candidates"].items():
        over = ", ".join([*c["every_row"], *(f"meta:{m}" for m in c["ccrs_meta"])]) or "–"
        for taste, v in c["valid"].items():
            m = v["mean"]
            seeds = v.get("seeds", body["seeds"])
            lines.append(f"| {name} | `{over}` | {taste} | {_seed_range(seeds)} | {m['kbrd']:.4f} | {m['ccrs']:.4f} | {m['ccrs_meta']:.4f} | "
                         f"{m['ccrs_meta_beta0']:.4f} | {' '.join(f'{x:+.4f}' for x in v['meta_minus_kbrd'])} |")
    chosen = choose(body["candidates"])
    passed = chosen and _control_ratio(body["candidates"][chosen]) >= 1 - CONTROL_TOLERANCE
    lines += ["", "**Rule**: the highest planted valid ccrs_meta among the candidates whose control valid ccrs_meta is",
              f"at least {1 - CONTROL_TOLERANCE:.0%} of kbrd's (means over seeds): customization must pay where a taste",
              "is planted and cost nothing where none is. If none passes: the candidate closest to kbrd on control",
              f"among those within {PLANTED_TOLERANCE:.0%} of the best planted ccrs_meta.",
              f"**Chosen: `{chosen}`**" + ("." if passed else
              f" (no candidate passes the control condition; `{chosen}` reaches "
              f"{_control_ratio(body['candidates'][chosen]):.1%} of kbrd there).") if chosen else
              "**No candidate has both tastes.**"]
    return "\n".join(lines) + "\n"


def _join(a: dict | None, b: dict) -> dict:
    """One taste's figures from two runs of one candidate on different seeds (means recomputed)."""
    if a is None:
        return b
    if set(a["seeds"]) & set(b["seeds"]):
        raise SystemExit(f"merged runs share seeds {sorted(set(a['seeds']) & set(b['seeds']))}")
    per_seed = a["per_seed"] + b["per_seed"]
    return {"seeds": a["seeds"] + b["seeds"], "per_seed": per_seed,
            "mean": {row: float(np.mean([s[row] for s in per_seed])) for row in ROWS},
            "meta_minus_kbrd": a["meta_minus_kbrd"] + b["meta_minus_kbrd"]}


def _control_ratio(candidate: dict) -> float:
    m = candidate["valid"]["control"]["mean"]
    return m["ccrs_meta"] / m["kbrd"]


def _seed_range(seeds: list[int]) -> str:
    seeds = sorted(seeds)
    return f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2 else \
        " ".join(map(str, seeds))


#: How far below kbrd a candidate's control valid ccrs_meta may be (relative) and still be chosen.
CONTROL_TOLERANCE = 0.01
#: When no candidate passes the control condition: how far below the best planted ccrs_meta a
#: candidate may be (relative) and still be chosen for being closest to kbrd on control.
PLANTED_TOLERANCE = 0.02


def choose(candidates: dict[str, dict]) -> str | None:
    """The selection rule (printed under the table): the highest planted valid ccrs_meta among the
    candidates that pass the control condition; when none passes, the candidate closest to kbrd on
    control among those within :data:`PLANTED_TOLERANCE` of the best planted ccrs_meta."""
    both = {name: c["valid"] for name, c in candidates.items() if {"planted", "control"} <= set(c["valid"])}
    planted = {name: v["planted"]["mean"]["ccrs_meta"] for name, v in both.items()}
    control = {name: v["control"]["mean"]["ccrs_meta"] / v["control"]["mean"]["kbrd"] for name, v in both.items()}
    ok = {name: planted[name] for name in both if control[name] >= 1 - CONTROL_TOLERANCE}
    if ok:
        return max(ok, key=ok.get)
    near = [name for name in both if planted[name] >= (1 - PLANTED_TOLERANCE) * max(planted.values())]
    return max(near, key=control.get) if near else None


if __name__ == "__main__":
    raise SystemExit(main())
