"""bench/sass_report.py: the main loop read from SASS, instructions counted by kind, the floor of
each pipe, and the measured times and bytes it sets beside them."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from bench import sass_report  # noqa: E402

SASS = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   S2R R0, SR_CTAID.X ;
.L_x_0:
        /*0020*/                   FFMA R2, R3, R4, R2 ;
        /*0030*/              @!P0 FMUL.FTZ R5, R5, R6 ;
        /*0040*/                   SHFL.BFLY PT, R7, R2, 0x1, 0x1f ;
        /*0050*/                   MUFU.EX2 R8, R7 ;
        /*0060*/                   ISETP.GE.AND P0, PT, R9, 0x10, PT ;
        /*0070*/               @P0 BRA `(.L_x_0) ;
        /*0080*/                   EXIT ;
.L_x_1:
        /*0090*/                   BRA `(.L_x_1) ;
"""


def test_the_widest_backward_branch_is_the_main_loop_and_opcodes_drop_predicates_and_suffixes():
    everything, loop, inner = sass_report.main_loop(SASS)
    assert len(everything) == 10 and len(loop) == 6   # 0x20..0x70; the self-branch at 0x90 is narrower
    assert inner == []
    assert [sass_report.opcode(t) for t in loop] == ["FFMA", "FMUL", "SHFL", "MUFU", "ISETP", "BRA"]


NESTED = """
.L_x_0:
        /*0000*/                   FADD R1, R1, R2 ;
.L_x_1:
        /*0010*/                   MUFU.EX2 R3, R1 ;
        /*0020*/                   FFMA R4, R3, R4, R5 ;
        /*0030*/               @P1 BRA `(.L_x_1) ;
        /*0040*/                   SHFL.BFLY PT, R7, R2, 0x1, 0x1f ;
        /*0050*/               @P0 BRA `(.L_x_0) ;
        /*0060*/                   EXIT ;
"""


def test_a_loop_inside_the_main_loop_counts_once_per_step_of_the_tile():
    everything, loop, inner = sass_report.main_loop(NESTED)
    assert len(loop) == 6 and [[sass_report.opcode(t) for t in body] for body in inner] == [["MUFU", "FFMA", "BRA"]]
    launch = {"consts": {"BLOCK_L": 16}, "programs": 1, "warps": 1, "cubin": b""}
    counts = sass_report.analyse_counts(launch, everything, loop, inner, sms=1, clock_ghz=1e-9)
    # a trip: the outer 3 (FADD, SHFL, BRA) once and the inner 3 sixteen times
    assert counts["loop"] == 3 + 16 * 3 and counts["counts"]["MUFU"] == 16 and counts["counts"]["SHFL"] == 1
    assert counts["floor_ms"]["MUFU"] == pytest.approx(128 * 16 / 0.5 * 1e3)


def test_floors_per_pipe_from_the_counts():
    launch = {"consts": {"BLOCK_L": 16}, "programs": 10, "warps": 2, "cubin": b""}
    counts = sass_report.analyse_counts(launch, *sass_report.main_loop(SASS), sms=1, clock_ghz=1e-9)
    # 2048 / 16 = 128 trips; per program 4 instructions outside the loop + 128 x 6 inside; 20 warps
    assert counts["trips"] == 128
    assert counts["floor_ms"]["issue"] == pytest.approx((4 + 128 * 6) * 20 / 4 * 1e3)
    assert counts["floor_ms"]["shuffle"] == pytest.approx(128 * 1 * 20 / 1 * 1e3)
    assert counts["floor_ms"]["MUFU"] == pytest.approx(128 * 1 * 20 / 0.5 * 1e3)
    assert counts["floor_ms"]["FP32"] == pytest.approx(128 * 2 * 20 / 4 * 1e3)
    assert counts["tightest"] == "MUFU"


def test_measured_times_take_the_timed_settings_and_bytes_match_the_kernel_benchmark():
    got = sass_report.measured_times(ROOT / "bench" / "results" / "kernels-h100-2026-12-06.md")
    assert got["selective_scan (Mamba, N=16)"] == (0.6218, 4.8955)          # the timed row, not the first
    assert got["wkv (RWKV-4)"] == (0.3268, 1.1195)                           # no timed row: the full table's
    from bench.kernels import kernel_cases
    cases = kernel_cases(sass_report.B, sass_report.L, sass_report.D)
    for case in ("wkv (RWKV-4)", "selective_scan (Mamba, N=16)", "linear_attention (gla, H=4 K=V=D/4)",
                 "linear_attention (retnet, H=4 K=V=D/4)"):
        assert sass_report.forward_bytes(case) == cases[case][3], case


@pytest.mark.slow
def test_every_launch_compiles_and_is_read(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "sass.md"
    proc = subprocess.run([sys.executable, "bench/sass_report.py", "--measured",
                           "bench/results/kernels-h100-2026-12-06.md", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    kernels = [r.split("|")[2].strip() for r in rows if "programs" not in r and r.count("|") == 8]
    assert sorted(set(kernels)) == ["_backward_sequential_kernel", "_dkv_kernel", "_dq_kernel", "_forward_kernel",
                                    "_forward_sequential_kernel", "_wkv_backward_sequential_kernel",
                                    "_wkv_forward_sequential_kernel"]
    assert sum("| selective_scan" in r and "x |" in r for r in rows) == 1      # the measured comparison row


def test_sass_settings_names_its_kernels_in_one_line(capsys):
    from bench import sass_settings
    for argv in ([], ["mamba"]):
        assert sass_settings.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == "error: the first argument names the kernel: selective_scan, wkv"
