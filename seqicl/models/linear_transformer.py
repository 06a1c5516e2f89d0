"""Linear Transformer (Katharopoulos et al. 2020): causal attention with the positive feature map
phi(x) = elu(x) + 1 in place of the softmax, normalised,

    o_t = phi(q_t) sum_{j<=t} phi(k_j)^T v_j  /  phi(q_t) . sum_{j<=t} phi(k_j)

per head, as a recurrence of constant state (seqicl.ops.linear_attention). Learned positions, as
attention."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.linear_attention import linear_attention
from .registry import register


@register("linear_transformer")
class LinearAttention(nn.Module):
    in_default_sweep = False  # a sweep naming no models runs the original table's seven (see registry.py)
    needs_positions = True

    def __init__(self, d_model: int, layer_idx: int = 0, n_heads: int = 2, eps: float = 1e-6):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.eps = n_heads, eps
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # (B, H, L, Dh)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        # the denominator phi(q_t) . sum_{j<=t} phi(k_j) as a running sum in float32, beside the
        # kernel rather than as a column of ones in v: that column would pad a head of 64 values
        # to the kernel's next block (65 -> 128)
        den = (q.float() * k.float().cumsum(dim=2)).sum(-1, keepdim=True)
        y = linear_attention(q, k, v) / (den + self.eps).to(v.dtype)
        return self.out(y.transpose(1, 2).reshape(B, L, D))
