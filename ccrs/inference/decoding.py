"""Greedy, beam-search and nucleus-sampling decoding of :class:`~ccrs.models.generator.Generator` responses.

    out = generate(model, batch, method="beam", beam_width=4, max_len=30, no_repeat_ngram=3)
    out.tokens[i]      # token ids of response i (no __start__/__end__)
    out.mixture        # (B, n_s) style mixture μ_u^m (``ccrs`` variant) or None

Beam search keeps ``beam_width`` live hypotheses ranked by the sum of token log-probabilities (no
length penalty) and stops when it has ``beam_width`` finished ones or none can still beat the best
finished one; with width 1 it is greedy decoding exactly (tested). ``no_repeat_ngram=n`` forbids a
token that would repeat an n-gram already in the response (n = 3: the usual "no repeated trigram").
Nucleus sampling (Holtzman et al., 2020) draws each token from the smallest set of most probable
tokens whose mass reaches ``top_p``, renormalised, of ``softmax(logits / temperature)``; ``seed``
seeds a generator of its own, so a call is reproducible for the same batch (``top_p`` → 0 or
``temperature`` → 0 is greedy decoding, tested). ``min_len`` is a length prior for every method:
``__end__`` is forbidden until the response has ``min_len`` words (greedy responses to ReDial
contexts are shorter than the human ones, and short responses are the generic ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ccrs.data.gen_examples import GenBatch


@dataclass
class Generated:
    tokens: list[list[int]]
    mixture: Tensor | None


def banned_tokens(seq: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in ``seq``."""
    if n <= 0 or len(seq) < n - 1:
        return set()
    prefix = tuple(seq[len(seq) - (n - 1):]) if n > 1 else ()
    return {seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == prefix}


def _ban(logits: Tensor, seqs: list[list[int]], n: int, min_len: int = 0, end_id: int = -1) -> Tensor:
    """Forbid (−inf) the tokens that repeat an n-gram, and ``end_id`` while a response is shorter than
    ``min_len``."""
    if n <= 0 and min_len <= 0:
        return logits
    for row, seq in enumerate(seqs):
        banned = banned_tokens(seq, n)
        if len(seq) < min_len:
            banned.add(end_id)
        if banned:
            logits[row, list(banned)] = -float("inf")
    return logits


def _top_p_sample(logits: Tensor, top_p: float, gen: torch.Generator) -> Tensor:
    """One token per row from the nucleus of ``softmax(logits)`` (the most probable token always kept)."""
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    outside = sorted_p.cumsum(-1) - sorted_p >= top_p  # mass before a token already reaches top_p
    outside[:, 0] = False
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    pick = torch.multinomial(sorted_p.cpu(), 1, generator=gen).to(logits.device)  # (B, 1)
    return order.gather(1, pick).squeeze(1)


@torch.no_grad()
def greedy(model, batch: GenBatch, max_len: int, no_repeat_ngram: int = 0, min_len: int = 0) -> Generated:
    return _left_to_right(model, batch, max_len, no_repeat_ngram, lambda logits: logits.argmax(-1), min_len)


@torch.no_grad()
def nucleus(model, batch: GenBatch, max_len: int, top_p: float = 0.9, seed: int = 0,
            no_repeat_ngram: int = 0, temperature: float = 1.0, min_len: int = 0) -> Generated:
    if not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1], got {top_p}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return greedy(model, batch, max_len, no_repeat_ngram, min_len)
    gen = torch.Generator().manual_seed(seed)
    return _left_to_right(model, batch, max_len, no_repeat_ngram,
                          lambda logits: _top_p_sample(logits / temperature, top_p, gen), min_len)


def _left_to_right(model, batch: GenBatch, max_len: int, no_repeat_ngram: int, pick, min_len: int = 0) -> Generated:
    tok_start, tok_end = _specials(model)
    memory, pad = model.encode(batch.context)
    bias, mixture = model.vocab_bias(batch.user_vec)
    b = batch.context.shape[0]
    prefix = torch.full((b, 1), tok_start, dtype=torch.long, device=batch.context.device)
    seqs: list[list[int]] = [[] for _ in range(b)]
    done = [False] * b
    for _ in range(max_len):
        logits = model.decode(memory, pad, prefix, bias)[:, -1].float()
        nxt = pick(_ban(logits, seqs, no_repeat_ngram, min_len, tok_end))
        for i, w in enumerate(nxt.tolist()):
            if not done[i]:
                if w == tok_end:
                    done[i] = True
                else:
                    seqs[i].append(w)
        if all(done):
            break
        prefix = torch.cat([prefix, nxt.unsqueeze(1)], dim=1)
    return Generated(seqs, mixture)


@torch.no_grad()
def beam_search(model, batch: GenBatch, beam_width: int, max_len: int, no_repeat_ngram: int = 0,
                min_len: int = 0) -> Generated:
    tok_start, tok_end = _specials(model)
    memory, pad = model.encode(batch.context)
    bias, mixture = model.vocab_bias(batch.user_vec)
    out = []
    for i in range(batch.context.shape[0]):
        out.append(_beam_one(model, memory[i : i + 1], pad[i : i + 1], None if bias is None else bias[i : i + 1],
                             beam_width, max_len, no_repeat_ngram, tok_start, tok_end, min_len))
    return Generated(out, mixture)


def _beam_one(model, memory, pad, bias, width, max_len, n, tok_start, tok_end, min_len=0) -> list[int]:
    beams: list[list[int]] = [[]]
    scores = torch.zeros(1, device=memory.device)
    finished: list[tuple[float, list[int]]] = []
    for _ in range(max_len):
        nb = len(beams)
        prefix = torch.tensor([[tok_start, *s] for s in beams], dtype=torch.long, device=memory.device)
        logits = model.decode(memory.expand(nb, -1, -1), pad.expand(nb, -1), prefix,
                              None if bias is None else bias.expand(nb, -1))[:, -1].float()
        logp = torch.log_softmax(_ban(logits, beams, n), dim=-1)
        if min_len > 0:  # after the softmax: the ban must not renormalise the other words' scores
            logp = _ban(logp, beams, 0, min_len, tok_end)
        total = (scores.unsqueeze(1) + logp).flatten()
        top = torch.topk(total, min(2 * width, total.numel()))
        new_beams, new_scores = [], []
        for score, flat in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            if score == -float("inf"):
                break
            b, w = divmod(flat, logp.shape[1])
            if w == tok_end:
                if len(finished) < width:
                    finished.append((score, beams[b]))
            elif len(new_beams) < width:
                new_beams.append([*beams[b], w])
                new_scores.append(score)
            if len(new_beams) == width and len(finished) >= width:
                break
        best_done = max((s for s, _ in finished), default=-float("inf"))
        if len(finished) >= width or not new_beams or best_done >= max(new_scores):
            break
        beams, scores = new_beams, torch.tensor(new_scores, device=memory.device)
    else:
        finished += list(zip(scores.tolist(), beams, strict=True))
    return max(finished, key=lambda x: x[0])[1] if finished else []


def generate(model, batch: GenBatch, method: str = "greedy", beam_width: int = 4, max_len: int = 30,
             no_repeat_ngram: int = 0, top_p: float = 0.9, seed: int = 0, temperature: float = 1.0,
             min_len: int = 0) -> Generated:
    if method == "greedy":
        return greedy(model, batch, max_len, no_repeat_ngram, min_len)
    if method == "beam":
        return beam_search(model, batch, beam_width, max_len, no_repeat_ngram, min_len)
    if method == "nucleus":
        return nucleus(model, batch, max_len, top_p, seed, no_repeat_ngram, temperature, min_len)
    raise ValueError(f"decoding method {method!r} is not greedy, beam or nucleus")


def generate_with(model, batch: GenBatch, cfg) -> Generated:
    """:func:`generate` with a :class:`~ccrs.config.GeneratorConfig`'s decoding options."""
    return generate(model, batch, cfg.decoding, cfg.beam_width, cfg.max_response_tokens, cfg.no_repeat_ngram,
                    cfg.top_p, cfg.sampling_seed, cfg.temperature, cfg.min_response_tokens)


def _specials(model) -> tuple[int, int]:
    return model.start_id, model.end_id
