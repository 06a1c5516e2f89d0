"""Mamba's selective scan: ``selective_scan(u, delta, A, B, C, D) -> y`` (formula in reference.py).

    u, delta: (B, L, E);  A: (E, N), real and negative;  B, C: (B, L, N);  D: (E,)

Triton for CUDA tensors (or when forced with seqicl.ops.dispatch.force_backend("triton")),
otherwise the pure-torch loop in reference.py. Differentiable in all six inputs.
"""
from __future__ import annotations

import torch

from seqicl.ops.dispatch import use_triton
from seqicl.ops.selective_scan.reference import selective_scan_ref

__all__ = ["selective_scan", "selective_scan_ref"]


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Returns y (B, L, E) in u's dtype."""
    if use_triton(u, delta, B, C):
        # imported lazily: CPU-only runs never need triton
        from seqicl.ops.selective_scan.triton_selective_scan import selective_scan_triton
        return selective_scan_triton(u, delta, A, B, C, D)
    return selective_scan_ref(u, delta, A, B, C, D)
