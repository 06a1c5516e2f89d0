"""How many of a Triton launch's warps an SM holds at once, from what the card compiled.

The kernel table's kernels wait rather than issue too much (bench/sass_report.py: 2.6-5.9x above
their instruction floors at B 64), and a kernel with too few warps an SM cannot hide the latency
of its loads and its loop-carried state. ``RecordLaunches`` notes every Triton launch made inside
it (the compiled kernel's registers and shared memory, and the grid's programs); ``occupancy``
turns one into programs and warps an SM, for sm_90's limits (H100, H200).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# sm_90, per SM: registers, shared memory (the per-block reservation of 1 KB counted), warps, blocks
REGISTERS, SHARED, WARPS, BLOCKS, RESERVED = 65536, 228 * 1024, 64, 32, 1024


@dataclass
class Launch:
    kernel: str
    programs: int
    num_warps: int
    registers: int
    shared: int


def resident_programs(registers: int, num_warps: int, shared: int) -> int:
    """Programs of one kernel an SM holds at once: the least of what registers (allocated a warp
    at a time in 256s), shared memory, warps and blocks allow.

    >>> resident_programs(255, 4, 65536)   # linear attention's float32 forward: 8 warps by registers
    2
    >>> resident_programs(96, 2, 0)        # wkv's sequential forward: 21 warps by registers
    10
    """
    per_warp = math.ceil(registers * 32 / 256) * 256
    by_registers = REGISTERS // per_warp // num_warps
    by_shared = SHARED // (shared + RESERVED) if shared else BLOCKS
    return min(by_registers, by_shared, WARPS // num_warps, BLOCKS)


def occupancy(launch: Launch, sms: int) -> tuple[int, int]:
    """(programs an SM at once, warps an SM at once) for a launch on ``sms`` SMs: its programs
    spread over the SMs, at most as many as fit."""
    fit = resident_programs(launch.registers, launch.num_warps, launch.shared)
    programs = min(fit, math.ceil(launch.programs / sms))
    return programs, programs * launch.num_warps


class RecordLaunches:
    """While active, every launch of a Triton kernel (``kernel[grid](...)``) is noted in ``launches``,
    after it ran. Grids given as functions are noted with 0 programs."""

    def __init__(self):
        self.launches: list[Launch] = []

    def __enter__(self):
        from triton.runtime.jit import JITFunction
        self.original, record = JITFunction.run, self

        def run(jit, *args, grid, warmup, **kwargs):
            compiled = record.original(jit, *args, grid=grid, warmup=warmup, **kwargs)
            if compiled is not None and not warmup:
                programs = 0 if callable(grid) else math.prod(int(g) for g in grid)
                record.launches.append(Launch(jit.__name__, programs, compiled.metadata.num_warps,
                                              compiled.n_regs, compiled.metadata.shared))
            return compiled
        JITFunction.run = run
        return self

    def __exit__(self, *exc):
        from triton.runtime.jit import JITFunction
        JITFunction.run = self.original
