"""A trial cut by a sweep's time budget: what its record says, and what its process may still do.

CI once found epochs 61-64 missing from a resumed trial, most likely so: the cut truncated the
record to its last state (epoch 60) while the trial's process, still alive, finished epoch 65 and
saved it; the resumed run started from that state. Now the cut leaves the file alone, readers count up to the
saved state, and the driver of a local cluster waits for its processes before it goes on."""
import os
import subprocess
import sys
import time

import pytest

from analysis.results import read_run_folder
from seqicl.train.record import RunRecord
from sweeps import leftovers
from sweeps.tune_backend import Keeper

CFG = {"task": {"name": "induction", "metric": "accuracy"}, "model": {"name": "lstm"}, "train": {"epochs": 10}}


def epoch(n: int) -> dict:
    return {"epoch": n, "best_val": n / 10, "best_epoch": n, "test_at_best": n / 10}


def test_a_cut_trial_keeps_the_epochs_its_process_saves_after_the_cut(tmp_path):
    trial = tmp_path / "induction" / "lstm" / "trials" / "0000"
    record = RunRecord(trial)
    record.start(CFG, {}, 10, "cpu", {"trial": "0000"})
    for n in range(1, 5):
        record.append_epoch(epoch(n))
        if n == 2:
            record.set_status("running", epochs=2)  # its state saved at epoch 2; then 3 and 4 trained
    keeper = object.__new__(Keeper)                # only the record side of the driver's keeper
    keeper.exp_dir = tmp_path / "induction" / "lstm"
    keeper.cut("0000", "the time budget of 30 s ran out: --resume continues it")
    status = record.status()
    assert (status["status"], status["epochs"]) == ("running", 2) and "time budget" in status["reason"]
    assert [r["epoch"] for r in record.kept_epochs()] == [1, 2]           # what a resume continues from
    assert [r["epoch"] for r in read_run_folder(trial, tmp_path)["epochs"]] == [1, 2]
    assert [r["epoch"] for r in record.epochs()] == [1, 2, 3, 4]          # nothing removed under a live writer
    # the trial's process, not yet stopped, ends epoch 5 and saves its state there
    record.append_epoch(epoch(5))
    record.set_status("running", epochs=5)
    assert [r["epoch"] for r in record.kept_epochs()] == [1, 2, 3, 4, 5]
    # a run that is over counts every epoch it wrote
    record.set_status("finished", epochs=5)
    assert [r["epoch"] for r in read_run_folder(trial, tmp_path)["epochs"]] == [1, 2, 3, 4, 5]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds processes through /proc")
def test_leftover_processes_are_found_by_name_waited_for_and_killed():
    named = subprocess.Popen(["bash", "-c", "exec -a ray::leftover sleep 60"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    quick = subprocess.Popen(["bash", "-c", "exec -a ray::quick sleep 0.3"])
    try:
        time.sleep(0.2)
        found = leftovers.descendants("ray::")
        assert found == sorted([named.pid, quick.pid])
        started = time.monotonic()
        assert leftovers.reap(found, timeout=1.5) == [named.pid]          # quick ended on its own
        assert 1.4 < time.monotonic() - started < 5
        assert named.wait(timeout=5) == -9 and other.poll() is None
        assert leftovers.reap([], timeout=10) == []                       # nothing to wait for
    finally:
        for p in (named, other, quick):
            p.kill()
            p.wait()
