"""bench/kernel_configs.py's plumbing under the interpreter: every candidate setting is run,
checked against the default's outputs and gradients, and written as a row."""
import importlib.util
import os

import pytest

from conftest import ROOT


def load():
    spec = importlib.util.spec_from_file_location("kernel_configs", ROOT / "bench" / "kernel_configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_candidate_is_checked_and_written(tmp_path):
    assert os.environ.get("TRITON_INTERPRET") == "1"
    out = tmp_path / "configs.md"
    assert load().main(["--cpu", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    # two dtypes x (linear attention: 2 decays x 3 passes; selective scan: 2 passes), default + 1 each,
    # and the selective scan's sequential forward and backward as second candidates; float32 linear
    # attention's two decays also time Triton's tf32x3 against split3, forward and with backward
    # wkv: two dtypes x two passes x (default, scan candidate, sequential candidate), and its forward
    # in 3 segments; linear attention's forward also in 2 segments (two dtypes x two decays), the
    # selective scan's in 3 (two dtypes)
    assert len(rows) == 2 * (2 * 3 + 2) * 2 + 2 * 2 + 2 * 2 * 2 + 2 * 2 * 3 + 2 + 2 * 2 + 2
    assert sum("SEGMENTS=2" in r and "FORWARD_CONFIG" in r for r in rows) == 4
    assert sum("SEGMENTS=3" in r and r.startswith("| wkv, ") for r in rows) == 2
    assert sum("SEGMENTS=3" in r and r.startswith("| selective scan, ") for r in rows) == 2
    assert sum(r.startswith("| wkv, float32 |") for r in rows) == 7
    assert sum(r.startswith("| wkv, bfloat16 |") for r in rows) == 7
    assert sum("float32=tf32x3" in r for r in rows) == 4 and sum("float32=split3" in r for r in rows) == 4
    assert sum("SEQUENTIAL=True" in r for r in rows) == 6 + 6   # selective scan's, wkv's
    assert not [r for r in rows if "differs" in r or "failed" in r]


def test_the_plumbing_check_needs_the_interpreter(monkeypatch, capsys):
    # loaded first: a kernel module first imported without the variable would hold compiled (not
    # interpreted) kernels for the rest of the session, and the next test alone would fail on them
    kernel_configs = load()
    monkeypatch.delenv("TRITON_INTERPRET")
    assert kernel_configs.main(["--cpu"]) == 2
    assert "TRITON_INTERPRET=1" in capsys.readouterr().err


@pytest.mark.slow
def test_one_kernel_beside_an_earlier_copy_of_its_module(tmp_path):
    # --kernels keeps to the selective scan; --against times a copy of its module beside the
    # current one, after checking the copy computes the same outputs and gradients
    earlier = tmp_path / "earlier_scan.py"
    earlier.write_text((ROOT / "seqicl/ops/selective_scan/triton_selective_scan.py").read_text())
    out = tmp_path / "configs.md"
    assert load().main(["--cpu", "--kernels", "selective_scan", "--against", str(earlier), "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert all(r.startswith("| selective scan, ") for r in rows)
    against = [r for r in rows if "earlier code (earlier_scan)" in r]
    assert len(against) == 4 and all("differs" not in r for r in against)   # 2 dtypes x forward, forward + backward


def test_unknown_kernels_and_missing_files_are_refused(tmp_path, capsys):
    assert load().main(["--cpu", "--kernels", "selective_scan,lstm"]) == 2
    assert load().main(["--cpu", "--kernels", "wkv", "--passes", "sideways"]) == 2
    assert load().main(["--cpu", "--kernels", "wkv", "--dtypes", "float64"]) == 2
    assert load().main(["--cpu", "--kernels", "wkv", "--against", str(tmp_path / "none.py")]) == 2
    assert load().main(["--cpu", "--kernels", "wkv", "--batch", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --kernels")


def test_kernels_keeps_to_the_kernels_named(tmp_path):
    # wkv alone: no selective-scan or linear-attention row
    out = tmp_path / "configs.md"
    assert load().main(["--cpu", "--kernels", "wkv", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 14 and all(r.startswith("| wkv, ") for r in rows)


def test_one_pass_in_one_dtype(tmp_path):
    # the selective scan's backward settings alone, in float32: its default and 2 candidates
    out = tmp_path / "configs.md"
    assert load().main(["--cpu", "--kernels", "selective_scan", "--passes", "backward", "--dtypes", "float32",
                        "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3 and all(r.startswith("| selective scan, float32 | BACKWARD_CONFIG") for r in rows)


@pytest.mark.slow
def test_linear_attention_forward_alone(tmp_path):
    # --passes forward: no backward row, the tf32x3 precision row included (3 decays, float32)
    out = tmp_path / "configs.md"
    assert load().main(["--cpu", "--kernels", "linear_attention", "--passes", "forward", "--dtypes", "float32",
                        "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows and all("forward + backward" not in r and "DQ_CONFIG" not in r and "BACKWARD_CONFIG" not in r
                        for r in rows)
    assert sum("float32=tf32x3" in r for r in rows) == 2   # the two decays that time it
