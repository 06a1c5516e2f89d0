"""RWKV-4 time mixing (Peng et al. 2023): token shift, receptance / key / value, and the
wkv recurrence with a per-channel decay w = -exp(time_decay) and a bonus for the current
token (time_first), in log space for stability. Triton wkv kernel on GPU (seqicl.ops.wkv).
The channel-mixing half of an RWKV block is the backbone's MLP."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.wkv import wkv
from .registry import register


@register("rwkv")
class RWKVTimeMix(nn.Module):
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, dropout: float = 0.0):
        super().__init__()
        ramp = torch.arange(d_model).float() / max(1, d_model - 1)
        # decays from fast (-5) to slow (+3) across channels, as RWKV-4 initialises them
        self.time_decay = nn.Parameter(-5 + 8 * ramp ** 0.7)
        zigzag = (torch.arange(d_model) % 3 - 1).float() * 0.5
        self.time_first = nn.Parameter(torch.full((d_model,), 0.3).log() + zigzag)
        self.mix_k = nn.Parameter(ramp.clone())
        self.mix_v = nn.Parameter(ramp.clone() + 0.3 * (1 - ramp))
        self.mix_r = nn.Parameter(0.5 * ramp)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev = F.pad(x, (0, 0, 1, -1))  # token shift: x_{t-1}, zeros at t = 0
        k = self.key(x * self.mix_k + prev * (1 - self.mix_k))
        v = self.value(x * self.mix_v + prev * (1 - self.mix_v))
        r = torch.sigmoid(self.receptance(x * self.mix_r + prev * (1 - self.mix_r)))
        y = wkv(self.time_decay, self.time_first, k.float(), v.float()).to(x.dtype)
        return self.out(self.drop(r * y))
