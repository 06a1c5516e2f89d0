"""RWKV-4's wkv operator: Triton on CUDA tensors (or when forced), the torch reference otherwise."""
from __future__ import annotations

import torch

from seqicl.ops.dispatch import use_triton
from seqicl.ops.wkv.reference import wkv_ref

__all__ = ["wkv", "wkv_ref"]


def wkv(time_decay: torch.Tensor, time_first: torch.Tensor, k: torch.Tensor,
        v: torch.Tensor, decay_sign: float = -1.0) -> torch.Tensor:
    """time_decay, time_first: (C,); k, v: (B, T, C). Returns y (B, T, C) in k's dtype, with
    decay w = decay_sign * exp(time_decay) and bonus u = time_first (formula in reference.py)."""
    if use_triton(k, v):
        # imported here so that CPU runs never load triton unless forced
        from seqicl.ops.wkv.triton_wkv import wkv_triton
        return wkv_triton(time_decay, time_first, k, v, decay_sign)
    return wkv_ref(time_decay, time_first, k, v, decay_sign)
