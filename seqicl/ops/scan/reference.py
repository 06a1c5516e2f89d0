"""The specification of the gated linear recurrence, as a plain loop over time.

    h_t = a_t * h_{t-1} + b_t,    h_{-1} = 0,    a, b, h: (B, L, D)

Gradients come from autograd through the loop; the Triton kernel is checked against this.
"""
from __future__ import annotations

import torch


def linear_scan_ref(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t along dim 1, accumulated in float32, returned in the input dtype."""
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"a and b must both be (B, L, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    out_dtype = torch.promote_types(a.dtype, b.dtype)
    # float32 state, as in the kernel, so bf16 inputs do not lose precision step after step
    state_dtype = torch.promote_types(out_dtype, torch.float32)
    h = torch.zeros_like(b[:, 0], dtype=state_dtype)
    steps = []
    for t in range(a.shape[1]):
        h = a[:, t].to(state_dtype) * h + b[:, t].to(state_dtype)
        steps.append(h)
    if not steps:
        return torch.empty_like(b, dtype=out_dtype)
    return torch.stack(steps, dim=1).to(out_dtype)
