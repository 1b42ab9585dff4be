"""Table 2: generation metrics of the generator variants on the same test samples, plus examples.

    report = build_report({"transformer": dir1, "kbrd_gen": dir2, "only_meta": dir3, "ccrs": dir4}, compare="ccrs")
    write_report(report, "results/generation")   # .json + .md + generation_responses/<row>.jsonl.gz

Each row is an ``eval`` directory holding ``test_gen_metrics.json`` and ``test_responses.jsonl``
(``ccrs train gen`` or ``ray_jobs.train_generator``). Rows must cover exactly the same test samples
(checked). Paired sign-flip tests on per-sample F1 and BLEU-2 compare ``compare`` against every
other row. Examples: test samples whose last two context turns talk about a genre (keywords), with
each row's response and the ``ccrs`` style mixture.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from ccrs import storage
from ccrs.data.tokenizer import tokenize
from ccrs.eval.gen_metrics import f1, sentence_bleu
from ccrs.eval.significance import paired_test
from ccrs.eval.style_stats import style_report

GENRES = {"horror": ("horror", "scary"), "romance": ("romance", "romantic", "romcom", "rom-com"),
          "comedy": ("comedy", "comedies", "funny")}
COLUMNS = ("bleu1", "bleu2", "bleu3", "bleu4", "corpus_bleu4", "f1", "dist2", "dist3", "dist4", "ppl")


def _records(run: str) -> list[dict]:
    text = storage.read_bytes(storage.resolve(run).child("test_responses.jsonl")).decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _metrics(run: str) -> dict:
    return json.loads(storage.read_bytes(storage.resolve(run).child("test_gen_metrics.json")))


def per_sample(records: list[dict]) -> dict[int, dict[str, float]]:
    out = {}
    for r in records:
        ref, hyp = tokenize(r["reference"]), r["generated"].split()
        out[r["sample_id"]] = {"f1": f1(ref, hyp), "bleu2": sentence_bleu(ref, hyp, 2)}
    return out


def context_genre(record: dict) -> str | None:
    """The one genre of :data:`GENRES` the seeker's last turn talks about (None: none or several)."""
    text = record.get("context_last", "").lower()
    hits = [g for g, words in GENRES.items() if any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)]
    return hits[0] if len(hits) == 1 else None


def genre_examples(records_by_row: dict[str, list[dict]], style_row: str, per_genre: int = 2) -> dict[str, list[dict]]:
    rows = {name: {r["sample_id"]: r for r in recs} for name, recs in records_by_row.items()}
    base = rows[style_row]
    out: dict[str, list[dict]] = {}
    for genre, words in GENRES.items():
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I)
        picked = []
        for sid in sorted(base):
            r = base[sid]
            if pattern.search(r.get("context_last", "")) and r["slot_items"]:
                picked.append({"sample_id": sid, "user_id": r["user_id"], "context_last": r["context_last"],
                               "reference": r["reference"], "style_mixture": r["style_mixture"],
                               "responses": {name: rs[sid]["response"] for name, rs in rows.items() if sid in rs}})
            if len(picked) == per_genre:
                break
        out[genre] = picked
    return out


def build_report(runs: dict[str, str], compare: str = "ccrs", n_resamples: int = 10_000) -> dict:
    records = {name: _records(run) for name, run in runs.items()}
    ids = {name: sorted(r["sample_id"] for r in recs) for name, recs in records.items()}
    first = next(iter(ids.values()))
    for name, s in ids.items():
        if s != first:
            raise ValueError(f"row {name} has {len(s)} test samples, not the same {len(first)} as the others")
    table = {name: {k: _metrics(run)["metrics"].get(k) for k in (*COLUMNS, "dist2_ratio", "mean_length", "responses")}
             for name, run in runs.items()}
    tests = {}
    if compare in records:
        a = per_sample(records[compare])
        for other in records:
            if other == compare:
                continue
            b = per_sample(records[other])
            tests[f"{compare} vs {other}"] = {
                m: paired_test([a[i][m] for i in first], [b[i][m] for i in first], n_resamples) for m in ("f1", "bleu2")}
    styles = {name: style_report(recs, context_genre, n_resamples=min(n_resamples, 2000))
              for name, recs in records.items() if any(r.get("style_mixture") is not None for r in recs)}
    return {"table": table, "tests": tests, "runs": runs, "n_samples": len(first), "styles": styles,
            "examples": genre_examples(records, compare if compare in records else next(iter(records))),
            "_records": records}


def format_markdown(report: dict) -> str:
    lines = [f"# {report.get('title', 'Generation')}", ""]
    if report.get("command"):
        lines += ["Regenerate with:", "", f"    {report['command']}", ""]
    lines += [f"Test samples (recommender turns of the test users' query conversations): {report['n_samples']}. "
              "**BLEU-k = sentence BLEU with one-hot weights** (CRSLab), averaged over responses; corpus BLEU-4 "
              "from sacrebleu for comparison. Dist-k = distinct word k-grams ÷ responses.", ""]
    lines += ["| model | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, m in report["table"].items():
        lines.append(f"| {name} | " + " | ".join("" if m[c] is None else f"{m[c]:.4f}" for c in COLUMNS) + " |")
    if report["tests"]:
        lines += ["", "Paired sign-flip tests over samples (mean difference, p):", ""]
        for pair, res in report["tests"].items():
            cells = [f"{m} {r['diff']:+.4f} (p={r['p_permutation']:.3g})" for m, r in res.items()]
            lines.append(f"- {pair}: " + "; ".join(cells))
    if report.get("styles"):
        lines += ["", "## Are the styles personal? (style mixtures μ of the generated responses)", "",
                  "R² = share of the variance of μ between groups; p: group labels permuted (genre: within users, "
                  "so a user effect cannot pass for a genre effect). Genre = the one genre the seeker's last turn "
                  "names (keywords), else unlabelled.", "",
                  "| model | styles | mean largest weight | entropy / log n_s | top style = most common | R² users | "
                  "p users | R² genre (within users) | p genre |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, st in report["styles"].items():
            c, u, g = st["collapse"], st["by_user"], st.get("by_genre_within_user")
            lines.append(f"| {name} | {c['n_styles']} | {c['mean_largest_weight']:.3f} | {c['mean_entropy_norm']:.3f} | "
                         f"{c['share_top_is_most_common']:.1%} | {u['r2']:.3f} | {u['p_permutation']:.4f} | "
                         + (f"{g['r2']:.3f} | {g['p_permutation']:.4f} |" if g else "– | – |"))
    for genre, exs in report["examples"].items():
        lines += ["", f"## Examples: {genre}"]
        for ex in exs:
            mix = ex["style_mixture"]
            # the seeker's turn and the reference are ReDial's words: named by sample, never copied here
            lines += ["", f"- user {ex['user_id']}, sample {ex['sample_id']} (the seeker names {genre}); style mixture "
                      f"μ = {'–' if mix is None else '[' + ', '.join(f'{v:.2f}' for v in mix) + ']'}"]
            lines += [f"  - {name}: {text}" for name, text in ex["responses"].items()]
    return "\n".join(lines) + "\n"


#: ReDial's own words (the reference turn, the seeker's last turn): kept in the run's
#: ``test_responses.jsonl``, left out of the files under ``results/`` (the dataset is never committed);
#: ``conversation_id`` + ``turn_index`` find them in the prepared ``turns`` table.
DATASET_TEXT = ("reference", "context_last")


def _without_dataset_text(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in DATASET_TEXT}


def write_report(report: dict, save: str | Path) -> None:
    report = {**report, "examples": {g: [_without_dataset_text(ex) for ex in exs]
                                     for g, exs in report.get("examples", {}).items()}}
    save = Path(save)
    save.parent.mkdir(parents=True, exist_ok=True)
    records = report.pop("_records", {})
    resp_dir = save.parent / f"{save.name}_responses"
    resp_dir.mkdir(exist_ok=True)
    for name, recs in records.items():
        with gzip.open(resp_dir / f"{name}.jsonl.gz", "wt") as fh:
            fh.writelines(json.dumps(_without_dataset_text(r)) + "\n" for r in sorted(recs, key=lambda r: r["sample_id"]))
    report["responses"] = {name: str(resp_dir / f"{name}.jsonl.gz") for name in records}
    save.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    save.with_suffix(".md").write_text(format_markdown(report))
