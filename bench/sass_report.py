"""The instruction floor of the kernels that miss issue 28's bandwidth target, without a GPU.

    python bench/sass_report.py [--measured bench/results/kernels-h100-2026-12-06.md] [--out FILE.md]

Every launch of wkv, the selective scan and linear attention (its three decay modes) at the
benchmark's shape (B 64, L 2048, D 256: linear attention 4 heads of 64, the selective scan N 16;
float32) is compiled by Triton for sm_90 instead of launched, and its machine code (SASS, from
nvdisasm) is read: the instructions of its main loop per trip, by kind, the trips per program
(L over the tile or chunk), the programs and warps of the launch. From these, the least time the
launch can take on a card of S SMs at clock F, whichever pipe is the tightest:

    issue:   every warp instruction, 4 per SM per clock (one per scheduler)
    shuffle: SHFL, 1 per SM per clock (32 lanes)
    MUFU:    exp2, log2, reciprocals, 0.5 per SM per clock (16 lanes)
    FP32:    FADD, FMUL, FFMA, 4 per SM per clock (128 lanes)

This is a floor, not a model: memory, barriers and the latency that too few warps per SM cannot
hide come on top, and a card under load runs below its boost clock. Set beside a measured time
(``--measured``: the kernel table bench/kernels.py wrote; its last row per kernel), the ratio says
how far the kernel is from what its own instructions allow. A kernel near 1x is bound by the
instructions it issues and gets faster only with fewer of them; one far above it waits (too few
warps per SM: see the registers in bench/ptxas_report.py), and more of the same instructions
in flight would help. Needs triton's bundled ptxas and nvdisasm; run with TRITON_INTERPRET unset.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ptxas_report import CompileInsteadOfLaunch, cannot_compile  # noqa: E402
from seqicl.atomic import atomic_write_text  # noqa: E402
from seqicl.ops.linear_attention import triton_linear_attention as la  # noqa: E402

NVDISASM = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"
B, L, D, HEADS, N = 64, 2048, 256, 4, 16
# warp instructions per SM per clock on sm_90 (CUDA C++ Programming Guide, arithmetic throughput)
PIPES = {"issue": 4.0, "shuffle": 1.0, "MUFU": 0.5, "FP32": 4.0}
FP32_OPS = ("FADD", "FMUL", "FFMA")


def opcode(instruction: str) -> str:
    """``@!P0 FFMA.FTZ R1, ...`` -> ``FFMA``."""
    words = instruction.split()
    word = words[1] if words and words[0].startswith("@") else (words[0] if words else "")
    return word.split(".")[0]


def main_loop(sass: str) -> tuple[list[str], list[str], list[list[str]]]:
    """(every instruction, the instructions of the widest backward branch's range, and the
    instructions of each backward branch's range nested inside it: the main loop's inner loops)."""
    address = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
    instructions, labels, pending = [], {}, []
    for line in sass.splitlines():
        label = re.match(r"\s*\.L_x_(\d+):", line)
        if label:
            pending.append(label.group(1))
            continue
        m = address.search(line)
        if m:
            at = int(m.group(1), 16)
            for name in pending:
                labels[name] = at
            pending = []
            instructions.append((at, m.group(2)))
    loops = []
    for at, text in instructions:
        target = re.search(r"BRA\b.*\.L_x_(\d+)", text)
        if target and labels.get(target.group(1), at + 1) < at:
            loops.append((labels[target.group(1)], at))
    if not loops:
        return [t for _, t in instructions], [], []
    start, end = max(loops, key=lambda r: r[1] - r[0])
    inner = [(s, e) for s, e in loops if start <= s and e <= end and (s, e) != (start, end)]
    inner = [(s, e) for s, e in inner if not any(o != (s, e) and o[0] <= s and e <= o[1] for o in inner)]
    span = lambda s, e: [t for at, t in instructions if s <= at <= e]   # noqa: E731
    return [t for _, t in instructions], span(start, end), [span(s, e) for s, e in inner]


def launch_cases(collect: CompileInsteadOfLaunch) -> None:
    """Forward and backward of each case at the benchmark's shape, float32 CPU tensors: the launches
    compile, nothing runs (outputs stay uninitialised)."""
    from seqicl.ops.selective_scan.triton_selective_scan import selective_scan_triton
    from seqicl.ops.wkv.triton_wkv import wkv_triton
    K = D // HEADS
    collect.case = "wkv (RWKV-4)"
    w, u = (torch.zeros(D, requires_grad=True) for _ in range(2))
    k, v = (torch.zeros(B, L, D, requires_grad=True) for _ in range(2))
    wkv_triton(w, u, k, v).sum().backward()
    collect.case = "selective_scan (Mamba, N=16)"
    x, delta, Bm, Cm = (torch.zeros(B, L, n, requires_grad=True) for n in (D, D, N, N))
    A, Dp = torch.zeros(D, N, requires_grad=True), torch.zeros(D, requires_grad=True)
    selective_scan_triton(x, delta, A, Bm, Cm, Dp).sum().backward()
    for model, decay in (("linear_transformer", None), ("retnet", torch.zeros(HEADS, requires_grad=True)),
                         ("gla", torch.zeros(B, HEADS, L, K, requires_grad=True))):
        collect.case = f"linear_attention ({model}, H=4 K=V=D/4)"
        q, kk, vv = (torch.zeros(B, HEADS, L, K, requires_grad=True) for _ in range(3))
        la.linear_attention_triton(q, kk, vv, decay).sum().backward()


def analyse(launch: dict, sms: int, clock_ghz: float) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(launch["cubin"])
        f.flush()
        sass = subprocess.run([str(NVDISASM), "-c", f.name], capture_output=True, text=True, check=True).stdout
    return analyse_counts(launch, *main_loop(sass), sms=sms, clock_ghz=clock_ghz)


def analyse_counts(launch: dict, everything: list[str], loop: list[str], inner: list[list[str]],
                   sms: int, clock_ghz: float) -> dict:
    """Each pipe's floor for the launch: the loop's instructions once per trip, the rest once. A loop
    nested in the main one (the sequential selective-scan backward's steps) runs once per step of
    the tile, so its instructions count BLOCK_L times a trip, not once."""
    tile = next((launch["consts"][k] for k in ("BLOCK_L", "CHUNK") if k in launch["consts"]), None)
    trips = -(-L // tile) if tile else 1
    counts = collections.Counter(opcode(t) for t in loop)
    for body in inner:
        counts.update({o: n * ((tile or 1) - 1) for o, n in collections.Counter(opcode(t) for t in body).items()})
    per_trip = sum(counts.values())
    per_program = {"issue": len(everything) - len(loop) + trips * per_trip,
                   "shuffle": trips * counts["SHFL"], "MUFU": trips * counts["MUFU"],
                   "FP32": trips * sum(counts[o] for o in FP32_OPS)}
    warp_instructions = {p: n * launch["programs"] * launch["warps"] for p, n in per_program.items()}
    floor_ms = {p: n / (sms * PIPES[p] * clock_ghz * 1e9) * 1e3 for p, n in warp_instructions.items()}
    tightest = max(floor_ms, key=floor_ms.get)
    return {"loop": per_trip, "trips": trips, "counts": counts, "floor_ms": floor_ms, "tightest": tightest,
            "floor": floor_ms[tightest]}


def measured_times(path: Path) -> dict[str, tuple[float, float]]:
    """kernel name -> (fwd ms, fwd+bwd ms) at B 64, L 2048, D 256: the row of the timed launch
    settings where the table has one (what the kernels launch now), else its last row."""
    rows: dict[str, dict[str, tuple[float, float]]] = collections.defaultdict(dict)
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0][:1].isalpha():
            continue
        try:
            if cells[1] == f"{B}, {L}, {D}" or cells[1] in ("first", "timed"):
                rows[cells[0]]["timed" if cells[1] == "timed" else "other"] = (float(cells[2]), float(cells[3]))
        except ValueError:
            continue
    return {name: got.get("timed", got.get("other")) for name, got in rows.items()}


def forward_bytes(case: str) -> int:
    """What the forward must move (inputs read once, output written once), as bench/kernels.py counts."""
    n = B * L * D
    if case.startswith("selective_scan"):
        return (3 * n + 2 * B * L * N) * 4
    if case.startswith("linear_attention (gla"):
        return 5 * n * 4
    return (4 if case.startswith("linear_attention") else 3) * n * 4


def copy_gbs(path: Path) -> float | None:
    m = re.search(r"copy bandwidth[^0-9]*([0-9]+) GB/s", path.read_text())
    return float(m.group(1)) if m else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sms", type=int, default=132, help="SMs of the card (H100 SXM and H200: 132)")
    p.add_argument("--clock-ghz", type=float, default=1.98, help="its boost clock (H100 SXM and H200: 1.98)")
    p.add_argument("--measured", type=Path, default=None, help="a kernel table of bench/kernels.py")
    p.add_argument("--float32-precision", default=None, choices=la.FLOAT32_PRECISIONS,
                   help="linear attention's float32 matmuls as this instead of its default (split3)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if why := cannot_compile(NVDISASM):
        print(f"error: {why}", file=sys.stderr)
        return 2
    default_precision = dict(la.PRECISION)
    if args.float32_precision:
        la.PRECISION[torch.float32] = args.float32_precision
    try:
        with CompileInsteadOfLaunch(90) as collect:
            launch_cases(collect)
    finally:
        la.PRECISION.update(default_precision)
    measured = measured_times(args.measured) if args.measured else {}
    lines = [f"# Instruction floor of the kernels below issue 28's bandwidth target, sm_90, {datetime.date.today()}",
             "", f"triton {triton.__version__}; `python bench/sass_report.py"
             + (f" --measured {args.measured}" if args.measured else "")
             + (f" --float32-precision {args.float32_precision}" if args.float32_precision else "") + "`; B 64, L 2048, D 256, float32; "
             f"floors at {args.sms} SMs and {args.clock_ghz} GHz. Per trip: warp instructions of the main loop "
             "per trip (shuffles, MUFU, FP32). Floor: the least time of the tightest pipe.", "",
             "| case | kernel | settings | programs x warps | trips | per trip (SHFL / MUFU / FP32) | "
             "floor ms (pipe) |", "|---|---|---|---:|---:|---|---:|"]
    floors: dict[tuple[str, str], float] = collections.defaultdict(float)
    for launch in collect.rows:
        launch = dict(launch, kernel=launch["kernel"].rsplit(".", 1)[-1])
        a = analyse(launch, args.sms, args.clock_ghz)
        c = a["counts"]
        settings = ", ".join(f"{k}={v}" for k, v in launch["consts"].items()
                             if k.isupper() and v is not None) + f", num_warps={launch['warps']}"
        lines.append(f"| {launch['case']} | {launch['kernel']} | {settings} | {launch['programs']} x {launch['warps']} | "
                     f"{a['trips']} | {a['loop']} ({c['SHFL']} / {c['MUFU']} / {sum(c[o] for o in FP32_OPS)}) | "
                     f"{a['floor']:.3f} ({a['tightest']}) |")
        floors[launch["case"], "fwd" if "forward" in launch["kernel"] else "bwd"] += a["floor"]
    if measured:
        copy = copy_gbs(args.measured)
        lines += ["", "Measured (from the kernel table) against the floor; backward = forward + backward less forward. "
                  f"Most % of copy: the forward's bytes at the copy bandwidth ({copy:g} GB/s) over its floor, the "
                  "share of copy bandwidth the forward could reach if it ran at its instruction floor.",
                  "", "| case | fwd ms | fwd floor ms | fwd / floor | most % of copy | bwd ms | bwd floor ms | bwd / floor |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for case in dict.fromkeys(case for case, _ in floors):
            if case not in measured:
                continue
            fwd, both = measured[case]
            f_floor, b_floor = floors[case, "fwd"], floors[case, "bwd"]
            reach = forward_bytes(case) / (copy * 1e6) / f_floor * 100
            lines.append(f"| {case} | {fwd:.3f} | {f_floor:.3f} | {fwd / f_floor:.1f}x | {min(reach, 100):.0f}% | "
                         f"{both - fwd:.3f} | {b_floor:.3f} | {(both - fwd) / b_floor:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
