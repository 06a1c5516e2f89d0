"""Gated linear attention (Yang et al. 2024): linear attention whose state decays by a
data-dependent amount per key dimension,

    alpha_t = sigmoid(W_a2 W_a1 x_t)^(1/tau),   S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,   o_t = q_t S_t
    y = out(swish(W_g x) * GroupNorm_h(o))

with a low-rank decay projection (rank 16) and tau = 16, as the paper; keys are d_model * expand_k
wide. The recurrence runs in seqicl.ops.linear_attention."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.linear_attention import linear_attention
from .registry import register


@register("gla")
class GatedLinearAttention(nn.Module):
    in_default_sweep = False  # a sweep naming no models runs the original table's seven (see registry.py)
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, n_heads: int = 2, expand_k: float = 0.5,
                 gate_rank: int = 16, gate_temp: float = 16.0):
        super().__init__()
        d_key = int(d_model * expand_k)
        if d_model % n_heads or d_key % n_heads or d_key < n_heads:
            raise ValueError(f"d_model={d_model} and keys of {d_key} must divide into n_heads={n_heads}")
        self.n_heads, self.d_key, self.gate_temp = n_heads, d_key, gate_temp
        self.q = nn.Linear(d_model, d_key, bias=False)
        self.k = nn.Linear(d_model, d_key, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.decay = nn.Sequential(nn.Linear(d_model, gate_rank, bias=False), nn.Linear(gate_rank, d_key))
        self.gate = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        H = self.n_heads
        heads = lambda t, width: t.view(B, L, H, width // H).transpose(1, 2)  # noqa: E731  (B, H, L, w/H)
        q, k, v = heads(self.q(x), self.d_key), heads(self.k(x), self.d_key), heads(self.v(x), D)
        log_decay = heads(F.logsigmoid(self.decay(x).float()) / self.gate_temp, self.d_key)
        o = linear_attention(q / math.sqrt(self.d_key // H), k, v, log_decay)
        o = F.group_norm(o.transpose(1, 2).reshape(B * L, D).float(), H).view(B, L, D).to(x.dtype)
        return self.out(F.silu(self.gate(x)) * o)
