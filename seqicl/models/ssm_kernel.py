"""The convolution kernel of a diagonal state-space model (S4D, Gu et al. 2022), shared by
the S4D and H3 mixers.

Per channel h, N/2 complex modes A_n = -exp(log_a_real) + i * a_imag (S4D-Lin init:
a_real = 1/2, a_imag = pi * n), zero-order-hold discretisation with a learned step dt, and
output weights C. The length-L kernel is

    K[h, l] = 2 * Re( sum_n C[h, n] * (exp(dt A[h, n]) - 1) / A[h, n] * exp(dt A[h, n] l) )

(B is folded into C; the factor 2 accounts for the conjugate modes.)
"""
from __future__ import annotations

import math

import torch
from torch import nn


class S4DKernel(nn.Module):
    def __init__(self, channels: int, d_state: int = 64, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 init: str = "lin"):
        """``init``: A_n = -1/2 + i*imag_n over the d_state / 2 modes n, with imag_n = pi*n (S4D-Lin)
        or (N/pi)(N/(2n+1) - 1), N = d_state (S4D-Inv, Gu et al. 2022; the original table's S4D)."""
        super().__init__()
        if init not in ("lin", "inv"):
            raise ValueError(f"S4D init must be lin or inv, got {init!r}")
        modes = max(1, d_state // 2)
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.c_re = nn.Parameter(torch.randn(channels, modes) * 0.5 ** 0.5)
        self.c_im = nn.Parameter(torch.randn(channels, modes) * 0.5 ** 0.5)
        self.log_a_real = nn.Parameter(torch.log(0.5 * torch.ones(channels, modes)))
        n = torch.arange(modes).float()
        imag = math.pi * n if init == "lin" else d_state / math.pi * (d_state / (2 * n + 1) - 1)
        self.a_imag = nn.Parameter(imag.repeat(channels, 1))
        for p in (self.log_dt, self.log_a_real, self.a_imag):  # the dynamics: optim.decay=all leaves them
            p.no_weight_decay = True                          # undecayed, as S4's and the original's groups do

    def forward(self, length: int) -> torch.Tensor:
        """The kernel, (channels, length), float32."""
        dt = self.log_dt.exp().unsqueeze(-1)                           # (H, 1)
        A = torch.complex(-self.log_a_real.exp(), self.a_imag)         # (H, M)
        dtA = A * dt
        C = torch.complex(self.c_re, self.c_im) * (dtA.exp() - 1) / A  # (H, M)
        steps = torch.arange(length, device=dt.device, dtype=torch.float32)
        vander = torch.exp(dtA.unsqueeze(-1) * steps)                  # (H, M, L)
        return 2 * torch.einsum("hm,hml->hl", C, vander).real
