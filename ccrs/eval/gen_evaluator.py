"""Generator evaluation on recommender turns: perplexity, generated responses, metrics, files.

    report = evaluate_generator(model, data, data.part_index["test"], cfg.generator)
    report.metrics()          # ppl, bleu1..4, corpus_bleu4, f1, dist2..4 (+ ratios), mean_length
    report.save(loc, "test")  # test_responses.jsonl (one record per sample) + test_gen_metrics.json

References are the reference turns tokenized like the generator's input (lower-cased words and
punctuation, item placeholder kept, no ``__unk__`` and no truncation). Hypotheses are the generated
tokens with the placeholder; each record also has the response with slots filled by the recommender
(``ccrs.inference.slots``) and the style mixture μ_u^m.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ccrs import storage
from ccrs.config import GeneratorConfig
from ccrs.data.tokenizer import tokenize
from ccrs.eval.gen_metrics import generation_metrics, perplexity
from ccrs.eval.response_stats import recommendation_shares, response_diversity
from ccrs.inference.decoding import generate_with
from ccrs.inference.slots import fill_slots


@dataclass
class GenReport:
    records: list[dict] = field(default_factory=list)
    total_nll: float = 0.0
    n_tokens: int = 0

    def extend(self, other: GenReport) -> None:
        self.records += other.records
        self.total_nll += other.total_nll
        self.n_tokens += other.n_tokens

    def metrics(self) -> dict[str, float]:
        out = {"ppl": perplexity(self.total_nll, self.n_tokens), "tokens": self.n_tokens}
        if self.records:
            refs = [tokenize(r["reference"]) for r in self.records]
            out |= generation_metrics(refs, [r["generated"].split() for r in self.records])
            diversity = response_diversity([r["generated"] for r in self.records])
            out |= {k: v for k, v in diversity.items() if k in ("distinct_responses", "top_response_share")}
            out |= recommendation_shares(self.records)
        return out

    def save(self, loc: storage.Location, part: str, meta: dict | None = None) -> dict:
        lines = "".join(json.dumps(r) + "\n" for r in sorted(self.records, key=lambda r: r["sample_id"]))
        storage.write_bytes(loc.child(f"{part}_responses.jsonl"), lines.encode())
        payload = {**(meta or {}), "part": part, "metrics": self.metrics()}
        storage.write_bytes(loc.child(f"{part}_gen_metrics.json"), json.dumps(payload, indent=2).encode())
        return payload


@torch.no_grad()
def token_nll(model, examples, batch_size: int) -> tuple[float, int]:
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for batch in examples.batches(batch_size):
        nll, k = model.token_nll(batch.to(device))
        total, n = total + float(nll), n + k
    model.train(was)
    return total, n


@torch.no_grad()
def evaluate_generator(model, data, index: Tensor, gen_cfg: GeneratorConfig, batch_size: int = 64,
                       generate_responses: bool = True) -> GenReport:
    """Perplexity over ``index`` (into ``data.examples``) and, if asked, generated responses."""
    examples = data.examples.select(index)
    total, n = token_nll(model, examples, batch_size)
    report = GenReport(total_nll=total, n_tokens=n)
    if not generate_responses:
        return report
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    tok = data.tokenizer
    order = torch.arange(len(examples))
    for lo in range(0, len(examples), batch_size):
        sub = order[lo : lo + batch_size]
        out = generate_with(model, examples.batch(sub).to(device), gen_cfg)
        for j, ids in enumerate(out.tokens):
            i = int(sub[j])
            s = examples.samples[i]
            words = tok.tokens(ids)
            filled = fill_slots(words, tok.item_placeholder, data.top_items[s.sample_id].tolist(),
                                data.mentioned_items[s.sample_id], data.item_names)
            report.records.append({
                "sample_id": s.sample_id, "conversation_id": s.conversation_id, "user_id": s.user_id,
                "turn_index": s.turn_index, "context_last": s.context[-1] if s.context else "",
                "reference": s.response, "generated": " ".join(words), "response": filled.text,
                "slot_items": filled.items,
                "style_mixture": None if out.mixture is None else [round(float(v), 4) for v in out.mixture[j]],
            })
    model.train(was)
    return report
