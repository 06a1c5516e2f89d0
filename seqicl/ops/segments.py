"""Time cut into segments that kernels run in parallel, each from the end states of the ones
before it (the segmented forwards of linear attention, wkv and the selective scan).

A kernel's SEGMENTS setting is a count, or "fill": as many segments as keep the card about full
(``fill_segments``). Timed on an H100 (bench/results/segments-h100-2026-12-07.md, L 2048, D 256):
at B 8 (32 programs of linear attention or wkv on 132 SMs) 8 segments took 0.26-0.88x the
unsegmented forward's time; at B 64 (256 programs) every segment count lost (1.14-1.52x). The
selective scan lost with segments even at B 8, so it stays at one; its small launches take its
parallel-scan forward instead (FEW_PROGRAMS in its FORWARD_CONFIG), which sm_count serves too.
"""
from __future__ import annotations

import functools

import torch

FILL = "fill"
# Programs an SM runs at once, about, for the kernels that fill: linear attention's forward holds
# 202-255 registers a thread (ptxas, triton 3.6), so 2; wkv's lost at 512 programs on 132 SMs too.
PER_SM = 2
# Under Triton's interpreter (CPU) a nominal card this small, so that tests reach the segmented path
INTERPRETER_SMS = 4


def segments(length: int, count: int, tile: int) -> tuple[int, int]:
    """(segment length, number of segments): about length / count steps each, a whole number of
    tiles, at least one segment. Only the last segment may be shorter.

    >>> segments(2048, 3, 32)   # 683 steps rounded up to 22 tiles of 32
    (704, 3)
    >>> segments(5, 4, 16)      # shorter than a tile: one segment
    (16, 1)
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"SEGMENTS must be an integer of at least 1 or {FILL!r}, got {count!r}")
    seg_len = -(-max(-(-length // count), 1) // tile) * tile
    return seg_len, max(-(-length // seg_len), 1)


def fill_segments(programs: int, sms: int, most: int = 8) -> int:
    """The most segments, a power of two up to ``most``, that keep programs x segments within
    PER_SM programs an SM: a launch that already fills the card gets one.

    >>> fill_segments(32, 132)    # B 8 of linear attention (4 heads) or wkv (4 blocks of channels)
    8
    >>> fill_segments(128, 132)   # B 32
    2
    >>> fill_segments(256, 132)   # B 64: full already
    1
    """
    count = 1
    while count * 2 <= most and programs * count * 2 <= PER_SM * sms:
        count *= 2
    return count


@functools.lru_cache(maxsize=None)
def _cuda_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def sm_count(device: torch.device) -> int:
    """The streaming multiprocessors of ``device``; under the interpreter, INTERPRETER_SMS."""
    if device.type != "cuda":
        return INTERPRETER_SMS
    return _cuda_sms(device.index if device.index is not None else torch.cuda.current_device())


def segment_count(setting, programs: int, device: torch.device) -> int:
    """A SEGMENTS setting resolved for one launch of ``programs`` programs (per segment) on ``device``."""
    return fill_segments(programs, sm_count(device)) if setting == FILL else setting
