"""Registers, spills and shared memory of the chunked kernels' GPU launches, without a GPU.

    python bench/ptxas_report.py [--arch 90] [--out bench/results/ptxas-<triton>-<date>.md]

Every launch that the linear-attention and selective-scan kernels make (forward and backward;
three decay modes; float32 and bfloat16 inputs) at their GPU settings is compiled by Triton for
the given architecture instead of launched, and ptxas reports what each program uses. A spill
is a register that does not fit and goes to local memory: the first thing to look at when such
a kernel is slow, and what this machine can tell without a card. Nothing here is a timing.
The shapes are small (B 2, L 256, K = V = 64, E 256, N 16): the launch settings do not depend
on them beyond the head and state sizes. Needs triton's bundled ptxas, not a GPU; run it with
TRITON_INTERPRET unset (the interpreter's settings are the tests', not the GPU's).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import triton
from triton._C.libtriton import native_specialize_impl
from triton.backends.compiler import BaseBackend, GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqicl.atomic import atomic_write_text  # noqa: E402

TYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.int64: "i64",
         torch.int32: "i32", torch.int8: "i8"}
PTXAS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"


def signature(kernel: JITFunction, args: tuple, kwargs: dict) -> tuple[dict, dict, dict]:
    """Triton's signature, constexpr values and attributes of one launch, specialised from its
    Python arguments exactly as a launch on the card does (the JIT's own specialize_impl): an
    integer 1 (a unit stride) becomes the constant 1, and integers and pointers divisible by 16
    are marked so. Without that, a stride's unit and the pointers' alignment are unknown to the
    compiler, and loads get other layouts and widths than on the card."""
    bound = dict(zip(kernel.arg_names, args), **kwargs)
    sig, consts, attrs = {}, {}, {}
    for i, p in enumerate(kernel.params):
        value = bound[p.name] if p.name in bound else p._param.default
        if p.is_constexpr or value is None:
            sig[p.name], consts[p.name] = "constexpr", value
            continue
        if isinstance(value, torch.Tensor) and value.dtype not in TYPES:
            raise TypeError(f"{kernel.__name__}: cannot type {p.name} ({value.dtype})")
        kind, attr = native_specialize_impl(BaseBackend, value, p.is_const, not p.do_not_specialize,
                                            not p.do_not_specialize_on_alignment)
        sig[p.name] = kind
        if kind == "constexpr":
            consts[p.name] = attr
        elif isinstance(attr, str):
            attrs[(i,)] = BaseBackend.parse_attr(attr)
    return sig, consts, attrs


def ptxas_usage(ptx: str, arch: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "kernel.ptx"
        src.write_text(ptx)
        out = subprocess.run([str(PTXAS), "-v", f"-arch=sm_{arch}a", str(src), "-o", str(src.with_suffix(".o"))],
                             capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"ptxas: {out.stderr.strip().splitlines()[-1]}")
    regs = re.search(r"Used (\d+) registers", out.stderr)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out.stderr)
    return {"regs": int(regs.group(1)), "spill_store": int(spill.group(1)), "spill_load": int(spill.group(2))}


class CompileInsteadOfLaunch:
    """While active, ``kernel[grid](...)`` compiles for ``arch`` and records what ptxas says."""

    def __init__(self, arch: int):
        self.arch, self.rows, self.seen = arch, [], set()
        self.case = ""  # a label the caller sets before each case's launches; kept in their rows

    def __enter__(self):
        self.original = JITFunction.run
        report = self

        def run(kernel, *args, grid, warmup, **kwargs):
            options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
            sig, consts, attrs = signature(kernel, args, kwargs)
            key = (kernel.fn.__module__, kernel.__name__, str(sorted(sig.items())), str(sorted(consts.items())),
                   str(sorted(attrs.items())), str(sorted(options.items())))
            if key in report.seen:
                return
            report.seen.add(key)
            compiled = triton.compile(ASTSource(kernel, sig, consts, attrs), target=GPUTarget("cuda", report.arch, 32),
                                      options=options)
            grid = grid(dict(consts, **options)) if callable(grid) else grid
            report.rows.append({"kernel": f"{kernel.fn.__module__.rsplit('.', 1)[-1]}.{kernel.__name__}",
                                "settings": {k: v for k, v in consts.items() if v is not None} | options,
                                "shared": compiled.metadata.shared, **ptxas_usage(compiled.asm["ptx"], report.arch),
                                # for readers of the machine code (sass_report.py)
                                "case": report.case, "consts": consts, "cubin": compiled.asm["cubin"],
                                "programs": math.prod(int(g) for g in grid), "warps": compiled.metadata.num_warps})
        JITFunction.run = run
        return self

    def __exit__(self, *exc):
        JITFunction.run = self.original


def launch_every_kernel() -> list[str]:
    """Forward and backward of each case on CPU tensors: the launches compile, nothing runs on
    them (outputs stay uninitialised), so only the launch arguments matter."""
    from seqicl.ops.linear_attention.triton_linear_attention import linear_attention_triton
    from seqicl.ops.selective_scan.triton_selective_scan import selective_scan_triton
    B, H, L, K, E, N = 2, 4, 256, 64, 256, 16
    cases = []
    for dtype in (torch.float32, torch.bfloat16):
        for mode in ("none", "per head", "per key"):
            q, k, v = (torch.zeros(B, H, L, K, dtype=dtype, requires_grad=True) for _ in range(3))
            decay = None if mode == "none" else (torch.zeros(H) if mode == "per head" else
                                                  torch.zeros(B, H, L, K, dtype=dtype)).requires_grad_()
            linear_attention_triton(q, k, v, decay).float().sum().backward()
            cases.append(f"linear attention, {str(dtype)[6:]}, decay {mode}")
        u, delta, Bm, Cm = (torch.zeros(B, L, n, dtype=dtype, requires_grad=True) for n in (E, E, N, N))
        A, D = torch.zeros(E, N, requires_grad=True), torch.zeros(E, requires_grad=True)
        selective_scan_triton(u, delta, A, Bm, Cm, D).float().sum().backward()
        cases.append(f"selective scan, {str(dtype)[6:]}")
    return cases


def cannot_compile(*tools: Path) -> str | None:
    """Why this machine cannot compile the GPU launches here (one line), or None."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "unset TRITON_INTERPRET: the interpreter's launch settings are not the GPU's"
    missing = [t for t in (PTXAS, *tools) if not t.exists()]
    return f"no {missing[0].name} at {missing[0]}" if missing else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 for the H100 and H200")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if why := cannot_compile():
        print(f"error: {why}", file=sys.stderr)
        return 2
    with CompileInsteadOfLaunch(args.arch) as report:
        cases = launch_every_kernel()
    lines = [f"# ptxas usage of the chunked kernels' GPU launches, sm_{args.arch}a, {datetime.date.today()}",
             f"triton {triton.__version__}, torch {torch.__version__}; compiled on a machine without a GPU "
             f"(bench/ptxas_report.py); cases: {'; '.join(cases)}", "",
             "| kernel | settings | registers | spill stores / loads (bytes) | shared (bytes) |",
             "|---|---|---:|---:|---:|"]
    for r in report.rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        lines.append(f"| {r['kernel']} | {settings} | {r['regs']} | {r['spill_store']} / {r['spill_load']} | {r['shared']} |")
    print("\n".join(lines))
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
