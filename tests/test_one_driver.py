"""One driver runs every experiment of a sweep in one Tuner, with a fair share of the slots
(sweeps.tune_backend.run_lanes, pick_lane), on the real Ray + Optuna + ASHA path (CPU).

What ran when comes from the trial records alone: run.json's "started" (written by the trial's
process once Tune started it, after its setup) and status.json's "updated" (its last change: the
end of a trial that is over). Both lag the slot a little, so the sharing is judged only at
instants at least TOL from every start and end; the first trials of a run wait for Ray to start
their processes one by one, so the judging begins once every slot has had a trial."""
import json
import os
import signal
import subprocess
import sys
import time
from bisect import bisect_left
from pathlib import Path

import pytest

from analysis.results import load_trials
from seqicl.train.loop import TIMING_KEYS
from sweeps.study import open_study

from conftest import ROOT

pytestmark = pytest.mark.slow

TASK = "induction"
# trials of a few seconds each on a CPU (6 epochs: ASHA's rungs at 2 and 4)
TINY = ["train.epochs=6", "train.state_every=2", "task.num_train=2048", "task.num_val=64", "task.num_test=64",
        "model.d_model=16"]
LONGER = [*TINY, "task.num_train=4096"]   # the last override wins: trials long beside TOL
TABLES = ("table.md", "table.json", "table.csv", "trials.csv", "best_configs.yaml")
TIMING = ("time_total_s", "timestamp", *TIMING_KEYS)
TOL = 0.5     # seconds: a record's start or end is at most this far from its slot's (measured: < 0.1 s)

# run.py's lanes_of, but with a number of samples of each experiment's own: --num-samples is one
# number for every experiment of a sweep. argv: {"model": samples, ...} as JSON, then run.py's flags
LANES = """
import json, sys
from seqicl.data import load_task
from sweeps import tune_backend
from sweeps.run import ROOT, make_plan, parse_args, rungs_of
from sweeps.study import OptunaTrials

samples = json.loads(sys.argv[1])
plan, _ = make_plan(parse_args(["--models", ",".join(samples), *sys.argv[2:]]))
plan.storage.mkdir(parents=True)
for e in plan.experiments.values():
    load_task(e.cfg["task"], e.cfg["data"]["cache_dir"])

def prepare(cluster):
    lanes = []
    for e in plan.experiments.values():
        exp_dir = plan.storage / plan.task / e.name
        exp_dir.mkdir(parents=True)
        rungs = rungs_of(plan, e, exp_dir)
        source = OptunaTrials(exp_dir, e.cfg, e.space, plan.seed, samples[e.name])
        lanes.append(tune_backend.Lane(f"{plan.task}/{e.name}", exp_dir, source, rungs, samples[e.name]))
    return lanes

print("ended:", tune_backend.run_experiments(prepare, plan.cluster, storage=plan.storage, name=plan.task, root=ROOT))
"""

def env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", SEQICL_PRESET="smoke")


def start(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env(), stdout=open(log, "a"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def run(argv: list[str], log: Path, sessions: list) -> None:
    proc = start(argv, log)
    sessions.append(proc)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]


def records(storage: Path) -> dict[str, list[dict]]:
    """experiment -> its trials, from their files: id, started, ended, status, epochs on disk."""
    out = {}
    for exp in sorted(p for p in (storage / TASK).iterdir() if (p / "trials").is_dir()):
        rows = []
        for folder in sorted((exp / "trials").iterdir()):
            run_ = json.loads((folder / "run.json").read_text())
            status = json.loads((folder / "status.json").read_text())
            epochs = [json.loads(x) for x in (folder / "epochs.jsonl").read_text().splitlines()]
            rows.append({"trial": folder.name, "started": run_["started"], "ended": status["updated"],
                         "status": status["status"], "epochs": [e["epoch"] for e in epochs],
                         "stamps": [e["timestamp"] for e in epochs]})
        out[exp.name] = rows
    return out


def check_records(recs: dict[str, list[dict]]) -> None:
    """Every trial is over and its times are in order: started, its epochs, its end."""
    for exp, rows in recs.items():
        for r in rows:
            assert r["status"] in ("finished", "stopped"), (exp, r)
            assert r["epochs"] == list(range(1, len(r["epochs"]) + 1)) and r["epochs"], (exp, r)
            assert r["started"] < r["stamps"][0] and r["stamps"] == sorted(r["stamps"]), (exp, r)
            assert r["stamps"][-1] <= r["ended"] + TOL, (exp, r)


def instants(recs: dict[str, list[dict]], slots: int, step: float = 0.02):
    """(t, running trials per experiment, experiments with trials still to start) at every
    ``step`` from the moment every slot has had its first trial, skipping instants within TOL
    of a start or an end."""
    starts = sorted(r["started"] for rows in recs.values() for r in rows)
    ends = sorted(r["ended"] for rows in recs.values() for r in rows)
    # before any trial ends, the first `slots` starts are the slots' first trials: then the
    # records hold every trial Tune started (later ones start within ~0.1 s of their slot freeing)
    assert len(starts) >= slots and starts[slots - 1] < ends[0], "the first trials did not all start before one ended"
    events = sorted(starts + ends)
    out, t = [], starts[slots - 1] + TOL
    while t < ends[-1] - TOL:
        i = bisect_left(events, t)
        if all(abs(t - events[j]) >= TOL for j in (i - 1, i) if 0 <= j < len(events)):
            running = {x: sum(r["started"] < t < r["ended"] for r in rows) for x, rows in recs.items()}
            left = {x for x, rows in recs.items() if any(r["started"] > t for r in rows)}
            out.append((t, running, left))
        t += step
    return out


def check_fair_share(recs: dict[str, list[dict]], slots: int) -> list:
    """While experiments have trials to start, their running counts differ by at most one and
    every slot is busy (an experiment out of trials leaves its slots to the others)."""
    seen = instants(recs, slots)
    for t, running, left in seen:
        if left:
            counts = {x: running[x] for x in left}
            assert max(counts.values()) - min(counts.values()) <= 1, (round(t - seen[0][0], 2), running, left, recs)
            assert sum(running.values()) == slots, (round(t - seen[0][0], 2), running, left, recs)
    return seen


def test_two_experiments_with_one_slot_each_run_side_by_side(tmp_path, sessions):
    storage, log = tmp_path / "sweep", tmp_path / "driver.log"
    run(["sweeps/run.py", "--task", TASK, "--models", "lstm,gilr", "--max-concurrent", "2", "--num-samples", "3",
         "--storage", str(storage), *LONGER], log, sessions)
    recs = records(storage)
    assert {x: [r["trial"] for r in rows] for x, rows in recs.items()} == \
        {"lstm": ["0000", "0001", "0002"], "gilr": ["0000", "0001", "0002"]}
    check_records(recs)
    first = {x: min(r["started"] for r in rows) for x, rows in recs.items()}
    last = {x: max(r["ended"] for r in rows) for x, rows in recs.items()}
    # both experiments started a trial before either of them ended: not one after the other
    assert first["lstm"] < last["gilr"] and first["gilr"] < last["lstm"], recs
    assert max(first.values()) < min(min(r["ended"] for r in rows) for rows in recs.values()), recs
    seen = check_fair_share(recs, slots=2)
    both = [s for s in seen if len(s[2]) == 2]
    assert len(both) >= 50 and all(s[1] == {"lstm": 1, "gilr": 1} for s in both)   # one slot each, for a while
    assert "| LSTM |" in (storage / "table.md").read_text() and "| GILR |" in (storage / "table.md").read_text()


def test_an_experiment_with_fewer_samples_leaves_its_slot_to_the_others(tmp_path, sessions):
    """Three experiments, two slots; lstm has one sample, the others five each (driven through
    run_experiments: the command line gives every experiment the same number of samples)."""
    storage, log = tmp_path / "sweep", tmp_path / "driver.log"
    samples = {"lstm": 1, "transformer": 5, "gilr": 5}
    run(["-c", LANES, json.dumps(samples), "--task", TASK, "--storage", str(storage), "--max-concurrent", "2",
         *LONGER], log, sessions)
    assert "ended: complete" in log.read_text()
    recs = records(storage)
    assert {x: len(rows) for x, rows in recs.items()} == samples
    check_records(recs)
    seen = check_fair_share(recs, slots=2)   # running counts within one, every slot busy
    # the small experiment got one of the first two slots (it comes first in the order)
    assert recs["lstm"][0]["started"] < min(r["ended"] for rows in recs.values() for r in rows)
    # lstm's one trial over, the other two share both slots while both have trials left
    after = [s for s in seen if s[2] == {"transformer", "gilr"} and s[0] > recs["lstm"][0]["ended"]]
    assert len(after) >= 50 and all(s[1] == {"lstm": 0, "transformer": 1, "gilr": 1} for s in after), after[:3]
    # (and once one of them has none left, check_fair_share saw the other use both)


def test_driver_killed_with_three_experiments_running_then_resumed_equals_a_clean_run(tmp_path, sessions):
    """SIGKILL of the driver while each of three experiments runs a trial, then --resume: the
    same trials, epochs and tables as a clean run of the same command.

    Each experiment has its own study and rungs, so other experiments' timing cannot reach its
    results; within one, an exact comparison needs its trials to reach ASHA's rungs in trial
    order (the order --resume replays them in), and Optuna's values of trial n to depend on n
    alone. Two samples per experiment give both: trial 0001 starts when trial 0000 ends, or,
    once another experiment is out of trials and leaves its slot, after that experiment's two
    trials, when trial 0000 (the first at every rung, so a full run) is far past any rung 0001
    comes to; and under ten trials Optuna's TPE samples at random, seeded per trial number."""
    sweep = ["sweeps/run.py", "--task", TASK, "--models", "transformer,gilr,lstm", "--max-concurrent", "3",
             "--cpus-per-trial", "0.5", "--num-samples", "2", *TINY]
    clean = tmp_path / "clean" / "sweep"
    run([*sweep, "--storage", str(clean)], tmp_path / "clean.log", sessions)

    storage, log = tmp_path / "killed" / "sweep", tmp_path / "killed.log"
    first = start([*sweep, "--storage", str(storage)], log)
    sessions.append(first)

    def running() -> dict[str, int]:
        """Experiment -> epochs on disk of its running trial."""
        out = {}
        for folder in storage.glob(f"{TASK}/*/trials/*"):
            try:
                status = json.loads((folder / "status.json").read_text())["status"]
                trained = len((folder / "epochs.jsonl").read_text().splitlines())
            except (OSError, ValueError):
                continue
            if status == "running" and trained:
                out[folder.parent.parent.name] = trained
        return out

    # every experiment runs a trial that has trained, one of them an epoch past its last saved
    # state (train.state_every=2): the resumed trial drops that epoch and trains it again
    deadline = time.time() + 300
    while len(now := running()) < 3 or not any(n % 2 for n in now.values() if n > 2):
        assert first.poll() is None, "the sweep ended before three experiments were running: " + log.read_text()[-2000:]
        assert time.time() < deadline, "timed out waiting for three experiments to run"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)     # the driver alone: Ray's processes are left to notice
    first.wait()

    run([*sweep, "--storage", str(storage), "--resume"], log, sessions)
    trials = {(t.model, t.trial_id): t for t in load_trials(storage)}
    assert sorted(trials) == sorted((m, n) for m in ("transformer", "gilr", "lstm") for n in ("0000", "0001"))
    for (model, trial), t in trials.items():   # on disk, every epoch exactly once
        path = storage / TASK / model / "trials" / trial / "epochs.jsonl"
        assert [json.loads(x)["epoch"] for x in path.read_text().splitlines()] == list(range(1, t.epochs_run + 1))
        assert t.status in ("finished", "stopped"), (model, trial, t.status, t.reason)
    for model in ("transformer", "gilr", "lstm"):   # Optuna's study: two trials, each told once
        study = open_study(storage / TASK / model / "optuna.journal")
        assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"], model
    why = {"rungs out of trial order (clean, killed)": [out_of_order(clean), out_of_order(storage)]}
    assert comparable(storage) == comparable(clean), why
    for name in TABLES:
        assert (storage / name).read_text() == (clean / name).read_text(), (name, why)


def out_of_order(storage: Path) -> list:
    """(experiment, rung, trials) wherever an experiment's trials reached one of ASHA's rungs
    in another order than their ids: the precondition of an exact comparison."""
    out = []
    for exp, rows in records(storage).items():
        for rung in (2, 4):
            at = [(r["stamps"][rung - 1], r["trial"]) for r in rows if len(r["stamps"]) >= rung]
            if [t for _, t in sorted(at)] != sorted(t for _, t in at):
                out.append((exp, rung, sorted(at)))
    return out


def comparable(storage: Path) -> dict:
    out = {}
    for t in load_trials(storage):
        rows = [{k: v for k, v in r.items() if k not in TIMING} for r in t.epochs]
        out[(t.model, t.trial_id)] = (t.status, t.reason, t.params, rows)
    return out
