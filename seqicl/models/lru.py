"""LRU mixer: linear recurrent unit (Orvieto et al. 2023). A complex diagonal recurrence

    h_t = lambda * h_{t-1} + gamma * (B x_t),   lambda = exp(-exp(nu_log) + i exp(theta_log))
    y_t = Re(C h_t) + D * x_t

with the ring initialisation of section 3.2 (|lambda| uniform on [r_min, r_max], phase in
[0, max_phase]) and the normalisation gamma = sqrt(1 - |lambda|^2). The scan runs on a Triton
kernel on GPU (seqicl.ops.complex_scan), with lambda passed per channel.

The complex matrices are stored as real ones acting on the packed [Re, Im] layout of the scan,
so each is a single GEMM (for tiny models a training step costs roughly per kernel):
    b = [Re B; Im B]   (2n, d):  b x = [Re(B x); Im(B x)] for real x
    c = [Re C | -Im C] (d, 2n):  c [Re h; Im h] = Re C Re h - Im C Im h = Re(C h)
c starts i.i.d. normal, as Re C and Im C did, and that distribution is blind to the sign of Im C.

``block="original"``: the original seq_icl table's LRU block instead of the paper's read-out. One
real projection gives v (2n: [Re; Im] of the scan's input) and a gate o (2n); then

    h_t = lambda * h_{t-1} + gamma * v_t,   y = out(LayerNorm(dropout([Re h; Im h] * silu(o))))

with no complex C, no Re(.) read-out and no skip D.

``grad="original"`` (block original only): the gradient the original's training applied. Its Triton
scan (scan_triton/complex_rnn.py) takes the gradients of Re h and Im h as they come out of
torch.cat's backward, strided (L * 2n, 2n, 1) views of one (B, L, 2n) tensor G, and reads them as
if contiguous (L * n, n, 1) from each view's start: for Re h[b, t, c] it reads G's flat element
(b L + t) n + c, for Im h[b, t, c] the element n + (b L + t) n + c. The rest of its backward is
exact, so the scan, in_proj's v half, nu, theta and gamma got gradients from the wrong time
steps and batch rows. The forward is the same as grad="exact"."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.complex_scan import complex_scan
from .registry import register


@register("lru")
class LRU(nn.Module):
    original_small_out = True  # model.init=original: its out projection starts at N(0, 0.01), as the original's
    needs_positions = False

    def __init__(self, d_model: int, layer_idx: int = 0, d_state: int | None = None, r_min: float = 0.9,
                 r_max: float = 0.999, max_phase: float = 2 * math.pi, dropout: float = 0.0, block: str = "paper",
                 grad: str = "exact"):
        super().__init__()
        if block not in ("paper", "original"):
            raise ValueError(f"LRU block must be paper or original, got {block!r}")
        if grad not in ("exact", "original") or (grad == "original" and block != "original"):
            raise ValueError(f"LRU grad must be exact, or original with block original, got {grad!r} with {block!r}")
        self.block, self.grad_mode = block, grad
        n = d_state or d_model
        u1, u2 = torch.rand(n), torch.rand(n)
        nu = -0.5 * torch.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2)  # -log|lambda|
        self.nu_log = nn.Parameter(nu.log())
        self.theta_log = nn.Parameter((max_phase * u2).clamp_min(1e-4).log())
        self.gamma_log = nn.Parameter(0.5 * torch.log(1 - torch.exp(-2 * nu)))
        self.drop = nn.Dropout(dropout)
        if block == "original":
            self.proj = nn.Linear(d_model, 4 * n)  # v ([Re; Im], 2n) and the gate o (2n)
            self.norm = nn.LayerNorm(2 * n)
            self.out = nn.Linear(2 * n, d_model)
            return
        self.b = nn.Parameter(torch.randn(2 * n, d_model) / math.sqrt(2 * d_model))  # [Re B; Im B]
        self.c = nn.Parameter(torch.randn(d_model, 2 * n) / math.sqrt(n))  # [Re C | -Im C]
        self.skip = nn.Parameter(torch.randn(d_model))
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        n = self.nu_log.shape[0]
        # lambda in complex arithmetic: fewer kernels than modulus * cos and modulus * sin, also in
        # backward. Its parts reach the scan as strided views, read in place; unbind's backward is
        # one stack, where .real and .imag would cost zeros, copies and an add
        lam = torch.exp(torch.complex(-self.nu_log.exp(), self.theta_log.exp()))
        lam_re, lam_im = torch.view_as_real(lam).unbind(-1)
        if self.block == "original":
            v, o = self.proj(xf).split(2 * n, dim=-1)
            h = complex_scan(lam_re, lam_im, v.unflatten(-1, (2, n)) * self.gamma_log.exp()).flatten(-2)
            if self.grad_mode == "original":
                h = _OriginalScanGrad.apply(h)
            return self.out(self.norm(self.drop(h * F.silu(o))).to(x.dtype))
        # (B, L, 2, n): real and imaginary parts of gamma * (B x_t), gamma broadcast over both
        bx = F.linear(xf, self.b).unflatten(-1, (2, n)) * self.gamma_log.exp()
        h = complex_scan(lam_re, lam_im, bx)
        y = F.linear(h.flatten(-2), self.c) + xf * self.skip  # Re(C h) + D x
        return self.out(self.drop(F.gelu(y)).to(x.dtype))


class _OriginalScanGrad(torch.autograd.Function):
    """Identity on [Re h | Im h] (B, L, 2n); backward hands on the gradient as the original's
    complex-scan kernel read it (module docstring, grad="original")."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        return h.view_as(h)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        b, length, two_n = g.shape
        n, rows = two_n // 2, b * length
        flat = g.contiguous().view(-1)
        return torch.cat([flat[: rows * n].view(b, length, n), flat[n: n + rows * n].view(b, length, n)], dim=-1)
