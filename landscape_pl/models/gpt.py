"""A small GPT-style decoder: the transformer of the next-token experiments, small enough for a CPU.

Token and position embeddings, pre-LayerNorm blocks (causal self-attention through
``scaled_dot_product_attention``, then a GELU MLP), a final LayerNorm, and logits read out by the
token embedding itself (tied input and output embeddings: one weight, one state-dict entry), scaled
by 1/sqrt(width): unscaled, N(0, 1) embeddings start with logits of scale sqrt(width) and the
Markov-chain endpoints train to a loss of 1.1-1.4 instead of 0.8-0.9 in the same steps. Written
the way such models usually are (one stacked query/key/value projection, split, heads made by a
reshape), so that its permutation spec is derived from the traced graph like any user's transformer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from landscape_pl.models.base import Architecture


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: each position attends to itself and the positions before it."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.size()
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """x + attention(LN(x)), then x + MLP(LN(x)): the residual stream is never normalized in place."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(width), CausalSelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(Architecture):
    """Tokens (batch, length) -> next-token logits (batch, length, vocab_size); ``length`` <= ``context``."""

    def __init__(self, vocab_size: int = 16, context: int = 32, width: int = 64, depth: int = 2, heads: int = 4,
                 mlp_ratio: int = 4) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*[Block(width, heads, mlp_ratio * width) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.scale = width**-0.5  # logits of unit scale from N(0, 1) embeddings (PyTorch's init, which init_seed redraws)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.norm(self.blocks(self.token(tokens) + self.position(positions)))
        return F.linear(x, self.token.weight) * self.scale
