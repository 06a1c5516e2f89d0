"""Sweeps under attack, on the real Ray + Optuna + ASHA path (CPU): drivers and trial workers
killed with SIGKILL, results folders moved and copied mid-sweep, resumed with other settings,
and what listens on the network while a sweep runs."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from analysis.results import load_trials
from seqicl.train.loop import TIMING_KEYS

from conftest import ROOT
from procs import is_loopback, kill_session, listeners_of, session_pids

pytestmark = pytest.mark.slow

# one trial at a time makes the sweep deterministic (ASHA's rungs fill in trial order), so a
# faulted run can be compared with a clean one; 4096 examples make a trial last a few seconds
SWEEP = ["--task", "induction", "--models", "lstm", "--max-concurrent", "1", "--max-failures", "1",
         "train.epochs=6", "train.state_every=2", "task.num_train=4096", "task.num_val=64",
         "task.num_test=64", "model.d_model=16"]
FAULTS = dict(os.environ, SEQICL_FAULTS="crash:0002,nan:0003", PYTHONUNBUFFERED="1", SEQICL_PRESET="smoke")
HEALTHY = {k: v for k, v in FAULTS.items() if k != "SEQICL_FAULTS"}
TABLES = ("table.md", "table.json", "table.csv", "trials.csv", "best_configs.yaml")
TIMING = ("time_total_s", "timestamp", *TIMING_KEYS)


def start(storage: Path, *extra: str, log: Path, env=FAULTS) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "sweeps/run.py", *SWEEP, "--storage", str(storage), *extra],
                            cwd=ROOT, env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(storage: Path, *extra: str, env=FAULTS) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "sweeps/run.py", *SWEEP, "--storage", str(storage), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def epochs_on_disk(storage: Path, trial: str) -> list[int]:
    path = storage / "induction" / "lstm" / "trials" / trial / "epochs.jsonl"
    return [json.loads(x)["epoch"] for x in path.read_text().splitlines()] if path.is_file() else []


def wait_for(what, condition, proc: subprocess.Popen, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the sweep ended before {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)   # the driver alone: Ray's processes are left to notice
    proc.wait()


def comparable(storage: Path) -> dict:
    out = {}
    for t in load_trials(storage):
        rows = [{k: v for k, v in r.items() if k not in TIMING} for r in t.epochs]
        out[t.trial_id] = (t.status, t.params, rows)
    return out


def test_killed_twice_and_a_worker_killed_then_resumed_equals_a_clean_run(tmp_path, sessions):
    clean = tmp_path / "clean" / "sweep"
    done = finish(clean, "--num-samples", "6")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    storage, log = tmp_path / "faulted" / "sweep", tmp_path / "driver.log"
    first = start(storage, "--num-samples", "6", log=log)
    sessions.append(first)
    wait_for("trial 0001 trained 2 epochs", lambda: len(epochs_on_disk(storage, "0001")) >= 2, first)
    sigkill(first)                                               # kill 1: the driver, mid-trial

    second = start(storage, "--resume", log=log)
    sessions.append(second)
    lock = storage / "induction" / "lstm" / "trials" / "0004" / ".lock"
    wait_for("trial 0004 trained an epoch", lambda: len(epochs_on_disk(storage, "0004")) >= 1 and lock.is_file()
             and lock.read_text().strip(), second)
    os.kill(int(lock.read_text()), signal.SIGKILL)               # a trial worker: Tune retries the trial
    wait_for("trial 0005 trained an epoch", lambda: len(epochs_on_disk(storage, "0005")) >= 1, second)
    sigkill(second)                                              # kill 2: the driver again

    last = finish(storage, "--resume")
    assert last.returncode == 0, last.stdout[-3000:] + last.stderr[-3000:] + log.read_text()[-3000:]

    trials = {t.trial_id: t for t in load_trials(storage)}
    assert sorted(trials) == ["0000", "0001", "0002", "0003", "0004", "0005"]   # none lost, none doubled
    for trial in trials:                                         # on disk, every epoch exactly once
        assert epochs_on_disk(storage, trial) == list(range(1, trials[trial].epochs_run + 1)), trial
    assert trials["0004"].status in ("finished", "stopped")      # the killed-then-retried trial
    assert trials["0002"].status == "errored" and "injected crash" in trials["0002"].reason
    assert trials["0003"].status == "diverged"
    assert comparable(storage) == comparable(clean)              # the same trials, statuses and numbers
    for name in TABLES:
        assert (storage / name).read_text() == (clean / name).read_text(), name
    for trial in ("0001", "0004"):                                # TensorBoard: no repeated steps
        acc = EventAccumulator(str(storage / "induction" / "lstm" / "trials" / trial / "tb"))
        acc.Reload()
        steps = [e.step for e in acc.Scalars("train/loss")]
        assert steps == list(range(1, trials[trial].epochs_run + 1)), (trial, steps)


def test_a_folder_moved_mid_sweep_resumes_in_its_new_place_and_a_copy_leaves_its_original_alone(tmp_path, sessions):
    storage = tmp_path / "a" / "sweep"
    first = start(storage, "--num-samples", "3", log=tmp_path / "a.log", env=HEALTHY)
    sessions.append(first)
    wait_for("trial 0001 trained an epoch", lambda: len(epochs_on_disk(storage, "0001")) >= 1, first)
    sigkill(first)
    kill_session(first.pid)                        # nothing of the old cluster may still write there
    moved = tmp_path / "b" / "moved"
    moved.parent.mkdir()
    shutil.move(storage, moved)
    done = finish(moved, "--resume", env=HEALTHY)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert not storage.exists()
    trials = load_trials(moved)
    assert [t.trial_id for t in trials] == ["0000", "0001", "0002"] and all(t.status != "errored" for t in trials)
    assert "| induction head |" in (moved / "table.md").read_text()

    copy = tmp_path / "c" / "copy"
    shutil.copytree(moved, copy)
    before = {p: p.stat().st_mtime_ns for p in moved.rglob("*")}
    more = finish(copy, "--resume", "--num-samples", "4", env=HEALTHY)   # a finished sweep, resumed with more samples
    assert more.returncode == 0, more.stdout[-2000:] + more.stderr[-2000:]
    assert [t.trial_id for t in load_trials(copy)] == ["0000", "0001", "0002", "0003"]
    assert {p: p.stat().st_mtime_ns for p in moved.rglob("*")} == before    # the original: untouched
    stored = json.loads((copy / "sweep.json").read_text())
    assert stored["runs"][-1]["args"]["num_samples"] == 4 and stored["title"] == "sweep"
    assert str(tmp_path) not in "".join(p.read_text(errors="ignore") for p in copy.rglob("*.json"))  # no absolute path


def test_resume_with_other_defining_settings_names_them_and_changes_nothing(tmp_path):
    storage = tmp_path / "sweep"
    done = finish(storage, "--num-samples", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    before = {p: p.read_bytes() for p in storage.rglob("*") if p.is_file() and p.name != ".lock"}
    for extra, message in ((["train.epochs=4"], "train.epochs: 6 -> 4"),
                           (["--preset", "paper"], "preset: 'smoke' -> 'paper'"),
                           (["--seed", "3"], "seed: 0 -> 3")):
        bad = finish(storage, "--resume", *extra)
        err = bad.stderr.strip()
        assert bad.returncode == 2 and len(err.splitlines()) == 1 and message in err, err
    other = subprocess.run([sys.executable, "sweeps/run.py", "--resume", "--storage", str(storage), "--models", "gilr"],
                           cwd=ROOT, capture_output=True, text=True)
    assert other.returncode == 2 and "experiments: lstm -> gilr" in other.stderr
    fewer = finish(storage, "--resume", "--num-samples", "1", "--time-budget", "60")   # may change: nothing to run
    assert fewer.returncode == 0, fewer.stderr[-2000:]
    after = {p: p.read_bytes() for p in storage.rglob("*") if p.is_file() and p.name != ".lock"}
    assert {p for p in after if p.name not in ("sweep.json",) + TABLES + ("trials.jsonl.gz", "search_progress.png")} \
        == {p for p in before if p.name not in ("sweep.json",) + TABLES + ("trials.jsonl.gz", "search_progress.png")}
    assert all(after[p] == before[p] for p in before if p.suffix in (".jsonl", ".pt") or p.name == "run.json")


def test_no_ray_process_listens_beyond_loopback_while_a_sweep_runs(tmp_path, sessions):
    storage = tmp_path / "sweep"
    proc = start(storage, "--num-samples", "2", log=tmp_path / "log")
    sessions.append(proc)
    seen, deadline = [], time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        seen += listeners_of(session_pids(proc.pid))
        time.sleep(0.5)
    assert proc.returncode == 0, (tmp_path / "log").read_text()[-3000:]
    ports = {(addr, port) for _, addr, port in seen}
    assert len(ports) >= 3, seen               # the GCS, the raylet and workers were seen listening
    assert all(is_loopback(addr) for addr, _ in ports), sorted(ports)
    time.sleep(2)
    assert session_pids(proc.pid) == []        # the driver stopped everything it started


def test_sigterm_stops_the_driver_and_everything_it_started_and_the_sweep_resumes(tmp_path, sessions):
    storage = tmp_path / "sweep"
    proc = start(storage, "--num-samples", "2", log=tmp_path / "log", env=HEALTHY)
    sessions.append(proc)
    wait_for("trial 0000 trained an epoch", lambda: len(epochs_on_disk(storage, "0000")) >= 1, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130, (tmp_path / "log").read_text()[-2000:]
    assert "--resume --storage" in (tmp_path / "log").read_text()
    deadline = time.time() + 30
    while session_pids(proc.pid) and time.time() < deadline:
        time.sleep(0.5)
    assert session_pids(proc.pid) == []          # Ray's processes went with the driver
    assert not (storage / ".lock").exists() or os.system(f"flock -n {storage / '.lock'} true") == 0
    done = finish(storage, "--resume", env=HEALTHY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [t.trial_id for t in load_trials(storage)] == ["0000", "0001"]
    assert epochs_on_disk(storage, "0000") == list(range(1, load_trials(storage)[0].epochs_run + 1))


def test_a_trial_cut_by_the_time_budget_is_continued_by_resume_to_its_last_epoch(tmp_path):
    # one trial far longer than the budget: the budget cuts it mid-run, and --resume must train it
    # on from its last state (it used to be told to the search as ended and never trained again)
    storage = tmp_path / "sweep"
    long_trial = [*SWEEP, "train.epochs=150", "train.state_every=5", "optim.warmup_frac=0", "--num-samples", "1"]
    run = lambda *extra: subprocess.run([sys.executable, "sweeps/run.py", *long_trial, "--storage", str(storage), *extra],
                                        cwd=ROOT, env=HEALTHY, capture_output=True, text=True, timeout=900)
    cut = run("--time-budget", "30")
    assert cut.returncode == 0 and "tables are partial" in cut.stdout, cut.stdout[-2000:] + cut.stderr[-2000:]
    status = json.loads((storage / "induction" / "lstm" / "trials" / "0000" / "status.json").read_text())
    written = epochs_on_disk(storage, "0000")
    assert status["status"] == "running" and "time budget" in status["reason"], status
    # the file may hold epochs after the last state (they are trained again); readers count up to it
    assert written == list(range(1, len(written) + 1)) and 0 < status["epochs"] <= len(written) < 150
    assert [t.epochs_run for t in load_trials(storage)] == [status["epochs"]]
    table = (storage / "table.md").read_text()
    assert "still running, or cut by the time budget" in table and f"induction/lstm 0000 ({status['epochs']} of 150 epochs)" in table
    done = run("--resume")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [trial] = load_trials(storage)
    assert trial.status == "finished" and trial.epochs_run == 150
    assert epochs_on_disk(storage, "0000") == list(range(1, 151))


def test_a_trial_out_of_gpu_memory_beside_others_waits_for_fewer_and_trains(tmp_path, sessions):
    """Trials packed on a GPU may not fit (RegBench's twelve models, 16 on an 80 GB H100: 34 of 96
    trials errored on 2026-12-07). Trial 0001 runs out of memory at its first start and 0002 at
    every start: 0001 waits for a slot, with fewer trials at once, and trains; 0002 is errored with
    the reason once it has failed alone (or OOM_RETRIES more times). Nothing else is lost."""
    storage = tmp_path / "sweep"
    env = dict(HEALTHY, SEQICL_FAULTS="oom:0001,oom-always:0002")
    done = subprocess.run([sys.executable, "sweeps/run.py", "--task", "induction", "--models", "lstm",
                           "--max-concurrent", "3", "--max-failures", "0", "--num-samples", "4",
                           "train.epochs=4", "train.state_every=2", "task.num_train=1024", "task.num_val=64",
                           "task.num_test=64", "model.d_model=16", "--storage", str(storage)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "trial 0001 ran out of GPU memory beside" in done.stdout
    trials = {t.trial_id: t for t in load_trials(storage)}
    assert sorted(trials) == ["0000", "0001", "0002", "0003"]
    assert trials["0001"].status in ("finished", "stopped") and trials["0001"].epochs_run >= 2
    assert trials["0002"].status == "errored" and "CUDA out of memory" in trials["0002"].reason
    assert trials["0002"].reason.endswith(("(alone)", "other trials)"))
    assert all(trials[t].status in ("finished", "stopped") for t in ("0000", "0003"))
    assert "4/4 done,  0 running" in done.stdout                  # no trial counted twice or left running


def test_a_trial_out_of_memory_on_one_of_two_gpus_makes_the_trials_share_a_gpu_with_fewer(tmp_path):
    """The limit is per GPU: on two GPUs that are not there (SEQICL_FAKE_GPUS: Ray schedules by
    the count, the trials see no CUDA device and train on the CPU), two trials to a GPU. 0001 ran
    out of memory beside at most one other trial on its GPU, whatever ran on the other, so from
    then on each trial takes a whole GPU (a count over both GPUs left the share at 1/2), and 0001
    trains; 0002, out of memory at every start, is errored as alone once it had a GPU to itself."""
    storage = tmp_path / "sweep"
    env = dict(HEALTHY, SEQICL_FAULTS="oom:0001,oom-always:0002", SEQICL_FAKE_GPUS="2")
    done = subprocess.run([sys.executable, "sweeps/run.py", "--task", "induction", "--models", "lstm",
                           "--trials-per-gpu", "2", "--cpus-per-trial", "0.5", "--max-failures", "0",
                           "--num-samples", "4", "train.epochs=4", "train.state_every=2", "task.num_train=1024",
                           "task.num_val=64", "task.num_test=64", "model.d_model=16", "--storage", str(storage)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "concurrent=4 gpu/trial=0.5" in done.stdout                   # 2 fake GPUs x 2 trials
    assert ("trial 0001 ran out of GPU memory beside 1 other trials on its GPU: it starts again when a GPU "
            "has room, and from now on each trial takes a whole GPU") in done.stdout
    trials = {t.trial_id: t for t in load_trials(storage)}
    assert sorted(trials) == ["0000", "0001", "0002", "0003"]
    assert trials["0001"].status in ("finished", "stopped") and trials["0001"].epochs_run >= 2
    assert trials["0002"].status == "errored" and trials["0002"].reason.endswith("(alone)"), trials["0002"].reason
    assert all(trials[t].status in ("finished", "stopped") for t in ("0000", "0003"))
    for t in ("0000", "0001"):                                          # a fake GPU: trained on the CPU
        assert json.loads((storage / "induction" / "lstm" / "trials" / t / "run.json").read_text())["device"] == "cpu"
    assert "4/4 done,  0 running" in done.stdout
