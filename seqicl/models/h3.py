"""H3 mixer (Fu et al. 2023) with one-dimensional heads: q, k, v projections; a shift SSM
on k (a learned causal filter over the last few positions); k * v; a diagonal SSM over
that product (long convolution); multiplicative gating by q; output projection."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.fftconv import fft_conv
from .registry import register
from .ssm_kernel import S4DKernel


@register("h3")
class H3(nn.Module):
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, d_state: int = 64, shift_size: int = 4,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, dropout: float = 0.0):
        super().__init__()
        self.qkv = nn.Linear(d_model, 3 * d_model)
        # shift SSM: its kernel is a learned filter of shift_size taps (the state is a shift register)
        self.shift = nn.Parameter(torch.randn(d_model, shift_size) / shift_size ** 0.5)
        self.diag = S4DKernel(d_model, d_state, dt_min, dt_max)
        self.skip = nn.Parameter(torch.randn(d_model))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        taps = self.shift.shape[1]
        # causal depthwise conv: k_shift[t] = sum_j shift[:, j] * k[t - j]
        k = F.conv1d(F.pad(k.transpose(1, 2), (taps - 1, 0)), self.shift.flip(-1).unsqueeze(1), groups=D)
        kv = k.transpose(1, 2) * v
        y = fft_conv(kv, self.diag(L)) + kv * self.skip
        return self.out(self.drop(q * y))
