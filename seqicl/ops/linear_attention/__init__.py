"""Causal linear attention with a decay (linear transformer, RetNet, GLA):

    linear_attention(q, k, v, log_decay=None) -> o      formula in reference.py

The pure-torch loop in reference.py for now, on every device; a chunked Triton kernel is to come
(issue 28), dispatched like the other ops.
"""
from __future__ import annotations

from seqicl.ops.linear_attention.reference import linear_attention_ref

__all__ = ["linear_attention", "linear_attention_ref"]


def linear_attention(q, k, v, log_decay=None):
    return linear_attention_ref(q, k, v, log_decay)
