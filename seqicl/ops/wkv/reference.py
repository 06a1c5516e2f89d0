"""RWKV-4's wkv operator as a plain loop over time: the specification the Triton kernel is tested
against, and the implementation used on CPU.

With w = -exp(time_decay) (the state decays; ``decay_sign=+1`` gives w = +exp(time_decay), the
original seq_icl RWKV's sign, under which the past grows instead) and u = time_first, for every
batch and channel

    y_t = (sum_{i<t} e^{(t-1-i) w + k_i} v_i + e^{u + k_t} v_t)
        / (sum_{i<t} e^{(t-1-i) w + k_i}     + e^{u + k_t})

The state is kept as (a, b, p) meaning numerator a * e^p and denominator b * e^p, with p the
running largest exponent, so large k neither overflows nor underflows (as RWKV-4's CUDA kernel).
"""
from __future__ import annotations

import torch

# log(0) for the empty state: finite, so that the difference of two such values is 0, not NaN
EMPTY_LOG = -1e38


def wkv_ref(time_decay: torch.Tensor, time_first: torch.Tensor, k: torch.Tensor,
            v: torch.Tensor, decay_sign: float = -1.0) -> torch.Tensor:
    """time_decay, time_first: (C,); k, v: (B, T, C). Returns y (B, T, C) in k's dtype."""
    # bf16 inputs are computed in float32; float64 stays float64 (tests)
    out_dtype = k.dtype
    dtype = torch.promote_types(out_dtype, torch.float32)
    w = decay_sign * torch.exp(time_decay.to(dtype))
    u = time_first.to(dtype)
    k, v = k.to(dtype), v.to(dtype)
    batch, steps, channels = k.shape

    a = k.new_zeros(batch, channels)
    b = k.new_zeros(batch, channels)
    p = k.new_full((batch, channels), EMPTY_LOG)
    outputs = []
    for t in range(steps):
        k_t, v_t = k[:, t], v[:, t]
        # output: the state up to t-1 plus the current token weighted by e^{u + k_t}
        current = u + k_t
        q = torch.maximum(p, current)
        old, new = torch.exp(p - q), torch.exp(current - q)
        outputs.append((old * a + new * v_t) / (old * b + new))
        # state update: decay by e^w, then add the current token weighted by e^{k_t}
        decayed = p + w
        q = torch.maximum(decayed, k_t)
        old, new = torch.exp(decayed - q), torch.exp(k_t - q)
        a = old * a + new * v_t
        b = old * b + new
        p = q
    return torch.stack(outputs, dim=1).to(out_dtype)
