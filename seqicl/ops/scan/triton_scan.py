"""Triton kernels for h_t = a_t * h_{t-1} + b_t over (B, L, D) tensors, forward and backward.

Each program owns one batch row and BLOCK_D channels, and walks the sequence in tiles of
BLOCK_L steps. Within a tile, tl.associative_scan along time composes the affine maps
h -> a*h + b, so all BLOCK_L steps are solved in parallel; the state at the end of a tile
is carried into the next one. Channels are the contiguous axis, so every load is coalesced.

Backward is the same scan run backwards in time on the adjoint
    c_t = g_t + a_{t+1} * c_{t+1},   db_t = c_t,   da_t = c_t * h_{t-1}
using the saved a and h (never written to).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _compose_affine(a_first, b_first, a_then, b_then):
    # applying h -> a_first*h + b_first, then h -> a_then*h + b_then
    return a_first * a_then, b_first * a_then + b_then


@triton.jit
def _last_row(tile, rows, BLOCK_L: tl.constexpr):
    return tl.sum(tl.where(rows[:, None] == BLOCK_L - 1, tile, 0.0), axis=0)


@triton.jit
def _scan_forward_kernel(a_ptr, b_ptr, h_ptr, L, D,
                         BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr):
    batch = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    rows = tl.arange(0, BLOCK_L)
    col_ok = cols < D
    base = batch.to(tl.int64) * L * D
    state = tl.zeros([BLOCK_D], dtype=tl.float32)
    for start in range(0, L, BLOCK_L):
        t = start + rows
        mask = (t < L)[:, None] & col_ok[None, :]
        offs = base + t[:, None] * D + cols[None, :]
        # padding rows (only in the last tile) are identity steps: a=1, b=0
        a = tl.load(a_ptr + offs, mask=mask, other=1.0).to(tl.float32)
        b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        a_prod, h_from_zero = tl.associative_scan((a, b), 0, _compose_affine)
        h = a_prod * state[None, :] + h_from_zero
        tl.store(h_ptr + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
        state = _last_row(h, rows, BLOCK_L)


@triton.jit
def _scan_backward_kernel(a_ptr, h_ptr, g_ptr, da_ptr, db_ptr, L, D,
                          BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr):
    batch = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    rows = tl.arange(0, BLOCK_L)
    col_ok = cols < D
    base = batch.to(tl.int64) * L * D
    adjoint = tl.zeros([BLOCK_D], dtype=tl.float32)
    n_tiles = tl.cdiv(L, BLOCK_L)
    for tile in range(0, n_tiles):
        # tiles from the end of the sequence, and time descending within the tile, so the
        # reverse recurrence becomes a forward scan along the tile's rows
        t = (n_tiles - 1 - tile) * BLOCK_L + (BLOCK_L - 1 - rows)
        in_seq = t < L
        mask = in_seq[:, None] & col_ok[None, :]
        offs = base + t[:, None] * D + cols[None, :]
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        # a_{t+1} = 0 past the end, h_{-1} = 0 before the start
        next_ok = (t + 1 < L)[:, None] & col_ok[None, :]
        a_next = tl.load(a_ptr + offs + D, mask=next_ok, other=0.0).to(tl.float32)
        prev_ok = (in_seq & (t >= 1))[:, None] & col_ok[None, :]
        h_prev = tl.load(h_ptr + offs - D, mask=prev_ok, other=0.0).to(tl.float32)
        # padding rows come first in this order and have g = 0, a_next = 0: they add nothing
        a_prod, c_from_zero = tl.associative_scan((a_next, g), 0, _compose_affine)
        c = a_prod * adjoint[None, :] + c_from_zero
        tl.store(db_ptr + offs, c.to(db_ptr.dtype.element_ty), mask=mask)
        tl.store(da_ptr + offs, (c * h_prev).to(da_ptr.dtype.element_ty), mask=mask)
        adjoint = _last_row(c, rows, BLOCK_L)


def _launch_config(L: int, D: int, on_gpu: bool) -> dict:
    if on_gpu:
        block_d = min(32, triton.next_power_of_2(D))
        return dict(BLOCK_L=64, BLOCK_D=block_d, num_warps=4)
    # the CPU interpreter: small tiles, so even short test sequences span several of them
    return dict(BLOCK_L=16, BLOCK_D=min(32, max(16, triton.next_power_of_2(D))))


def _grid(B: int, D: int, block_d: int) -> tuple[int, int]:
    return (B, triton.cdiv(D, block_d))


class LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        B, L, D = a.shape
        h = torch.empty_like(a)
        if h.numel():
            cfg = _launch_config(L, D, a.is_cuda)
            _scan_forward_kernel[_grid(B, D, cfg["BLOCK_D"])](a, b, h, L, D, **cfg)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):
        a, h = ctx.saved_tensors
        B, L, D = a.shape
        grad_h = grad_h.contiguous()
        grad_a = torch.empty_like(a)
        grad_b = torch.empty_like(a)
        if a.numel():
            cfg = _launch_config(L, D, a.is_cuda)
            _scan_backward_kernel[_grid(B, D, cfg["BLOCK_D"])](a, h, grad_h, grad_a, grad_b, L, D, **cfg)
        return grad_a, grad_b


def linear_scan_triton(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t along dim 1 of (B, L, D) tensors, with the Triton kernels."""
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"a and b must both be (B, L, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    return LinearScan.apply(a.to(dtype).contiguous(), b.to(dtype).contiguous())
