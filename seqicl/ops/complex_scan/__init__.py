"""Complex diagonal linear recurrence of the LRU mixer (Orvieto et al. 2023):
h_t = lambda * h_{t-1} + b_t per channel, with a decay lambda that is constant over time.

Inputs and outputs are packed real tensors of shape (B, L, 2, D): index 0 of dim 2 holds the
real part, index 1 the imaginary part (the layout one GEMM over 2D output features produces)."""
from __future__ import annotations

from torch import Tensor

from seqicl.ops.dispatch import use_triton
from seqicl.ops.complex_scan.reference import complex_scan_ref

__all__ = ["complex_scan", "complex_scan_ref"]


def complex_scan(lam_re: Tensor, lam_im: Tensor, b: Tensor) -> Tensor:
    """lam_re, lam_im: (D,) decay; b: (B, L, 2, D) input, [real, imaginary] along dim 2.
    Returns h, (B, L, 2, D) in the same layout, contiguous.

    Differentiable in all three inputs. Triton for CUDA tensors (or when forced), else the
    pure-torch reference.
    """
    if b.dim() != 4 or b.shape[2] != 2:
        raise ValueError(f"b must be (B, L, 2, D) with real and imaginary parts on dim 2, got {tuple(b.shape)}")
    channels = b.shape[-1]
    if lam_re.shape != (channels,) or lam_im.shape != (channels,):
        raise ValueError(
            f"lam_re and lam_im must be ({channels},), got {tuple(lam_re.shape)} and {tuple(lam_im.shape)}"
        )
    if use_triton(b):
        # imported here so CPU-only runs never load triton
        from seqicl.ops.complex_scan.triton_complex_scan import complex_scan_triton
        return complex_scan_triton(lam_re, lam_im, b)
    return complex_scan_ref(lam_re, lam_im, b)
