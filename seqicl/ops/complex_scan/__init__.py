"""Complex diagonal linear recurrence of the LRU mixer (Orvieto et al. 2023):
h_t = lambda * h_{t-1} + b_t per channel, with a decay lambda that is constant over time."""
from __future__ import annotations

from torch import Tensor

from seqicl.ops.dispatch import use_triton
from seqicl.ops.complex_scan.reference import complex_scan_ref

__all__ = ["complex_scan", "complex_scan_ref"]


def complex_scan(lam_re: Tensor, lam_im: Tensor, b_re: Tensor, b_im: Tensor) -> tuple[Tensor, Tensor]:
    """lam_re, lam_im: (D,) decay; b_re, b_im: (B, L, D) input. Returns (h_re, h_im), (B, L, D).

    Differentiable in all four inputs. Triton for CUDA tensors (or when forced), else the
    pure-torch reference.
    """
    if b_re.dim() != 3 or b_im.shape != b_re.shape:
        raise ValueError(f"b_re and b_im must both be (B, L, D), got {tuple(b_re.shape)} and {tuple(b_im.shape)}")
    channels = b_re.shape[-1]
    if lam_re.shape != (channels,) or lam_im.shape != (channels,):
        raise ValueError(
            f"lam_re and lam_im must be ({channels},), got {tuple(lam_re.shape)} and {tuple(lam_im.shape)}"
        )
    if use_triton(b_re):
        # imported here so CPU-only runs never load triton
        from seqicl.ops.complex_scan.triton_complex_scan import complex_scan_triton
        return complex_scan_triton(lam_re, lam_im, b_re, b_im)
    return complex_scan_ref(lam_re, lam_im, b_re, b_im)
