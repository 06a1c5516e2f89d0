"""Registers and per-loop instruction counts of the sequential selective-scan backward (issue 28;
tried and dropped: bench/results/sass-floor-sm90-triton3.6-2026-12-06.md).
    PYTHONPATH=<triton 3.6 site>:$PWD python bench/sass_sequential_backward.py "dict(BLOCK_L=16, BLOCK_E=32, SEQUENTIAL=True, num_warps=4)" ..."""
import sys, subprocess, tempfile, collections, re
sys.path.insert(0, '.')
import torch
from bench.ptxas_report import CompileInsteadOfLaunch
from bench import sass_report as S
from seqicl.ops.selective_scan import triton_selective_scan as k
B, L, D, N = 64, 2048, 256, 16
import ast
cfgs = [eval(a) for a in sys.argv[1:]]
for cfg in cfgs:
    k.BACKWARD_CONFIG.clear(); k.BACKWARD_CONFIG.update(cfg)
    k.FORWARD_CONFIG.update(BLOCK_L=16)
    with CompileInsteadOfLaunch(90) as col:
        x, delta, Bm, Cm = (torch.zeros(B, L, n, requires_grad=True) for n in (D, D, N, N))
        A, Dp = torch.zeros(D, N, requires_grad=True), torch.zeros(D, requires_grad=True)
        k.selective_scan_triton(x, delta, A, Bm, Cm, Dp).sum().backward()
    launch = [r for r in col.rows if "backward" in r["kernel"]][0]
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(launch["cubin"]); f.flush()
        sass = subprocess.run([str(S.NVDISASM), "-c", f.name], capture_output=True, text=True, check=True).stdout
    open('/tmp/seqb.sass','w').write(sass)
    address = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
    ins, labels, pend = [], {}, []
    for line in sass.splitlines():
        m0 = re.match(r"\s*\.L_x_(\d+):", line)
        if m0: pend.append(m0.group(1)); continue
        m = address.search(line)
        if m:
            at = int(m.group(1), 16)
            for p in pend: labels[p] = at
            pend = []; ins.append((at, m.group(2)))
    loops = []
    for at, t in ins:
        tg = re.search(r"BRA\b.*\.L_x_(\d+)", t)
        if tg and labels.get(tg.group(1), at + 1) < at: loops.append((labels[tg.group(1)], at))
    print(cfg, "regs", launch["regs"], "spill", launch["spill_store"], launch["spill_load"], "total instr", len(ins))
    for s0, e0 in sorted(loops):
        body = [t for at, t in ins if s0 <= at <= e0]
        c = collections.Counter(S.opcode(t) for t in body)
        print(f"  loop {s0:#x}-{e0:#x}: {len(body)} instr, SHFL {c['SHFL']} BAR {c['BAR']} MUFU {c['MUFU']} LDG {c['LDG']} STG {c['STG']} LDS {c['LDS']} STS {c['STS']} STL {c['STL']} LDL {c['LDL']} FP32 {c['FADD']+c['FMUL']+c['FFMA']}")
