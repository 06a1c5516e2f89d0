"""Which implementation of a kernel runs: Triton for CUDA tensors, the pure-torch reference
for CPU tensors, unless forced.

    SEQICL_OPS=torch|triton|auto      (environment; default auto)
    with force_backend("triton"): ...  (tests: run Triton on CPU under TRITON_INTERPRET=1)

Triton on CPU only works under the interpreter, which must be enabled (TRITON_INTERPRET=1)
before triton is first imported.
"""
from __future__ import annotations

import contextlib
import os

import torch

BACKENDS = ("auto", "torch", "triton")
_forced: list[str] = []


def current() -> str:
    name = _forced[-1] if _forced else os.environ.get("SEQICL_OPS", "auto")
    if name not in BACKENDS:
        raise ValueError(f"SEQICL_OPS must be one of {', '.join(BACKENDS)}, got '{name}'")
    return name


def use_triton(*tensors: torch.Tensor) -> bool:
    """True when the Triton kernel should run on these tensors."""
    name = current()
    if name == "auto":
        return all(t.is_cuda for t in tensors)
    return name == "triton"


@contextlib.contextmanager
def force_backend(name: str):
    if name not in BACKENDS:
        raise ValueError(name)
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()
