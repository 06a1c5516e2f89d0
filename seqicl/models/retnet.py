"""RetNet's multi-scale retention (Sun et al. 2023): per head a fixed decay gamma_h = 1 - 2^(-5-h),

    o_t = sum_{j<=t} gamma_h^(t-j) (q_t . k_j) v_j,    y = out(swish(W_g x) * GroupNorm_h(o))

as a recurrence of constant state (seqicl.ops.linear_attention); q scaled by 1/sqrt(d_head). The
paper's xPos rotation of q and k is left out: the decays already tell positions apart."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.linear_attention import linear_attention
from .registry import register


@register("retnet")
class MultiScaleRetention(nn.Module):
    in_default_sweep = False  # a sweep naming no models runs the original table's seven (see registry.py)
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, n_heads: int = 2):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.gate = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        gammas = 1 - 2.0 ** (-5 - torch.arange(n_heads, dtype=torch.float32))
        self.register_buffer("log_decay", gammas.log(), persistent=False)  # fixed, not learned

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).view(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)  # (B, H, L, Dh)
        o = linear_attention(q / math.sqrt(D // H), k, v, self.log_decay)
        o = F.group_norm(o.transpose(1, 2).reshape(B * L, D).float(), H).view(B, L, D).to(x.dtype)  # per head
        return self.out(F.silu(self.gate(x)) * o)
