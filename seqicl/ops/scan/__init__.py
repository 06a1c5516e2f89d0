"""Gated linear recurrence h_t = a_t * h_{t-1} + b_t (the GILR mixer's scan).

    linear_scan(a, b) -> h        a, b, h: (B, L, D); gradients flow to a and b

Triton for CUDA tensors (or when forced with seqicl.ops.dispatch.force_backend("triton")),
otherwise the pure-torch loop in reference.py.
"""
from __future__ import annotations

import torch

from seqicl.ops.dispatch import use_triton
from seqicl.ops.scan.reference import linear_scan_ref

__all__ = ["linear_scan", "linear_scan_ref"]


def linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if use_triton(a, b):
        # imported lazily: CPU-only runs never need triton
        from seqicl.ops.scan.triton_scan import linear_scan_triton
        return linear_scan_triton(a, b)
    return linear_scan_ref(a, b)
