"""The specification of the complex diagonal recurrence, as a plain loop over time.

    h_t = lambda * h_{t-1} + b_t        (complex multiply, per channel; h_{-1} = 0)

Real and imaginary parts travel as separate real tensors, the way the LRU mixer stores them.
Gradients come from autograd through the loop.
"""
from __future__ import annotations

import torch
from torch import Tensor


def complex_scan_ref(lam_re: Tensor, lam_im: Tensor, b_re: Tensor, b_im: Tensor) -> tuple[Tensor, Tensor]:
    """lam_re, lam_im: (D,); b_re, b_im: (B, L, D). Returns (h_re, h_im), each (B, L, D)."""
    batch, length, channels = b_re.shape
    dtype = b_re.dtype
    # at least float32 state, so a bf16 input does not lose precision step after step (as in the
    # kernel); float64 inputs stay float64 for high-precision checks
    acc = torch.promote_types(torch.promote_types(dtype, lam_re.dtype), torch.float32)
    state_re = b_re.new_zeros(batch, channels, dtype=acc)
    state_im = b_re.new_zeros(batch, channels, dtype=acc)
    lr, li = lam_re.to(acc), lam_im.to(acc)
    out_re, out_im = [], []
    for t in range(length):
        state_re, state_im = (
            lr * state_re - li * state_im + b_re[:, t].to(acc),
            lr * state_im + li * state_re + b_im[:, t].to(acc),
        )
        out_re.append(state_re)
        out_im.append(state_im)
    if length == 0:
        return b_re.new_zeros(batch, 0, channels), b_im.new_zeros(batch, 0, channels)
    return torch.stack(out_re, dim=1).to(dtype), torch.stack(out_im, dim=1).to(dtype)
