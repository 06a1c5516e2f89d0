"""Launch settings of the chunked kernels, timed against their defaults (needs a CUDA GPU).

    python bench/kernel_configs.py [--out bench/results/kernel-configs-<card>-<date>.md]
    TRITON_INTERPRET=1 python bench/kernel_configs.py --cpu      # plumbing check, tiny shapes
    python bench/kernel_configs.py --kernels selective_scan --against OLD.py   # one kernel, and an
                                   # earlier version of its module (a copy of the file) timed beside it

The linear-attention and selective-scan kernels' launch settings were chosen from ptxas's
register counts on a machine without a card (bench/ptxas_report.py). This times candidate
settings at bench/kernels.py's large shape (B 64, L 2048, D 256: linear attention as 4 heads of
K = V = 64, the selective scan with E 256 and N 16), each beside the default in the same run:
the forward pass alone (no gradient) for forward settings, forward + backward for backward
settings. Before it is timed, every candidate's output (and gradients) is checked against the
default's, so a setting that computes something else is reported, not timed. wkv's settings
(float32, as the kernel table measures it) come first.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqicl.atomic import atomic_write_text  # noqa: E402
from seqicl.ops.linear_attention import triton_linear_attention as la  # noqa: E402
from seqicl.ops.selective_scan import triton_selective_scan as ss  # noqa: E402
from seqicl.ops.wkv import triton_wkv as wkv  # noqa: E402

# Candidates around the defaults timed on 2026-12-06 (kernel-configs-h100-2026-12-06.md: 4 warps
# and the whole value width won the forward; dq and dkv gained ~10% from 4 warps): the whole key
# width for dq, fewer warps, longer chunks at 4 warps, and the selective scan's neighbours.
# The forward's (CHUNK 32, 3 stages) won on 2026-12-06 later (la-forward-settings-h100-2026-12-06.md);
# its neighbours, the one before it, and chunks of 16 without spills in float32 (ptxas_report.py).
# Last, BLOCK_V 32: half the value width a program, twice the programs; at CHUNK 16, 115-128
# registers in bfloat16 (4 programs an SM against the default's 2) and no spills in float32
# (la-forward-value-blocks-ptxas-cpu-2026-12-07.md); untimed.
LA_FORWARD = [dict(CHUNK=c, CHUNK_PER_KEY=ck, BLOCK_V=bv, num_warps=w, num_stages=s)
              for c, ck, bv, w, s in [(16, 16, 64, 4, 3), (16, 16, 64, 4, 2), (32, 32, 64, 4, 3),
                                      (32, 16, 64, 4, 4), (64, 16, 64, 4, 3), (32, 16, 64, 8, 3)]] + \
    [dict(CHUNK=32, CHUNK_PER_KEY=16, BLOCK_V=64, num_warps=4, num_stages=3, SEGMENTS=n) for n in (1, 2, 4, 8)] + \
    [dict(CHUNK=c, CHUNK_PER_KEY=16, BLOCK_V=32, num_warps=4, num_stages=3) for c in (16, 32)]
# SEGMENTS: the sequence cut into segments run in parallel, each from the earlier ones' end states.
# A program holds 202-255 registers a thread (ptxas, triton 3.6), so an SM runs 2 at a time: at
# B 64 (256 programs on 132 SMs) the card is full without segments, and they can only add their
# states' traffic; with fewer (batch x heads) programs than 2 per SM (--batch 2) they may fill it.
# Measured (segments-h100-2026-12-07.md): 8 segments won at B 8, all lost at B 64; the default is
# SEGMENTS "fill" since (seqicl/ops/segments.py), and SEGMENTS=1 is the unsegmented kernel. Same for wkv.
# The defaults before the H200 (dq on 4 warps, dk/dv on 1 stage) stay as candidates.
# dq has the forward's loop shape: the forward's winning 3 stages and chunks of 32 first
LA_DQ = [dict(CHUNK=c, CHUNK_PER_KEY=ck, BLOCK_K=bk, num_warps=w, num_stages=s)
         for c, ck, bk, w, s in [(16, 16, 32, 4, 3), (32, 16, 32, 4, 3), (16, 16, 64, 4, 2), (32, 16, 64, 4, 2),
                                 (16, 16, 32, 4, 2), (16, 16, 16, 4, 2)]]
# (8 warps for dk/dv: with split3 it spills 0-116 bytes against 4 warps' 300-688, ptxas_report.py)
LA_DKV = [dict(CHUNK=c, CHUNK_PER_KEY=ck, num_warps=w, num_stages=s)
          for c, ck, w, s in [(16, 16, 8, 1), (16, 16, 8, 2), (16, 16, 2, 1), (32, 16, 4, 1), (16, 16, 4, 1)]]
# The default forward is the sequential one, (16, 16) on one warp, since its loads stopped waiting
# behind its stores (selective-scan-loads-h100-2026-12-06.md): the parallel-scan forward's best
# launches first, then the sequential one's neighbours (16 channels a warp won; 32 lost in bfloat16)
# PREFETCH: each tile's loads issued during the tile before (the sequential forward runs at 3.2x its
# instruction floor, sass-floor-sm90-triton3.6-2026-12-07.md: it waits on memory). Each thread holds
# half of B and C a step, so a prefetched tile of 16 steps spills (904 bytes at (16, 16)); 8 do not
# (252 registers), ptxas of triton 3.6 here.
SS_FORWARD = [dict(BLOCK_L=bl, BLOCK_E=be, num_warps=w) for bl, be, w in [(16, 16, 4)]] + \
    [dict(BLOCK_L=bl, BLOCK_E=be, SEQUENTIAL=True, PREFETCH=True, num_warps=w)
     for bl, be, w in [(8, 16, 1), (4, 16, 1), (8, 8, 1)]] + \
    [dict(BLOCK_L=bl, BLOCK_E=be, SEQUENTIAL=True, num_warps=w) for bl, be, w in [(8, 16, 1), (16, 8, 1)]] + \
    [dict(BLOCK_L=16, BLOCK_E=16, SEQUENTIAL=True, num_warps=1, SEGMENTS=n) for n in (2, 4)]
# (SEGMENTS: 1,024 one-warp programs at B 64 leave an SM about 8 of the 11 that 184 registers a thread
# allow, ptxas, triton 3.6 float32; segments multiply the programs)
# wkv: the default is the sequential kernels, 64 channels on two warps, tiles of 16 with PREFETCH (0.89x
# the scan-based forward in float32, 0.78x in bfloat16: wkv-sequential-h100-2026-12-07.md). The scan-based
# default before them comes first, then the sequential neighbours. At 32 steps a tile the sequential
# kernels spill (ptxas, triton 3.6), so the tiles stay short.
WKV_SEQUENTIAL = [dict(BLOCK_L=bl, BLOCK_D=bd, SEQUENTIAL=True, PREFETCH=pf, num_warps=w)
                  for bl, bd, pf, w in [(16, 32, True, 1), (16, 128, True, 4), (8, 64, True, 2), (16, 64, False, 2)]]
# SEGMENTS: the default forward's 256 programs of 2 warps at B 64 leave an SM about 4 warps (96
# registers a thread would allow 10 programs, ptxas, triton 3.6): segments multiply the programs.
WKV_FORWARD = [dict(BLOCK_L=32, BLOCK_D=16, num_warps=1)] + WKV_SEQUENTIAL + \
    [dict(BLOCK_L=16, BLOCK_D=64, SEQUENTIAL=True, PREFETCH=True, num_warps=2, SEGMENTS=n) for n in (1, 2, 4, 8)]
WKV_BACKWARD = [dict(BLOCK_L=16, BLOCK_D=16, num_warps=1)] + WKV_SEQUENTIAL
# The default is the sequential backward, (16, 16) on one warp: 0.73x the scan-based (16, 16) on 4 warps
# (selective-scan-sequential-backward-h100-2026-12-06.md), which stays here as the first candidate.
# Then the sequential ones (time inside the program, no scan tree): narrow blocks write more dB, dC
# partials, wide ones hold more states a thread. (An unrolled adjoint sweep, 9% fewer instructions,
# took 1.04-1.17x the default's time: kernel-configs-selective-scan-backward-h100-2026-12-07.md.)
SS_BACKWARD = [dict(BLOCK_L=bl, BLOCK_E=be, REVERSE_SCAN=False, num_warps=w)
               for bl, be, w in [(16, 16, 4)]] + \
    [dict(BLOCK_L=bl, BLOCK_E=be, SEQUENTIAL=True, num_warps=w, num_stages=1)
     for bl, be, w in [(8, 16, 1), (32, 16, 1), (16, 8, 1), (16, 32, 1), (16, 32, 2)]]


def load_module(path: str):
    """A module from a file: an earlier version of a kernel's module, to time beside the current one."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"earlier_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_against(earlier, name: str, fn, args, grad: bool, tol: float, label: str) -> list[str]:
    """The current default of fn beside the earlier module's function of that name, each with its
    own launch settings, on the same inputs (the earlier one checked against the current)."""
    want = run(fn, args, grad)
    base = bench_ms(lambda: run(fn, args, grad))
    old = getattr(earlier, name)
    problem = same(run(old, args, grad), want, tol)
    ms = float("nan") if problem else bench_ms(lambda: run(old, args, grad))
    what = "forward + backward" if grad else "forward"
    rows = [f"| {label} | {what}, this tree (default) | | {base:.3f} | 1.00 |",
            f"| {label} | {what}, earlier code ({earlier.__name__.removeprefix('earlier_')}) | | "
            f"{problem or f'{ms:.3f}'} | {'' if problem else f'{ms / base:.2f}'} |"]
    print("\n".join(rows), flush=True)
    return rows


def bench_ms(fn) -> float:
    if not torch.cuda.is_available():   # the plumbing check: its caller has just run fn to check it
        return float("nan")
    import triton.testing
    return triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")


def la_inputs(B, L, H, K, decay, dtype, device):
    gen = torch.Generator(device).manual_seed(0)
    q, k, v = (torch.randn(B, H, L, K, device=device, generator=gen).to(dtype).requires_grad_() for _ in range(3))
    if decay == "none":
        return [q, k, v]
    g = torch.nn.functional.logsigmoid(torch.randn(B, H, L, K, device=device, generator=gen)) / 16
    return [q, k, v, g.requires_grad_()]


def ss_inputs(B, L, E, N, dtype, device):
    gen = torch.Generator(device).manual_seed(0)
    A = -torch.arange(1.0, N + 1, device=device).repeat(E, 1)
    return [torch.randn(B, L, E, device=device, generator=gen).to(dtype).requires_grad_(),
            (0.1 * torch.rand(B, L, E, device=device, generator=gen)).to(dtype).requires_grad_(), A.requires_grad_(),
            torch.randn(B, L, N, device=device, generator=gen).to(dtype).requires_grad_(),
            torch.randn(B, L, N, device=device, generator=gen).to(dtype).requires_grad_(),
            torch.ones(E, device=device).requires_grad_()]


def wkv_inputs(B, L, D, dtype, device):
    gen = torch.Generator(device).manual_seed(0)
    return [torch.randn(D, device=device, generator=gen).requires_grad_(),
            torch.randn(D, device=device, generator=gen).requires_grad_(),
            torch.randn(B, L, D, device=device, generator=gen).to(dtype).requires_grad_(),
            torch.randn(B, L, D, device=device, generator=gen).to(dtype).requires_grad_()]


def run(fn, args, grad: bool):
    if not grad:
        with torch.no_grad():
            return [fn(*args).float()]
    out = fn(*args)
    return [out.float()] + [g.float() for g in torch.autograd.grad(out.float().sum(), args)]


def same(a: list, b: list, tol: float) -> str | None:
    for i, (x, y) in enumerate(zip(a, b)):
        err = ((x - y).abs().max() / y.abs().max().clamp_min(1e-30)).item()
        if not err <= tol:
            return f"differs from the default (output {i}: relative error {err:.1e})"
    return None


def time_settings(module, name: str, candidates: list[dict], fn, args, grad: bool, tol: float,
                  label: str) -> list[str]:
    """Times module.<name> = each candidate (the default first) and prints one row each; no rows
    for candidates None (a pass not asked for)."""
    if candidates is None:
        return []
    default = getattr(module, name)
    rows = []
    try:
        want = run(fn, args, grad)
        base = bench_ms(lambda: run(fn, args, grad))
        rows.append(f"| {label} | {name} (default) | {fmt(default)} | {base:.3f} | 1.00 |")
        print(rows[-1], flush=True)
        for cand in candidates:
            setattr(module, name, cand)
            try:
                problem = same(run(fn, args, grad), want, tol)
                ms = float("nan") if problem else bench_ms(lambda: run(fn, args, grad))
                rows.append(f"| {label} | {name} | {fmt(cand)} | {problem or f'{ms:.3f}'} | "
                            f"{'' if problem else f'{ms / base:.2f}'} |")
            except Exception as e:  # a setting the card cannot run (e.g. out of shared memory)
                rows.append(f"| {label} | {name} | {fmt(cand)} | failed: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:90]} | |")
            print(rows[-1], flush=True)
    finally:
        setattr(module, name, default)
    return rows


def fmt(cfg: dict) -> str:
    return ", ".join(f"{str(k).removeprefix('torch.')}={v}" for k, v in cfg.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="plumbing check under TRITON_INTERPRET=1, tiny shapes")
    p.add_argument("--out", default=None)
    p.add_argument("--kernels", default="wkv,selective_scan,linear_attention",
                   help="which kernels' settings to time (comma-separated; default all three)")
    p.add_argument("--against", default=None, metavar="FILE",
                   help="an earlier copy of triton_selective_scan.py, timed beside the current default")
    p.add_argument("--passes", default="forward,backward",
                   help="forward, backward or both: which passes' settings to time (backward ones as forward + backward)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="float32, bfloat16 or both")
    p.add_argument("--batch", type=int, default=64, help="B of the GPU shape (L 2048, D 256); default 64")
    args = p.parse_args(argv)
    kernels = set(args.kernels.split(","))
    passes, dtype_names = set(args.passes.split(",")), args.dtypes.split(",")
    if not passes or not passes <= {"forward", "backward"} or not dtype_names or \
            not set(dtype_names) <= {"float32", "bfloat16"}:
        print("error: --passes takes forward, backward; --dtypes float32, bfloat16", file=sys.stderr)
        return 2
    timed = [(dtype, tol) for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 2e-2))
             if str(dtype)[6:] in dtype_names]
    fwd, bwd = "forward" in passes, "backward" in passes
    if not kernels <= {"wkv", "selective_scan", "linear_attention"} or (args.against and not Path(args.against).is_file()):
        print(f"error: --kernels takes wkv, selective_scan, linear_attention; --against an existing file",
              file=sys.stderr)
        return 2
    if args.cpu != (os.environ.get("TRITON_INTERPRET") == "1"):
        print("error: --cpu runs under TRITON_INTERPRET=1 and only there", file=sys.stderr)
        return 2
    if not args.cpu and not torch.cuda.is_available():
        print("error: bench/kernel_configs.py needs a CUDA GPU (or --cpu under TRITON_INTERPRET=1)", file=sys.stderr)
        return 2
    device = "cpu" if args.cpu else "cuda"
    if args.batch < 1:
        print("error: --batch must be at least 1", file=sys.stderr)
        return 2
    B, L, D = (1, 40, 32) if args.cpu else (args.batch, 2048, 256)
    H, K, N = 4, D // 4, 16
    la_fwd, la_dq, la_dkv, ss_fwd, ss_bwd = ((LA_FORWARD, LA_DQ, LA_DKV, SS_FORWARD, SS_BACKWARD) if not args.cpu else
                                              ([dict(CHUNK=16, CHUNK_PER_KEY=16, BLOCK_V=8),
                                                dict(CHUNK=16, CHUNK_PER_KEY=16, BLOCK_V=8, SEGMENTS=2)],
                                               [dict(CHUNK=16, CHUNK_PER_KEY=16, BLOCK_K=8)],
                                               [dict(CHUNK=32, CHUNK_PER_KEY=16)],
                                               [dict(BLOCK_L=8, BLOCK_E=4), dict(BLOCK_L=4, BLOCK_E=8, SEQUENTIAL=True, PREFETCH=True),
                                                dict(BLOCK_L=4, BLOCK_E=8, SEQUENTIAL=True, PREFETCH=True, SEGMENTS=3)],
                                               [dict(BLOCK_L=4, BLOCK_E=8, REVERSE_SCAN=False),
                                                dict(BLOCK_L=8, BLOCK_E=4, SEQUENTIAL=True)]))
    wkv_fwd, wkv_bwd = ((WKV_FORWARD, WKV_BACKWARD) if not args.cpu else
                        ([dict(BLOCK_L=8, BLOCK_D=16, num_warps=1), dict(BLOCK_L=4, BLOCK_D=8, SEQUENTIAL=True, PREFETCH=True),
                          dict(BLOCK_L=4, BLOCK_D=8, SEQUENTIAL=True, PREFETCH=True, SEGMENTS=3)],
                         [dict(BLOCK_L=8, BLOCK_D=16, num_warps=1), dict(BLOCK_L=4, BLOCK_D=8, SEQUENTIAL=True, PREFETCH=True)]))
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (interpreter)"
    import triton
    lines = [f"# Launch settings of the chunked kernels: {card}, {datetime.date.today()}",
             f"torch {torch.__version__}, triton {triton.__version__}; B {B}, L {L}, D {D} (linear attention "
             f"{H} heads of {K}; selective scan N {N}; wkv D {D}); median ms of do_bench; forward settings timed "
             "without gradients, backward ones as forward + backward", "",
             "| case | setting | values | ms | against the default |", "|---|---|---|---:|---:|"]
    print("\n".join(lines), flush=True)
    if "wkv" in kernels:
        # float32 first: the kernel table's wkv row; bfloat16 is what RegBench trains in
        for dtype, tol in timed:
            inputs = wkv_inputs(B, L, D, dtype, device)
            label = f"wkv, {str(dtype)[6:]}"
            lines += time_settings(wkv, "FORWARD_CONFIG", wkv_fwd if fwd else None, wkv.wkv_triton, inputs, False,
                                   tol, label)
            lines += time_settings(wkv, "BACKWARD_CONFIG", wkv_bwd if bwd else None, wkv.wkv_triton, inputs, True,
                                   tol, label)
    earlier = load_module(args.against) if args.against else None
    for dtype, tol in timed:
        dname = str(dtype)[6:]
        for case in ("none", "selective scan", "per_key"):  # the likeliest to matter first
            if ("selective_scan" if case == "selective scan" else "linear_attention") not in kernels:
                continue
            if case == "selective scan":
                inputs = ss_inputs(B, L, D, N, dtype, device)
                label = f"selective scan, {dname}"
                if earlier is not None:
                    for grad in [g for g, wanted in ((False, fwd), (True, bwd)) if wanted]:
                        lines += time_against(earlier, "selective_scan_triton", ss.selective_scan_triton, inputs,
                                              grad, tol, label)
                lines += time_settings(ss, "FORWARD_CONFIG", ss_fwd if fwd else None, ss.selective_scan_triton, inputs,
                                       False, tol, label)
                lines += time_settings(ss, "BACKWARD_CONFIG", ss_bwd if bwd else None, ss.selective_scan_triton, inputs,
                                       True, tol, label)
                continue
            inputs = la_inputs(B, L, H, K, case, dtype, device)
            label = f"linear attention, {dname}, decay {case}"
            if dtype == torch.float32:  # the split done by hand (split3, the default) against Triton's tf32x3
                tf32x3 = [{**la.PRECISION, torch.float32: "tf32x3"}]
                lines += time_settings(la, "PRECISION", tf32x3 if fwd else None, la.linear_attention_triton, inputs,
                                       False, tol, label)
                lines += time_settings(la, "PRECISION", tf32x3 if bwd else None, la.linear_attention_triton, inputs,
                                       True, tol, label + ", forward + backward")
            lines += time_settings(la, "FORWARD_CONFIG", la_fwd if fwd else None, la.linear_attention_triton, inputs,
                                   False, tol, label)
            lines += time_settings(la, "DQ_CONFIG", la_dq if bwd else None, la.linear_attention_triton, inputs, True,
                                   tol, label)
            lines += time_settings(la, "BACKWARD_CONFIG", la_dkv if bwd else None, la.linear_attention_triton, inputs,
                                   True, tol, label)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
