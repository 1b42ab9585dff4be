r"""Vocabulary biases computed from the user representation (paper §2.3, Eqs. 9–10; KBRD).

:class:`MultiStyleBias` (CCRS, Eq. 9–10). With p_u ∈ ℝ^d the recommender's user intention (Eq. 8),
n_s learned style embeddings L ∈ ℝ^{d×n_s} and a bilinear selector W^C ∈ ℝ^{d×d}:

.. math::
    \mu_u^m = \operatorname{softmax}(p_u W^C L) \in \Delta^{n_s}        \quad\text{(Eq. 9)}

    g_u = \mu_u^m L^\top \in \mathbb R^d                                   \quad\text{(Eq. 9)}

    F(g_u) = W_2\,\mathrm{ReLU}(W_1 g_u + b_1) + b_2 \in \mathbb R^{|V|}  \quad\text{(Eq. 10)}

The paper writes μ_u^m = p_u W^C L without a normalisation; we apply a softmax so μ_u^m is a
mixture over styles (the paper plots it as one in Fig. 4, and an unnormalised μ would let g_u grow
without bound). F has two fully connected layers d → ``hidden`` → |V|, as KBRD's user→vocabulary
bias (KBRD uses hidden = 512).

Two options against styles collapsing to one (the paper is silent; both off by default):
``temperature`` τ divides the selector's logits (μ = softmax(p_u W^C L / τ); τ > 1 spreads μ), and
:meth:`MultiStyleBias.balance_penalty` is a load-balancing term, log n_s − H(mean of μ over a batch):
0 when the batch uses the styles evenly on average, log n_s when every response takes the same one
style. It leaves each μ free to be peaked (a personal style), unlike an entropy term on each μ.
:meth:`MultiStyleBias.separation_penalty` keeps the styles apart (the paper's intent, issue 33): the
mean squared cosine between the styles' own biases F(L_k) − b₂ (b₂, F's output bias, is shared by
every style and left out), 0 when they are orthogonal, 1 when they all prefer the same words.

:class:`UserVocabBias` is KBRD's single bias F(p_u) (paper "Only-Meta" and ``kbrd_gen``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class UserVocabBias(nn.Module):
    """F(x) = W₂ ReLU(W₁ x + b₁) + b₂: (B, d) → (B, |V|) (KBRD; the F of Eq. 10)."""

    def __init__(self, in_dim: int, vocab_size: int, hidden: int = 512) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.relu(self.hidden(x)))


class MultiStyleBias(nn.Module):
    """Style mixture μ_u^m and vocabulary bias F(g_u) from p_u (Eqs. 9–10; module docstring)."""

    def __init__(self, user_dim: int, vocab_size: int, n_styles: int = 4, hidden: int = 512,
                 temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.styles = nn.Parameter(torch.randn(user_dim, n_styles) * user_dim**-0.5)  # L (d, n_s)
        self.selector = nn.Linear(user_dim, user_dim, bias=False)  # W^C
        self.to_vocab = UserVocabBias(user_dim, vocab_size, hidden)  # F

    def mixture(self, p_u: Tensor) -> Tensor:
        """μ_u^m (B, n_s) = softmax(p_u W^C L) — Eq. 9."""
        return torch.softmax(self.selector(p_u) @ self.styles / self.temperature, dim=-1)

    @staticmethod
    def balance_penalty(mu: Tensor) -> Tensor:
        """log n_s − H(mean_b μ_b): 0 for an even average use of the styles, log n_s for one style."""
        mean = mu.mean(0).clamp_min(1e-12)  # (n_s,)
        return math.log(mu.shape[-1]) + (mean * mean.log()).sum()

    def separation_penalty(self) -> Tensor:
        """mean_{k≠l} cos²(F(L_k) − b₂, F(L_l) − b₂): 0 for orthogonal style biases, 1 for identical ones."""
        n = self.styles.shape[1]
        if n < 2:
            return self.styles.new_zeros(())
        own = self.to_vocab(self.styles.t()) - self.to_vocab.out.bias  # (n_s, |V|)
        unit = own / own.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        cos = unit @ unit.t()  # (n_s, n_s)
        off = ~torch.eye(n, dtype=torch.bool, device=cos.device)
        return cos[off].pow(2).mean()

    def forward(self, p_u: Tensor) -> tuple[Tensor, Tensor]:
        """``(F(g_u) (B, |V|), μ_u^m (B, n_s))`` — Eqs. 9–10."""
        mu = self.mixture(p_u)
        g_u = mu @ self.styles.t()  # (B, d)
        return self.to_vocab(g_u), mu
