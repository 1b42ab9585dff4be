"""How well the "asks for a movie" rule agrees with hand labels (issue 33).

    python studies/asks_rule.py --prepared runs/real/prepared --save results/asks_rule

:func:`ccrs.eval.response_stats.asks_for_recommendation` decides which seeker turns count as a request
when the recommendation share of Table 2 is computed. Two samples of 80 seeker turns (the last
context turn of a generation sample, ``random.Random(seed).sample``) were labelled by hand:
``studies/data/asks_labels_dev.json`` (seed 33) was used to revise the rule, and
``studies/data/asks_labels_heldout.json`` (seed 34) was labelled afterwards and is the check. The
label files hold ids and labels only; the turns' text is read from the prepared data, and the
report keeps none of it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ccrs.data.dataset import PreparedDataset
from ccrs.data.gen_examples import gen_samples
from ccrs.eval.response_stats import asks_for_recommendation

LABELS = {"dev": Path(__file__).parent / "data" / "asks_labels_dev.json",
          "held-out": Path(__file__).parent / "data" / "asks_labels_heldout.json"}


def agreement(pairs: list[tuple[int, int]]) -> dict[str, float | int]:
    """Precision, recall and accuracy of rule decisions against labels: ``pairs`` of (rule, label)."""
    tp = sum(r and y for r, y in pairs)
    fp = sum(r and not y for r, y in pairs)
    fn = sum(y and not r for r, y in pairs)
    n = len(pairs)
    return {"n": n, "labelled_asks": tp + fn, "rule_asks": tp + fp, "true_positives": tp,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "accuracy": sum(r == y for r, y in pairs) / n}


def check(prepared: str) -> dict:
    samples = {(s.conversation_id, s.turn_index): s for s in gen_samples(PreparedDataset.open(prepared))}
    out = {}
    for name, path in LABELS.items():
        labels = json.loads(path.read_text())["labels"]
        missing = [(x["conversation_id"], x["turn_index"]) for x in labels
                   if (x["conversation_id"], x["turn_index"]) not in samples]
        if missing:
            raise SystemExit(f"{path}: {len(missing)} labelled turns are not in {prepared} (first: {missing[0]}); "
                             "the labels were made on the real ReDial data")
        pairs = [(int(asks_for_recommendation(samples[(x["conversation_id"], x["turn_index"])].context[-1])),
                  int(x["asks"])) for x in labels]
        out[name] = {"labels": str(path.relative_to(Path(__file__).parent.parent)), **agreement(pairs)}
    return out


def format_markdown(report: dict) -> str:
    lines = ["# The \"asks for a movie\" rule against hand labels", "", "Regenerate with:", "",
             f"    {report['command']}", "",
             "Rule: `ccrs.eval.response_stats.asks_for_recommendation` (`ASK_PATTERNS` after removing "
             "`THANKS_PATTERN`). A label is 1 when the seeker's turn asks for a movie, directly or by saying what "
             "they want to watch now; thanks for earlier suggestions is 0. The dev sample was used to revise the "
             "rule; the held-out sample was labelled afterwards.", "",
             "| sample | turns | labelled asks | rule says asks | precision | recall | accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["samples"].items():
        lines.append(f"| {name} (`{r['labels']}`) | {r['n']} | {r['labelled_asks']} | {r['rule_asks']} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {r['accuracy']:.3f} |")
    lines += ["", "The recommendation share of Table 2 applies the same rule to the generated and the human "
              "responses, so a turn the rule misreads moves both shares' denominators alike."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True, help="prepared real ReDial data (ccrs data prepare)")
    p.add_argument("--save", help="write <SAVE>.json and <SAVE>.md")
    args = p.parse_args(argv)
    report = {"command": "python studies/asks_rule.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "samples": check(args.prepared)}
    text = format_markdown(report)
    print(text)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save + ".json").write_text(json.dumps(report, indent=2) + "\n")
        Path(args.save + ".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
