"""The effect of decoding options on the responses of one trained generator (same samples, same model).

    report = decoding_report("runs/real/gen/fold0/meta/ccrs/eval/best.pt", "runs/real/prepared",
                             "runs/real/rec_plain/user/ccrs/fold0/best.pt", fold=0)
    write_decoding_report(report, "results/decoding")   # .json + .md + decoding_responses/<setting>.jsonl.gz

A meta-trained checkpoint is meta-tested as in training (each user adapted on their support
samples, then their query samples decoded); a plain one decodes the part's samples directly. Each
setting overrides ``generator.*`` decoding keys only; the metrics are computed on the protocol's
tokens (``generated``), the saved records keep the readable ``response`` too, never the dataset's
words (:data:`ccrs.experiments.gen_table.DATASET_TEXT`).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

from ccrs.config import CCRSConfig

#: name → ``generator.*`` decoding overrides. Greedy is CRSLab's evaluation (Table 2).
SETTINGS: dict[str, dict] = {
    "greedy": {"decoding": "greedy", "no_repeat_ngram": 0},
    "greedy, no repeated trigram": {"decoding": "greedy", "no_repeat_ngram": 3},
    "beam 4, no repeated trigram": {"decoding": "beam", "beam_width": 4, "no_repeat_ngram": 3},
    "nucleus p=0.9 (seed 0)": {"decoding": "nucleus", "top_p": 0.9, "sampling_seed": 0, "no_repeat_ngram": 0},
    "nucleus p=0.9 (seed 0), no repeated trigram": {"decoding": "nucleus", "top_p": 0.9, "sampling_seed": 0,
                                                    "no_repeat_ngram": 3},
}
COLUMNS = ("f1", "bleu1", "bleu2", "dist2", "dist3", "dist4", "mean_length", "distinct_responses",
           "top_response_share", "recommends_when_asked")
#: The ``generator.*`` keys that change decoding only (a trained checkpoint can be re-decoded with them).
DECODING_KEYS = ("decoding", "beam_width", "top_p", "sampling_seed", "no_repeat_ngram", "temperature",
                 "min_response_tokens")


def _with_decoding(cfg: CCRSConfig, overrides: dict) -> CCRSConfig:
    return dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, **overrides))


def decoding_report(gen_ckpt: str, prepared: str, rec_ckpt: str, fold: int = 0, part: str = "test",
                    settings: dict[str, dict] | None = None, max_users: int = 0) -> dict:
    """Metrics and records of ``part`` decoded under each setting (``max_users``: the first N users, 0 = all)."""
    from ccrs.checkpoint import load_checkpoint
    from ccrs.eval.gen_evaluator import GenReport, evaluate_generator
    from ccrs.meta.gen_training import GenMetaTraining, meta_evaluate
    from ccrs.models.generator import load_generator

    settings = settings or SETTINGS
    model, cfg, tok, payload = load_generator(gen_ckpt)
    meta = bool(payload.get("meta"))
    out: dict = {"checkpoint": gen_ckpt, "rec_checkpoint": rec_ckpt, "fold": fold, "part": part,
                 "adapted_per_user": meta, "settings": {}, "_records": {}}
    if meta:
        training = GenMetaTraining(cfg, prepared, fold, rec_ckpt, init=load_checkpoint(gen_ckpt))
        users = [u for u in training.users if u.role == part][: max_users or None]

        def run(gen_cfg) -> GenReport:
            return meta_evaluate(training.maml, training.data, users, gen_cfg, cfg.dial_meta.max_task_samples,
                                 cfg.gen_train.eval_batch_size, generate_responses=True)
    else:
        import torch

        from ccrs.train.gen_data import load_gen_data

        data = load_gen_data(prepared, fold, cfg, rec_ckpt, tok)
        index = data.part_index[part]
        if max_users:
            keep = sorted({data.examples.samples[int(i)].user_id for i in index})[:max_users]
            index = torch.tensor([int(i) for i in index if data.examples.samples[int(i)].user_id in set(keep)])

        def run(gen_cfg) -> GenReport:
            return evaluate_generator(model, data, index, gen_cfg, cfg.gen_train.eval_batch_size)
    for name, overrides in settings.items():
        report = run(_with_decoding(cfg, overrides).generator)
        m = report.metrics()
        out["settings"][name] = {"overrides": overrides,
                                 **{k: m.get(k) for k in (*COLUMNS, "responses", "human_recommends_when_asked")}}
        out["_records"][name] = report.records
        out.setdefault("_metrics", {})[name] = m
    return out


def decoding_overrides(keys: list[str]) -> dict:
    """``["generator.temperature=0.7", ...]`` → typed ``{"temperature": 0.7, ...}`` (decoding keys only)."""
    from ccrs.config import load_config

    names = []
    for kv in keys:
        key = kv.split("=", 1)[0]
        if not key.startswith("generator.") or key.split(".", 1)[1] not in DECODING_KEYS:
            raise ValueError(f"{kv!r}: only decoding keys may change at decoding time ({', '.join(DECODING_KEYS)})")
        names.append(key.split(".", 1)[1])
    gen = load_config(None, keys).generator
    return {k: getattr(gen, k) for k in names}


def decode_run(gen_ckpt: str, prepared: str, rec_ckpt: str, fold: int, overrides: dict, out_dir: str | Path,
               part: str = "test") -> Path:
    """Responses of ``part`` re-decoded with ``overrides`` → ``out_dir/{part}_responses.jsonl`` and
    ``{part}_gen_metrics.json`` (the layout of a training run, so Table 2 reads it alike), and
    ``out_dir/best.pt``: the checkpoint with ``overrides`` in its config, so ``ccrs serve --gen-ckpt``
    answers with this decoding. Skipped when done (the metrics file is written last)."""
    from ccrs.checkpoint import load_checkpoint, save_checkpoint

    out_dir = Path(out_dir)
    if (out_dir / f"{part}_gen_metrics.json").exists():
        return out_dir
    report = decoding_report(gen_ckpt, prepared, rec_ckpt, fold, part, {"chosen": overrides})
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = load_checkpoint(gen_ckpt)
    payload["config"]["generator"].update(overrides)
    save_checkpoint(str(out_dir / "best.pt"), payload)
    records = sorted(report["_records"]["chosen"], key=lambda r: r["sample_id"])
    (out_dir / f"{part}_responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = {"checkpoint": gen_ckpt, "fold": fold, "part": part, "decoding": overrides}
    tmp = out_dir / f".{part}_gen_metrics.json.tmp"
    tmp.write_text(json.dumps({**meta, "metrics": report["_metrics"]["chosen"]}, indent=2))
    tmp.rename(out_dir / f"{part}_gen_metrics.json")
    return out_dir


def format_decoding_markdown(report: dict) -> str:
    lines = ["# Decoding options: one generator, the same samples", ""]
    if report.get("command"):
        lines += ["Regenerate with:", "", f"    {report['command']}", ""]
    lines += [f"Checkpoint `{report['checkpoint']}` (fold {report['fold']}, {report['part']} users"
              f"{', each adapted on their support samples first' if report['adapted_per_user'] else ''}). "
              "Metrics on the protocol's tokens; F1/BLEU against the reference turn; Dist-k = distinct word "
              "k-grams ÷ responses.", "",
              "| decoding | " + " | ".join(COLUMNS) + " | responses |", "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for name, m in report["settings"].items():
        lines.append(f"| {name} | " + " | ".join("–" if m.get(c) is None else f"{m[c]:.4f}" for c in COLUMNS)
                     + f" | {m['responses']} |")
    human = next((m.get("human_recommends_when_asked") for m in report["settings"].values()), None)
    if human is not None:
        lines += ["", f"The human responses to the same \"asks\" turns carry a movie in {human:.1%} of cases."]
    return "\n".join(lines) + "\n"


def write_decoding_report(report: dict, save: str | Path) -> None:
    from ccrs.experiments.gen_table import DATASET_TEXT

    save = Path(save)
    save.parent.mkdir(parents=True, exist_ok=True)
    report = dict(report)
    records = report.pop("_records", {})
    report.pop("_metrics", None)
    resp_dir = save.parent / f"{save.name}_responses"
    resp_dir.mkdir(exist_ok=True)
    report["responses"] = {}
    for i, (name, recs) in enumerate(records.items()):
        path = resp_dir / f"setting{i}.jsonl.gz"
        with gzip.open(path, "wt") as fh:
            for r in sorted(recs, key=lambda r: r["sample_id"]):
                fh.write(json.dumps({k: v for k, v in r.items() if k not in DATASET_TEXT}) + "\n")
        report["responses"][name] = str(path)
    save.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    save.with_suffix(".md").write_text(format_decoding_markdown(report))
