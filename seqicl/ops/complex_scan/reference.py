"""The specification of the complex diagonal recurrence, as a plain loop over time.

    h_t = lambda * h_{t-1} + b_t        (complex multiply, per channel; h_{-1} = 0)

b and h are real tensors of shape (B, L, 2, D) with the real part at index 0 of dim 2 and the
imaginary part at index 1: the LRU mixer makes b with one GEMM and reads h with one GEMM in this
layout. Gradients come from autograd through the loop.
"""
from __future__ import annotations

import torch
from torch import Tensor


def complex_scan_ref(lam_re: Tensor, lam_im: Tensor, b: Tensor) -> Tensor:
    """lam_re, lam_im: (D,); b: (B, L, 2, D) as [real, imaginary]. Returns h, (B, L, 2, D)."""
    batch, length, _, channels = b.shape
    # at least float32 state, so a bf16 input does not lose precision step after step (as in the
    # kernel); float64 inputs stay float64 for high-precision checks
    acc = torch.promote_types(torch.promote_types(b.dtype, lam_re.dtype), torch.float32)
    lr, li = lam_re.to(acc), lam_im.to(acc)
    h_re = b.new_zeros(batch, channels, dtype=acc)
    h_im = b.new_zeros(batch, channels, dtype=acc)
    out = []
    for t in range(length):
        b_re, b_im = b[:, t, 0].to(acc), b[:, t, 1].to(acc)
        h_re, h_im = lr * h_re - li * h_im + b_re, lr * h_im + li * h_re + b_im
        out.append(torch.stack([h_re, h_im], dim=1))
    if length == 0:
        return b.new_zeros(batch, 0, 2, channels)
    return torch.stack(out, dim=1).to(b.dtype)
