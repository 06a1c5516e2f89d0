"""LRU mixer: linear recurrent unit (Orvieto et al. 2023). A complex diagonal recurrence

    h_t = lambda * h_{t-1} + gamma * (B x_t),   lambda = exp(-exp(nu_log) + i exp(theta_log))
    y_t = Re(C h_t) + D * x_t

with the ring initialisation of section 3.2 (|lambda| uniform on [r_min, r_max], phase in
[0, max_phase]) and the normalisation gamma = sqrt(1 - |lambda|^2). The scan runs on a Triton
kernel on GPU (seqicl.ops.complex_scan), with lambda passed per channel."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.complex_scan import complex_scan
from .registry import register


@register("lru")
class LRU(nn.Module):
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, d_state: int | None = None, r_min: float = 0.9,
                 r_max: float = 0.999, max_phase: float = 2 * math.pi, dropout: float = 0.0):
        super().__init__()
        n = d_state or d_model
        u1, u2 = torch.rand(n), torch.rand(n)
        nu = -0.5 * torch.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2)  # -log|lambda|
        self.nu_log = nn.Parameter(nu.log())
        self.theta_log = nn.Parameter((max_phase * u2).clamp_min(1e-4).log())
        self.gamma_log = nn.Parameter(0.5 * torch.log(1 - torch.exp(-2 * nu)))
        self.b_re = nn.Parameter(torch.randn(n, d_model) / math.sqrt(2 * d_model))
        self.b_im = nn.Parameter(torch.randn(n, d_model) / math.sqrt(2 * d_model))
        self.c_re = nn.Parameter(torch.randn(d_model, n) / math.sqrt(n))
        self.c_im = nn.Parameter(torch.randn(d_model, n) / math.sqrt(n))
        self.skip = nn.Parameter(torch.randn(d_model))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        modulus = torch.exp(-self.nu_log.exp())
        theta = self.theta_log.exp()
        gamma = self.gamma_log.exp()
        b_re = F.linear(xf, self.b_re) * gamma
        b_im = F.linear(xf, self.b_im) * gamma
        h_re, h_im = complex_scan(modulus * torch.cos(theta), modulus * torch.sin(theta), b_re, b_im)
        y = F.linear(h_re, self.c_re) - F.linear(h_im, self.c_im) + xf * self.skip
        return self.out(self.drop(F.gelu(y)).to(x.dtype))
