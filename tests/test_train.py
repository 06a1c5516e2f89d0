import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seqicl.config import compose
from seqicl.data import load_task
from seqicl.train import CheckpointError, load_checkpoint, save_checkpoint, train
from seqicl.train.optim import lr_factor

from conftest import ROOT


def test_lr_schedule_warms_up_then_decays_to_min():
    total = 100
    f = [lr_factor(s, total, 0.1, 0.1) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(0.1, abs=0.01)


def test_tiny_transformer_learns_induction_head(tmp_path):
    """The whole loop must actually learn: a short induction-head variant goes past 90%."""
    cfg = compose(["task.seq_len=16", "task.num_train=2000", "task.num_val=200", "task.num_test=200",
                   "model.mlp_ratio=0", "optim.lr=1e-3", "train.epochs=30", "train.progress=false",
                   "device=cpu"])
    summary = train(cfg, run_dir=tmp_path)
    assert summary["test_at_best"] > 0.9, summary
    assert summary["best_val"] > 0.9


def test_run_writes_checkpoint_tensorboard_and_reports(tmp_path):
    cfg = compose(["task=dfa", "task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                   "train.epochs=3", "train.progress=false", "device=cpu"])
    seen = []
    summary = train(cfg, on_epoch=lambda m, save: seen.append((m, save)), run_dir=tmp_path)
    assert [m["epoch"] for m, _ in seen] == [1, 2, 3]
    assert {"val_dfa_accuracy", "test_dfa_accuracy", "val_tvd", "test_tvd_at_best", "best_val",
            "test_at_best"} <= set(seen[-1][0])
    assert seen[0][1] is not None and seen[-1][1] is not None  # first epoch is a new best; the last is due
    assert summary["best_val"] == max(m["val_dfa_accuracy"] for m, _ in seen) and summary["status"] == "finished"

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "val/dfa_accuracy", "test/accuracy"} <= set(tags)
    assert [e.step for e in acc.Scalars("val/dfa_accuracy")] == [1, 2, 3]
    assert acc.Scalars("val/dfa_accuracy")[-1].value == pytest.approx(seen[-1][0]["val_dfa_accuracy"])

    model, ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt["config"] == cfg and ckpt["epoch"] == summary["best_epoch"]
    data = load_task(cfg["task"])
    again, _ = load_checkpoint(tmp_path / "best.pt")
    assert torch.equal(model(data.test.inputs[:4]), again(data.test.inputs[:4]))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    real = tmp_path / "real.pt"
    save_checkpoint(real, torch.nn.Linear(2, 2), {"model": {}}, ["a"], 4, 1, {})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated)
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a seqicl checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_cli_single_run_and_bad_override(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "seqicl.train", "task.num_train=64", "task.num_val=16",
                         "task.num_test=16", "train.epochs=1", f"train.run_dir={tmp_path / 'run'}",
                         "device=cpu", "model.d_model=16"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "run" / "best.pt").is_file()
    bad = subprocess.run([sys.executable, "-m", "seqicl.train", "model.d_modl=16", f"train.run_dir={tmp_path / 'x'}"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: unknown config key 'model.d_modl' (use +model.d_modl=... to add one)"
    assert not (tmp_path / "x").exists()


def test_resume_from_a_saved_state_continues_exactly(tmp_path):
    cfg = compose(["task.num_train=256", "task.num_val=32", "task.num_test=32", "model.d_model=16",
                   "train.epochs=3", "train.state_every=1", "train.progress=false", "device=cpu"])
    straight = []
    train(cfg, on_epoch=lambda m, save: straight.append(m), run_dir=tmp_path / "a")
    states = {}

    def keep(m, save):
        if m["epoch"] == 2:
            save(tmp_path / "ckpt")
            states["state"] = torch.load(tmp_path / "ckpt" / "state.pt", weights_only=True)
    train(cfg, on_epoch=keep, run_dir=tmp_path / "b")
    assert (tmp_path / "ckpt" / "best.pt").is_file()
    resumed = []
    train(cfg, on_epoch=lambda m, save: resumed.append(m), run_dir=tmp_path / "b", resume=states["state"])
    assert [m["epoch"] for m in resumed] == [3]
    for key in ("train_loss", "val_loss", "val_accuracy", "best_val"):
        assert resumed[0][key] == straight[2][key], key


def test_nan_loss_stops_the_run_as_diverged(tmp_path):
    cfg = compose(["task.num_train=128", "task.num_val=16", "task.num_test=16", "optim.lr=1e30",
                   "optim.warmup_frac=0.0", "train.grad_clip=0", "train.epochs=5", "train.progress=false",
                   "device=cpu"])
    seen = []
    summary = train(cfg, on_epoch=lambda m, save: seen.append(m), run_dir=tmp_path)
    assert summary["status"] == "diverged"
    assert seen[-1]["diverged"] == 1 and len(seen) < 5
