"""Registers and instruction floor of the per-state selective-scan backward against the 3-D one
(issue 28; tried and dropped: see bench/results/sass-floor-sm90-triton3.6-2026-12-06.md). Counts the
inner loop over n N times per tile. PYTHONPATH=<triton 3.6 site>:$PWD python bench/sass_per_state_backward.py"""
import re, subprocess, tempfile, collections, sys
sys.path.insert(0, '.')
import torch
from bench.ptxas_report import CompileInsteadOfLaunch
from bench import sass_report as S
from seqicl.ops.selective_scan import triton_selective_scan as k
B, L, D, N = 64, 2048, 256, 16
configs = [dict(BLOCK_L=16, BLOCK_E=16, REVERSE_SCAN=False, num_warps=4)]
for bl, be, w in [(16, 16, 4), (16, 32, 4), (32, 32, 4), (16, 64, 4), (32, 16, 2), (16, 32, 2), (16, 16, 1), (32, 32, 8)]:
    for rev in (False, True):
        configs.append(dict(BLOCK_L=bl, BLOCK_E=be, REVERSE_SCAN=rev, PER_STATE=True, num_warps=w))
for cfg in configs:
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
    everything, outer = S.main_loop(sass)
    # inner loop: the widest backward branch strictly inside the outer one
    txt = "\n".join(l for l in sass.splitlines())
    # reuse main_loop on the outer body only by finding loops again
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
    loops.sort(key=lambda r: r[0] - r[1])
    o = loops[0]
    inner = [r for r in loops[1:] if o[0] <= r[0] and r[1] <= o[1]]
    inner_body = [t for at, t in ins if inner and inner[0][0] <= at <= inner[0][1]] if inner else []
    n_inner = N if cfg.get("PER_STATE") else 1
    per_tile = len(outer) - len(inner_body) + n_inner * len(inner_body)
    cnt = collections.Counter(S.opcode(t) for t in outer); ci = collections.Counter(S.opcode(t) for t in inner_body)
    shfl = cnt["SHFL"] - ci["SHFL"] + n_inner * ci["SHFL"]
    trips = -(-L // cfg["BLOCK_L"])
    progs = B * (-(-D // cfg["BLOCK_E"]))
    issue_ms = (len(everything) - len(outer) + trips * per_tile) * progs * launch["warps"] / (132 * 4 * 1.98e9) * 1e3
    shfl_ms = trips * shfl * progs * launch["warps"] / (132 * 1 * 1.98e9) * 1e3
    print(f"{cfg} regs {launch['regs']} spill {launch['spill_store']} loops {len(loops)} inner {len(inner_body)} per_tile {per_tile} shfl/tile {shfl} issue floor {issue_ms:.3f} ms shfl floor {shfl_ms:.3f} ms progs {progs}")
