"""GILR mixer: gated impulse linear recurrence (Martin & Cundy 2018),

    f = sigmoid(W_f x),  h_t = f_t * h_{t-1} + (1 - f_t) * v_t,  y = out(LayerNorm(dropout(h * silu(W_g x))))

with the scan on a Triton kernel on GPU (seqicl.ops.scan)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.scan import linear_scan
from .registry import register


@register("gilr")
class GILR(nn.Module):
    original_small_out = True  # model.init=original: its out projection starts at N(0, 0.01), as the original's
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, expand: int = 1, dropout: float = 0.0):
        super().__init__()
        inner = expand * d_model
        self.proj = nn.Linear(d_model, 3 * inner)
        self.norm = nn.LayerNorm(inner)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(inner, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, v, gate = self.proj(x).chunk(3, dim=-1)
        f = torch.sigmoid(f.float())
        h = linear_scan(f, (1 - f) * v.float()).to(x.dtype)
        return self.out(self.norm(self.drop(h * F.silu(gate))))  # dropout before the norm, as the original
