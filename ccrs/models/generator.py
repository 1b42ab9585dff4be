r"""The dialogue generator of CCRS (paper §2.3): a Transformer seq2seq with a user/style vocabulary bias.

    model = Generator(cfg.generator, vocab_size=len(tok), user_dim=128, pad_id=tok.pad_id)
    logits = model(batch)                     # (B, T, |V|): W^G q + F(·) + b   (Eq. 10, before softmax)
    bias, mixture = model.vocab_bias(p_u)     # F(g_u) (B, |V|) and μ_u^m (B, n_s) for ``ccrs``

Encoder–decoder as KBRD's (ParlAI's post-norm Transformer: sinusoidal positions, embeddings scaled
by √d, ReLU FFN). The output projection W^G of Eq. 10 is tied to the token embedding (KBRD does the
same), and b is a learned per-word bias.

Variants (``cfg.variant``), one class:

``ccrs``
    :class:`~ccrs.nn.style_bias.MultiStyleBias`: p_dial = softmax(W^G q + F(g_u) + b), g_u the style
    mixture of Eq. 9. Meta-trained. With ``style_with_user_bias`` (beyond the paper) KBRD's F'(p_u)
    is added too: p_dial = softmax(W^G q + F(g_u) + F'(p_u) + b).
``only_meta`` / ``kbrd_gen``
    KBRD's single bias F(p_u) (:class:`~ccrs.nn.style_bias.UserVocabBias`); ``only_meta`` is
    meta-trained (paper "Only-Meta"), ``kbrd_gen`` trained plainly (KBRD).
``transformer``
    No bias: p_dial = softmax(W^G q + b).

Which variants are meta-trained is decided by the driver (``ray_jobs/train_generator.py`` for meta,
``ccrs train gen`` for plain), not by the module: the parameters are the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ccrs.config import GeneratorConfig
from ccrs.data.gen_examples import GenBatch
from ccrs.nn.style_bias import MultiStyleBias, UserVocabBias

GEN_VARIANTS = ("ccrs", "only_meta", "kbrd_gen", "transformer")
META_VARIANTS = ("ccrs", "only_meta")


def sinusoidal_positions(n: int, d: int) -> Tensor:
    """(n, d) fixed sinusoidal position codes (Vaswani et al.; ParlAI's default)."""
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    out = torch.zeros(n, d)
    out[:, 0::2] = torch.sin(pos * div)
    out[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return out


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, vocab_size: int, user_dim: int, pad_id: int = 0, start_id: int = 1,
                 end_id: int = 2) -> None:
        super().__init__()
        if cfg.variant not in GEN_VARIANTS:
            raise ValueError(f"generator variant {cfg.variant!r} is not one of {GEN_VARIANTS}")
        self.cfg, self.vocab_size = cfg, vocab_size
        self.pad_id, self.start_id, self.end_id = pad_id, start_id, end_id
        d = cfg.word_dim
        self.token_embedding = nn.Embedding(vocab_size, d, padding_idx=pad_id)
        nn.init.normal_(self.token_embedding.weight, std=d**-0.5)
        with torch.no_grad():
            self.token_embedding.weight[pad_id].zero_()
        n_pos = max(cfg.max_context_tokens, cfg.max_response_tokens) + 2
        self.register_buffer("positions", sinusoidal_positions(n_pos, d), persistent=False)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.ffn_dim, cfg.dropout, batch_first=True),
            cfg.n_layers, enable_nested_tensor=False,
        )
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d, cfg.n_heads, cfg.ffn_dim, cfg.dropout, batch_first=True), cfg.n_layers
        )
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))  # b of Eq. 10
        self.style_bias = MultiStyleBias(user_dim, vocab_size, cfg.n_styles, cfg.bias_hidden,
                                         cfg.style_temperature) if cfg.variant == "ccrs" else None
        self.user_bias = (UserVocabBias(user_dim, vocab_size, cfg.bias_hidden)
                          if cfg.variant in ("only_meta", "kbrd_gen") or (cfg.variant == "ccrs" and cfg.style_with_user_bias)
                          else None)
        self.dropout = nn.Dropout(cfg.dropout)

    # -- pieces ---------------------------------------------------------------------------------
    def _embed(self, ids: Tensor) -> Tensor:
        x = self.token_embedding(ids) * math.sqrt(self.cfg.word_dim) + self.positions[: ids.shape[1]]
        return self.dropout(x)

    def encode(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """Memory (B, Lc, d) and its padding mask (B, Lc) for the dialogue history."""
        pad = context.eq(self.pad_id)
        pad = pad & ~pad.all(dim=1, keepdim=True)  # an empty history still attends to its pad token
        return self.encoder(self._embed(context), src_key_padding_mask=pad), pad

    def vocab_bias(self, p_u: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """``(bias (B, |V|) or None, μ_u^m (B, n_s) or None)``: F(g_u) (Eqs. 9–10) or F(p_u) (KBRD)."""
        if self.style_bias is not None:
            bias, mu = self.style_bias(p_u)
            return (bias if self.user_bias is None else bias + self.user_bias(p_u)), mu
        if self.user_bias is not None:
            return self.user_bias(p_u), None
        return None, None

    def decode(self, memory: Tensor, memory_pad: Tensor, prefix: Tensor, bias: Tensor | None) -> Tensor:
        """Logits (B, T, |V|) of the next word after every prefix position: W^G q + F(·) + b (Eq. 10)."""
        t = prefix.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=prefix.device), diagonal=1)
        q = self.decoder(self._embed(prefix), memory, tgt_mask=causal, tgt_key_padding_mask=prefix.eq(self.pad_id),
                         memory_key_padding_mask=memory_pad)  # (B, T, d)
        logits = q @ self.token_embedding.weight.t() + self.output_bias  # W^G tied to the embedding
        if bias is not None:
            logits = logits + bias.unsqueeze(1)
        return logits

    # -- training -------------------------------------------------------------------------------
    def forward(self, batch: GenBatch, with_penalty: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Teacher-forced logits (B, T, |V|) for ``batch.response_out``; with ``with_penalty`` also
        the regulariser to add to the loss (``generator.style_balance`` × the styles' balance penalty
        + ``generator.style_separation`` × their separation penalty)."""
        memory, memory_pad = self.encode(batch.context)
        bias, mu = self.vocab_bias(batch.user_vec)
        logits = self.decode(memory, memory_pad, batch.response_in, bias)
        if not with_penalty:
            return logits
        penalty = logits.new_zeros(())
        if mu is not None and self.cfg.style_balance > 0:
            penalty = penalty + self.cfg.style_balance * MultiStyleBias.balance_penalty(mu)
        if self.style_bias is not None and self.cfg.style_separation > 0:
            penalty = penalty + self.cfg.style_separation * self.style_bias.separation_penalty()
        return logits, penalty

    def token_nll(self, batch: GenBatch, logits: Tensor | None = None) -> tuple[Tensor, int]:
        """(sum of token negative log-likelihoods, number of target tokens), pads excluded."""
        logits = self(batch) if logits is None else logits
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.response_out.reshape(-1),
                              ignore_index=self.pad_id, reduction="sum")
        return nll, int(batch.response_out.ne(self.pad_id).sum())


GEN_CHECKPOINT_FORMAT = "ccrs.generator/1"


def build_generator(cfg: GeneratorConfig, tokenizer, user_dim: int) -> Generator:
    return Generator(cfg, len(tokenizer), user_dim, tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id)


def generator_payload(model: Generator, cfg, tokenizer, user_dim: int, extra: dict | None = None) -> dict:
    """A safe-loadable checkpoint: weights, the whole config, the vocabulary (plain lists)."""
    return {"format": GEN_CHECKPOINT_FORMAT, "config": cfg.to_dict(), "state_dict": model.state_dict(),
            "tokenizer": tokenizer.to_dict(), "user_dim": user_dim, **(extra or {})}


def load_generator(uri, map_location: str = "cpu"):
    """``(model in eval mode, CCRSConfig, WordTokenizer, payload)`` from a generator checkpoint."""
    from ccrs.checkpoint import CheckpointError, load_checkpoint
    from ccrs.config import config_from_dict
    from ccrs.data.tokenizer import WordTokenizer

    payload = load_checkpoint(uri, map_location)
    if payload.get("format") != GEN_CHECKPOINT_FORMAT:
        raise CheckpointError(f"{uri}: format {payload.get('format')!r} is not a generator checkpoint")
    cfg = config_from_dict(payload["config"])
    tok = WordTokenizer.from_dict(payload["tokenizer"])
    model = build_generator(cfg.generator, tok, payload["user_dim"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{uri}: weights do not fit the generator config ({str(exc).splitlines()[0]})") from None
    return model.eval(), cfg, tok, payload
