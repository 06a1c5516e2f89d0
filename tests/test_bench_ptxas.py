"""bench/ptxas_report.py compiles every GPU launch of the chunked kernels for sm_90 on a machine
without a GPU: one row per distinct launch, with ptxas's own register count."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_every_launch_of_the_chunked_kernels_compiles_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}   # the GPU's launch settings
    out = tmp_path / "ptxas.md"
    proc = subprocess.run([sys.executable, "bench/ptxas_report.py", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| triton_")]
    kernels = {}
    for kernel, settings, regs, spills, shared in rows:
        kernels.setdefault(kernel.strip(), []).append(settings)
        assert 0 < int(regs) <= 255 and int(shared) >= 0, (kernel, regs)
        stores, loads = (int(x) for x in spills.split("/"))           # ptxas's own two figures, parsed
        assert stores >= 0 and loads >= 0 and "num_warps=" in settings
    la = "triton_linear_attention."
    # three decay modes x two precisions (split3 for float32 inputs, tf32 for bfloat16) per pass
    for name in ("_forward_kernel", "_dq_kernel", "_dkv_kernel"):
        launches = kernels[la + name]
        modes = sorted(s.split("MODE=")[1][0] for s in launches)
        assert modes == ["0", "0", "1", "1", "2", "2"], launches
        assert sorted("PRECISION=split3" in s for s in launches) == [False] * 3 + [True] * 3, launches
    # the selective scan's GPU defaults: both passes step through time (SEQUENTIAL)
    assert sorted(k for k in kernels if "selective" in k) == ["triton_selective_scan._backward_sequential_kernel",
                                                              "triton_selective_scan._forward_sequential_kernel"]


def test_the_interpreters_settings_are_refused():
    proc = subprocess.run([sys.executable, "bench/ptxas_report.py"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TRITON_INTERPRET="1"), timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: unset TRITON_INTERPRET")


def test_a_launch_is_specialised_as_on_the_card():
    """A unit stride is the constant 1 and 16-divisible integers and pointers are marked, as the
    JIT does on a launch: compiled without them, loads get other layouts than on the card."""
    import torch
    import triton.language as tl
    from triton.runtime.jit import JITFunction   # not triton.jit: the suite may run the interpreter

    sys.path.insert(0, str(ROOT))
    from bench.ptxas_report import signature

    def body(x_ptr, stride, n, m, scale, BLOCK: tl.constexpr):
        pass

    kernel = JITFunction(body)

    x = torch.zeros(64)
    sig, consts, attrs = signature(kernel, (x, 1, 32, 7, 0.5), {"BLOCK": 16})
    assert sig == {"x_ptr": "*fp32", "stride": "constexpr", "n": "i32", "m": "i32", "scale": "fp32",
                   "BLOCK": "constexpr"}
    assert consts == {"stride": 1, "BLOCK": 16}
    marked = lambda attrs: {k: v for k, v in attrs.items() if v}   # noqa: E731
    assert marked(attrs) == {(0,): [["tt.divisibility", 16]], (2,): [["tt.divisibility", 16]]}
    # a pointer off the 16-byte grid is not marked
    _, _, attrs = signature(kernel, (x[1:], 2, 33, 7, 0.5), {"BLOCK": 16})
    assert marked(attrs) == {}
