"""Causal linear attention with a decay, as a plain loop over time: the specification of the
linear-attention family, what CPU tensors run, and what the chunked Triton kernel
(triton_linear_attention.py) is tested against.

For every batch and head, with a state S (K x V) that starts at zero,

    S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,      o_t = q_t S_t

so o_t = sum_{j<=t} (q_t * exp(G_t - G_j)) . k_j  v_j  with G_t = g_1 + ... + g_t. The log-decay g
(never positive) is absent for linear attention (g = 0), one constant per head for RetNet, and one
value per step and key dimension for GLA.
"""
from __future__ import annotations

import torch


def linear_attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         log_decay: torch.Tensor | None = None) -> torch.Tensor:
    """q, k: (B, H, L, K); v: (B, H, L, V); log_decay: None, (H,) or (B, H, L, K).
    Returns o (B, H, L, V) in q's dtype (computed in at least float32)."""
    out_dtype = q.dtype
    dtype = torch.promote_types(out_dtype, torch.float32)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    batch, heads, steps, _ = q.shape
    if log_decay is not None and log_decay.dim() == 1:  # one decay per head, for every step and key
        log_decay = log_decay.to(dtype).view(1, heads, 1, 1).expand(batch, heads, steps, q.shape[-1])
    state = q.new_zeros(batch, heads, q.shape[-1], v.shape[-1])
    outputs = []
    for t in range(steps):
        if log_decay is not None:
            state = state * log_decay[:, :, t].to(dtype).exp().unsqueeze(-1)
        state = state + k[:, :, t].unsqueeze(-1) * v[:, :, t].unsqueeze(-2)
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t], state))
    return torch.stack(outputs, dim=2).to(out_dtype)
