"""The stall watch: stacks of a run that sits in one phase too long (seqicl.train.stall)."""
import time

import pytest

from seqicl.config import compose
from seqicl.train import loop, train
from seqicl.train.stall import ENV, FILE_NAME, StallWatch, stall_seconds

TINY = ["task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
        "train.epochs=2", "train.progress=false", "device=cpu"]


def wait_here_for(seconds):
    time.sleep(seconds)


def test_a_phase_longer_than_the_period_leaves_every_threads_stack(tmp_path):
    with StallWatch(tmp_path, seconds=0.2) as watch:
        watch.phase("epoch 7: training")
        wait_here_for(0.7)
    text = (tmp_path / FILE_NAME).read_text()
    assert "phase: epoch 7: training" in text
    assert "wait_here_for" in text and "test_a_phase_longer_than_the_period" in text
    assert text.count("wait_here_for") >= 2  # again every further period


def test_short_phases_leave_no_file(tmp_path):
    with StallWatch(tmp_path, seconds=5) as watch:
        for name in ("building", "epoch 1: training", "epoch 1: evaluation"):
            watch.phase(name)
            wait_here_for(0.05)
    assert not (tmp_path / FILE_NAME).exists()
    time.sleep(0.3)  # and the watchdog is off once closed: nothing is written later
    assert not (tmp_path / FILE_NAME).exists()


def test_closing_disarms_the_watchdog(tmp_path):
    """faulthandler writes to a file descriptor: armed after close, it would dump into whatever file
    opened next on that number."""
    watch = StallWatch(tmp_path, seconds=0.1)
    watch.phase("short")
    watch.close()
    with open(tmp_path / "opened-next.txt", "w") as other:  # likely the freed descriptor
        wait_here_for(0.4)
        other.flush()
    assert (tmp_path / "opened-next.txt").read_text() == ""


def test_a_killed_run_leaves_its_last_phase_named(tmp_path):
    watch = StallWatch(tmp_path, seconds=60)
    watch.phase("epoch 1: training")
    watch.phase("epoch 1: the caller's report")
    lines = (tmp_path / FILE_NAME).read_text().splitlines()  # not closed: as after SIGKILL
    assert lines[-1].startswith("# ") and "phase: epoch 1: the caller's report" in lines[-1]
    watch.close()
    assert not (tmp_path / FILE_NAME).exists()


def test_the_period_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert stall_seconds() == 300
    monkeypatch.setenv(ENV, "0")
    assert stall_seconds() == 0
    with StallWatch(tmp_path) as watch:  # off: no file, even for a long phase
        watch.phase("anything")
    assert not (tmp_path / FILE_NAME).exists()
    monkeypatch.setenv(ENV, "soon")
    with pytest.raises(ValueError, match=f"{ENV} must be a number of seconds"):
        stall_seconds()


def test_a_training_run_stuck_in_an_epoch_names_the_epoch_and_its_frames(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "0.3")
    real = loop.train_epoch

    def slow_epoch(run):
        if run.epoch == 1:  # the second epoch
            wait_here_for(0.9)
        return real(run)
    monkeypatch.setattr(loop, "train_epoch", slow_epoch)
    summary = train(compose(TINY), run_dir=tmp_path)
    assert summary["status"] == "finished"
    text = (tmp_path / FILE_NAME).read_text()
    # the dumps follow the second epoch's label and come before the next phase's
    stuck = text.split("phase: epoch 2: training")[1].split("phase: epoch 2: evaluation")[0]
    assert "wait_here_for" in stuck and "slow_epoch" in stuck and "train_epochs" in stuck
    assert "wait_here_for" not in text.split("phase: epoch 2: training")[0]


def test_a_run_refused_while_building_leaves_no_folder(tmp_path, monkeypatch):
    """The watch opens its file before the run is built; a run that fails there (a bad setting
    found by the model, the data) leaves nothing on disk, as before the watch."""
    monkeypatch.delenv(ENV, raising=False)

    def refuse(cfg):
        raise ValueError("no such setting")
    monkeypatch.setattr(loop, "build_run", refuse)
    with pytest.raises(ValueError, match="no such setting"):
        train(compose(TINY), run_dir=tmp_path / "runs" / "refused")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError, match="no such setting"):
        train(compose(TINY), run_dir=tmp_path / "kept")
    assert (tmp_path / "kept").is_dir() and list((tmp_path / "kept").iterdir()) == []  # not the watch's to remove


def test_a_healthy_training_run_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    train(compose(TINY), run_dir=tmp_path)
    assert not (tmp_path / FILE_NAME).exists()
