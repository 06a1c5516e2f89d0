"""RWKV-4 time mixing (Peng et al. 2023): token shift, receptance / key / value, and the
wkv recurrence with a per-channel decay w = -exp(time_decay) and a bonus for the current
token (time_first), in log space for stability. Triton wkv kernel on GPU (seqicl.ops.wkv).
The channel-mixing half of an RWKV block is the backbone's MLP.

``variant="original"``: the original seq_icl table's RWKV, which passed w = +exp(time_decay) (the
past grows at every step, so the earliest tokens dominate) and drew time_decay, time_first and the
three token-shift mixes from N(0, 1) (so the mixes are not confined to [0, 1])."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.wkv import wkv
from .registry import register


@register("rwkv")
class RWKVTimeMix(nn.Module):
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, dropout: float = 0.0, variant: str = "paper"):
        super().__init__()
        if variant not in ("paper", "original"):
            raise ValueError(f"RWKV variant must be paper or original, got {variant!r}")
        self.decay_sign = -1.0 if variant == "paper" else 1.0
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
        if variant == "original":
            with torch.no_grad():
                for p in (self.time_decay, self.time_first, self.mix_k, self.mix_v, self.mix_r):
                    p.normal_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev = F.pad(x, (0, 0, 1, -1))  # token shift: x_{t-1}, zeros at t = 0
        k = self.key(x * self.mix_k + prev * (1 - self.mix_k))
        v = self.value(x * self.mix_v + prev * (1 - self.mix_v))
        r = torch.sigmoid(self.receptance(x * self.mix_r + prev * (1 - self.mix_r)))
        y = wkv(self.time_decay, self.time_first, k.float(), v.float(), self.decay_sign).to(x.dtype)
        return self.out(self.drop(r * y))
