"""S4D mixer: a diagonal state-space layer per channel, applied as a long convolution."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.fftconv import fft_conv
from .registry import register
from .ssm_kernel import S4DKernel


@register("s4d")
class S4D(nn.Module):
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, d_state: int = 64, dt_min: float = 1e-3,
                 dt_max: float = 1e-1, dropout: float = 0.0, init: str = "lin"):
        super().__init__()
        self.kernel = S4DKernel(d_model, d_state, dt_min, dt_max, init)
        self.skip = nn.Parameter(torch.randn(d_model))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = fft_conv(x, self.kernel(x.shape[1])) + x * self.skip  # (B, L, D)
        return self.out(self.drop(F.gelu(y)))
