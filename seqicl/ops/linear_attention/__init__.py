"""Causal linear attention with a decay (linear transformer, RetNet, GLA):

    linear_attention(q, k, v, log_decay=None) -> o      formula in reference.py

Triton on CUDA tensors (or when forced), the chunked kernel of triton_linear_attention.py; the
torch loop of reference.py otherwise.
"""
from __future__ import annotations

import torch

from seqicl.ops.dispatch import use_triton
from seqicl.ops.linear_attention.reference import linear_attention_ref

__all__ = ["linear_attention", "linear_attention_ref"]


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     log_decay: torch.Tensor | None = None) -> torch.Tensor:
    """q, k: (B, H, L, K); v: (B, H, L, V); log_decay: None, (H,) or (B, H, L, K), never
    positive. Returns o (B, H, L, V) in q's dtype."""
    if use_triton(q, k, v):
        # imported here so that CPU runs never load triton unless forced
        from seqicl.ops.linear_attention.triton_linear_attention import linear_attention_triton
        return linear_attention_triton(q, k, v, log_decay)
    return linear_attention_ref(q, k, v, log_decay)
