"""RWKV-4 wkv in Triton, parallel over time: forward and a hand-written backward.

The state A_t = sum_{i<=t} e^{(t-i) w + k_i} v_i (and B_t, the same without v) is a linear
recurrence with constant decay e^w. A segment of n steps is an element (n * w, p, a, b): its
steps contribute a * e^p and b * e^p to the state at its end. Putting a left segment before a right
one decays the left by e^{n_right * w} and adds, rescaled to the larger exponent; that combine is
associative, so each (BLOCK_L, BLOCK_D) tile is a tl.associative_scan along time, and one program
carries the state of its (batch, channel block) from tile to tile.

y_t needs the state up to t-1, so row j of a tile loads the element of step t-1 (row 0 loads
nothing: the carried state covers it), which makes the inclusive scan an exclusive one.

Backward, with y_t = N_t / D_t: dN_t = g_t / D_t and dD_t = -g_t y_t / D_t. Step i reaches every
later output t > i through the state, with weight e^{(t-1-i) w}, so the gradients of k_i and v_i
need R_i = sum_{t>i} e^{(t-1-i) w} (dN_t, dD_t): the same scan run backwards in time over elements
(p = -log D_t, a = g_t, b = -g_t y_t). The gradient of w needs sum_{t>i} (t-1-i) e^{(t-1-i) w}
(...), the derivative of R_i by w, which the backward scan carries as two more components (its
elements keep n and w apart, as the derivative needs n).
Per-(batch, channel) sums of dw and du are written to a buffer and summed with torch: no atomics.

With SEQUENTIAL in FORWARD_CONFIG or BACKWARD_CONFIG, the kernel walks time step by step instead,
one channel a lane, as wkv_ref does: no scan, so about half the forward's instructions and a third
of the backward's. Backward then needs no step's neighbour: R_{t-1} = e^w R_t + (dN_t, dD_t).

With SEGMENTS in a sequential FORWARD_CONFIG (on the GPU "fill": seqicl/ops/segments.py), time is cut into
segments of whole tiles: a first kernel gives each segment but the last its end state (p, a, b) from
the empty state, in parallel; each segment's program then starts from the earlier ends put one after
the other (the combine above, each decayed by a segment's n * w). More programs for the same
channels, at the cost of reading k and v twice.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from seqicl.ops.segments import FILL, segment_count
from seqicl.ops.segments import segments as _segments
from seqicl.ops.triton_exp import exp

# log(0) for empty rows and the initial state: finite, so that the difference of two is 0, not NaN
EMPTY_LOG = tl.constexpr(-1e30)
# The interpreter scans element by element: small tiles there keep tests fast and make even short
# test sequences cross several tiles. On the GPU the sequential kernels, 64 channels on two warps,
# tiles of 16 steps with the next one's loads issued early: 0.89x the scan-based forward's time and
# 0.90x its forward + backward in float32, 0.78x the forward in bfloat16 (H100, B 64, L 2048, D 256,
# bench/results/wkv-sequential-h100-2026-12-07.md). The scan-based kernels' best launches stay
# below, for the tests that keep them working and kernel_configs.py.
_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# SEGMENTS "fill": segments where (batch x channel blocks) leave SMs idle (seqicl/ops/segments.py; at
# B 8, 0.44-0.88x the unsegmented forward on an H100, bench/results/segments-h100-2026-12-07.md).
FORWARD_CONFIG = dict(BLOCK_L=16, BLOCK_D=8, num_warps=1) if _INTERPRETED else \
    dict(BLOCK_L=16, BLOCK_D=64, SEQUENTIAL=True, PREFETCH=True, num_warps=2, SEGMENTS=FILL)
BACKWARD_CONFIG = dict(BLOCK_L=16, BLOCK_D=8, num_warps=1) if _INTERPRETED else \
    dict(BLOCK_L=16, BLOCK_D=64, SEQUENTIAL=True, PREFETCH=True, num_warps=2)
SCAN_FORWARD_CONFIG = dict(BLOCK_L=32, BLOCK_D=16, num_warps=1)
SCAN_BACKWARD_CONFIG = dict(BLOCK_L=16, BLOCK_D=16, num_warps=1)


@triton.jit
def _forward_combine(decay1, p1, a1, b1, decay2, p2, a2, b2):
    # the left segment decays over the steps of the right one: by e^{decay2}, decay2 = n2 * w
    shifted = p1 + decay2
    p = tl.maximum(shifted, p2)
    left = exp(shifted - p)
    right = exp(p2 - p)
    return decay1 + decay2, p, left * a1 + right * a2, left * b1 + right * b2


@triton.jit
def _backward_combine(n1, w1, p1, a1, b1, da1, db1, n2, w2, p2, a2, b2, da2, db2):
    # as _forward_combine, plus the derivatives by w: d/dw (e^{n2 w} S1 + S2)
    # = e^{n2 w} (S1' + n2 S1) + S2'. Returns the right w (the same): the left one, shuffled in
    # from another thread, is then unused.
    shifted = p1 + n2 * w2
    p = tl.maximum(shifted, p2)
    left = exp(shifted - p)
    right = exp(p2 - p)
    return (n1 + n2, w2, p,
            left * a1 + right * a2,
            left * b1 + right * b2,
            left * (da1 + n2 * a1) + right * da2,
            left * (db1 + n2 * b1) + right * db2)


@triton.jit
def _last_row(x, is_last):
    return tl.sum(tl.where(is_last, x, 0.0), axis=0)


@triton.jit
def _load_forward_tile(k_ptr, v_ptr, base, t0, rows, cols, col_ok, T, C):
    """k, v at steps t0 + rows, and at the step before each (none for row 0)."""
    t = t0 + rows
    ok = (t < T)[:, None] & col_ok[None, :]
    prev_ok = ok & (rows > 0)[:, None]
    offs = base + t[:, None] * C + cols[None, :]
    k = tl.load(k_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    k_prev = tl.load(k_ptr + offs - C, mask=prev_ok, other=0.0).to(tl.float32)
    v_prev = tl.load(v_ptr + offs - C, mask=prev_ok, other=0.0).to(tl.float32)
    return k, v, k_prev, v_prev


@triton.jit
def _wkv_forward_kernel(k_ptr, v_ptr, w_ptr, u_ptr, y_ptr, log_den_ptr, T, C,
                        BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr,
                        STORE_LOG_DEN: tl.constexpr):
    pid_b = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < C
    rows = tl.arange(0, BLOCK_L)
    w = tl.load(w_ptr + cols, mask=col_ok, other=-1.0)
    u = tl.load(u_ptr + cols, mask=col_ok, other=0.0)
    # row 0 holds no step (the carry stands for everything before the tile)
    decay_in = tl.where((rows > 0)[:, None], w[None, :], 0.0)
    first_row = (rows == 0)[:, None]
    b_in = tl.where(first_row, 0.0, tl.full((BLOCK_L, BLOCK_D), 1.0, tl.float32))
    is_last = (rows == BLOCK_L - 1)[:, None]
    base = pid_b.to(tl.int64) * T * C

    # state at the step before the tile
    carry_p = tl.full((BLOCK_D,), EMPTY_LOG, tl.float32)
    carry_a = tl.zeros((BLOCK_D,), tl.float32)
    carry_b = tl.zeros((BLOCK_D,), tl.float32)
    k, v, k_prev, v_prev = _load_forward_tile(k_ptr, v_ptr, base, 0, rows, cols, col_ok, T, C)
    for t0 in range(0, T, BLOCK_L):
        # issue the next tile's loads first, so they arrive while this tile is computed
        k_next, v_next, k_prev_next, v_prev_next = _load_forward_tile(
            k_ptr, v_ptr, base, t0 + BLOCK_L, rows, cols, col_ok, T, C)
        t = t0 + rows
        ok = (t < T)[:, None] & col_ok[None, :]
        offs = base + t[:, None] * C + cols[None, :]

        # an empty row 0 (and masked rows, which come after every valid one) add nothing
        p_in = tl.where(first_row, EMPTY_LOG, k_prev)
        decay_scan, p_scan, a_scan, b_scan = tl.associative_scan(
            (decay_in, p_in, v_prev, b_in), 0, _forward_combine)
        # state up to t-1: the carry decayed over the rows before, plus the scan
        _, p, a, b = _forward_combine(0.0, carry_p[None, :], carry_a[None, :], carry_b[None, :],
                                      decay_scan, p_scan, a_scan, b_scan)

        current = u[None, :] + k
        q = tl.maximum(p, current)
        old = exp(p - q)
        new = exp(current - q)
        den = old * b + new
        y = (old * a + new * v) / den
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=ok)
        if STORE_LOG_DEN:
            tl.store(log_den_ptr + offs, q + tl.log(den), mask=ok)

        # state at the tile's last step: the state before it, decayed once, plus that step
        _, carry_p, carry_a, carry_b = _forward_combine(
            0.0, _last_row(p, is_last), _last_row(a, is_last), _last_row(b, is_last),
            w, _last_row(k, is_last), _last_row(v, is_last), 1.0)
        k, v, k_prev, v_prev = k_next, v_next, k_prev_next, v_prev_next


@triton.jit
def _load_backward_tile(k_ptr, v_ptr, y_ptr, log_den_ptr, grad_y_ptr, base, t_top, rows, cols,
                        col_ok, C):
    """Inputs at steps t_top - rows (rows run backwards in time), and y, log D and grad_y at
    the step after each (none for row 0)."""
    t = t_top - rows
    ok = (t >= 0)[:, None] & col_ok[None, :]
    next_ok = ok & (rows > 0)[:, None]
    offs = base + t[:, None] * C + cols[None, :]
    k = tl.load(k_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    g = tl.load(grad_y_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    log_den = tl.load(log_den_ptr + offs, mask=ok, other=0.0)
    y_next = tl.load(y_ptr + offs + C, mask=next_ok, other=0.0).to(tl.float32)
    g_next = tl.load(grad_y_ptr + offs + C, mask=next_ok, other=0.0).to(tl.float32)
    log_den_next = tl.load(log_den_ptr + offs + C, mask=next_ok, other=0.0)
    return k, v, y, g, log_den, y_next, g_next, log_den_next


@triton.jit
def _wkv_backward_kernel(k_ptr, v_ptr, w_ptr, u_ptr, y_ptr, log_den_ptr, grad_y_ptr,
                         grad_k_ptr, grad_v_ptr, grad_w_part_ptr, grad_u_part_ptr, T, C,
                         BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_b = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < C
    rows = tl.arange(0, BLOCK_L)
    w = tl.load(w_ptr + cols, mask=col_ok, other=-1.0)
    u = tl.load(u_ptr + cols, mask=col_ok, other=0.0)
    w_tile = tl.zeros((BLOCK_L, BLOCK_D), tl.float32) + w[None, :]
    steps = tl.zeros((BLOCK_L, BLOCK_D), tl.float32) + tl.where(rows > 0, 1.0, 0.0)[:, None]
    zeros = tl.zeros((BLOCK_L, BLOCK_D), tl.float32)
    first_row = (rows == 0)[:, None]
    is_last = (rows == BLOCK_L - 1)[:, None]
    base = pid_b.to(tl.int64) * T * C

    # R at the step after the tile: sum over later outputs t of e^{(t - first) w} (dN_t, dD_t),
    # and its derivatives by w
    carry_p = tl.full((BLOCK_D,), EMPTY_LOG, tl.float32)
    carry_num = tl.zeros((BLOCK_D,), tl.float32)
    carry_den = tl.zeros((BLOCK_D,), tl.float32)
    carry_dnum = tl.zeros((BLOCK_D,), tl.float32)
    carry_dden = tl.zeros((BLOCK_D,), tl.float32)
    grad_w_sum = tl.zeros((BLOCK_D,), tl.float32)
    grad_u_sum = tl.zeros((BLOCK_D,), tl.float32)
    k, v, y, g, log_den, y_next, g_next, log_den_next = _load_backward_tile(
        k_ptr, v_ptr, y_ptr, log_den_ptr, grad_y_ptr, base, T - 1, rows, cols, col_ok, C)
    for done in range(0, T, BLOCK_L):
        # rows run backwards in time, so a forward scan over rows is a reverse scan over time
        t = (T - 1 - done) - rows
        ok = (t >= 0)[:, None] & col_ok[None, :]
        offs = base + t[:, None] * C + cols[None, :]
        # the next tile (earlier in time) loads while this one is computed
        k_n, v_n, y_n, g_n, log_den_n, y_next_n, g_next_n, log_den_next_n = _load_backward_tile(
            k_ptr, v_ptr, y_ptr, log_den_ptr, grad_y_ptr, base, T - 1 - done - BLOCK_L, rows,
            cols, col_ok, C)

        # row j takes the output at t+1 (row 0 nothing: the carry covers the later tiles)
        p_in = tl.where(first_row, EMPTY_LOG, -log_den_next)
        count, _, p_s, num_s, den_s, dnum_s, dden_s = tl.associative_scan(
            (steps, w_tile, p_in, g_next, -g_next * y_next, zeros, zeros), 0, _backward_combine)
        _, _, p, r_num, r_den, dr_num, dr_den = _backward_combine(
            0.0, w[None, :], carry_p[None, :], carry_num[None, :], carry_den[None, :],
            carry_dnum[None, :], carry_dden[None, :], count, w_tile, p_s, num_s, den_s,
            dnum_s, dden_s)

        # both exponents are <= 0: log D_t bounds every term it sums
        through_state = tl.where(ok, exp(k + p), 0.0)
        direct = tl.where(ok, exp(u[None, :] + k - log_den), 0.0)
        grad_u_terms = direct * g * (v - y)
        grad_v = through_state * r_num + direct * g
        grad_k = through_state * (v * r_num + r_den) + grad_u_terms
        tl.store(grad_k_ptr + offs, grad_k.to(grad_k_ptr.dtype.element_ty), mask=ok)
        tl.store(grad_v_ptr + offs, grad_v.to(grad_v_ptr.dtype.element_ty), mask=ok)
        grad_u_sum += tl.sum(grad_u_terms, axis=0)
        grad_w_sum += tl.sum(through_state * (v * dr_num + dr_den), axis=0)

        # R at the tile's earliest step: R there, decayed once, plus that step's output
        _, _, carry_p, carry_num, carry_den, carry_dnum, carry_dden = _backward_combine(
            0.0, w, _last_row(p, is_last), _last_row(r_num, is_last),
            _last_row(r_den, is_last), _last_row(dr_num, is_last), _last_row(dr_den, is_last),
            1.0, w, -_last_row(log_den, is_last), _last_row(g, is_last),
            -_last_row(g * y, is_last), 0.0, 0.0)
        k, v, y, g, log_den = k_n, v_n, y_n, g_n, log_den_n
        y_next, g_next, log_den_next = y_next_n, g_next_n, log_den_next_n

    part = pid_b * C + cols
    tl.store(grad_w_part_ptr + part, grad_w_sum, mask=col_ok)
    tl.store(grad_u_part_ptr + part, grad_u_sum, mask=col_ok)


@triton.jit
def _load_rows(ptr, row_offs, step, t0, T, C, col_ok, BLOCK_L: tl.constexpr, MASK_L: tl.constexpr,
               MASK_D: tl.constexpr):
    """The BLOCK_L rows at times t0 + step * j as float32, one (BLOCK_D,) tensor each; rows
    outside [0, T) and columns past C read 0. Without MASK_*, no predicate or zero-fill."""
    rows = ()
    for j in tl.static_range(BLOCK_L):
        t = t0 + step * j
        ok = col_ok & (t >= 0) & (t < T) if MASK_L else col_ok
        rows = rows + (tl.load(ptr + row_offs + t * C, mask=ok if MASK_L or MASK_D else None,
                               other=0.0 if MASK_L or MASK_D else None).to(tl.float32),)
    return rows


@triton.jit
def _store_rows(ptr, rows, row_offs, step, t0, T, C, col_ok, BLOCK_L: tl.constexpr, MASK_L: tl.constexpr,
                MASK_D: tl.constexpr):
    for j in tl.static_range(BLOCK_L):
        t = t0 + step * j
        ok = col_ok & (t >= 0) & (t < T) if MASK_L else col_ok
        tl.store(ptr + row_offs + t * C, rows[j].to(ptr.dtype.element_ty), mask=ok if MASK_L or MASK_D else None)


@triton.jit
def _state_step(k, v, w, p, a, b):
    """The state (p, a, b) one step on: decayed by e^w, plus the step's v weighted by e^k, with
    the exponent p kept as the running maximum so that neither exponential overflows."""
    decayed = p + w
    p_next = tl.maximum(decayed, k)
    old = exp(decayed - p_next)
    new = exp(k - p_next)
    return p_next, old * a + new * v, old * b + new


@triton.jit
def _forward_steps(ks, vs, y_ptr, log_den_ptr, row_offs, t0, T, C, col_ok, w, u, p, a, b,
                   BLOCK_L: tl.constexpr, STORE_LOG_DEN: tl.constexpr, MASK_L: tl.constexpr,
                   MASK_D: tl.constexpr):
    """The BLOCK_L steps from t0 (inputs ks, vs), one after the other, from the state (p, a, b) up
    to t0 - 1; returns the state up to the tile's last step. Only the state's exponent p is carried
    from step to step through more than one multiply-add (p + w, then a max), so the rest of the
    steps' arithmetic overlaps. The outputs are stored after the tile's last step."""
    ys = ()
    log_dens = ()
    for j in tl.static_range(BLOCK_L):
        k = ks[j]
        v = vs[j]
        # the output: the state up to t-1 plus this step weighted by e^{u + k}
        current = u + k
        q = tl.maximum(p, current)
        old = exp(p - q)
        new = exp(current - q)
        den = old * b + new
        ys = ys + ((old * a + new * v) / den,)
        if STORE_LOG_DEN:
            log_dens = log_dens + (q + tl.log(den),)
        # the state (past T it is never read)
        p, a, b = _state_step(k, v, w, p, a, b)
    _store_rows(y_ptr, ys, row_offs, 1, t0, T, C, col_ok, BLOCK_L, MASK_L, MASK_D)
    if STORE_LOG_DEN:
        _store_rows(log_den_ptr, log_dens, row_offs, 1, t0, T, C, col_ok, BLOCK_L, MASK_L, MASK_D)
    return p, a, b


@triton.jit
def _state_steps(ks, vs, w, p, a, b, BLOCK_L: tl.constexpr):
    """The state after BLOCK_L more steps (inputs ks, vs): _forward_steps without the outputs."""
    for j in tl.static_range(BLOCK_L):
        p, a, b = _state_step(ks[j], vs[j], w, p, a, b)
    return p, a, b


@triton.jit
def _wkv_segment_state_kernel(k_ptr, v_ptr, w_ptr, ends_ptr, T, C, SEG_LEN, N_PREV,
                              BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr, MASK_D: tl.constexpr,
                              PREFETCH: tl.constexpr = False):
    """The state (p, a, b) at the end of segment program_id(2) from the empty state: every segment
    but the last, all whole tiles inside [0, T). (PREFETCH is the forward's; unused here.)"""
    seg = tl.program_id(2)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < C
    w = tl.load(w_ptr + cols, mask=col_ok, other=-1.0)
    row_offs = tl.program_id(0).to(tl.int64) * T * C + cols
    p = tl.full((BLOCK_D,), EMPTY_LOG, tl.float32)
    a = tl.zeros((BLOCK_D,), tl.float32)
    b = tl.zeros((BLOCK_D,), tl.float32)
    for t0 in range(seg * SEG_LEN, seg * SEG_LEN + SEG_LEN, BLOCK_L):
        ks = _load_rows(k_ptr, row_offs, 1, t0, T, C, col_ok, BLOCK_L, False, MASK_D)
        vs = _load_rows(v_ptr, row_offs, 1, t0, T, C, col_ok, BLOCK_L, False, MASK_D)
        p, a, b = _state_steps(ks, vs, w, p, a, b, BLOCK_L)
    out = ((tl.program_id(0).to(tl.int64) * N_PREV + seg) * 3) * C + cols
    tl.store(ends_ptr + out, p, mask=col_ok)
    tl.store(ends_ptr + out + C, a, mask=col_ok)
    tl.store(ends_ptr + out + 2 * C, b, mask=col_ok)


@triton.jit
def _wkv_forward_sequential_kernel(k_ptr, v_ptr, w_ptr, u_ptr, y_ptr, log_den_ptr, T, C,
                                   BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr,
                                   STORE_LOG_DEN: tl.constexpr, MASK_D: tl.constexpr,
                                   PREFETCH: tl.constexpr = False, ends_ptr=None, SEG_LEN=0, N_PREV=0,
                                   SEGMENTED: tl.constexpr = False):
    """The forward with time inside the program, one channel a lane: the recurrence of wkv_ref.
    Whole tiles run without the time bounds check; the last, partial one with it. A store the
    compiler cannot tell apart from the inputs keeps every later load behind it, so a tile's loads
    are issued after the tile before has stored: with PREFETCH they are issued one tile earlier,
    before that tile's steps, and arrive while it computes. With SEGMENTED, the program runs
    segment program_id(2) only, from the earlier segments' end states (_wkv_segment_state_kernel)
    put one after the other."""
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < C
    w = tl.load(w_ptr + cols, mask=col_ok, other=-1.0)
    u = tl.load(u_ptr + cols, mask=col_ok, other=0.0)
    row_offs = tl.program_id(0).to(tl.int64) * T * C + cols
    p = tl.full((BLOCK_D,), EMPTY_LOG, tl.float32)
    a = tl.zeros((BLOCK_D,), tl.float32)
    b = tl.zeros((BLOCK_D,), tl.float32)
    t_start, t_end = 0, T
    if SEGMENTED:
        seg = tl.program_id(2)
        t_start = seg * SEG_LEN
        t_end = tl.minimum(t_start + SEG_LEN, T)
        for r in range(0, seg):
            at = ((tl.program_id(0).to(tl.int64) * N_PREV + r) * 3) * C + cols
            p_r = tl.load(ends_ptr + at, mask=col_ok, other=EMPTY_LOG)
            a_r = tl.load(ends_ptr + at + C, mask=col_ok, other=0.0)
            b_r = tl.load(ends_ptr + at + 2 * C, mask=col_ok, other=0.0)
            _, p, a, b = _forward_combine(0.0, p, a, b, SEG_LEN * w, p_r, a_r, b_r)
    whole = t_start + (t_end - t_start) // BLOCK_L * BLOCK_L
    if PREFETCH:
        if whole > t_start:
            ks = _load_rows(k_ptr, row_offs, 1, t_start, T, C, col_ok, BLOCK_L, False, MASK_D)
            vs = _load_rows(v_ptr, row_offs, 1, t_start, T, C, col_ok, BLOCK_L, False, MASK_D)
            for t0 in range(t_start, whole - BLOCK_L, BLOCK_L):
                ks_next = _load_rows(k_ptr, row_offs, 1, t0 + BLOCK_L, T, C, col_ok, BLOCK_L, False, MASK_D)
                vs_next = _load_rows(v_ptr, row_offs, 1, t0 + BLOCK_L, T, C, col_ok, BLOCK_L, False, MASK_D)
                p, a, b = _forward_steps(ks, vs, y_ptr, log_den_ptr, row_offs, t0, T, C, col_ok, w, u, p, a, b,
                                         BLOCK_L, STORE_LOG_DEN, False, MASK_D)
                ks, vs = ks_next, vs_next
            p, a, b = _forward_steps(ks, vs, y_ptr, log_den_ptr, row_offs, whole - BLOCK_L, T, C, col_ok, w, u,
                                     p, a, b, BLOCK_L, STORE_LOG_DEN, False, MASK_D)
    else:
        for t0 in range(t_start, whole, BLOCK_L):
            ks = _load_rows(k_ptr, row_offs, 1, t0, T, C, col_ok, BLOCK_L, False, MASK_D)
            vs = _load_rows(v_ptr, row_offs, 1, t0, T, C, col_ok, BLOCK_L, False, MASK_D)
            p, a, b = _forward_steps(ks, vs, y_ptr, log_den_ptr, row_offs, t0, T, C, col_ok, w, u, p, a, b,
                                     BLOCK_L, STORE_LOG_DEN, False, MASK_D)
    if whole < t_end:
        ks = _load_rows(k_ptr, row_offs, 1, whole, T, C, col_ok, BLOCK_L, True, MASK_D)
        vs = _load_rows(v_ptr, row_offs, 1, whole, T, C, col_ok, BLOCK_L, True, MASK_D)
        _forward_steps(ks, vs, y_ptr, log_den_ptr, row_offs, whole, T, C, col_ok, w, u, p, a, b,
                       BLOCK_L, STORE_LOG_DEN, True, MASK_D)


@triton.jit
def _load_backward_rows(k_ptr, v_ptr, y_ptr, log_den_ptr, grad_y_ptr, row_offs, t_top, C, col_ok,
                        BLOCK_L: tl.constexpr, MASK_L: tl.constexpr, MASK_D: tl.constexpr):
    """k, v, y, log D and grad_y at the BLOCK_L steps from t_top down."""
    T = t_top + 1   # rows past the top are never asked for; below 0 they read 0 under MASK_L
    return (_load_rows(k_ptr, row_offs, -1, t_top, T, C, col_ok, BLOCK_L, MASK_L, MASK_D),
            _load_rows(v_ptr, row_offs, -1, t_top, T, C, col_ok, BLOCK_L, MASK_L, MASK_D),
            _load_rows(y_ptr, row_offs, -1, t_top, T, C, col_ok, BLOCK_L, MASK_L, MASK_D),
            _load_rows(log_den_ptr, row_offs, -1, t_top, T, C, col_ok, BLOCK_L, MASK_L, MASK_D),
            _load_rows(grad_y_ptr, row_offs, -1, t_top, T, C, col_ok, BLOCK_L, MASK_L, MASK_D))


@triton.jit
def _backward_steps(rows, grad_k_ptr, grad_v_ptr, row_offs, t_top, C, col_ok, w, u, p, num, den, dnum,
                    dden, grad_w_sum, grad_u_sum, BLOCK_L: tl.constexpr, MASK_L: tl.constexpr,
                    MASK_D: tl.constexpr):
    """The BLOCK_L steps from t_top down (inputs `rows`), one after the other, from R at t_top:
    (num, den) e^p and their derivatives by w, (dnum, dden) e^p. Step t's gradients need R_t; then
    R_{t-1} = e^w R_t + (dN_t, dD_t), from step t's own output, so no step loads its neighbour's."""
    ks, vs, ys, log_dens, gs = rows
    grad_ks = ()
    grad_vs = ()
    for j in tl.static_range(BLOCK_L):
        k = ks[j]
        v = vs[j]
        y = ys[j]
        log_den = log_dens[j]
        g = gs[j]
        # both exponents are <= 0: log D_t bounds every term it sums
        through_state = exp(k + p)
        direct = exp(u + k - log_den)
        grad_u_terms = direct * g * (v - y)
        grad_ks = grad_ks + (through_state * (v * num + den) + grad_u_terms,)
        grad_vs = grad_vs + (through_state * num + direct * g,)
        grad_w_terms = through_state * (v * dnum + dden)
        if MASK_L:
            ok = t_top - j >= 0
            grad_u_terms = tl.where(ok, grad_u_terms, 0.0)
            grad_w_terms = tl.where(ok, grad_w_terms, 0.0)
        grad_u_sum += grad_u_terms
        grad_w_sum += grad_w_terms
        # R_{t-1}: R_t one step older (its derivative by w gains R_t), plus (g, -g y) / D_t
        shifted = p + w
        p = tl.maximum(shifted, -log_den)
        old = exp(shifted - p)
        new = exp(-log_den - p)
        dnum = old * (dnum + num)
        dden = old * (dden + den)
        num = old * num + new * g
        den = old * den - new * g * y
    _store_rows(grad_k_ptr, grad_ks, row_offs, -1, t_top, t_top + 1, C, col_ok, BLOCK_L, MASK_L, MASK_D)
    _store_rows(grad_v_ptr, grad_vs, row_offs, -1, t_top, t_top + 1, C, col_ok, BLOCK_L, MASK_L, MASK_D)
    return p, num, den, dnum, dden, grad_w_sum, grad_u_sum


@triton.jit
def _wkv_backward_sequential_kernel(k_ptr, v_ptr, w_ptr, u_ptr, y_ptr, log_den_ptr, grad_y_ptr,
                                    grad_k_ptr, grad_v_ptr, grad_w_part_ptr, grad_u_part_ptr, T, C,
                                    BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr,
                                    MASK_D: tl.constexpr, PREFETCH: tl.constexpr = False):
    """The backward with time inside the program, from the last step to the first (PREFETCH as in
    the forward)."""
    pid_b = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < C
    w = tl.load(w_ptr + cols, mask=col_ok, other=-1.0)
    u = tl.load(u_ptr + cols, mask=col_ok, other=0.0)
    row_offs = pid_b.to(tl.int64) * T * C + cols
    p = tl.full((BLOCK_D,), EMPTY_LOG, tl.float32)        # R after the last step: empty
    num = tl.zeros((BLOCK_D,), tl.float32)
    den = tl.zeros((BLOCK_D,), tl.float32)
    dnum = tl.zeros((BLOCK_D,), tl.float32)
    dden = tl.zeros((BLOCK_D,), tl.float32)
    grad_w_sum = tl.zeros((BLOCK_D,), tl.float32)
    grad_u_sum = tl.zeros((BLOCK_D,), tl.float32)
    whole = T // BLOCK_L * BLOCK_L
    if PREFETCH:
        if whole > 0:
            rows = _load_backward_rows(k_ptr, v_ptr, y_ptr, log_den_ptr, grad_y_ptr, row_offs, T - 1, C, col_ok,
                                       BLOCK_L, False, MASK_D)
            for done in range(0, whole - BLOCK_L, BLOCK_L):
                t_top = T - 1 - done
                rows_next = _load_backward_rows(k_ptr, v_ptr, y_ptr, log_den_ptr, grad_y_ptr, row_offs,
                                                t_top - BLOCK_L, C, col_ok, BLOCK_L, False, MASK_D)
                p, num, den, dnum, dden, grad_w_sum, grad_u_sum = _backward_steps(
                    rows, grad_k_ptr, grad_v_ptr, row_offs, t_top, C, col_ok, w, u, p, num, den, dnum, dden,
                    grad_w_sum, grad_u_sum, BLOCK_L, False, MASK_D)
                rows = rows_next
            p, num, den, dnum, dden, grad_w_sum, grad_u_sum = _backward_steps(
                rows, grad_k_ptr, grad_v_ptr, row_offs, T - whole + BLOCK_L - 1, C, col_ok, w, u, p, num, den,
                dnum, dden, grad_w_sum, grad_u_sum, BLOCK_L, False, MASK_D)
    else:
        for done in range(0, whole, BLOCK_L):
            t_top = T - 1 - done
            rows = _load_backward_rows(k_ptr, v_ptr, y_ptr, log_den_ptr, grad_y_ptr, row_offs, t_top, C, col_ok,
                                       BLOCK_L, False, MASK_D)
            p, num, den, dnum, dden, grad_w_sum, grad_u_sum = _backward_steps(
                rows, grad_k_ptr, grad_v_ptr, row_offs, t_top, C, col_ok, w, u, p, num, den, dnum, dden,
                grad_w_sum, grad_u_sum, BLOCK_L, False, MASK_D)
    if whole < T:
        t_top = T - 1 - whole
        rows = _load_backward_rows(k_ptr, v_ptr, y_ptr, log_den_ptr, grad_y_ptr, row_offs, t_top, C, col_ok,
                                   BLOCK_L, True, MASK_D)
        p, num, den, dnum, dden, grad_w_sum, grad_u_sum = _backward_steps(
            rows, grad_k_ptr, grad_v_ptr, row_offs, t_top, C, col_ok, w, u, p, num, den, dnum, dden,
            grad_w_sum, grad_u_sum, BLOCK_L, True, MASK_D)
    part = pid_b * C + cols
    tl.store(grad_w_part_ptr + part, grad_w_sum, mask=col_ok)
    tl.store(grad_u_part_ptr + part, grad_u_sum, mask=col_ok)


def _pick(config, scan_kernel, sequential_kernel, channels):
    """The launch settings and kernel a config names: SEQUENTIAL picks the one with time inside
    the program, which also learns whether the channels fill their last block."""
    config = dict(config)
    if config.pop("SEQUENTIAL", False):
        config["MASK_D"] = channels % config["BLOCK_D"] != 0
        return config, sequential_kernel
    return config, scan_kernel


class WKVFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, time_decay, time_first, k, v, decay_sign=-1.0):
        k = k.contiguous()
        v = v.to(k.dtype).contiguous()
        batch, steps, channels = k.shape
        w = (decay_sign * torch.exp(time_decay.float())).contiguous()
        u = time_first.float().contiguous()
        y = torch.empty_like(k)
        needs_grad = any(ctx.needs_input_grad)
        # log D_t is what backward needs of the forward state; skipped when nothing needs grad
        log_den = torch.empty(k.shape, device=k.device, dtype=torch.float32) if needs_grad else y
        config, kernel = _pick(FORWARD_CONFIG, _wkv_forward_kernel, _wkv_forward_sequential_kernel,
                               channels)
        grid = (batch, triton.cdiv(channels, config["BLOCK_D"]))
        segmented = {}
        if "SEGMENTS" in config:  # time cut into segments run in parallel: the sequential kernel only
            if kernel is not _wkv_forward_sequential_kernel:
                raise ValueError("wkv: SEGMENTS needs SEQUENTIAL in FORWARD_CONFIG")
            count = segment_count(config.pop("SEGMENTS"), grid[0] * grid[1], k.device)
            seg_len, n_seg = _segments(steps, count, config["BLOCK_L"])
            if n_seg > 1 and k.numel():
                ends = torch.empty(batch, n_seg - 1, 3, channels, device=k.device, dtype=torch.float32)
                _wkv_segment_state_kernel[grid + (n_seg - 1,)](k, v, w, ends, steps, channels, seg_len, n_seg - 1,
                                                               **config)
                segmented = dict(ends_ptr=ends, SEG_LEN=seg_len, N_PREV=n_seg - 1, SEGMENTED=True)
                grid = grid + (n_seg,)
        kernel[grid](k, v, w, u, y, log_den, steps, channels, STORE_LOG_DEN=needs_grad, **config, **segmented)
        if needs_grad:
            ctx.save_for_backward(k, v, w, u, y, log_den)
            ctx.param_dtypes = (time_decay.dtype, time_first.dtype)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        k, v, w, u, y, log_den = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        batch, steps, channels = k.shape
        grad_k = torch.empty_like(k)
        grad_v = torch.empty_like(v)
        grad_w_part = torch.empty(batch, channels, device=k.device, dtype=torch.float32)
        grad_u_part = torch.empty_like(grad_w_part)
        config, kernel = _pick(BACKWARD_CONFIG, _wkv_backward_kernel, _wkv_backward_sequential_kernel,
                               channels)
        grid = (batch, triton.cdiv(channels, config["BLOCK_D"]))
        kernel[grid](k, v, w, u, y, log_den, grad_y, grad_k, grad_v, grad_w_part, grad_u_part,
                     steps, channels, **config)
        # w = decay_sign * exp(time_decay), so dw/d(time_decay) = w
        decay_dtype, first_dtype = ctx.param_dtypes
        grad_time_decay = (grad_w_part.sum(0) * w).to(decay_dtype)
        grad_time_first = grad_u_part.sum(0).to(first_dtype)
        return grad_time_decay, grad_time_first, grad_k, grad_v, None


def wkv_triton(time_decay: torch.Tensor, time_first: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor, decay_sign: float = -1.0) -> torch.Tensor:
    return WKVFunction.apply(time_decay, time_first, k, v, float(decay_sign))
