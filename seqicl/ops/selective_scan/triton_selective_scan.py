"""Mamba's selective scan in Triton: forward and a hand-written, deterministic backward.

For batch b, channel e and state n (A real and negative), with h_{-1} = 0:

    h_t = a_t h_{t-1} + x_t,   a_t = exp(delta_t A),   x_t = delta_t u_t B_t,   y_t = C_t . h_t + D u_t

Forward: each program owns one batch row and BLOCK_E channels, and walks time in tiles of BLOCK_L
steps with the (BLOCK_E, N) state as its carry. Within a tile, tl.associative_scan along time
composes the affine maps h -> a h + x (as triton_scan.py does), so the tile's steps are solved in
parallel; the carried state enters through the tile's running product of a. When a gradient is
needed it also writes the state before every backward tile (every CHUNK steps): (B, L/CHUNK, E, N).
With SEQUENTIAL in FORWARD_CONFIG (the GPU default) it walks each tile step by step instead, the
state held with channels along the lanes, and stores the tile's outputs after its last step. With
SEGMENTS there too (default: absent, one segment), time is cut into segments of whole tiles: a first
kernel gives each segment but the last its end state from h = 0 and its sum of delta, in parallel;
each segment's program then starts from h <- exp(A sum delta) h + h_end over the earlier segments.

Backward walks the tiles from the last to the first. It recomputes a tile's states from the saved
state before it (the forward scan again) and solves the adjoint, the loss's derivative by h_t,

    dh_t = a_{t+1} dh_{t+1} + C_t dy_t

as a scan backwards in time, carried from the later tile. With a_t h_{t-1} = h_t - x_t (no division,
no shifted states):

    du_t = delta_t sum_n dh_t B_t + D dy_t          ddelta_t = sum_n dh_t (A (h_t - x_t) + u_t B_t)
    dB_t = sum_e dh_t delta_t u_t                   dC_t = sum_e dy_t h_t
    dA = sum_{b,t} dh_t delta_t (h_t - x_t)         dD = sum_{b,t} dy_t u_t

With SEQUENTIAL in BACKWARD_CONFIG (the GPU default since it measured 0.73x the time of the above)
the backward walks each tile step by step instead, forwards for the states and backwards for the
adjoint, with the same sums and outputs. (Holding a tile's states in registers instead of the
scratch, its inputs loaded at once, measured 1.23x slower at best: bench/results/
selective-scan-held-backward-h100-2026-12-07.md.)

The channel sums (dB, dC) come out as one partial per channel block and the batch and time sums
(dA, dD) as one partial per program; torch adds them up. No atomics: every run gives the same bits.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from seqicl.ops.segments import segments as _segments
from seqicl.ops.segments import sm_count
from seqicl.ops.triton_exp import LOG2E  # exp(delta A) = exp2(delta A log2 e): A log2 e once per program

# The interpreter runs every op of every program in numpy: small tiles keep tests fast and make
# short test sequences cross several tiles (and, in backward, several channel blocks).
# On the GPU, timed on an H100 (bench/kernel_configs.py, bench/results/kernel-configs-h100-2026-12-06.md;
# B 64, L 2048, E 256, N 16): against the first, ptxas-chosen settings ((32, 8) forward and (16, 16)
# backward, both on 8 warps), forward (BLOCK_L, BLOCK_E) = (16, 16) on 4 warps takes 0.51x the
# time, backward on 4 warps 0.59x (forward + backward). The sequential backward, (16, 16) on one warp,
# then took 0.73x of that in float32 and 0.74x in bfloat16, forward + backward (bench/results/
# selective-scan-sequential-backward-h100-2026-12-06.md). Both sequential kernels then stopped
# issuing each step's loads behind the step before's stores (the compiler cannot tell their
# addresses apart): forward + backward 0.88x (float32) and 0.90x (bfloat16), and the sequential
# forward, (16, 16) on one warp, 0.83x and 0.76x the parallel-scan forward's time, so it became the
# default (bench/results/selective-scan-loads-h100-2026-12-06.md). The parallel forward's tile is
# (BLOCK_L, BLOCK_E, N); its BLOCK_L is free when no
# gradient is needed. Backward trades memory traffic two ways: its BLOCK_L is how often forward
# saves the (E, N) state (B*L*E*N / BLOCK_L floats, written and read back), its BLOCK_E how many
# dB and dC partials it writes (E / BLOCK_E of each, B*L*N floats each, summed by torch).
# REVERSE_SCAN: the adjoint by tl.associative_scan(reverse=True) rather than a forward scan over
# rows loaded backwards in time plus one tl.flip (reverse scans of non-commutative combines have
# had GPU bugs: test_triton_reverse_scan_variant_cuda checks this build).
_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
if _INTERPRETED:
    FORWARD_CONFIG = dict(BLOCK_L=4, BLOCK_E=8, num_warps=1)
    BACKWARD_CONFIG = dict(BLOCK_L=8, BLOCK_E=4, REVERSE_SCAN=False, num_warps=1)
else:
    # FEW_PROGRAMS "scan": a launch of at most one sequential program an SM takes the parallel-scan
    # forward (SCAN_FORWARD_CONFIG) instead. At B 8, L 2048, E 256 (128 programs on 132 SMs) it took
    # 0.48x (float32) and 0.51x (bfloat16) the sequential forward's time on an H100; at B 64 (1,024
    # programs) 1.46-1.50x on an H200 (bench/results/segments-h100-2026-12-07.md,
    # kernel-configs-h200-2026-12-07.md). Between the two is not timed: the switch stays at one an SM.
    FORWARD_CONFIG = dict(BLOCK_L=16, BLOCK_E=16, SEQUENTIAL=True, num_warps=1, FEW_PROGRAMS="scan")
    BACKWARD_CONFIG = dict(BLOCK_L=16, BLOCK_E=16, SEQUENTIAL=True, num_warps=1, num_stages=1)
# The parallel-scan forward's and scan-based backward's best launches, for the tests that keep
# them working (and kernel_configs.py):
SCAN_FORWARD_CONFIG = dict(BLOCK_L=16, BLOCK_E=16, num_warps=4)
SCAN_BACKWARD_CONFIG = dict(BLOCK_L=16, BLOCK_E=16, REVERSE_SCAN=False, num_warps=4)


def _check_tiles(forward_l: int, backward_l: int) -> None:
    # backward restarts from the state forward saved before each backward tile: one tile length
    # must divide the other
    if max(forward_l, backward_l) % min(forward_l, backward_l):
        raise ValueError(f"forward BLOCK_L {forward_l} and backward BLOCK_L {backward_l}: "
                         "one must divide the other")


_check_tiles(FORWARD_CONFIG["BLOCK_L"], BACKWARD_CONFIG["BLOCK_L"])

ACTIVATION_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@triton.jit
def _compose(a_first, x_first, a_then, x_then):
    # h -> a_first h + x_first, then h -> a_then h + x_then
    return a_first * a_then, x_first * a_then + x_then


@triton.jit
def _row(tile, rows, which):
    """Row `which` of a (BLOCK_L, BLOCK_E, BLOCK_N) tile."""
    return tl.sum(tl.where((rows == which)[:, None, None], tile, 0.0), axis=0)


@triton.jit
def _load(ptr, base, t, cols, stride_t, stride_c, mask):
    """A (len(t), len(cols)) tile of a strided tensor, in float32 (masked entries 0)."""
    offs = base + t[:, None] * stride_t + cols[None, :] * stride_c
    return tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _tile_states(delta, u, Bt, A2, h_before):
    """h at every step of a tile from the state before it; also x_t = delta_t u_t B_t."""
    a = tl.exp2(delta[:, :, None] * A2[None, :, :])
    x = (delta * u)[:, :, None] * Bt[:, None, :]
    a_prod, h_from_zero = tl.associative_scan((a, x), 0, _compose)
    return a_prod * h_before[None, :, :] + h_from_zero, x


@triton.jit
def _forward_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, y_ptr, states_ptr, L, E, N,
                    su_b, su_l, su_e, sd_b, sd_l, sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n,
                    BLOCK_L: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr,
                    CHUNK: tl.constexpr, STORE_STATES: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    ns = tl.arange(0, BLOCK_N)
    rows = tl.arange(0, BLOCK_L)
    col_ok = cols < E
    n_ok = ns < N
    state_ok = col_ok[:, None] & n_ok[None, :]
    state_offs = cols[:, None] * N + ns[None, :]
    # exp(delta A) = exp2(delta A log2 e); padded channels and states get A = 0, so a = 1, x = 0
    A2 = tl.load(A_ptr + state_offs, mask=state_ok, other=0.0) * LOG2E
    D = tl.load(D_ptr + cols, mask=col_ok, other=0.0)
    states_base = b * tl.cdiv(L, CHUNK) * E * N
    state = tl.zeros((BLOCK_E, BLOCK_N), tl.float32)

    # the next tile's loads are issued before this tile's scan, so they arrive while it runs
    mask = (rows < L)[:, None] & col_ok[None, :]
    n_mask = (rows < L)[:, None] & n_ok[None, :]
    u = _load(u_ptr, b * su_b, rows, cols, su_l, su_e, mask)
    delta = _load(delta_ptr, b * sd_b, rows, cols, sd_l, sd_e, mask)
    Bt = _load(B_ptr, b * sB_b, rows, ns, sB_l, sB_n, n_mask)
    Ct = _load(C_ptr, b * sC_b, rows, ns, sC_l, sC_n, n_mask)
    for t0 in range(0, L, BLOCK_L):
        if STORE_STATES:
            # one tile spans several chunks, or one chunk several tiles (sizes divide each other)
            if t0 % CHUNK == 0:
                tl.store(states_ptr + states_base + (t0 // CHUNK) * E * N + state_offs, state,
                         mask=state_ok)
        t_next = t0 + BLOCK_L + rows
        mask_next = (t_next < L)[:, None] & col_ok[None, :]
        n_mask_next = (t_next < L)[:, None] & n_ok[None, :]
        u_next = _load(u_ptr, b * su_b, t_next, cols, su_l, su_e, mask_next)
        delta_next = _load(delta_ptr, b * sd_b, t_next, cols, sd_l, sd_e, mask_next)
        B_next = _load(B_ptr, b * sB_b, t_next, ns, sB_l, sB_n, n_mask_next)
        C_next = _load(C_ptr, b * sC_b, t_next, ns, sC_l, sC_n, n_mask_next)

        # padding rows (past L, last tile only) have delta = 0: identity steps after the valid ones
        h, _ = _tile_states(delta, u, Bt, A2, state)
        y = tl.sum(h * Ct[:, None, :], axis=2) + D[None, :] * u
        t = t0 + rows
        tl.store(y_ptr + b * L * E + t[:, None] * E + cols[None, :], y.to(y_ptr.dtype.element_ty),
                 mask=(t < L)[:, None] & col_ok[None, :])
        if STORE_STATES:
            for j in tl.static_range(1, BLOCK_L // CHUNK):
                # the state before chunk t0 / CHUNK + j: after row j CHUNK - 1 (if the chunk exists)
                tl.store(states_ptr + states_base + (t0 // CHUNK + j) * E * N + state_offs,
                         _row(h, rows, j * CHUNK - 1), mask=state_ok & (t0 + j * CHUNK < L))
        state = _row(h, rows, BLOCK_L - 1)
        u, delta, Bt, Ct = u_next, delta_next, B_next, C_next


@triton.jit
def _sequential_loads(t0, L, E, N, b, cols2, ns2, u_ptr, delta_ptr, B_ptr, C_ptr, su_b, su_l, su_e, sd_b, sd_l,
                      sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n, BLOCK_L: tl.constexpr, MASK_L: tl.constexpr,
                      MASK_E: tl.constexpr, MASK_N: tl.constexpr):
    """u, delta (1, BLOCK_E) and B, C (BLOCK_N, 1) at the BLOCK_L steps from t0, as float32 tuples. A
    MASK_* that is False drops that axis's bounds check: full tiles, channels and states load without
    predicates or zero-fill (most of the instructions a step issues, besides its arithmetic). Past L
    delta = 0, so a = 1 and x = 0, and the state is left as it is."""
    col_ok2 = cols2 < E if MASK_E else cols2 >= 0
    n_ok2 = ns2 < N if MASK_N else ns2 >= 0
    u_ptrs = u_ptr + b * su_b + t0 * su_l + cols2 * su_e
    delta_ptrs = delta_ptr + b * sd_b + t0 * sd_l + cols2 * sd_e
    B_ptrs = B_ptr + b * sB_b + t0 * sB_l + ns2 * sB_n
    C_ptrs = C_ptr + b * sC_b + t0 * sC_l + ns2 * sC_n
    us = ()
    deltas = ()
    Bs = ()
    Cs = ()
    for j in tl.static_range(BLOCK_L):
        if MASK_L:
            ok = t0 + j < L
            us = us + (tl.load(u_ptrs + j * su_l, mask=col_ok2 & ok, other=0.0).to(tl.float32),)
            deltas = deltas + (tl.load(delta_ptrs + j * sd_l, mask=col_ok2 & ok, other=0.0).to(tl.float32),)
            Bs = Bs + (tl.load(B_ptrs + j * sB_l, mask=n_ok2 & ok, other=0.0).to(tl.float32),)
            Cs = Cs + (tl.load(C_ptrs + j * sC_l, mask=n_ok2 & ok, other=0.0).to(tl.float32),)
        else:
            us = us + (tl.load(u_ptrs + j * su_l, mask=col_ok2 if MASK_E else None,
                               other=0.0 if MASK_E else None).to(tl.float32),)
            deltas = deltas + (tl.load(delta_ptrs + j * sd_l, mask=col_ok2 if MASK_E else None,
                                       other=0.0 if MASK_E else None).to(tl.float32),)
            Bs = Bs + (tl.load(B_ptrs + j * sB_l, mask=n_ok2 if MASK_N else None,
                               other=0.0 if MASK_N else None).to(tl.float32),)
            Cs = Cs + (tl.load(C_ptrs + j * sC_l, mask=n_ok2 if MASK_N else None,
                               other=0.0 if MASK_N else None).to(tl.float32),)
    return us, deltas, Bs, Cs


@triton.jit
def _sequential_steps(h, inputs, t0, L, E, N, b, A2, D, cols2, ns2, state_offs, states_ptr, states_base, y_ptr,
                      BLOCK_L: tl.constexpr, CHUNK: tl.constexpr, STORE_STATES: tl.constexpr,
                      MASK_L: tl.constexpr, MASK_E: tl.constexpr, MASK_N: tl.constexpr):
    """The BLOCK_L steps of one tile (their loaded inputs) from state h; returns the state after them."""
    us, deltas, Bs, Cs = inputs
    col_ok2 = cols2 < E if MASK_E else cols2 >= 0
    n_ok2 = ns2 < N if MASK_N else ns2 >= 0
    state_ok = n_ok2 & col_ok2
    y_ptrs = y_ptr + b * L * E + t0 * E + cols2
    ys = ()
    for j in tl.static_range(BLOCK_L):
        t = t0 + j
        if STORE_STATES:
            # one tile length divides the other; the state before step t, for backward's tile t // CHUNK
            if BLOCK_L >= CHUNK:
                if j % CHUNK == 0:
                    tl.store(states_ptr + states_base + (t // CHUNK) * E * N + state_offs, h,
                             mask=state_ok & (t < L) if MASK_L else state_ok)
            else:
                if j == 0:
                    tl.store(states_ptr + states_base + (t // CHUNK) * E * N + state_offs, h,
                             mask=state_ok & (t < L) & (t % CHUNK == 0))
        u = us[j]
        delta = deltas[j]
        h = tl.exp2(A2 * delta) * h + Bs[j] * (delta * u)
        ys = ys + (tl.sum(h * Cs[j], axis=0, keep_dims=True) + D * u,)
    # the outputs go out after the tile's last step: a store the compiler cannot tell apart from
    # the inputs would keep every later load behind it, and each step would wait a memory round trip
    for j in tl.static_range(BLOCK_L):
        y_ok = col_ok2 & (t0 + j < L) if MASK_L else col_ok2
        tl.store(y_ptrs + j * E, ys[j].to(y_ptr.dtype.element_ty), mask=y_ok if MASK_L or MASK_E else None)
    return h


@triton.jit
def _segment_state_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, ends_ptr, sums_ptr, L, E, N, SEG_LEN, N_PREV,
                          su_b, su_l, su_e, sd_b, sd_l, sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n,
                          BLOCK_L: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr,
                          MASK_E: tl.constexpr, MASK_N: tl.constexpr, PREFETCH: tl.constexpr = False):
    """The state at the end of segment program_id(2) from h = 0, (E, N) in memory like the saved
    states, and the segment's sum of delta per channel: every segment but the last, all whole
    tiles inside [0, L). (PREFETCH is the forward's; unused here.)"""
    b = tl.program_id(0).to(tl.int64)
    seg = tl.program_id(2)
    cols = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    ns = tl.arange(0, BLOCK_N)
    state_ok = (ns < N)[:, None] & (cols < E)[None, :]
    state_offs = cols[None, :] * N + ns[:, None]
    A2 = tl.load(A_ptr + state_offs, mask=state_ok, other=0.0) * LOG2E
    cols2, ns2 = cols[None, :], ns[:, None]
    h = tl.zeros((BLOCK_N, BLOCK_E), tl.float32)
    delta_sum = tl.zeros((1, BLOCK_E), tl.float32)
    for t0 in range(seg * SEG_LEN, seg * SEG_LEN + SEG_LEN, BLOCK_L):
        us, deltas, Bs, Cs = _sequential_loads(t0, L, E, N, b, cols2, ns2, u_ptr, delta_ptr, B_ptr, C_ptr, su_b, su_l,
                                               su_e, sd_b, sd_l, sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n, BLOCK_L,
                                               False, MASK_E, MASK_N)
        for j in tl.static_range(BLOCK_L):
            h = tl.exp2(A2 * deltas[j]) * h + Bs[j] * (deltas[j] * us[j])
            delta_sum += deltas[j]
    at = b * N_PREV + seg
    tl.store(ends_ptr + at * E * N + state_offs, h, mask=state_ok)
    tl.store(sums_ptr + at * E + cols2, delta_sum, mask=cols2 < E)


@triton.jit
def _forward_sequential_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, y_ptr, states_ptr, L, E, N,
                               su_b, su_l, su_e, sd_b, sd_l, sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n,
                               BLOCK_L: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr,
                               CHUNK: tl.constexpr, STORE_STATES: tl.constexpr,
                               MASK_E: tl.constexpr, MASK_N: tl.constexpr, PREFETCH: tl.constexpr = False,
                               ends_ptr=None, sums_ptr=None, SEG_LEN=0, N_PREV=0, SEGMENTED: tl.constexpr = False):
    """The forward with time inside the program: one step after the other, the (BLOCK_N, BLOCK_E)
    state held transposed so that channels lie along the lanes and y_t = sum_n C_tn h_tn is summed
    within each thread, not across them (the associative scan spends shuffles on that). The steps
    of a tile are unrolled, so their loads do not wait on the state; only h = a h + x does. Whole
    tiles run without the time bounds check; the last, partial one with it. A tile's loads come
    after the tile before has stored (the compiler keeps them there); with PREFETCH they are issued
    one tile earlier, before that tile's steps, and arrive while it computes."""
    b = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    ns = tl.arange(0, BLOCK_N)
    state_ok = (ns < N)[:, None] & (cols < E)[None, :]
    state_offs = cols[None, :] * N + ns[:, None]                  # states stay (E, N) in memory
    A2 = tl.load(A_ptr + state_offs, mask=state_ok, other=0.0) * LOG2E
    # every per-step tensor is 2-D, (1, BLOCK_E) or (BLOCK_N, 1), so it broadcasts within the
    # state's own layout: a 1-D load would be moved into that layout, step by step
    cols2, ns2 = cols[None, :], ns[:, None]
    D = tl.load(D_ptr + cols2, mask=cols2 < E, other=0.0)
    states_base = b * tl.cdiv(L, CHUNK) * E * N
    h = tl.zeros((BLOCK_N, BLOCK_E), tl.float32)
    t_start, t_end = 0, L
    if SEGMENTED:  # segment program_id(2) only, from the earlier segments' ends
        seg = tl.program_id(2)
        t_start = seg * SEG_LEN
        t_end = tl.minimum(t_start + SEG_LEN, L)
        for r in range(0, seg):
            at = b * N_PREV + r
            delta_sum = tl.load(sums_ptr + at * E + cols2, mask=cols2 < E, other=0.0)
            h = tl.exp2(A2 * delta_sum) * h + tl.load(ends_ptr + at * E * N + state_offs, mask=state_ok, other=0.0)
    whole = t_start + (t_end - t_start) // BLOCK_L * BLOCK_L
    if PREFETCH:
        if whole > t_start:
            inputs = _sequential_loads(t_start, L, E, N, b, cols2, ns2, u_ptr, delta_ptr, B_ptr, C_ptr, su_b, su_l,
                                       su_e, sd_b, sd_l, sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n, BLOCK_L, False,
                                       MASK_E, MASK_N)
            for t0 in range(t_start, whole - BLOCK_L, BLOCK_L):
                upcoming = _sequential_loads(t0 + BLOCK_L, L, E, N, b, cols2, ns2, u_ptr, delta_ptr, B_ptr, C_ptr,
                                             su_b, su_l, su_e, sd_b, sd_l, sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n,
                                             BLOCK_L, False, MASK_E, MASK_N)
                h = _sequential_steps(h, inputs, t0, L, E, N, b, A2, D, cols2, ns2, state_offs, states_ptr,
                                      states_base, y_ptr, BLOCK_L, CHUNK, STORE_STATES, False, MASK_E, MASK_N)
                inputs = upcoming
            h = _sequential_steps(h, inputs, whole - BLOCK_L, L, E, N, b, A2, D, cols2, ns2, state_offs, states_ptr,
                                  states_base, y_ptr, BLOCK_L, CHUNK, STORE_STATES, False, MASK_E, MASK_N)
    else:
        for t0 in range(t_start, whole, BLOCK_L):
            inputs = _sequential_loads(t0, L, E, N, b, cols2, ns2, u_ptr, delta_ptr, B_ptr, C_ptr, su_b, su_l, su_e,
                                       sd_b, sd_l, sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n, BLOCK_L, False, MASK_E,
                                       MASK_N)
            h = _sequential_steps(h, inputs, t0, L, E, N, b, A2, D, cols2, ns2, state_offs, states_ptr,
                                  states_base, y_ptr, BLOCK_L, CHUNK, STORE_STATES, False, MASK_E, MASK_N)
    if whole < t_end:
        inputs = _sequential_loads(whole, L, E, N, b, cols2, ns2, u_ptr, delta_ptr, B_ptr, C_ptr, su_b, su_l, su_e,
                                   sd_b, sd_l, sd_e, sB_b, sB_l, sB_n, sC_b, sC_l, sC_n, BLOCK_L, True, MASK_E, MASK_N)
        h = _sequential_steps(h, inputs, whole, L, E, N, b, A2, D, cols2, ns2, state_offs, states_ptr,
                              states_base, y_ptr, BLOCK_L, CHUNK, STORE_STATES, True, MASK_E, MASK_N)


@triton.jit
def _backward_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, g_ptr, states_ptr,
                     du_ptr, ddelta_ptr, dB_part_ptr, dC_part_ptr, dA_part_ptr, dD_part_ptr,
                     L, E, N, su_b, su_l, su_e, sd_b, sd_l, sd_e, sB_b, sB_l, sB_n,
                     sC_b, sC_l, sC_n, sg_b, sg_l, sg_e,
                     BLOCK_L: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr,
                     REVERSE_SCAN: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    e_block = tl.program_id(1)
    batch = tl.num_programs(0)
    cols = e_block * BLOCK_E + tl.arange(0, BLOCK_E)
    ns = tl.arange(0, BLOCK_N)
    rows = tl.arange(0, BLOCK_L)
    col_ok = cols < E
    n_ok = ns < N
    state_ok = col_ok[:, None] & n_ok[None, :]
    state_offs = cols[:, None] * N + ns[None, :]
    A = tl.load(A_ptr + state_offs, mask=state_ok, other=0.0)
    A2 = A * LOG2E
    D = tl.load(D_ptr + cols, mask=col_ok, other=0.0)
    n_tiles = tl.cdiv(L, BLOCK_L)
    adjoint = tl.zeros((BLOCK_E, BLOCK_N), tl.float32)       # dh at the step after the tile
    dA_sum = tl.zeros((BLOCK_E, BLOCK_N), tl.float32)
    dD_sum = tl.zeros((BLOCK_E,), tl.float32)
    part_base = (e_block * batch + b) * L * N                # dB, dC partials (E blocks, B, L, N)

    for i in range(0, n_tiles):
        t0 = (n_tiles - 1 - i) * BLOCK_L
        t = t0 + rows
        mask = (t < L)[:, None] & col_ok[None, :]
        n_mask = (t < L)[:, None] & n_ok[None, :]
        u = _load(u_ptr, b * su_b, t, cols, su_l, su_e, mask)
        delta = _load(delta_ptr, b * sd_b, t, cols, sd_l, sd_e, mask)
        Bt = _load(B_ptr, b * sB_b, t, ns, sB_l, sB_n, n_mask)
        Ct = _load(C_ptr, b * sC_b, t, ns, sC_l, sC_n, n_mask)
        g = _load(g_ptr, b * sg_b, t, cols, sg_l, sg_e, mask)
        h_before = tl.load(states_ptr + (b * n_tiles + t0 // BLOCK_L) * E * N + state_offs,
                           mask=state_ok, other=0.0)
        h, x = _tile_states(delta, u, Bt, A2, h_before)
        part_offs = part_base + t[:, None] * N + ns[None, :]
        tl.store(dC_part_ptr + part_offs, tl.sum(h * g[:, :, None], axis=1), mask=n_mask)
        decay_of_before = h - x                              # a_t h_{t-1}: all the rest needs of h

        # the adjoint's step at t is dh -> a_{t+1} dh + C_t dy_t; past L, a = 1 and C dy = 0, and
        # the carry into the last tile is 0, so padding rows add nothing
        if REVERSE_SCAN:
            delta_after = _load(delta_ptr, b * sd_b, t + 1, cols, sd_l, sd_e,
                                (t + 1 < L)[:, None] & col_ok[None, :])
            a_after = tl.exp2(delta_after[:, :, None] * A2[None, :, :])
            a_prod, dh_from_zero = tl.associative_scan(
                (a_after, Ct[:, None, :] * g[:, :, None]), 0, _compose, reverse=True)
            dh = a_prod * adjoint[None, :, :] + dh_from_zero
            adjoint = _row(dh, rows, 0)
        else:
            # rows backwards in time (reloaded, from cache), so the reverse scan is a forward one
            t_back = t0 + BLOCK_L - 1 - rows
            back_ok = (t_back < L)[:, None] & col_ok[None, :]
            delta_after = _load(delta_ptr, b * sd_b, t_back + 1, cols, sd_l, sd_e,
                                (t_back + 1 < L)[:, None] & col_ok[None, :])
            C_back = _load(C_ptr, b * sC_b, t_back, ns, sC_l, sC_n,
                           (t_back < L)[:, None] & n_ok[None, :])
            g_back = _load(g_ptr, b * sg_b, t_back, cols, sg_l, sg_e, back_ok)
            a_after = tl.exp2(delta_after[:, :, None] * A2[None, :, :])
            a_prod, dh_from_zero = tl.associative_scan(
                (a_after, C_back[:, None, :] * g_back[:, :, None]), 0, _compose)
            dh_back = a_prod * adjoint[None, :, :] + dh_from_zero
            adjoint = _row(dh_back, rows, BLOCK_L - 1)
            dh = tl.flip(dh_back, 0)

        dh_B = tl.sum(dh * Bt[:, None, :], axis=2)
        decayed = dh * decay_of_before
        du = delta * dh_B + D[None, :] * g
        ddelta = tl.sum(decayed * A[None, :, :], axis=2) + u * dh_B
        out_offs = b * L * E + t[:, None] * E + cols[None, :]
        tl.store(du_ptr + out_offs, du.to(du_ptr.dtype.element_ty), mask=mask)
        tl.store(ddelta_ptr + out_offs, ddelta.to(ddelta_ptr.dtype.element_ty), mask=mask)
        tl.store(dB_part_ptr + part_offs, tl.sum(dh * (delta * u)[:, :, None], axis=1), mask=n_mask)
        dA_sum += tl.sum(decayed * delta[:, :, None], axis=0)
        dD_sum += tl.sum(g * u, axis=0)

    tl.store(dA_part_ptr + b * E * N + state_offs, dA_sum, mask=state_ok)
    tl.store(dD_part_ptr + b * E + cols, dD_sum, mask=col_ok)


@triton.jit
def _step_load(row_ptr, t, idx2, stride_t, stride_i, mask):
    """Step t of a strided (L, X) slice at indices idx2, (1, X) or (X, 1), in float32 (masked: 0)."""
    return tl.load(row_ptr + t * stride_t + idx2 * stride_i, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _adjoint_step(h, u, delta, Bt, Ct, g, t, L, E, N, b, A2, D, cols2, ns2, adjoint, delta_after, dA_sum, dD_sum,
                  du_ptr, ddelta_ptr, dB_part_ptr, part_base):
    """One step of the sequential backwards, from step t's state h and inputs and the adjoint after
    it: stores du_t, ddelta_t and the dB partial; returns the adjoint dh_t and the dA, dD sums."""
    ok = t < L
    col_ok2 = cols2 < E
    adjoint = tl.exp2(A2 * delta_after) * adjoint + Ct * g
    delta_u = delta * u
    decayed = adjoint * (h - Bt * delta_u)                     # dh_t a_t h_{t-1}
    dh_B = tl.sum(adjoint * Bt, axis=0, keep_dims=True)
    du = delta * dh_B + D * g
    ddelta = tl.sum(decayed * A2, axis=0, keep_dims=True) * (1.0 / LOG2E) + u * dh_B
    out_offs = b * L * E + t * E + cols2
    tl.store(du_ptr + out_offs, du.to(du_ptr.dtype.element_ty), mask=col_ok2 & ok)
    tl.store(ddelta_ptr + out_offs, ddelta.to(ddelta_ptr.dtype.element_ty), mask=col_ok2 & ok)
    tl.store(dB_part_ptr + part_base + t * N + ns2, tl.sum(adjoint * delta_u, axis=1, keep_dims=True),
             mask=(ns2 < N) & ok)
    return adjoint, dA_sum + decayed * delta, dD_sum + g * u


@triton.jit
def _backward_sequential_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, g_ptr, states_ptr, scratch_ptr,
                                du_ptr, ddelta_ptr, dB_part_ptr, dC_part_ptr, dA_part_ptr, dD_part_ptr,
                                L, E, N, su_b, su_l, su_e, sd_b, sd_l, sd_e, sB_b, sB_l, sB_n,
                                sC_b, sC_l, sC_n, sg_b, sg_l, sg_e,
                                BLOCK_L: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr):
    """The backward with time inside the program, as _forward_sequential_kernel: per tile, the
    states step by step from the saved one (each written to this program's own scratch, a tile's
    worth, which stays in L2), then the adjoint step by step backwards, reading them back. No scan
    tree and no row extraction: per step and state, two exp2 and a handful of FMAs, and per step
    the sums over states (du, ddelta) and over channels (dB, dC partials) of one row each."""
    b = tl.program_id(0).to(tl.int64)
    e_block = tl.program_id(1)
    batch = tl.num_programs(0)
    cols2 = (e_block * BLOCK_E + tl.arange(0, BLOCK_E))[None, :]
    ns2 = tl.arange(0, BLOCK_N)[:, None]
    col_ok2 = cols2 < E
    n_ok2 = ns2 < N
    state_ok = n_ok2 & col_ok2
    state_offs = cols2 * N + ns2                                  # states stay (E, N) in memory
    # A only as A log2 e (the sum over states for ddelta is scaled back after it): every tensor of
    # the state's size is 16 registers a thread at N 16, and the fewer live, the fewer spilled
    A2 = tl.load(A_ptr + state_offs, mask=state_ok, other=0.0) * LOG2E
    D = tl.load(D_ptr + cols2, mask=col_ok2, other=0.0)
    n_tiles = tl.cdiv(L, BLOCK_L)
    # the scratch is (E, N) with N contiguous, as the saved states and A: every state-sized tensor
    # then gets one register layout (an (N, E)-ordered scratch gave it a second one, and 4 layout
    # conversions through shared memory per step; ptxas: 255 -> 227 registers, spills gone)
    scratch_ptrs = (scratch_ptr + (b * tl.num_programs(1) + e_block) * BLOCK_L * BLOCK_N * BLOCK_E
                    + tl.arange(0, BLOCK_E)[None, :] * BLOCK_N + ns2)
    part_base = (e_block * batch + b) * L * N                    # dB, dC partials (E blocks, B, L, N)
    adjoint = tl.zeros((BLOCK_N, BLOCK_E), tl.float32)          # dh_t, carried backwards in time
    delta_after = tl.zeros((1, BLOCK_E), tl.float32)            # delta_{t+1}; at t = L - 1 dh is 0 anyway
    dA_sum = tl.zeros((BLOCK_N, BLOCK_E), tl.float32)
    dD_sum = tl.zeros((1, BLOCK_E), tl.float32)
    for i in range(0, n_tiles):
        t0 = (n_tiles - 1 - i) * BLOCK_L
        h = tl.load(states_ptr + (b * n_tiles + t0 // BLOCK_L) * E * N + state_offs, mask=state_ok, other=0.0)
        tl.debug_barrier()   # the last tile's reads of the scratch are done before it is rewritten
        # Each step's inputs are loaded one step ahead, before the step's stores: the compiler keeps
        # every load behind an earlier store it cannot tell apart from it, so loaded after the
        # stores, each step would wait a whole memory round trip.
        ok = t0 < L
        u = _step_load(u_ptr + b * su_b, t0, cols2, su_l, su_e, col_ok2 & ok)
        delta = _step_load(delta_ptr + b * sd_b, t0, cols2, sd_l, sd_e, col_ok2 & ok)
        Bt = _step_load(B_ptr + b * sB_b, t0, ns2, sB_l, sB_n, n_ok2 & ok)
        g = _step_load(g_ptr + b * sg_b, t0, cols2, sg_l, sg_e, col_ok2 & ok)
        for j in range(BLOCK_L):
            # padding rows (past L) have delta = 0 and g = 0: the state stays, and nothing is stored
            t = t0 + j
            ok = t < L
            ok_next = (t + 1 < L) & (j + 1 < BLOCK_L)
            u_next = _step_load(u_ptr + b * su_b, t + 1, cols2, su_l, su_e, col_ok2 & ok_next)
            delta_next = _step_load(delta_ptr + b * sd_b, t + 1, cols2, sd_l, sd_e, col_ok2 & ok_next)
            B_next = _step_load(B_ptr + b * sB_b, t + 1, ns2, sB_l, sB_n, n_ok2 & ok_next)
            g_next = _step_load(g_ptr + b * sg_b, t + 1, cols2, sg_l, sg_e, col_ok2 & ok_next)
            h = tl.exp2(A2 * delta) * h + Bt * (delta * u)
            tl.store(scratch_ptrs + j * BLOCK_N * BLOCK_E, h)
            tl.store(dC_part_ptr + part_base + t * N + ns2, tl.sum(h * g, axis=1, keep_dims=True), mask=n_ok2 & ok)
            u, delta, Bt, g = u_next, delta_next, B_next, g_next
        tl.debug_barrier()   # every thread's states are in the scratch before any is read back
        t = t0 + BLOCK_L - 1
        ok = t < L
        u = _step_load(u_ptr + b * su_b, t, cols2, su_l, su_e, col_ok2 & ok)
        delta = _step_load(delta_ptr + b * sd_b, t, cols2, sd_l, sd_e, col_ok2 & ok)
        Bt = _step_load(B_ptr + b * sB_b, t, ns2, sB_l, sB_n, n_ok2 & ok)
        Ct = _step_load(C_ptr + b * sC_b, t, ns2, sC_l, sC_n, n_ok2 & ok)
        g = _step_load(g_ptr + b * sg_b, t, cols2, sg_l, sg_e, col_ok2 & ok)
        h = tl.load(scratch_ptrs + (BLOCK_L - 1) * BLOCK_N * BLOCK_E)
        for jj in range(BLOCK_L):
            j = BLOCK_L - 1 - jj
            t = t0 + j
            ok = t < L
            # the step before's inputs (t - 1, in this tile), as in the forward sweep above
            has_prev = jj + 1 < BLOCK_L
            ok_prev = (t - 1 < L) & has_prev
            u_prev = _step_load(u_ptr + b * su_b, t - 1, cols2, su_l, su_e, col_ok2 & ok_prev)
            delta_prev = _step_load(delta_ptr + b * sd_b, t - 1, cols2, sd_l, sd_e, col_ok2 & ok_prev)
            B_prev = _step_load(B_ptr + b * sB_b, t - 1, ns2, sB_l, sB_n, n_ok2 & ok_prev)
            C_prev = _step_load(C_ptr + b * sC_b, t - 1, ns2, sC_l, sC_n, n_ok2 & ok_prev)
            g_prev = _step_load(g_ptr + b * sg_b, t - 1, cols2, sg_l, sg_e, col_ok2 & ok_prev)
            h_prev = tl.load(scratch_ptrs + (j - 1) * BLOCK_N * BLOCK_E, mask=state_ok & has_prev, other=0.0)
            adjoint, dA_sum, dD_sum = _adjoint_step(h, u, delta, Bt, Ct, g, t, L, E, N, b, A2, D, cols2, ns2,
                                                    adjoint, delta_after, dA_sum, dD_sum, du_ptr, ddelta_ptr,
                                                    dB_part_ptr, part_base)
            delta_after = delta
            u, delta, Bt, Ct, g, h = u_prev, delta_prev, B_prev, C_prev, g_prev, h_prev
    tl.store(dA_part_ptr + b * E * N + state_offs, dA_sum, mask=state_ok)
    tl.store(dD_part_ptr + b * E + cols2, dD_sum, mask=col_ok2)


def _strides(*tensors):
    return [s for x in tensors for s in x.stride()]


class SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D):
        batch, L, E = u.shape
        N = A.shape[1]
        A32, D32 = A.float().contiguous(), D.float().contiguous()
        y = torch.empty((batch, L, E), device=u.device, dtype=u.dtype)
        needs_grad = any(ctx.needs_input_grad)
        chunk = BACKWARD_CONFIG["BLOCK_L"]
        config = dict(FORWARD_CONFIG)
        if config.pop("FEW_PROGRAMS", None) == "scan" and \
                batch * triton.cdiv(E, config["BLOCK_E"]) <= sm_count(u.device):
            config = dict(SCAN_FORWARD_CONFIG)
        _check_tiles(config["BLOCK_L"], chunk)
        states = torch.empty((batch, triton.cdiv(L, chunk), E, N), device=u.device,
                             dtype=torch.float32) if needs_grad else y
        if y.numel():
            kernel = _forward_kernel
            if config.pop("SEQUENTIAL", False):
                kernel = _forward_sequential_kernel
                config.update(MASK_E=E % config["BLOCK_E"] != 0, MASK_N=N != triton.next_power_of_2(N))
            grid = (batch, triton.cdiv(E, config["BLOCK_E"]))
            segmented = {}
            if "SEGMENTS" in config:  # time cut into segments run in parallel: the sequential kernel only
                if kernel is not _forward_sequential_kernel:
                    raise ValueError("selective scan: SEGMENTS needs SEQUENTIAL in FORWARD_CONFIG")
                seg_len, n_seg = _segments(L, config.pop("SEGMENTS"), config["BLOCK_L"])
                if n_seg > 1:
                    ends = torch.empty((batch, n_seg - 1, E, N), device=u.device, dtype=torch.float32)
                    sums = torch.empty((batch, n_seg - 1, E), device=u.device, dtype=torch.float32)
                    _segment_state_kernel[grid + (n_seg - 1,)](
                        u, delta, A32, B, C, ends, sums, L, E, N, seg_len, n_seg - 1, *_strides(u, delta, B, C),
                        BLOCK_N=triton.next_power_of_2(N), **config)
                    segmented = dict(ends_ptr=ends, sums_ptr=sums, SEG_LEN=seg_len, N_PREV=n_seg - 1, SEGMENTED=True)
                    grid = grid + (n_seg,)
            kernel[grid](u, delta, A32, B, C, D32, y, states, L, E, N,
                         *_strides(u, delta, B, C), BLOCK_N=triton.next_power_of_2(N),
                         CHUNK=chunk, STORE_STATES=needs_grad, **config, **segmented)
        if needs_grad:
            ctx.save_for_backward(u, delta, A32, B, C, D32, states)
            ctx.param_dtypes = (A.dtype, D.dtype)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        u, delta, A, B, C, D, states = ctx.saved_tensors
        batch, L, E = u.shape
        N = A.shape[1]
        cfg = BACKWARD_CONFIG
        e_blocks = triton.cdiv(E, cfg["BLOCK_E"])
        f32 = dict(device=u.device, dtype=torch.float32)
        du = torch.empty((batch, L, E), device=u.device, dtype=u.dtype)
        ddelta = torch.empty((batch, L, E), device=u.device, dtype=delta.dtype)
        # every entry of the partials is stored by the kernels (masks cut only padding): no memset,
        # which at B 64, L 2048, E 256 would write the dB and dC partials' 268 MB once more
        dB_part = torch.empty((e_blocks, batch, L, N), **f32)
        dC_part = torch.empty((e_blocks, batch, L, N), **f32)
        dA_part = torch.empty((batch, E, N), **f32)
        dD_part = torch.empty((batch, E), **f32)
        if du.numel():
            cfg = dict(cfg)
            if cfg.pop("SEQUENTIAL", False):
                cfg.pop("REVERSE_SCAN", None)
                block_n = triton.next_power_of_2(N)
                scratch = torch.empty((batch, e_blocks, cfg["BLOCK_L"], block_n, cfg["BLOCK_E"]), **f32)
                _backward_sequential_kernel[(batch, e_blocks)](
                    u, delta, A, B, C, D, grad_y, states, scratch, du, ddelta, dB_part, dC_part, dA_part,
                    dD_part, L, E, N, *_strides(u, delta, B, C, grad_y), BLOCK_N=block_n, **cfg)
            else:
                _backward_kernel[(batch, e_blocks)](
                    u, delta, A, B, C, D, grad_y, states, du, ddelta, dB_part, dC_part, dA_part,
                    dD_part, L, E, N, *_strides(u, delta, B, C, grad_y),
                    BLOCK_N=triton.next_power_of_2(N), **cfg)
        else:
            for x in (du, ddelta, dB_part, dC_part, dA_part, dD_part):
                x.zero_()
        A_dtype, D_dtype = ctx.param_dtypes
        return (du, ddelta, dA_part.sum(0).to(A_dtype), dB_part.sum(0).to(B.dtype),
                dC_part.sum(0).to(C.dtype), dD_part.sum(0).to(D_dtype))


def selective_scan_triton(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                          C: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """The selective scan with the Triton kernels. u, delta (B, L, E) and B, C (B, L, N) in float32,
    bfloat16 or float16, any strides; A (E, N), D (E,). Returns y (B, L, E) in u's dtype."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (B, L, E), got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, L, E = u.shape
    if A.dim() != 2 or A.shape[0] != E or A.shape[1] < 1:
        raise ValueError(f"A must be ({E}, N), got {tuple(A.shape)}")
    N = A.shape[1]
    for name, x in (("B", B), ("C", C)):
        if x.shape != (batch, L, N):
            raise ValueError(f"{name} must be ({batch}, {L}, {N}), got {tuple(x.shape)}")
    if D.shape != (E,):
        raise ValueError(f"D must be ({E},), got {tuple(D.shape)}")
    for name, x in (("u", u), ("delta", delta), ("B", B), ("C", C)):
        if x.dtype not in ACTIVATION_DTYPES:
            raise ValueError(f"{name} must be float32, bfloat16 or float16, got {x.dtype}")
    return SelectiveScan.apply(u, delta, A, B, C, D)
