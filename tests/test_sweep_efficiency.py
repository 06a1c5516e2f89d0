"""bench/sweep_efficiency.py: the sweep's shapes weighted by its steps, the packed ceiling's
arithmetic, and the whole script on a CPU (plumbing)."""
import json
import subprocess
import sys

import pytest

from seqicl.config import compose
from seqicl.train.record import RunRecord

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import sweep_efficiency  # noqa: E402


def trial(root, model, name, overrides, epochs, cache):
    cfg = compose([f"model={model}", "task.num_train=64", "task.num_val=8", "task.num_test=8",
                   "train.batch_size=16", f"data.cache_dir={cache}", "device=cpu", *overrides])
    record = RunRecord(root / "induction" / model / "trials" / name)
    record.start(cfg, {}, 1, "cpu")
    for e in range(1, epochs + 1):
        record.append_epoch({"epoch": e, "timestamp": 1000.0 + e})
    record.set_status("finished", epochs=epochs)


def test_trials_of_one_shape_are_one_row_weighted_by_their_steps(tmp_path):
    cache = tmp_path / "cache"
    trial(tmp_path, "lstm", "0000", ["optim.lr=1e-3"], 3, cache)
    trial(tmp_path, "lstm", "0001", ["optim.lr=2e-3"], 2, cache)       # the same shape: lr is no shape
    trial(tmp_path, "lstm", "0002", ["model.d_model=32"], 10, cache)
    shapes = sweep_efficiency.shapes_of(tmp_path)
    # 64 examples / batch 16 = 4 steps an epoch: 40 steps for d32, (3 + 2) * 4 = 20 for the other
    assert [(s["model"]["d_model"], s["trials"], s["steps"]) for s in shapes] == [(32, 1, 40), (64, 2, 20)]
    assert shapes[0]["vocab"] == 20 and shapes[0]["length"] == 31 and shapes[0]["batch"] == 16


def test_the_ceiling_is_the_rate_of_slots_packed_processes_on_the_measured_shapes(monkeypatch):
    shapes = [{"steps": 300, "name": "a"}, {"steps": 100, "name": "b"}, {"steps": 100, "name": "c"}]
    rate = {"a": 10.0, "b": 50.0, "c": 20.0}

    def run_row(n, opts):   # each rank runs shapes[rank % len]: a short round repeats its shapes
        group = opts["shapes"]
        per_rank = {r: rate[group[r % len(group)]["name"]] for r in range(n)}
        return {"total": sum(per_rank.values()), "card": "fake", "why": None, "per_rank": per_rank}
    monkeypatch.setattr(sweep_efficiency.packing, "run_row", run_row)
    out = sweep_efficiency.measure_ceiling([dict(s) for s in shapes], 2, 1.0, 2, cpu=True, use_mps=False)
    # 2 slots doing 500 steps: 300/10 + 100/50 + 100/20 = 37 process-seconds, so 2 * 500 / 37 steps/s
    assert out["ceiling"] == pytest.approx(2 * 500 / 37) and out["covered"] == 1.0
    one = sweep_efficiency.measure_ceiling([dict(s) for s in shapes], 2, 1.0, 1, cpu=True, use_mps=False)
    assert one["ceiling"] == pytest.approx(2 * 400 / 32) and one["covered"] == pytest.approx(0.8)


@pytest.mark.slow
def test_the_script_runs_a_sweep_and_its_ceiling_on_a_cpu(tmp_path):
    out = tmp_path / "eff.md"
    done = subprocess.run([sys.executable, "bench/sweep_efficiency.py", "--cpu", "--task", "induction",
                           "--storage", str(tmp_path / "s"), "--ceiling-seconds", "1", "--ceiling-rounds", "1",
                           "--out", str(out), "--", "--preset", "smoke", "--models", "lstm"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "| induction/lstm |" in text and "efficiency: **" in text and "## Slots over time" in text
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["runs"]


def test_slot_shares_split_the_slot_seconds():
    import trial_breakdown
    rows = [{"time_total_s": 50.0, "eval_s": 10.0, "save_s": 2.0, "setup_s": 4.0},
            {"time_total_s": 30.0, "eval_s": 0.0, "save_s": 0.0, "setup_s": 4.0}]
    # 2 slots x 50 s = 100: training 40 + 30, evaluation 10, writes 2, setup 8, the rest 10
    assert trial_breakdown.slot_shares(rows, 50, 2) == ("slot-seconds: 2 x 50 s; training steps 70.0%, "
                                                        "evaluation 10.0%, writes 2.0%, setup 8.0%, the rest 10.0%")


def test_wall_left_counts_the_trials_not_ended_at_their_experiments_mean():
    import trial_breakdown
    row = lambda s: {"time_total_s": s, "setup_s": 1.0}  # noqa: E731
    trials = [{"experiment": "a", "status": "finished", "epochs": [row(9.0)]},
              {"experiment": "a", "status": "stopped", "epochs": [row(19.0)]},
              {"experiment": "a", "status": "running", "epochs": [row(5.0)]},
              {"experiment": "b", "status": "finished", "epochs": [row(3.0)]}]
    # a: 2 of 4 ended at a mean of 15 s -> 30; b: 3 left at 4 s -> 12; over 2 slots: 21 s
    assert trial_breakdown.wall_left(trials, 4, 2) == 21.0
