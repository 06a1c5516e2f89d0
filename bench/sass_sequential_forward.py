"""Registers, main-loop instruction mix and floors of the selective scan forward at given FORWARD_CONFIGs
(sm_90, B 64, L 2048, E 256, N 16, float32, saving states for backward).
    PYTHONPATH=<triton 3.6 site>:$PWD python bench/sass_sequential_forward.py "dict(BLOCK_L=16, BLOCK_E=32, SEQUENTIAL=True, num_warps=1)" ..."""
import sys, subprocess, tempfile, collections, re
sys.path.insert(0, '.')
import torch
from bench.ptxas_report import CompileInsteadOfLaunch
from bench import sass_report as S
from seqicl.ops.selective_scan import triton_selective_scan as k
B, L, D, N = 64, 2048, 256, 16
for cfg in [eval(a) for a in sys.argv[1:]]:
    k.FORWARD_CONFIG.clear(); k.FORWARD_CONFIG.update(cfg)
    with CompileInsteadOfLaunch(90) as col:
        x, delta, Bm, Cm = (torch.zeros(B, L, n, requires_grad=True) for n in (D, D, N, N))
        A, Dp = torch.zeros(D, N, requires_grad=True), torch.zeros(D, requires_grad=True)
        k.selective_scan_triton(x, delta, A, Bm, Cm, Dp)
    launch = [r for r in col.rows if "forward" in r["kernel"]][0]
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(launch["cubin"]); f.flush()
        sass = subprocess.run([str(S.NVDISASM), "-c", f.name], capture_output=True, text=True, check=True).stdout
    open('/tmp/seqf.sass','w').write(sass)
    everything, loop = S.main_loop(sass)
    c = collections.Counter(S.opcode(t) for t in loop)
    a = S.analyse(dict(launch, kernel=launch["kernel"].rsplit(".",1)[-1]), 132, 1.98)
    print(cfg, "regs", launch["regs"], "spill", launch["spill_store"], "progs", launch["programs"], "x", launch["warps"], "loop", len(loop), "floor", {p: round(v,3) for p,v in a["floor_ms"].items()})
    print("  ", c.most_common(18))
