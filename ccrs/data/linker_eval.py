"""Entity-linker precision/recall against CFCRS's per-message entity annotations.

``ccrs data link-eval --raw ../shared/data/redial --prepared runs/demo/prepared`` runs the linker of a
prepared dataset over every message of ``annotations/cfcrs_valid_entity_annotations.jsonl.gz`` and
compares, per message, the set of linked non-movie entities with CFCRS's ``entity`` list, by name:

* ``by entity name``: the linked entity's readable name, lower-cased, without its parenthetical and
  without a trailing " film" (``Horror film`` → ``horror``), must equal an annotated name;
* ``by surface``: the matched text span, lower-cased, must equal an annotated name (credits a right
  span even when our KG resolves it to a differently named entity);
* ``by entity name, shared vocabulary``: as ``by entity name``, counting only linked names that
  CFCRS annotates somewhere in the file (its vocabulary: genres from a fixed list and people). Our
  KG also holds companies, services, franchises and genres CFCRS never labels ("netflix",
  "superhero", "suspense"); they are wrong by construction in the first comparison.

CFCRS linked with its own metadata KG and tolerates typos ("horroe" → horror), so this is a reference
point, not a target: both sides miss things the other finds.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ccrs.data.linker import EntityLinker, strip_disambiguation
from ccrs.data.raw import open_text
from ccrs.data.turns import MENTION

ANNOTATIONS = "annotations/cfcrs_valid_entity_annotations.jsonl.gz"
def normalize_name(name: str) -> str:
    base = strip_disambiguation(name).lower()
    if base.endswith(" film") and len(base) > 5:
        base = base[: -len(" film")]
    return " ".join(base.split())


@dataclass
class PR:
    tp: int = 0
    n_pred: int = 0
    n_gold: int = 0

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_gold if self.n_gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "true_positives": self.tp,
            "predicted": self.n_pred,
            "gold": self.n_gold,
        }


def _gold_vocabulary(annotations: Path) -> set[str]:
    with open_text(annotations) as f:
        return {" ".join(g.lower().split()) for line in f for msg in json.loads(line)["messages"]
                for g in msg.get("entity", [])}


def evaluate_linker(linker: EntityLinker, names: dict[int, str], annotations: Path, limit: int | None = None) -> dict:
    by_name, by_surface, shared = PR(), PR(), PR()
    vocabulary = _gold_vocabulary(annotations)
    missed: Counter = Counter()
    spurious: Counter = Counter()
    n_messages = 0
    with open_text(annotations) as f:
        for line in f:
            conv = json.loads(line)
            for msg in conv["messages"]:
                n_messages += 1
                gold = {" ".join(g.lower().split()) for g in msg.get("entity", [])}
                mentions = [m for seg in MENTION.split(msg["text"])[::2] for m in linker.link(seg)]
                pred_names = {normalize_name(names[m.entity_id]) for m in mentions}
                pred_surface = {" ".join(m.surface.lower().split()) for m in mentions}
                for pr, pred in ((by_name, pred_names), (by_surface, pred_surface),
                                 (shared, pred_names & vocabulary)):
                    pr.tp += len(pred & gold)
                    pr.n_pred += len(pred)
                    pr.n_gold += len(gold)
                missed.update(gold - pred_surface - pred_names)
                spurious.update(pred_surface - gold)
            if limit and n_messages >= limit:
                break
    return {
        "messages": n_messages,
        "by_entity_name": by_name.as_dict(),
        "by_surface": by_surface.as_dict(),
        "by_entity_name_shared_vocabulary": shared.as_dict(),
        "most_missed": missed.most_common(15),
        "most_spurious": spurious.most_common(15),
    }


RULES_ABOUT = {
    "plain": "the prepared data's linker (training data; unchanged so results stay reproducible)",
    "context": "the serving linker: evidence for common-word names, genre words → genres",
    "context-no-genre-words": "the serving linker without the genre words (CFCRS never labels \"funny\" as comedy)",
}


def write_report(report: dict, base: Path) -> None:
    """``<base>.json`` and ``<base>.md`` of ``{"rules": {name: evaluate_linker(...)}, ...}``."""
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    rows = ["| rules | comparison | precision | recall | F1 | TP | predicted | gold |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for rule, r in report["rules"].items():
        for key in ("by_entity_name", "by_entity_name_shared_vocabulary", "by_surface"):
            m = r[key]
            rows.append(f"| {rule} | {key.replace('_', ' ')} | {m['precision']:.3f} | {m['recall']:.3f} | "
                        f"{m['f1']:.3f} | {m['true_positives']} | {m['predicted']} | {m['gold']} |")
    first = next(iter(report["rules"].values()))
    md = ["# Entity linker vs. CFCRS annotations", "",
          f"Messages: {first['messages']} (`{report['annotations']}`), entities of `{report['prepared']}`.", "",
          "Rule sets: " + "; ".join(f"**{k}**: {RULES_ABOUT.get(k, '')}" for k in report["rules"]) + ".", "",
          *rows, ""]
    for rule, r in report["rules"].items():
        md += [f"**{rule}**: most missed gold names: " + ", ".join(f"{n} ({c})" for n, c in r["most_missed"]),
               "", f"**{rule}**: most frequent linked surfaces not in gold: "
               + ", ".join(f"{n} ({c})" for n, c in r["most_spurious"]), ""]
    md += [f"Regenerate: `{report.get('command', 'ccrs data link-eval --prepared PREPARED --save results/linker_cfcrs')}`",
           "", "The serving linker's own hard cases (common-word titles, genre words, companies): "
           "`tests/data/linker_hard_cases.json`, checked by `tests/data/test_linker.py`.", ""]
    base.with_suffix(".md").write_text("\n".join(md))
