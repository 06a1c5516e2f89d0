"""Causal linear attention with a decay in Triton, chunked: forward and a hand-written backward.

Per (batch, head): S_t = diag(e^{g_t}) S_{t-1} + k_t^T v_t, o_t = q_t S_t (reference.py). Time is
cut into chunks of C steps; one program walks the chunks in order with the K x V state S in
registers. In a chunk, G is the cumulative log decay from the chunk's start (G <= 0, decreasing
in time), G_C its last row and S_0 the state before the chunk:

    o_i = (q_i * e^{G_i}) S_0 + sum_{j<=i} A_ij v_j,   A_ij = sum_k q_ik k_jk e^{G_ik - G_jk}
    S_C = diag(e^{G_C}) S_0 + sum_j (k_j * e^{G_C - G_j})^T v_j

All exponents are <= 0 except in the factorisation of A as (q e^G)(k e^{-G})^T, whose e^{-G}
overflows once a chunk decays by more than ~88. With a decay per key, A is built instead from
levels: a pair j < i belongs to the level s of the highest bit in which i and j differ, so both
lie in one block of 2s rows, i in its upper half and j in its lower one. With R the G of the lower
half's last row, e^{G_i - G_j} = e^{G_i - R} e^{R - G_j}, both factors <= 1: each level is one
matmul of bounded operands (log2 C levels, plus the diagonal). Without a decay or with one per
head, e^{G_i - G_j} = e^{(i-j) gamma} is a fixed C x C matrix.

Backward, with dA_ij = do_i . v_j (j <= i) and dS_C the gradient of the state after the chunk:

    dq_i = e^{G_i} * (do_i S_0^T) + sum_j dA_ij k_j e^{G_i - G_j}
    dk_j = e^{G_C - G_j} * (v_j dS_C^T) + sum_i dA_ij q_i e^{G_i - G_j}
    dv_j = (k_j e^{G_C - G_j}) dS_C + sum_i A_ij do_i
    dS_0 = diag(e^{G_C}) dS_C + (q e^G)^T do

The forward may cut time into SEGMENTS (a launch setting, FORWARD_CONFIG; on the GPU "fill": as many
as keep the card about full, seqicl/ops/segments.py): a first
kernel gives each segment but the last its end state from a zero state (and with a decay per key
its total log decay), in parallel; each segment's program then starts from the earlier ends,
S <- diag(e^{sum g}) S + S_end in order. More programs for a small batch x heads, at the cost of
reading k, v and g twice.

dq needs S_0 (one pass forward in time, recomputing S); dk and dv need dS_C (a second pass,
backwards). The output sees q and G only through q e^G and k only through k e^{-G} (G global
here), so dL/dG_t = q_t dq_t - k_t dk_t, and g_t feeds every G_s for s >= t: dg is the reverse
cumsum of that, carried across chunks by the backward pass, which reads dq from the first pass
in float32. A decay per head gets the sum of dg over steps and keys: one partial per
(batch, head), summed by torch. No atomics: the gradients are deterministic.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from seqicl.ops.segments import FILL, segment_count
from seqicl.ops.segments import segments as _segments
from seqicl.ops.triton_exp import exp

# The interpreter runs a tile op by op: small chunks keep tests fast and make short sequences
# cross several chunks. The GPU values were timed on an H100 (bench/kernel_configs.py,
# bench/results/kernel-configs-h100-2026-12-06.md; B 64, L 2048, 4 heads of 64): against the
# first, ptxas-chosen ones (CHUNK 32, BLOCK_V 32, 8 warps), 4 warps and the whole value width per
# program cut the forward to 0.31x (fp32, no decay) and 0.32x (fp32, decay per key), the 4-warp dq
# and dkv passes cut forward + backward by 10-14% each. Then 3 pipeline stages and chunks of 32
# (16 with a decay per key) cut the forward to 0.89-0.94x in float32 and 0.71-0.95x in bfloat16
# (bench/results/la-forward-settings-h100-2026-12-06.md). On an H200 the dq pass on 2 warps and the
# dk/dv pass on 2 stages cut forward + backward to 0.88-0.91x and 0.94-0.97x, each timed alone in
# float32 (bench/results/kernel-configs-h200-2026-12-07.md).
_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# SEGMENTS "fill": segments where (batch x heads x value blocks) leave SMs idle (seqicl/ops/segments.py;
# at B 8, 0.26-0.88x the unsegmented forward on an H100, bench/results/segments-h100-2026-12-07.md).
FORWARD_CONFIG = dict(CHUNK=16, CHUNK_PER_KEY=16, BLOCK_V=16) if _INTERPRETED else \
    dict(CHUNK=32, CHUNK_PER_KEY=16, BLOCK_V=64, num_warps=4, num_stages=3, SEGMENTS=FILL)
DQ_CONFIG = dict(CHUNK=16, CHUNK_PER_KEY=16, BLOCK_K=16) if _INTERPRETED else \
    dict(CHUNK=16, CHUNK_PER_KEY=16, BLOCK_K=32, num_warps=2, num_stages=2)
# dk, dv and dg: one program per (batch, head), all of K and V (dk sums over V, dv over K)
BACKWARD_CONFIG = dict(CHUNK=16, CHUNK_PER_KEY=16) if _INTERPRETED else \
    dict(CHUNK=16, CHUNK_PER_KEY=16, num_warps=4, num_stages=2)
# bf16 inputs carry 8 mantissa bits: TF32 matmuls lose nothing that matters there. float32
# inputs get three TF32 products of split operands (about float32's precision: _dot) unless the
# user allowed TF32 for matmuls (torch.backends.cuda.matmul.allow_tf32, seqicl's train.tf32), as
# torch's own matmuls do. "split3" is Triton's "tf32x3" with a cheaper split: compiled for sm_90,
# 14-29% fewer instructions in the loops of the 3 kernels x 3 decay modes and a fifth to a third
# fewer spilled bytes in dk/dv (bench/results/sass-floor-sm90-triton3.6-2026-12-06.md); on an
# H100, forward 4-8% and forward + backward 5-12% faster (bench/results/kernels-h100-2026-12-06b.md).
PRECISION = {torch.float32: "split3", torch.bfloat16: "tf32", torch.float16: "tf32"}
FLOAT32_PRECISIONS = ("split3", "tf32x3", "tf32", "ieee")   # what float32 may run as (the benchmarks' choice)
# Wider keys or values are cut into blocks of at most this many, each block run as a head of its
# own: a program holds a K x V state (and backward a K x V dS), and at 128 x 128 in float32 that
# spills thousands of bytes, at 128 x 256 it needs more shared memory than the card has
# (bench/ptxas_report.py). The interpreter's value is small so that the tests cross blocks.
MAX_HEAD_DIM = 8 if _INTERPRETED else 64

NO_DECAY, PER_HEAD, PER_KEY = 0, 1, 2


@triton.jit
def _tf32_halves(x):
    """x = hi + lo exactly, hi rounded to nearest on TF32's 10 mantissa bits (|lo| <= 2^-11 |x|).
    Three instructions an element; Triton's own split for "tf32x3" takes about eight, as it also
    rounds lo and keeps an inf operand inf (here it gives nan; finite activations never have one)."""
    hi = ((x.to(tl.uint32, bitcast=True) + 0x1000) & 0xFFFFE000).to(tl.float32, bitcast=True)
    return hi, x - hi


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr):
    """a @ b. With "split3", hi hi + hi lo + lo hi of the split operands, each a TF32 product (the
    card reads lo's top 19 bits; lo lo is below float32's rounding): as close to the float32
    product as Triton's "tf32x3", about 1e-7 of the largest output in an emulation at 16x64x64."""
    if PRECISION == "split3":
        a_hi, a_lo = _tf32_halves(a)
        b_hi, b_lo = _tf32_halves(b)
        out = tl.dot(a_hi, b_lo, input_precision="tf32")
        out = tl.dot(a_lo, b_hi, out, input_precision="tf32")
        return tl.dot(a_hi, b_hi, out, input_precision="tf32")
    else:
        return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _load(ptr, base, t, cols, stride_l, L, N):
    ok = (t < L)[:, None] & (cols < N)[None, :]
    return tl.load(ptr + base + t[:, None] * stride_l + cols[None, :], mask=ok, other=0.0).to(tl.float32)


@triton.jit
def _last_row(x, rows, CHUNK: tl.constexpr):
    return tl.sum(tl.where((rows == CHUNK - 1)[:, None], x, 0.0), axis=0)


@triton.jit
def _cum_decay(g_ptr, g_base, t, cols, g_sl, L, K, rows, gamma, MODE: tl.constexpr):
    """G from the chunk's start: (C, BLOCK_K) with a decay per key, else (C, 1). Padding rows
    decay by nothing, so G_C is the G of the last real step."""
    if MODE == 2:
        G = tl.cumsum(_load(g_ptr, g_base, t, cols, g_sl, L, K), axis=0)
    else:
        G = ((rows + 1).to(tl.float32) * gamma)[:, None]
    return G


@triton.jit
def _decay_matrix(rows, gamma, MODE: tl.constexpr):
    """e^{(i-j) gamma} for j <= i, else 0: the causal mask with decays not per key."""
    diff = (rows[:, None] - rows[None, :]).to(tl.float32)
    causal = diff >= 0
    if MODE == 1:
        return tl.where(causal, exp(tl.where(causal, diff * gamma, 0.0)), 0.0)
    return tl.where(causal, 1.0, 0.0)


@triton.jit
def _level(G, rows, BLOCK_K: tl.constexpr, CHUNK: tl.constexpr, s: tl.constexpr):
    """Level s of the per-key split: e^{G_i - R} on upper-half rows, e^{R - G_j} on lower-half
    rows (0 elsewhere) and which pairs share a block of 2s rows."""
    blocks = tl.reshape(G, (CHUNK // (2 * s), 2 * s, BLOCK_K))
    at_ref = (tl.arange(0, 2 * s) == s - 1)[None, :, None]
    ref = tl.sum(tl.where(at_ref, blocks, 0.0), axis=1)
    R = tl.reshape(tl.broadcast_to(ref[:, None, :], (CHUNK // (2 * s), 2 * s, BLOCK_K)), (CHUNK, BLOCK_K))
    upper = ((rows // s) % 2 == 1)[:, None]
    # min(., 0) only keeps the unused half from overflowing
    up = tl.where(upper, exp(tl.minimum(G - R, 0.0)), 0.0)
    low = tl.where(upper, 0.0, exp(tl.minimum(R - G, 0.0)))
    same = (rows[:, None] // (2 * s)) == (rows[None, :] // (2 * s))
    return up, low, same


@triton.jit
def _scores(q, k, G, D, rows, BLOCK_K: tl.constexpr, CHUNK: tl.constexpr, LOG_CHUNK: tl.constexpr,
            MODE: tl.constexpr, PRECISION: tl.constexpr):
    """A_ij = sum_k q_ik k_jk e^{G_ik - G_jk} for j <= i, else 0."""
    if MODE == 2:
        diag = rows[:, None] == rows[None, :]
        A = tl.where(diag, tl.sum(q * k, axis=1)[:, None], 0.0)
        for level in tl.static_range(LOG_CHUNK):
            up, low, same = _level(G, rows, BLOCK_K, CHUNK, 1 << level)
            A += tl.where(same, _dot(q * up, tl.trans(k * low), PRECISION), 0.0)
    else:
        A = _dot(q, tl.trans(k), PRECISION) * D
    return A


@triton.jit
def _apply_scores(dA, x, G, D, rows, BLOCK_K: tl.constexpr, CHUNK: tl.constexpr,
                  LOG_CHUNK: tl.constexpr, MODE: tl.constexpr, PRECISION: tl.constexpr, TRANSPOSED: tl.constexpr):
    """sum_j dA_ij x_j e^{G_i - G_j} (the dq term), or with TRANSPOSED
    sum_i dA_ij x_i e^{G_i - G_j} (the dk term); dA is already causal."""
    if MODE == 2:
        diag = rows[:, None] == rows[None, :]
        out = tl.sum(tl.where(diag, dA, 0.0), axis=1)[:, None] * x
        for level in tl.static_range(LOG_CHUNK):
            up, low, same = _level(G, rows, BLOCK_K, CHUNK, 1 << level)
            dA_level = tl.where(same, dA, 0.0)
            if TRANSPOSED:
                out += low * _dot(tl.trans(dA_level), x * up, PRECISION)
            else:
                out += up * _dot(dA_level, x * low, PRECISION)
    else:
        if TRANSPOSED:
            out = _dot(tl.trans(dA * D), x, PRECISION)
        else:
            out = _dot(dA * D, x, PRECISION)
    return out


@triton.jit
def _segment_state_kernel(k_ptr, v_ptr, g_ptr, s_ptr, gs_ptr,
                          k_sb, k_sh, k_sl, v_sb, v_sh, v_sl, g_sb, g_sh, g_sl,
                          H, L, K, V, SEG_LEN, N_PREV, MODE: tl.constexpr, CHUNK: tl.constexpr,
                          LOG_CHUNK: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr,
                          PRECISION: tl.constexpr):
    """The state at the end of segment program_id(2) from a zero state (every segment but the
    last, all full), and with a decay per key the segment's total log decay (sum of g)."""
    bh = tl.program_id(0)
    b, h = (bh // H).to(tl.int64), bh % H
    seg = tl.program_id(2)
    kcols = tl.arange(0, BLOCK_K)
    vcols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    rows = tl.arange(0, CHUNK)
    k_base, v_base, g_base = b * k_sb + h * k_sh, b * v_sb + h * v_sh, b * g_sb + h * g_sh
    gamma = tl.load(g_ptr + h).to(tl.float32) if MODE == 1 else 0.0
    S = tl.zeros((BLOCK_K, BLOCK_V), tl.float32)
    G_total = tl.zeros((BLOCK_K,), tl.float32)
    for t0 in range(seg * SEG_LEN, seg * SEG_LEN + SEG_LEN, CHUNK):
        t = t0 + rows
        k = _load(k_ptr, k_base, t, kcols, k_sl, L, K)
        v = _load(v_ptr, v_base, t, vcols, v_sl, L, V)
        if MODE == 0:
            S += _dot(tl.trans(k), v, PRECISION)
        else:
            G = _cum_decay(g_ptr, g_base, t, kcols, g_sl, L, K, rows, gamma, MODE)
            G_C = _last_row(G, rows, CHUNK)
            S = exp(G_C)[:, None] * S + _dot(tl.trans(k * exp(G_C[None, :] - G)), v, PRECISION)
            G_total += G_C
    out = bh.to(tl.int64) * N_PREV + seg
    ok = (kcols < K)[:, None] & (vcols < V)[None, :]
    tl.store(s_ptr + (out * K + kcols[:, None]) * V + vcols[None, :], S, mask=ok)
    if MODE == 2:
        tl.store(gs_ptr + out * K + kcols, G_total, mask=(kcols < K) & (tl.program_id(1) == 0))


@triton.jit
def _state_before(s_ptr, gs_ptr, bh, seg, kcols, vcols, K, V, SEG_LEN, N_PREV, gamma,
                  BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr, MODE: tl.constexpr):
    """The state entering segment seg: the earlier segments' end states, each decayed by the
    segments after it (S <- diag(e^{sum g}) S + S_end, in order)."""
    S = tl.zeros((BLOCK_K, BLOCK_V), tl.float32)
    ok = (kcols < K)[:, None] & (vcols < V)[None, :]
    for r in range(0, seg):
        at = bh.to(tl.int64) * N_PREV + r
        if MODE == 1:
            S = exp(gamma * SEG_LEN) * S
        if MODE == 2:
            S = exp(tl.load(gs_ptr + at * K + kcols, mask=kcols < K, other=0.0))[:, None] * S
        S += tl.load(s_ptr + (at * K + kcols[:, None]) * V + vcols[None, :], mask=ok, other=0.0)
    return S


@triton.jit
def _forward_kernel(q_ptr, k_ptr, v_ptr, g_ptr, o_ptr, s_ptr, gs_ptr,
                    q_sb, q_sh, q_sl, k_sb, k_sh, k_sl, v_sb, v_sh, v_sl, g_sb, g_sh, g_sl,
                    H, L, K, V, SEG_LEN, N_PREV, MODE: tl.constexpr, CHUNK: tl.constexpr, LOG_CHUNK: tl.constexpr,
                    BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr, PRECISION: tl.constexpr,
                    SEGMENTED: tl.constexpr):
    """o for BLOCK_V values of one (batch, head): the whole sequence in one program, or with
    SEGMENTED the segment program_id(2), from the state _segment_state_kernel's ends give it."""
    bh = tl.program_id(0)
    b, h = (bh // H).to(tl.int64), bh % H
    kcols = tl.arange(0, BLOCK_K)
    vcols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    rows = tl.arange(0, CHUNK)
    q_base, k_base, v_base, g_base = b * q_sb + h * q_sh, b * k_sb + h * k_sh, b * v_sb + h * v_sh, b * g_sb + h * g_sh
    o_base = bh.to(tl.int64) * L * V
    gamma = tl.load(g_ptr + h).to(tl.float32) if MODE == 1 else 0.0
    D = _decay_matrix(rows, gamma, MODE)
    S = tl.zeros((BLOCK_K, BLOCK_V), tl.float32)
    t_start, t_end = 0, L
    if SEGMENTED:
        seg = tl.program_id(2)
        t_start = seg * SEG_LEN
        t_end = tl.minimum(t_start + SEG_LEN, L)
        S = _state_before(s_ptr, gs_ptr, bh, seg, kcols, vcols, K, V, SEG_LEN, N_PREV, gamma, BLOCK_K, BLOCK_V, MODE)
    for t0 in range(t_start, t_end, CHUNK):
        t = t0 + rows
        q = _load(q_ptr, q_base, t, kcols, q_sl, L, K)
        k = _load(k_ptr, k_base, t, kcols, k_sl, L, K)
        v = _load(v_ptr, v_base, t, vcols, v_sl, L, V)
        G = _cum_decay(g_ptr, g_base, t, kcols, g_sl, L, K, rows, gamma, MODE)
        A = _scores(q, k, G, D, rows, BLOCK_K, CHUNK, LOG_CHUNK, MODE, PRECISION)
        if MODE == 0:
            o = _dot(q, S, PRECISION)
            k_to_end = k
        else:
            o = _dot(q * exp(G), S, PRECISION)
            G_C = _last_row(G, rows, CHUNK)
            k_to_end = k * exp(G_C[None, :] - G)
            S = exp(G_C)[:, None] * S
        o += _dot(A, v, PRECISION)
        ok = (t < L)[:, None] & (vcols < V)[None, :]
        tl.store(o_ptr + o_base + t[:, None] * V + vcols[None, :], o.to(o_ptr.dtype.element_ty), mask=ok)
        S += _dot(tl.trans(k_to_end), v, PRECISION)


@triton.jit
def _dq_kernel(q_ptr, k_ptr, v_ptr, g_ptr, do_ptr, dq_ptr,
               k_sb, k_sh, k_sl, v_sb, v_sh, v_sl, g_sb, g_sh, g_sl, do_sb, do_sh, do_sl,
               H, L, K, V, MODE: tl.constexpr, CHUNK: tl.constexpr, LOG_CHUNK: tl.constexpr,
               BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr, PRECISION: tl.constexpr):
    """dq for BLOCK_K keys, forward in time (the per-key factors need only those keys' G)."""
    bh = tl.program_id(0)
    b, h = (bh // H).to(tl.int64), bh % H
    kcols = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    vcols = tl.arange(0, BLOCK_V)
    rows = tl.arange(0, CHUNK)
    k_base, v_base, g_base, do_base = b * k_sb + h * k_sh, b * v_sb + h * v_sh, b * g_sb + h * g_sh, b * do_sb + h * do_sh
    dq_base = bh.to(tl.int64) * L * K
    gamma = tl.load(g_ptr + h).to(tl.float32) if MODE == 1 else 0.0
    D = _decay_matrix(rows, gamma, MODE)
    causal = rows[:, None] >= rows[None, :]
    S = tl.zeros((BLOCK_K, BLOCK_V), tl.float32)
    for t0 in range(0, L, CHUNK):
        t = t0 + rows
        k = _load(k_ptr, k_base, t, kcols, k_sl, L, K)
        v = _load(v_ptr, v_base, t, vcols, v_sl, L, V)
        do = _load(do_ptr, do_base, t, vcols, do_sl, L, V)
        G = _cum_decay(g_ptr, g_base, t, kcols, g_sl, L, K, rows, gamma, MODE)
        dA = tl.where(causal, _dot(do, tl.trans(v), PRECISION), 0.0)
        dq = _dot(do, tl.trans(S), PRECISION)
        if MODE == 0:
            k_to_end = k
        else:
            dq = dq * exp(G)
            G_C = _last_row(G, rows, CHUNK)
            k_to_end = k * exp(G_C[None, :] - G)
            S = exp(G_C)[:, None] * S
        dq += _apply_scores(dA, k, G, D, rows, BLOCK_K, CHUNK, LOG_CHUNK, MODE, PRECISION, False)
        ok = (t < L)[:, None] & (kcols < K)[None, :]
        tl.store(dq_ptr + dq_base + t[:, None] * K + kcols[None, :], dq.to(dq_ptr.dtype.element_ty), mask=ok)
        S += _dot(tl.trans(k_to_end), v, PRECISION)


@triton.jit
def _dkv_kernel(q_ptr, k_ptr, v_ptr, g_ptr, do_ptr, dq_ptr, dk_ptr, dv_ptr, dg_ptr,
                q_sb, q_sh, q_sl, k_sb, k_sh, k_sl, v_sb, v_sh, v_sl, g_sb, g_sh, g_sl,
                do_sb, do_sh, do_sl, H, L, K, V, MODE: tl.constexpr, CHUNK: tl.constexpr, LOG_CHUNK: tl.constexpr,
                BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr, PRECISION: tl.constexpr,
                NEED_DG: tl.constexpr):
    """dk, dv and dg, backwards in time, carrying dS."""
    bh = tl.program_id(0)
    b, h = (bh // H).to(tl.int64), bh % H
    kcols = tl.arange(0, BLOCK_K)
    vcols = tl.arange(0, BLOCK_V)
    rows = tl.arange(0, CHUNK)
    q_base, k_base, v_base, g_base = b * q_sb + h * q_sh, b * k_sb + h * k_sh, b * v_sb + h * v_sh, b * g_sb + h * g_sh
    do_base = b * do_sb + h * do_sh
    dk_base, dv_base = bh.to(tl.int64) * L * K, bh.to(tl.int64) * L * V
    gamma = tl.load(g_ptr + h).to(tl.float32) if MODE == 1 else 0.0
    D = _decay_matrix(rows, gamma, MODE)
    causal = rows[:, None] >= rows[None, :]
    dS = tl.zeros((BLOCK_K, BLOCK_V), tl.float32)
    dg_later = tl.zeros((BLOCK_K,), tl.float32)   # sum of dL/dG over the chunks after this one
    dg_total = tl.zeros((BLOCK_K,), tl.float32)   # per head: sum of dg over steps
    n_chunks = tl.cdiv(L, CHUNK)
    for c in range(0, n_chunks):
        t = (n_chunks - 1 - c) * CHUNK + rows
        q = _load(q_ptr, q_base, t, kcols, q_sl, L, K)
        k = _load(k_ptr, k_base, t, kcols, k_sl, L, K)
        v = _load(v_ptr, v_base, t, vcols, v_sl, L, V)
        do = _load(do_ptr, do_base, t, vcols, do_sl, L, V)
        G = _cum_decay(g_ptr, g_base, t, kcols, g_sl, L, K, rows, gamma, MODE)
        A = _scores(q, k, G, D, rows, BLOCK_K, CHUNK, LOG_CHUNK, MODE, PRECISION)
        dA = tl.where(causal, _dot(do, tl.trans(v), PRECISION), 0.0)
        if MODE == 0:
            k_to_end = k
            dk = _dot(v, tl.trans(dS), PRECISION)
        else:
            G_C = _last_row(G, rows, CHUNK)
            to_end = exp(G_C[None, :] - G)
            k_to_end = k * to_end
            dk = to_end * _dot(v, tl.trans(dS), PRECISION)
        dv = _dot(tl.trans(A), do, PRECISION) + _dot(k_to_end, dS, PRECISION)
        dk += _apply_scores(dA, q, G, D, rows, BLOCK_K, CHUNK, LOG_CHUNK, MODE, PRECISION, True)
        k_ok = (t < L)[:, None] & (kcols < K)[None, :]
        tl.store(dk_ptr + dk_base + t[:, None] * K + kcols[None, :], dk.to(dk_ptr.dtype.element_ty), mask=k_ok)
        v_ok = (t < L)[:, None] & (vcols < V)[None, :]
        tl.store(dv_ptr + dv_base + t[:, None] * V + vcols[None, :], dv.to(dv_ptr.dtype.element_ty), mask=v_ok)
        if MODE == 0:
            dS += _dot(tl.trans(q), do, PRECISION)
        else:
            if NEED_DG:
                dq = tl.load(dq_ptr + dk_base + t[:, None] * K + kcols[None, :], mask=k_ok, other=0.0)
                dG = q * dq - k * dk
                dg = tl.cumsum(dG, axis=0, reverse=True) + dg_later[None, :]
                dg_later += tl.sum(dG, axis=0)
                if MODE == 2:
                    tl.store(dg_ptr + dk_base + t[:, None] * K + kcols[None, :], dg.to(dg_ptr.dtype.element_ty), mask=k_ok)
                else:
                    dg_total += tl.sum(dg, axis=0)
            dS = exp(G_C)[:, None] * dS + _dot(tl.trans(q * exp(G)), do, PRECISION)
    if MODE == 1 and NEED_DG:
        tl.store(dg_ptr + bh, tl.sum(dg_total, axis=0))


def _strides(x: torch.Tensor | None) -> tuple[int, int, int]:
    return (0, 0, 0) if x is None or x.dim() == 1 else (x.stride(0), x.stride(1), x.stride(2))


def _unit_last(x: torch.Tensor) -> torch.Tensor:
    """Views with contiguous rows go to the kernel as they are (their other strides are passed)."""
    return x if x.stride(-1) == 1 else x.contiguous()


def _launch_config(config: dict, mode: int) -> dict:
    """The kernel's keywords: the chunk for this decay mode and its log2."""
    config = dict(config)
    chunk = config.pop("CHUNK_PER_KEY") if mode == PER_KEY else config["CHUNK"]
    config.pop("CHUNK_PER_KEY", None)
    if chunk < 16 or chunk & (chunk - 1):
        raise ValueError(f"CHUNK must be a power of two >= 16, got {chunk}")
    return dict(config, CHUNK=chunk, LOG_CHUNK=chunk.bit_length() - 1)


def _block(n: int) -> int:
    return max(16, triton.next_power_of_2(n))  # tl.dot needs every side >= 16


def _precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return PRECISION.get(dtype, "ieee")


def _split(x: torch.Tensor, n: int, width: int) -> torch.Tensor:
    """(B, H, L, n * width or less) -> (B, H, n, L, width): the last dim cut into n blocks,
    zero-padded at the end (zero keys add nothing to a state, zero values nothing to o)."""
    B, H, L, D = x.shape
    x = torch.nn.functional.pad(x, (0, n * width - D))
    return x.view(B, H, L, n, width).permute(0, 1, 3, 2, 4)


def _blockwise(q, k, v, log_decay, max_dim: int) -> torch.Tensor:
    """Linear attention with keys and values cut into blocks of at most max_dim, every (key
    block, value block) pair a head: o is the sum over key blocks (q S and each score are sums
    over keys; a decay per key stays with its key) and the value blocks side by side."""
    B, H, L, K = q.shape
    V = v.shape[-1]
    nk, nv = -(-K // max_dim), -(-V // max_dim)
    kw, vw = -(-K // nk), -(-V // nv)

    def as_heads(x, keys: bool):  # key side (B, H, nk, 1, L, kw) or value side (B, H, 1, nv, L, vw)
        x = _split(x, nk, kw).unsqueeze(3) if keys else _split(x, nv, vw).unsqueeze(2)
        return x.expand(B, H, nk, nv, L, x.shape[-1]).reshape(B, H * nk * nv, L, x.shape[-1])

    qh, kh, vh = as_heads(q, True), as_heads(k, True), as_heads(v, False)
    if log_decay is None or log_decay.dim() == 1:
        gh = None if log_decay is None else log_decay.repeat_interleave(nk * nv)
    else:
        gh = as_heads(log_decay, True)
    o = LinearAttentionFunction.apply(qh, kh, vh, gh).view(B, H, nk, nv, L, vw)
    o = o.sum(2) if nk > 1 else o.squeeze(2)
    return o.permute(0, 1, 3, 2, 4).reshape(B, H, L, nv * vw)[..., :V]


class LinearAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, log_decay):
        B, H, L, K = q.shape
        V = v.shape[-1]
        q, k, v = _unit_last(q), _unit_last(k), _unit_last(v)
        if log_decay is None:
            mode, g = NO_DECAY, q   # never read: any pointer will do
        elif log_decay.dim() == 1:
            mode, g = PER_HEAD, log_decay.float().contiguous()
        else:
            mode, g = PER_KEY, _unit_last(log_decay)
        o = torch.empty(B, H, L, V, device=q.device, dtype=q.dtype)
        cfg = _launch_config(FORWARD_CONFIG, mode)
        cfg["BLOCK_V"] = min(cfg["BLOCK_V"], _block(V))
        precision = _precision(q.dtype)
        if o.numel():
            programs = B * H * triton.cdiv(V, cfg["BLOCK_V"])
            seg_len, n_seg = _segments(L, segment_count(cfg.pop("SEGMENTS", 1), programs, q.device), cfg["CHUNK"])
            g_strides = _strides(g if mode == PER_KEY else None)
            grid = (B * H, triton.cdiv(V, cfg["BLOCK_V"]), n_seg)
            ends = totals = o  # never read with one segment
            if n_seg > 1:
                ends = torch.empty(B * H, n_seg - 1, K, V, device=q.device, dtype=torch.float32)
                totals = torch.empty(B * H, n_seg - 1, K, device=q.device, dtype=torch.float32)
                _segment_state_kernel[(B * H, grid[1], n_seg - 1)](
                    k, v, g, ends, totals, *_strides(k), *_strides(v), *g_strides, H, L, K, V, seg_len, n_seg - 1,
                    MODE=mode, BLOCK_K=_block(K), PRECISION=precision, **cfg)
            _forward_kernel[grid](q, k, v, g, o, ends, totals, *_strides(q), *_strides(k), *_strides(v),
                                  *g_strides, H, L, K, V, seg_len, n_seg - 1, MODE=mode,
                                  BLOCK_K=_block(K), PRECISION=precision, SEGMENTED=n_seg > 1, **cfg)
        ctx.save_for_backward(q, k, v, g)
        ctx.mode, ctx.precision = mode, precision
        ctx.decay_dtype = None if log_decay is None else log_decay.dtype
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, g = ctx.saved_tensors
        mode, precision = ctx.mode, ctx.precision
        B, H, L, K = q.shape
        V = v.shape[-1]
        do = _unit_last(do)
        need_dg = mode != NO_DECAY and ctx.needs_input_grad[3]
        dev = q.device
        # dg needs dq in full precision
        dq = torch.empty(B, H, L, K, device=dev, dtype=torch.float32 if need_dg else q.dtype)
        dk = torch.empty(B, H, L, K, device=dev, dtype=k.dtype)
        dv = torch.empty(B, H, L, V, device=dev, dtype=v.dtype)
        if mode == PER_KEY and need_dg:
            dg = torch.empty(B, H, L, K, device=dev, dtype=g.dtype)
        else:
            dg = torch.zeros(B, H, device=dev, dtype=torch.float32)  # per head: one partial each
        g_strides = _strides(g if mode == PER_KEY else None)
        if q.numel() and v.numel():
            cfg = _launch_config(DQ_CONFIG, mode)
            cfg["BLOCK_K"] = min(cfg["BLOCK_K"], _block(K))
            _dq_kernel[(B * H, triton.cdiv(K, cfg["BLOCK_K"]))](
                q, k, v, g, do, dq, *_strides(k), *_strides(v), *g_strides, *_strides(do),
                H, L, K, V, MODE=mode, BLOCK_V=_block(V), PRECISION=precision, **cfg)
            _dkv_kernel[(B * H,)](
                q, k, v, g, do, dq, dk, dv, dg, *_strides(q), *_strides(k), *_strides(v),
                *g_strides, *_strides(do), H, L, K, V, MODE=mode, BLOCK_K=_block(K),
                BLOCK_V=_block(V), PRECISION=precision, NEED_DG=need_dg, **_launch_config(BACKWARD_CONFIG, mode))
        else:
            dq.zero_(), dk.zero_(), dv.zero_(), dg.zero_()
        grad_decay = None
        if need_dg:
            grad_decay = dg if mode == PER_KEY else dg.sum(0).to(ctx.decay_dtype)
        return dq.to(q.dtype), dk, dv, grad_decay


def linear_attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            log_decay: torch.Tensor | None = None) -> torch.Tensor:
    """q, k: (B, H, L, K); v: (B, H, L, V); log_decay: None, (H,) or (B, H, L, K). o in q's dtype."""
    B, H, L, K = q.shape
    if k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k must be (B, H, L, K) and v (B, H, L, V), got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if log_decay is not None and log_decay.shape not in ((H,), q.shape):
        raise ValueError(f"log_decay must be (H,) or {tuple(q.shape)}, got {tuple(log_decay.shape)}")
    if max(K, v.shape[-1]) > MAX_HEAD_DIM:
        return _blockwise(q, k, v, log_decay, MAX_HEAD_DIM)
    return LinearAttentionFunction.apply(q, k, v, log_decay)
