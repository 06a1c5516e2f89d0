"""H3 mixer (Fu et al. 2023) with one-dimensional heads: q, k, v projections; a shift SSM
on k (a learned causal filter over the last few positions); k * v; a diagonal SSM over
that product (long convolution); multiplicative gating by q; output projection."""
from __future__ import annotations

import torch
from torch import nn

from ..ops.fftconv import fft_conv
from ..ops.short_conv import causal_depthwise_conv
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
        L = x.shape[1]
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        # k_shift[t] = sum_j shift[:, j] * k[t - j]: the convolution's last tap is the current step
        kv = causal_depthwise_conv(k, self.shift.flip(-1)) * v
        y = fft_conv(kv, self.diag(L)) + kv * self.skip
        return self.out(self.drop(q * y))
