"""Causal depthwise convolution with a few taps, on (batch, length, channels) tensors: Mamba's and
Hyena's short convolutions and H3's shift filter.

    y[b, t, d] = bias[d] + sum_{j < K} weight[d, j] * x[b, t - (K - 1) + j, d]    (x = 0 before t = 0)

so weight[:, K - 1] multiplies the current step. This is ``nn.Conv1d(D, D, K, groups=D,
padding=K - 1)`` on the transposed input, cut to its first L outputs, and that is one of the two
methods here ("conv1d"). The other ("shift") adds K shifted, scaled copies of x: K elementwise
passes forward and about twice that backward, no transposes, accumulated in float32. A depthwise
conv1d's backward over long sequences is a known slow path on CUDA (pytorch/pytorch#75747);
``bench/short_conv.py`` times both at the RegBench shapes, and METHOD follows what it measured.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

METHODS = ("conv1d", "shift")
# timed on an H100 (bench/results/short-conv-h100-2026-12-06.md): conv1d is 1.6-3.0x faster than
# shift alone and 1.13-1.15x in Mamba's, Hyena's and H3's bf16 steps
METHOD = "conv1d"
# above this many taps (H3's original 64-tap shift filter) "shift" would make K passes over the
# input: those filters always run as conv1d
MAX_SHIFT_TAPS = 8


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                          method: str | None = None) -> torch.Tensor:
    """x: (B, L, D); weight: (D, K); bias: (D,) or None -> (B, L, D) in x's dtype."""
    method = method or METHOD
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if weight.dim() != 2 or weight.shape[0] != x.shape[-1]:
        raise ValueError(f"weight must be (D, K) with D = {x.shape[-1]}, got {tuple(weight.shape)}")
    K = weight.shape[-1]
    if method == "conv1d" or K > MAX_SHIFT_TAPS:
        y = F.conv1d(x.transpose(1, 2), weight.unsqueeze(1), bias, padding=K - 1, groups=x.shape[-1])
        return y[..., :x.shape[1]].transpose(1, 2)
    return _shift_add(x, weight, bias)


def _shift_add(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    L, K = x.shape[1], weight.shape[-1]
    padded = F.pad(x.float(), (0, 0, K - 1, 0))   # K - 1 zero steps before t = 0
    w = weight.float()
    y = padded[:, K - 1:] * w[:, K - 1]
    for j in range(K - 1):
        y = torch.addcmul(y, padded[:, j:j + L], w[:, j])
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def direct_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The same convolution by its definition, one output step at a time: the tests' specification."""
    B, L, D = x.shape
    K = weight.shape[-1]
    steps = []
    for t in range(L):
        acc = torch.zeros(B, D, dtype=x.dtype) if bias is None else bias.expand(B, D).clone()
        for j in range(K):
            s = t - (K - 1) + j
            if s >= 0:
                acc = acc + weight[:, j] * x[:, s]
        steps.append(acc)
    return torch.stack(steps, dim=1)
