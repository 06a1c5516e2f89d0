"""Mamba's selective scan: ``selective_scan(u, delta, A, B, C, D) -> y`` (formula in reference.py).
The pure-torch loop for now, on every device; the Triton kernel is to come (issue 28)."""
from __future__ import annotations

from seqicl.ops.selective_scan.reference import selective_scan_ref

__all__ = ["selective_scan", "selective_scan_ref"]


def selective_scan(u, delta, A, B, C, D):
    return selective_scan_ref(u, delta, A, B, C, D)
