"""Registers, main-loop instruction mix and floors of the selective scan forward at given FORWARD_CONFIGs
(sm_90, B 64, L 2048, E 256, N 16, float32, saving states for backward).
    PYTHONPATH=<triton 3.6 site>:$PWD python bench/sass_sequential_forward.py \
        '{"BLOCK_L": 16, "BLOCK_E": 32, "SEQUENTIAL": true, "num_warps": 1}' ...
Each argument is one FORWARD_CONFIG as JSON."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import sass_report  # noqa: E402
from bench.ptxas_report import CompileInsteadOfLaunch, cannot_compile  # noqa: E402
from seqicl.ops.selective_scan import triton_selective_scan as kernels  # noqa: E402

B, L, D, N = sass_report.B, sass_report.L, sass_report.D, sass_report.N   # the benchmark's shape


def main(argv: list[str]) -> int:
    if why := cannot_compile(sass_report.NVDISASM):
        print(f"error: {why}", file=sys.stderr)
        return 2
    try:
        configs = [json.loads(a) for a in argv]
    except json.JSONDecodeError as e:
        print(f"error: each argument is a FORWARD_CONFIG as JSON ({e})", file=sys.stderr)
        return 2
    for cfg in configs:
        kernels.FORWARD_CONFIG.clear()
        kernels.FORWARD_CONFIG.update(cfg)
        with CompileInsteadOfLaunch(90) as collect:
            x, delta, Bm, Cm = (torch.zeros(B, L, n, requires_grad=True) for n in (D, D, N, N))
            A, Dp = torch.zeros(D, N, requires_grad=True), torch.zeros(D, requires_grad=True)
            kernels.selective_scan_triton(x, delta, A, Bm, Cm, Dp)   # compiles, runs nothing
        launch = next(r for r in collect.rows if "forward" in r["kernel"])
        a = sass_report.analyse(dict(launch, kernel=launch["kernel"].rsplit(".", 1)[-1]), 132, 1.98)
        print(cfg, "regs", launch["regs"], "spill", launch["spill_store"], "programs", launch["programs"], "x",
              launch["warps"], "loop", a["loop"], "floor ms", {p: round(v, 3) for p, v in a["floor_ms"].items()})
        print("  ", a["counts"].most_common(18))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
