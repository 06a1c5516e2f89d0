"""bench/short_conv.py on a CPU: a row per model (and dtype) with both methods timed, the ratio
the two numbers give, the models' real weight shapes, and the default method left as it was."""
import importlib.util

import torch
from conftest import ROOT

from seqicl.ops import short_conv

spec = importlib.util.spec_from_file_location("short_conv_bench", ROOT / "bench" / "short_conv.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_rows_for_each_model_with_both_methods(tmp_path):
    out = tmp_path / "short.md"
    before = short_conv.METHOD
    assert bench.main(["--cpu", "--out", str(out)]) == 0
    assert short_conv.METHOD == before
    tables = out.read_text().split("\n\n")[1:]
    ops = [r.split("|")[1:-1] for r in tables[0].splitlines()[2:]]
    steps = [r.split("|")[1:-1] for r in tables[1].strip().splitlines()[2:]]
    assert [(r[0].strip(), r[2].strip()) for r in ops] == [(m, d) for m in bench.MODELS for d in ("float32", "bfloat16")]
    assert [r[0].strip() for r in steps] == list(bench.MODELS)
    for r in ops:
        conv, shift, ratio = float(r[3]), float(r[4]), float(r[5])
        assert conv > 0 and shift > 0 and abs(ratio - shift / conv) < 0.01 + 0.01 * ratio
    for r in steps:
        conv, shift, ratio = float(r[2]), float(r[3]), float(r[4])
        assert conv > 0 and shift > 0 and abs(ratio - shift / conv) < 0.01 + 0.01 * ratio


def test_the_weights_are_the_models_short_convolutions():
    # at the CPU bench size (width 16): Mamba's 2 x 16 channels of 4 taps, Hyena's 3 x 16 of 3, H3's 16 of 4
    assert tuple(bench.conv_weight("mamba", cpu=True).shape) == (32, 4)
    assert tuple(bench.conv_weight("hyena", cpu=True).shape) == (48, 3)
    assert tuple(bench.conv_weight("h3", cpu=True).shape) == (16, 4)


def test_needs_a_gpu_without_cpu_flag(capsys):
    if torch.cuda.is_available():
        return
    assert bench.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
