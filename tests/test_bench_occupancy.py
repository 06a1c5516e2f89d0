"""bench/occupancy.py: programs and warps an SM from a launch's registers, shared memory and grid
(sm_90's limits), and the launches a kernel makes, as the card compiled them."""
import sys

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from bench.occupancy import Launch, RecordLaunches, occupancy, resident_programs  # noqa: E402


@pytest.mark.parametrize("registers, warps, shared, programs", [
    (255, 4, 65536, 2),    # registers: 8160 a warp round up to 8192, so 8 warps of 64
    (248, 4, 0, 2),        # 7936 a warp: still 8 warps
    (128, 4, 0, 4),        # 4096 a warp: 16 warps
    (96, 2, 0, 10),        # 3072 a warp: 21 warps, so 10 programs of 2
    (32, 1, 0, 32),        # 64 warps allowed by registers, but 32 blocks at most
    (64, 4, 100 * 1024, 2),  # shared memory: 228 KB over 101 KB a block
    (16, 8, 0, 8)])        # 64 warps at most
def test_resident_programs_take_the_tightest_limit(registers, warps, shared, programs):
    assert resident_programs(registers, warps, shared) == programs


def test_occupancy_is_what_fits_or_what_the_grid_gives_each_sm():
    la = Launch("_forward_kernel", programs=256, num_warps=4, registers=255, shared=65536)
    assert occupancy(la, 132) == (2, 8)                   # 2 fit; 256 over 132 SMs give 2 an SM
    assert occupancy(Launch("k", 32, 4, 255, 65536), 132) == (1, 4)     # B 8: a quarter of the SMs busy
    assert occupancy(Launch("k", 1024, 1, 184, 0), 132) == (8, 8)       # 11 fit; the grid gives 8
    assert occupancy(Launch("k", 100000, 2, 96, 0), 132) == (10, 20)


@pytest.mark.gpu
def test_the_launches_of_linear_attention_are_recorded_cuda():
    from seqicl.ops.linear_attention import linear_attention
    q, k, v = (torch.randn(8, 4, 512, 64, device="cuda") for _ in range(3))
    with torch.no_grad(), RecordLaunches() as recorded:
        linear_attention(q, k, v)
    names = [launch.kernel for launch in recorded.launches]
    assert "_forward_kernel" in names                      # (with "fill", the segments' state kernel first)
    assert all(launch.registers > 0 and launch.programs >= 8 * 4 for launch in recorded.launches)
