"""Mamba's block (Gu & Dao 2023) as a mixer: a selective SSM whose step delta, input matrix B and
output matrix C are computed from the input, after a short causal depthwise convolution, and
gated by a second branch:

    x, z = in(x);  x = silu(conv(x));  delta = softplus(W_dt (W_r x) + b);  B = W_B x;  C = W_C x
    y = out(selective_scan(x, delta, A, B, C, D) * silu(z)),   A = -exp(A_log), A_log from log(1..N)

The scan runs in seqicl.ops.selective_scan: its Triton kernel on CUDA tensors, a torch loop on CPU."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.selective_scan import selective_scan
from ..ops.short_conv import causal_depthwise_conv
from .registry import register


@register("mamba")
class Mamba(nn.Module):
    in_default_sweep = False  # a sweep naming no models runs the original table's seven (see registry.py)
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 dt_rank: int | None = None, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        inner = expand * d_model
        self.d_state, self.dt_rank = d_state, dt_rank or math.ceil(d_model / 16)
        self.inp = nn.Linear(d_model, 2 * inner, bias=False)
        self.conv = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.A_log.no_weight_decay = True
        self.D = nn.Parameter(torch.ones(inner))
        self.out = nn.Linear(inner, d_model, bias=False)
        self.dt_range = (dt_min, dt_max)
        self.after_init()

    def after_init(self) -> None:
        """The step starts log-uniform in [dt_min, dt_max]: dt_proj's bias is softplus's inverse of
        it. Called again by the language model after its N(0, 0.02) pass, which zeroes biases."""
        lo, hi = self.dt_range
        dt = torch.exp(torch.rand(self.dt_proj.out_features) * (math.log(hi) - math.log(lo)) + math.log(lo))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, z = self.inp(x).chunk(2, dim=-1)
        u = F.silu(causal_depthwise_conv(u, self.conv.weight.squeeze(1), self.conv.bias))
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt).float())
        y = selective_scan(u, delta, -torch.exp(self.A_log.float()), B, C, self.D)
        return self.out(y * F.silu(z))
