"""Time cut into segments that kernels run in parallel, each from the end states of the ones
before it (the segmented forwards of linear attention, wkv and the selective scan)."""
from __future__ import annotations


def segments(length: int, count: int, tile: int) -> tuple[int, int]:
    """(segment length, number of segments): about length / count steps each, a whole number of
    tiles, at least one segment. Only the last segment may be shorter.

    >>> segments(2048, 3, 32)   # 683 steps rounded up to 22 tiles of 32
    (704, 3)
    >>> segments(5, 4, 16)      # shorter than a tile: one segment
    (16, 1)
    """
    if count < 1:
        raise ValueError(f"SEGMENTS must be at least 1, got {count}")
    seg_len = -(-max(-(-length // count), 1) // tile) * tile
    return seg_len, max(-(-length // seg_len), 1)
