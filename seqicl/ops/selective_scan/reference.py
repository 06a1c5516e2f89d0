"""Mamba's selective scan as a plain loop over time: the specification, and the implementation
on CPU tensors (triton_selective_scan.py runs on CUDA ones). For every batch, channel e and
state n, with h starting at 0,

    h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t,      y_t = C_t . h_t + D u_t

where delta (the step), B and C depend on the input (Gu & Dao 2023): delta, u (B, L, E);
A (E, N), real and negative; B, C (B, L, N); D (E,).
"""
from __future__ import annotations

import torch


def selective_scan_ref(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                       C: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Returns y (B, L, E) in u's dtype, computed in at least float32."""
    out_dtype = u.dtype
    dtype = torch.promote_types(out_dtype, torch.float32)
    u, delta, A, B, C, D = (x.to(dtype) for x in (u, delta, A, B, C, D))
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])              # (B, E, N)
    ys = []
    for t in range(u.shape[1]):
        dt = delta[:, t].unsqueeze(-1)                               # (B, E, 1)
        h = torch.exp(dt * A) * h + dt * B[:, t].unsqueeze(1) * u[:, t].unsqueeze(-1)
        ys.append(torch.einsum("ben,bn->be", h, C[:, t]) + D * u[:, t])
    return torch.stack(ys, dim=1).to(out_dtype)
