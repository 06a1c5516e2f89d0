"""Registers, main-loop instruction mix and floors of one kernel's forward at given launch settings
(sm_90, the benchmark's shape: B 64, L 2048, D 256, float32), without a GPU.

    PYTHONPATH=<triton 3.6 site>:$PWD python bench/sass_settings.py selective_scan \\
        '{"BLOCK_L": 16, "BLOCK_E": 32, "SEQUENTIAL": true, "num_warps": 1}' ...
    PYTHONPATH=<triton 3.6 site>:$PWD python bench/sass_settings.py wkv '{"BLOCK_L": 32, "BLOCK_D": 8, "num_warps": 1}'

Each argument after the kernel is one FORWARD_CONFIG as JSON. The selective scan's forward is
compiled as training launches it (N 16, saving states for backward), wkv's as bench/kernels.py
times it (no gradient: no log-denominator store). Resident warps: how many of the launch's warps
an SM can hold at once, by registers and the 32-programs-an-SM limit, against how many it gets."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import sass_report  # noqa: E402
from bench.ptxas_report import CompileInsteadOfLaunch, cannot_compile  # noqa: E402

B, L, D, N = sass_report.B, sass_report.L, sass_report.D, sass_report.N
SMS, CLOCK_GHZ, REGISTERS_PER_SM, PROGRAMS_PER_SM = 132, 1.98, 65536, 32


def launch_selective_scan():
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    x, delta, Bm, Cm = (torch.zeros(B, L, n, requires_grad=True) for n in (D, D, N, N))
    A, Dp = torch.zeros(D, N, requires_grad=True), torch.zeros(D, requires_grad=True)
    kernels.selective_scan_triton(x, delta, A, Bm, Cm, Dp)   # compiles, runs nothing
    return kernels


def launch_wkv():
    from seqicl.ops.wkv import triton_wkv as kernels
    kernels.wkv_triton(torch.zeros(D), torch.zeros(D), torch.zeros(B, L, D), torch.zeros(B, L, D))
    return kernels


KERNELS = {"selective_scan": ("seqicl.ops.selective_scan.triton_selective_scan", launch_selective_scan),
           "wkv": ("seqicl.ops.wkv.triton_wkv", launch_wkv)}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in KERNELS:
        print(f"error: the first argument names the kernel: {', '.join(KERNELS)}", file=sys.stderr)
        return 2
    if why := cannot_compile(sass_report.NVDISASM):
        print(f"error: {why}", file=sys.stderr)
        return 2
    try:
        configs = [json.loads(a) for a in argv[1:]]
    except json.JSONDecodeError as e:
        print(f"error: each argument after the kernel is a FORWARD_CONFIG as JSON ({e})", file=sys.stderr)
        return 2
    module_name, launch_kernel = KERNELS[argv[0]]
    module = __import__(module_name, fromlist=["FORWARD_CONFIG"])
    default = dict(module.FORWARD_CONFIG)
    try:
        for cfg in configs:
            module.FORWARD_CONFIG.clear()
            module.FORWARD_CONFIG.update(cfg)
            with CompileInsteadOfLaunch(90) as collect:
                launch_kernel()
            launch = next(r for r in collect.rows if "forward" in r["kernel"])
            a = sass_report.analyse(dict(launch, kernel=launch["kernel"].rsplit(".", 1)[-1]), SMS, CLOCK_GHZ)
            warps = launch["warps"]
            by_registers = REGISTERS_PER_SM // (max(launch["regs"], 1) * 32 * warps)
            resident = min(by_registers, PROGRAMS_PER_SM) * warps
            print(cfg, "regs", launch["regs"], "spill", launch["spill_store"], "programs", launch["programs"], "x",
                  warps, "loop", a["loop"], "floor ms", {p: round(v, 3) for p, v in a["floor_ms"].items()},
                  f"warps an SM: holds {resident}, gets {launch['programs'] * warps / SMS:.1f}")
            print("  ", a["counts"].most_common(18))
    finally:
        module.FORWARD_CONFIG.clear()
        module.FORWARD_CONFIG.update(default)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
