"""Causal long convolution through the FFT (cuFFT on GPU), for S4D and H3.

    y[b, t, h] = sum_{s <= t} k[h, s] * u[b, t - s, h]

Zero-padding to 2L makes the circular FFT convolution a linear (hence causal) one.
"""
from __future__ import annotations

import torch


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """u: (B, L, H), k: (H, L) -> (B, L, H), computed in at least float32."""
    L = u.shape[1]
    n = 2 * L
    dtype = torch.promote_types(u.dtype, torch.float32)
    uf = torch.fft.rfft(u.to(dtype).transpose(1, 2), n=n)   # (B, H, n/2+1)
    kf = torch.fft.rfft(k.to(dtype), n=n)                   # (H, n/2+1)
    y = torch.fft.irfft(uf * kf, n=n)[..., :L]             # (B, H, L)
    return y.transpose(1, 2).to(u.dtype)


def direct_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The same convolution by its definition, O(L^2): the specification for tests."""
    B, L, H = u.shape
    y = torch.zeros_like(u)
    for t in range(L):
        y[:, t] = (u[:, : t + 1].flip(1) * k.T[: t + 1]).sum(1)
    return y
