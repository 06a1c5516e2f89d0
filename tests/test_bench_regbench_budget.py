"""bench/regbench_budget.py: GPU-minutes of the regbench preset from a step-time table, by hand."""
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import regbench_budget as rb  # noqa: E402

STEPS = """# Training steps at the RegBench shape: NVIDIA H200, 2026-12-06

| model | layers x width | parameters | precision | ms/step | tokens/s | peak GiB | step |
|---|---|---:|---|---:|---:|---:|---|
| transformer | 12 x 128 | 2,500,000 | fp32 | 20.00 | 1,600,000 | 3.00 | graph |
| transformer | 12 x 128 | 2,500,000 | bf16 | 10.00 | 3,200,000 | 2.00 | graph |
| lstm | 2 x 256 | 1,000,000 | bf16 | failed: RuntimeError: x | | | |
"""


def test_asha_expected_epochs_by_hand():
    # rungs 3 and 9 of 20 epochs, rf 3: 3 for all, 6 more for a third, 11 more for a ninth
    assert rb.expected_epochs(20, 3, 3) == pytest.approx(3 + 6 / 3 + 11 / 9)
    assert rb.expected_epochs(8, 2, 2) == pytest.approx(2 + 2 / 2 + 4 / 4)     # rungs 2, 4 (8 is the end)
    assert rb.expected_epochs(10, 10, 3) == pytest.approx(10)                  # no rung before the end
    # at least one trial goes on past every rung: a lone trial trains all 20 epochs, and of 8
    # trials 8/3 pass the first rung but one, not 8/9, the second
    assert rb.expected_epochs(20, 3, 3, samples=1) == pytest.approx(20)
    assert rb.expected_epochs(20, 3, 3, samples=8) == pytest.approx(3 + 6 / 3 + 11 / 8)


def test_budget_of_the_regbench_preset_from_a_steps_table(tmp_path, capsys):
    steps = tmp_path / "steps.md"
    steps.write_text(STEPS)
    assert rb.read_steps(steps, "bf16") == {"transformer": 10.0}
    assert rb.read_steps(steps, "fp32") == {"transformer": 20.0}
    plan = rb.preset_plan("regbench")
    assert (plan["epochs"], plan["samples"], plan["grace"], plan["rf"], plan["held_out"]) == (20, 8, 3, 3, 1000)
    # 40k examples: 1250 steps an epoch + 1000/32/3 steps' worth of evaluation, 10 ms a step,
    # 8 trials of 6.375 expected epochs (past the second rung: one of the 8, not 8/9)
    want_40k = 8 * (3 + 2 + 11 / 8) * (1250 + 1000 / 32 / 3) * 0.010 / 60
    assert rb.plan_minutes(10.0, 40000, 1000, 20, 8, 3, 3) == pytest.approx(want_40k)
    out = tmp_path / "budget.md"
    assert rb.main([str(steps), "--models", "transformer,lstm", "--sizes", "1000,40000", "--out", str(out)]) == 0
    text = out.read_text()
    want_1k = 8 * (3 + 2 + 11 / 8) * (31 + 1000 / 32 / 3) * 0.010 / 60
    assert f"| transformer | 10.00 | {want_1k:.1f} | {want_40k:.1f} | {want_1k + want_40k:.1f} |" in text
    assert "no step time for: lstm" in text and f"against a budget of 120: {(want_1k + want_40k) / 120:.1f}x" in text
    assert rb.main([str(tmp_path / "missing.md")]) == 2
    assert rb.main([str(steps), "--precision", "tf32"]) == 2
    assert capsys.readouterr().err.count("error: ") == 2


def test_packed_trials_divide_the_minutes(tmp_path, capsys):
    steps = tmp_path / "steps.md"
    steps.write_text(STEPS)
    out = tmp_path / "budget.md"
    assert rb.main([str(steps), "--models", "transformer", "--sizes", "40000", "--packing", "2.5", "--out", str(out)]) == 0
    want = 8 * (3 + 2 + 11 / 8) * (1250 + 1000 / 32 / 3) * 0.010 / 2.5 / 60
    text = out.read_text()
    assert "divided by packing 2.5" in text and f"| transformer | 4.00 | {want:.1f} | {want:.1f} |" in text
    assert rb.main([str(steps), "--packing", "0.5"]) == 2
    assert "--packing is a throughput ratio" in capsys.readouterr().err


def test_length_bucket_rows_give_the_step_times_with_buckets(tmp_path, capsys):
    steps = tmp_path / "steps.md"
    steps.write_text(STEPS + "\n| model | precision | batches | widths | ms/step | real tokens/s | against padded |\n"
                     "|---|---|---|---|---:|---:|---:|\n"
                     "| transformer | bf16 | padded | 720 | 9.00 | 1,000 | 1.00 |\n"
                     "| transformer | bf16 | 4 length buckets | 400, 464, 720 | 6.00 | 1,500 | 0.67 |\n")
    assert rb.read_steps(steps, "bf16") == {"transformer": 10.0}     # the padded table, as before
    assert rb.read_steps(steps, "bf16", buckets=4) == {"transformer": 6.0}
    assert rb.read_steps(steps, "bf16", buckets=8) == {}
    out = tmp_path / "budget.md"
    assert rb.main([str(steps), "--models", "transformer", "--sizes", "40000", "--buckets", "4", "--out", str(out)]) == 0
    want = 8 * (3 + 2 + 11 / 8) * (1250 + 1000 / 32 / 3) * 0.006 / 60
    text = out.read_text()
    assert "4 length buckets" in text and f"| transformer | 6.00 | {want:.1f} | {want:.1f} |" in text
