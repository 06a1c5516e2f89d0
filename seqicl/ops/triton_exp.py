"""e^x for the Triton kernels, as exp2(x log2 e).

tl.exp compiles to PTX's ex2.approx.f32, whose machine code on sm_90 surrounds each MUFU.EX2 with a
compare, a select and a multiply that keep results below 2^-126 (denormals) instead of flushing
them to 0; tl.exp2 compiles to ex2.approx.ftz.f32, without them (triton 3.6). The kernels here only
add such values to terms near 1 (the weights of a log-space combine, decays within a chunk), where
they change nothing, and the fix-ups were 15% of wkv's forward loop (2540 -> 2150 instructions a
trip: bench/results/sass-floor-sm90-triton3.6-2026-12-06.md).
"""
import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)


@triton.jit
def exp(x):
    return tl.exp2(x * LOG2E)
