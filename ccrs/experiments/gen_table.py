"""Table 2: generation metrics of the generator variants on the same test samples, plus examples.

    report = build_report({0: {"transformer": dir1, "kbrd_gen": dir2, "only_meta": dir3, "ccrs": dir4},
                           1: {...}, 2: {...}}, compare="ccrs", budgets={"ccrs": {...}, ...})
    write_report(report, "results/generation")   # .json + .md + generation_responses/<row>.jsonl.gz

Each row of each fold is an ``eval`` directory holding ``test_gen_metrics.json`` and
``test_responses.jsonl`` (``ccrs train gen`` or ``ray_jobs.train_generator``). Within a fold the rows
must cover exactly the same test samples (checked); folds are pooled (their test users are
disjoint): BLEU/F1/Dist recomputed from the pooled responses, perplexity pooled by tokens. Tests of
``compare`` against every other row, each per sample and per user (whole users resampled): sign
flips on F1 and BLEU-2, unit swaps on Dist-2/3/4 (:func:`ccrs.eval.significance.distinct_paired_test`).
Examples: test samples whose seeker turn talks about a genre (keywords), with each row's response
and the ``ccrs`` style mixture. A flat ``{row: dir}`` mapping is one fold (fold 0).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

from ccrs import storage
from ccrs.data.tokenizer import tokenize
from ccrs.eval.gen_metrics import f1, generation_metrics, sentence_bleu
from ccrs.eval.response_stats import recommendation_shares, response_diversity
from ccrs.eval.significance import distinct_paired_test, paired_tests
from ccrs.eval.style_stats import style_report

GENRES = {"horror": ("horror", "scary"), "romance": ("romance", "romantic", "romcom", "rom-com"),
          "comedy": ("comedy", "comedies", "funny")}
COLUMNS = ("bleu1", "bleu2", "bleu3", "bleu4", "corpus_bleu4", "f1", "dist2", "dist3", "dist4", "ppl")
#: Whole-response figures (``ccrs.eval.response_stats``): distinct responses ÷ responses, the most
#: frequent response's share, mean length, and the share of responses to "asks" turns with a movie.
RESPONSE_COLUMNS = ("distinct_responses", "top_response_share", "mean_length", "recommends_when_asked")


def _records(run: str) -> list[dict]:
    text = storage.read_bytes(storage.resolve(run).child("test_responses.jsonl")).decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _metrics(run: str) -> dict:
    return json.loads(storage.read_bytes(storage.resolve(run).child("test_gen_metrics.json")))


def per_sample(records: list[dict]) -> dict[tuple[int, int], dict[str, float]]:
    """``{(sample_id, fold): {"f1", "bleu2"}}`` of one row's responses."""
    out = {}
    for r in records:
        ref, hyp = tokenize(r["reference"]), r["generated"].split()
        out[r["sample_id"], r.get("fold", 0)] = {"f1": f1(ref, hyp), "bleu2": sentence_bleu(ref, hyp, 2)}
    return out


def context_genre(record: dict) -> str | None:
    """The one genre of :data:`GENRES` the seeker's last turn talks about (None: none or several)."""
    text = record.get("context_last", "").lower()
    hits = [g for g, words in GENRES.items() if any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)]
    return hits[0] if len(hits) == 1 else None


def genre_examples(records_by_row: dict[str, list[dict]], style_row: str, per_genre: int = 2) -> dict[str, list[dict]]:
    rows = {name: {(r.get("fold", 0), r["sample_id"]): r for r in recs} for name, recs in records_by_row.items()}
    base = rows[style_row]
    out: dict[str, list[dict]] = {}
    for genre, words in GENRES.items():
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I)
        picked = []
        for sid in sorted(base):
            r = base[sid]
            if pattern.search(r.get("context_last", "")) and r["slot_items"]:
                picked.append({"fold": sid[0], "sample_id": sid[1], "user_id": r["user_id"], "context_last": r["context_last"],
                               "reference": r["reference"], "style_mixture": r["style_mixture"],
                               "responses": {name: rs[sid]["response"] for name, rs in rows.items() if sid in rs}})
            if len(picked) == per_genre:
                break
        out[genre] = picked
    return out


def _pooled_ppl(metrics_by_fold: list[dict]) -> float | None:
    """exp of the token-weighted mean log perplexity (= the perplexity of all folds' tokens together)."""
    pairs = [(m.get("ppl"), m.get("tokens")) for m in metrics_by_fold]
    if any(p is None for p, _ in pairs):
        return None
    if any(not t for _, t in pairs):  # token counts unknown: the plain mean
        return sum(p for p, _ in pairs) / len(pairs)
    return math.exp(sum(t * math.log(p) for p, t in pairs) / sum(t for _, t in pairs))


def build_report(folds: Mapping, compare: str = "ccrs", n_resamples: int = 10_000,
                 budgets: Mapping[str, dict] | None = None) -> dict:
    if folds and all(isinstance(v, str) for v in folds.values()):
        folds = {0: folds}
    records: dict[str, list[dict]] = {}
    fold_metrics: dict[str, dict[int, dict]] = {}
    order: list[tuple[int, int]] = []
    for fold, runs in sorted(folds.items()):
        recs = {name: [{**r, "fold": fold} for r in _records(run)] for name, run in runs.items()}
        ids = {name: sorted(r["sample_id"] for r in rs) for name, rs in recs.items()}
        first = next(iter(ids.values()))
        for name, s_ in ids.items():
            if s_ != first:
                raise ValueError(f"fold {fold}: row {name} has {len(s_)} test samples, not the same {len(first)} "
                                 "as the others")
        order += [(fold, i) for i in first]
        for name, rs in recs.items():
            records.setdefault(name, []).extend(rs)
            fold_metrics.setdefault(name, {})[fold] = _metrics(runs[name])["metrics"]
    by_key = {name: {(r["fold"], r["sample_id"]): r for r in rs} for name, rs in records.items()}
    table = {}
    for name in records:
        rs = [by_key[name][k] for k in order]
        m = generation_metrics([tokenize(r["reference"]) for r in rs], [r["generated"].split() for r in rs])
        m["ppl"] = _pooled_ppl(list(fold_metrics[name].values()))
        m |= response_diversity([r["generated"] for r in rs])
        if all("context_last" in r for r in rs):  # older response files keep no context: no share
            m |= recommendation_shares(rs)
        table[name] = {k: m.get(k) for k in (*COLUMNS, *RESPONSE_COLUMNS, "top_response", "asked",
                                             "human_recommends_when_asked", "dist2_ratio", "responses")}
    per_fold = {name: {str(f): {k: fm.get(k) for k in ("f1", "bleu2", "dist2", "ppl", "responses")}
                       for f, fm in sorted(fms.items())} for name, fms in fold_metrics.items()}
    tests = {}
    if compare in records:
        users = [f"{f}:{by_key[compare][(f, i)]['user_id']}" for f, i in order]
        samples = [f"{f}:{i}" for f, i in order]
        a = per_sample([by_key[compare][k] for k in order])
        hyp_a = [by_key[compare][k]["generated"].split() for k in order]
        for other in records:
            if other == compare:
                continue
            b = per_sample([by_key[other][k] for k in order])
            hyp_b = [by_key[other][k]["generated"].split() for k in order]
            res = {m: paired_tests([a[k[1], k[0]][m] for k in order], [b[k[1], k[0]][m] for k in order], users,
                                   n_resamples) for m in ("f1", "bleu2")}
            for n in (2, 3, 4):
                per_s = distinct_paired_test(hyp_a, hyp_b, samples, n, min(n_resamples, 2000))
                per_u = distinct_paired_test(hyp_a, hyp_b, users, n, min(n_resamples, 2000))
                res[f"dist{n}"] = {"diff": per_s["diff"], "p_permutation": per_s["p_permutation"],
                                   "users": per_u["units"], "p_user_permutation": per_u["p_permutation"]}
            tests[f"{compare} vs {other}"] = res
    styles = {name: style_report(recs, context_genre, n_resamples=min(n_resamples, 2000))
              for name, recs in records.items() if any(r.get("style_mixture") is not None for r in recs)}
    return {"table": table, "per_fold": per_fold, "tests": tests, "folds": sorted(folds),
            "runs": {str(f): dict(r) for f, r in sorted(folds.items())}, "n_samples": len(order),
            "n_users": len({(r["fold"], r["user_id"]) for r in next(iter(records.values()))}),
            "budgets": dict(budgets or {}), "styles": styles,
            "examples": genre_examples(records, compare if compare in records else next(iter(records))),
            "_records": records}


def format_markdown(report: dict) -> str:
    lines = [f"# {report.get('title', 'Generation')}", ""]
    if report.get("command"):
        lines += ["Regenerate with:", "", f"    {report['command']}", ""]
    folds = report.get("folds", [0])
    lines += [f"Test samples (recommender turns of the test users' query conversations): {report['n_samples']} "
              f"of {report.get('n_users', '?')} users, folds {', '.join(map(str, folds))} of the user split pooled "
              "(BLEU/F1/Dist recomputed on the pooled responses; perplexity pooled by tokens). **BLEU-k = sentence "
              "BLEU with one-hot weights** (CRSLab), averaged over responses; corpus BLEU-4 from sacrebleu for "
              "comparison. Dist-k = distinct word k-grams ÷ responses.", ""]
    lines += ["| model | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, m in report["table"].items():
        lines.append(f"| {name} | " + " | ".join("" if m[c] is None else f"{m[c]:.4f}" for c in COLUMNS) + " |")
    rows = report["table"]
    if rows and all(m.get("distinct_responses") is not None for m in rows.values()):
        first = next(iter(rows.values()))
        human = first.get("human_recommends_when_asked")
        lines += ["", "## Whole responses", "",
                  "Distinct = distinct responses ÷ responses; top = the share of the most frequent response; "
                  "recommends when asked = the share of responses to a seeker turn that asks for a movie (the rule "
                  "of `ccrs.eval.response_stats.asks_for_recommendation`, checked in `results/asks_rule.md`) that "
                  "carry a movie slot"
                  + (f"; the human recommenders' share on the same {first.get('asked')} turns is **{human:.3f}**."
                     if human is not None else "."), "",
                  "| model | distinct | top | most frequent response | mean length | recommends when asked |",
                  "|---|---:|---:|---|---:|---:|"]
        for name, m in rows.items():
            rec = m.get("recommends_when_asked")
            lines.append(f"| {name} | {m['distinct_responses']:.3f} | {m['top_response_share']:.3f} | "
                         f"`{m.get('top_response', '')}` | {m['mean_length']:.2f} | "
                         f"{'' if rec is None else f'{rec:.3f}'} |")
    if report.get("budgets"):
        lines += ["", "## Training budgets (per fold, mean over folds)", "",
                  "Epochs = passes over the training users' conversations; plain updates = Adam steps on batches "
                  "of samples; meta updates = outer Adam steps, each on a meta-batch of users (their support and "
                  "query sets, an inner step per user first). Every epoch's valid score is recorded and the best "
                  "state is kept, in every row.", "",
                  "| model | plain epochs | meta epochs | total epochs | plain updates | meta updates | note |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for name, b in report["budgets"].items():
            lines.append(f"| {name} | {b['plain_epochs']:g} | {b['meta_epochs']:g} | "
                         f"{b['plain_epochs'] + b['meta_epochs']:g} | {b['plain_updates']:.0f} | "
                         f"{b['meta_updates']:.0f} | {b.get('note', '')} |")
    if report["tests"]:
        lines += ["", "## Paired tests", "",
                  "Mean difference (first − second), p per sample and **p per user** (whole users resampled: "
                  "sign flips of each user's summed difference for F1/BLEU-2; all of a user's responses swapped "
                  "between the two systems for Dist). Headline claims use the per-user p.", "",
                  "| pair | metric | diff | p (samples) | p (users) |", "|---|---|---:|---:|---:|"]
        for pair, res in report["tests"].items():
            for m, r in res.items():
                pu = r.get("p_user_permutation")
                lines.append(f"| {pair} | {m} | {r['diff']:+.4f} | {r['p_permutation']:.3g} | "
                             f"{'' if pu is None else f'{pu:.3g}'} |")
    if report.get("per_fold") and len(folds) > 1:
        lines += ["", "## Per fold (F1 / BLEU-2 / Dist-2)", "", "| model | " + " | ".join(f"fold {f}" for f in folds)
                  + " |", "|---|" + "---:|" * len(folds)]
        for name, pf in report["per_fold"].items():
            lines.append(f"| {name} | " + " | ".join(
                f"{pf[str(f)]['f1']:.4f} / {pf[str(f)]['bleu2']:.4f} / {pf[str(f)]['dist2']:.4f}" for f in folds) + " |")
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
            lines += ["", f"- fold {ex.get('fold', 0)}, user {ex['user_id']}, sample {ex['sample_id']} (the seeker names {genre}); style mixture "
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
