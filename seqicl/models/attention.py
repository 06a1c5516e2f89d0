"""Causal multi-head self-attention (the Transformer's mixer)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register


@register("transformer")
class CausalSelfAttention(nn.Module):
    original_small_out = True  # model.init=original: its out projection starts at N(0, 0.01), as the original's
    needs_positions = True

    def __init__(self, d_model: int, layer_idx: int = 0, n_heads: int = 2, dropout: float = 0.0,
                 bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, Dh)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, L, D))
