"""One driver for every experiment: how slots are shared (sweeps.tune_backend.pick_lane), the
progress lines (sweeps/progress.py), and when MPS is on by default (sweeps.options)."""
import io
import os
import re
import types
from pathlib import Path

import pytest

from sweeps import mps, options
from sweeps.progress import Progress, clock
from sweeps.tune_backend import Lane, pick_lane


class Source:
    def __init__(self, n):
        self.n = n

    def remaining(self):
        return self.n


def lanes(*left):
    return [Lane(f"t/m{i}", Path("."), Source(n), None, n) for i, n in enumerate(left)]


def fill(ls, slots):
    """Hand out ``slots`` free slots one by one as the searcher does; returns the lanes chosen."""
    running, launched, got = [0] * len(ls), [0] * len(ls), []
    for _ in range(slots):
        i = pick_lane(ls, running, launched)
        if i is None:
            break
        ls[i].source.n -= 1
        running[i] += 1
        launched[i] += 1
        got.append(i)
    return got, running, launched


def test_slots_are_shared_evenly():
    got, running, _ = fill(lanes(64, 64, 64), 16)
    assert running == [6, 5, 5] and got[:3] == [0, 1, 2]


def test_an_experiment_out_of_trials_leaves_its_slots_to_the_others():
    ls = lanes(2, 64)
    got, running, _ = fill(ls, 16)
    assert running == [2, 14]          # the first has only two trials left: its tail frees the rest
    assert pick_lane(ls, running, [2, 14]) == 1
    ls[1].source.n = 0
    assert pick_lane(ls, running, [2, 14]) is None


def test_fewer_slots_than_experiments_take_turns():
    ls = lanes(5, 5, 5, 5)
    running, launched = [0, 0, 0, 0], [0, 0, 0, 0]
    order = []
    for _ in range(8):   # one slot: each trial ends before the next starts
        i = pick_lane(ls, running, launched)
        ls[i].source.n -= 1
        launched[i] += 1
        order.append(i)
    assert order == [0, 1, 2, 3, 0, 1, 2, 3]   # nobody waits for another experiment to finish


def test_progress_lines_in_a_log():
    out = io.StringIO()
    p = Progress([("induction/transformer", 4), ("induction/lstm", 4)], stream=out, live=False, every_s=0)
    p.preset(1, 1, 0.25)
    p.begin()
    p.started(0)
    p.started(0)
    p.result(0, 0.5)
    p.ended(0, "0000", "stopped", 10, 0.5, 0.45)
    p.ended(0, "0001", "finished", 200, 0.98, 0.97)
    p.tick()
    text = out.getvalue()
    assert "[induction/transformer] 2/4 trial 0001 finished after 200 epochs: best val 0.980, test 0.970" in text
    last = text.strip().splitlines()[-2:]
    assert last[0].startswith("induction/transformer    2/4 done,  0 running  best val 0.980")
    assert "left" in last[0]                    # two trials ended in this run: an estimate
    assert last[1].startswith("induction/lstm           1/4 done,  0 running  best val 0.250")
    assert last[1].endswith("time left: ?")     # none ended in this run yet


def test_progress_redraws_in_place_on_a_terminal():
    out = io.StringIO()
    p = Progress([("a/x", 2), ("a/y", 2)], stream=out, live=True)
    p.begin()
    p.ended(1, "0000", "finished", 3, 0.1, 0.1)
    text = out.getvalue()
    assert "\x1b[2F\x1b[J" in text                 # the block of two lines is erased, then redrawn
    assert text.rstrip().splitlines()[-1].startswith("a/y    1/2 done")


def test_clock():
    assert [clock(5), clock(65), clock(3700)] == ["5s", "1m05s", "1h01m"]


def cluster_args(**kw):
    base = dict(max_concurrent=None, trials_per_gpu=None, gpus_per_trial=None, cpus_per_trial=1.0,
                address=None, max_failures=1, time_budget=None, dashboard=False, mps="auto")
    return types.SimpleNamespace(**{**base, **kw})


@pytest.fixture
def fake_binary(tmp_path, monkeypatch):
    b = tmp_path / "bin"
    b.mkdir()
    (b / mps.BINARY).write_text("#!/bin/sh\nexit 1\n")
    (b / mps.BINARY).chmod(0o755)
    monkeypatch.setenv("PATH", f"{b}{os.pathsep}{os.environ['PATH']}")


def test_mps_default_is_off_without_a_gpu_or_without_the_binary(tmp_path, monkeypatch, fake_binary):
    assert options.resolve_cluster(cluster_args(), gpu=False, default_concurrent=2).mps == "off"   # no GPU
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(mps.Path, "glob", lambda self, pattern: iter([Path("/dev/nvidia0")]))
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    assert options.resolve_cluster(cluster_args(), gpu=True, default_concurrent=2).mps == "off"    # no binary


def test_mps_default_is_on_with_a_gpu_and_the_binary(monkeypatch, fake_binary):
    monkeypatch.setattr(mps.Path, "glob", lambda self, pattern: iter([Path("/dev/nvidia0")]))
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    c = options.resolve_cluster(cluster_args(), gpu=True, default_concurrent=2)
    assert c.mps == "auto" and c.gpus_per_trial == 1 / 16 and c.max_concurrent == 32   # 16 per GPU, 2 GPUs
    assert options.resolve_cluster(cluster_args(mps="off"), gpu=True, default_concurrent=2).mps == "off"
    one = options.resolve_cluster(cluster_args(trials_per_gpu=1), gpu=True, default_concurrent=2)
    assert one.mps == "off" and one.max_concurrent == 2                    # one trial per GPU: nothing to share
    assert options.resolve_cluster(cluster_args(address="auto"), gpu=True, default_concurrent=2).mps == "off"


def test_cluster_slots_from_resources():
    c = options.Cluster(None, 1 / 16, 1.0, 1, None, "auto", "off", False)
    assert c.slots({"CPU": 64, "GPU": 2}) == 32 and c.slots({"CPU": 8, "GPU": 2}) == 8
    assert options.Cluster(None, 0.0, 2.0, 1, None, "auto", "off", False).slots({"CPU": 7}) == 3


def test_rays_address_variable_is_the_default_cluster_and_the_flag_wins(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert options.resolve_cluster(cluster_args(), gpu=False, default_concurrent=2).address == "auto"
    monkeypatch.setattr(options, "check_address", lambda address: None)
    c = options.resolve_cluster(cluster_args(address="10.0.0.1:6379"), gpu=False, default_concurrent=2)
    assert c.address == "10.0.0.1:6379" and c.max_concurrent is None   # counted once Ray is up
    monkeypatch.delenv("RAY_ADDRESS")
    assert options.resolve_cluster(cluster_args(), gpu=False, default_concurrent=2).address is None


def test_only_the_engine_module_names_ray():
    """One engine boundary: Ray's imports, its scratch folder and its variables appear in
    sweeps/tune_backend.py alone (tests aside)."""
    pattern = re.compile(r"import ray|from ray|\.ray\b|RAY_")
    root = Path(__file__).resolve().parent.parent
    found = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("tests", "build", "runs") or any(p.startswith(".") for p in rel.parts):
            continue
        if rel.as_posix() == "sweeps/tune_backend.py":
            continue
        found += [f"{rel}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_more_trials_per_gpu_than_mps_serves_is_one_line(monkeypatch, fake_binary):
    monkeypatch.setattr(mps.Path, "glob", lambda self, pattern: iter([Path("/dev/nvidia0")]))
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    for use in ("auto", "on"):
        with pytest.raises(options.ConfigError, match="more than MPS serves"):
            options.resolve_cluster(cluster_args(trials_per_gpu=mps.MAX_CLIENTS + 1, mps=use), gpu=True,
                                    default_concurrent=2)
    c = options.resolve_cluster(cluster_args(trials_per_gpu=mps.MAX_CLIENTS), gpu=True, default_concurrent=2)
    assert c.mps == "auto" and c.max_concurrent == mps.MAX_CLIENTS
    c = options.resolve_cluster(cluster_args(trials_per_gpu=64, mps="off"), gpu=True, default_concurrent=2)
    assert c.mps == "off" and c.max_concurrent == 64                   # without MPS: time-sliced contexts


def test_a_re_run_lane_counts_as_done_only_its_own_jobs_that_will_not_run_again(tmp_path):
    """sweeps/reseed.py's lane: its jobs are the re-runs still to train. A failed re-run in the
    folder is trained again and an earlier pair's finished re-run is not one of its jobs: neither
    counts as done (the lane once began at "2/2 done" with both to run)."""
    from seqicl.train.record import RunRecord
    from sweeps.study import FixedTrials, OptunaTrials
    from sweeps.tune_backend import Keeper
    for name, status in (("old-seed1", "finished"), ("a-seed1", "errored"), ("a-seed2", "finished"),
                         ("a-seed3", "running")):
        record = RunRecord(tmp_path / "trials" / name)
        record.start({"train": {}}, {}, 1, "cpu", {"trial": name})
        record.set_status(status)
    jobs = {"a-seed1": {}, "a-seed2": {}, "a-seed3": {}}
    source = FixedTrials(tmp_path, jobs)
    assert source.todo == ["a-seed1", "a-seed3"]
    progress = Progress([("t/reseeds", len(jobs))], stream=io.StringIO(), live=False)
    Keeper(0, Lane("t/reseeds", tmp_path, source, None, len(jobs)), progress)
    assert progress.done == [1]                                   # a-seed2 only
    assert OptunaTrials.ended_before(None, ["0000", "0001"]) == ["0000", "0001"]   # a study's trials are all its own


def test_after_an_out_of_memory_the_searcher_runs_at_most_as_many_trials_as_ran_beside_it():
    """TrialSearcher: the trial goes back to its source, Tune gets no new trial while the cap is
    reached (None, not FINISHED), and FINISHED comes only when nothing is left and nothing runs
    (a running trial could still come back)."""
    from ray.tune.search import Searcher
    from sweeps.tune_backend import _classes

    class Queue:
        def __init__(self, names):
            self.todo = list(names)

        def remaining(self):
            return len(self.todo)

        def next(self):
            return self.todo.pop(0), {}, {}

        def requeue(self, name):
            self.todo.insert(0, name)

    class Keeper:  # as tune_backend.Keeper.out_of_memory: back to the source unless it ran alone
        def __init__(self, source):
            self.source, self.calls = source, []

        def out_of_memory(self, config, why, others, share=0.0):
            self.calls.append((config["trial"], others))
            if others:
                self.source.requeue(config["trial"])
            return others or None

    source = Queue(["a", "b", "c"])
    keeper = Keeper(source)
    TrialSearcher, _, _ = _classes()
    s = TrialSearcher([Lane("t/m", Path("."), source, None, 3)], [keeper])
    assert [s.suggest(f"id{i}")["trial"] for i in range(3)] == ["a", "b", "c"]
    assert s.suggest("id3") is None                                  # nothing left, but 3 running
    s.on_trial_complete("id1", result={"best_val": -1.0, "out_of_memory": "CUDA out of memory"})
    assert keeper.calls == [("b", 2)] and s.cap == 2
    assert s.suggest("id4") is None                                  # 2 running: at the cap
    s.on_trial_complete("id0", result={"best_val": 0.5})
    assert s.suggest("id5")["trial"] == "b"                          # the one sent back
    assert s.suggest("id6") is None                                  # at the cap again
    s.on_trial_complete("id2", result={"best_val": 0.4})
    s.on_trial_complete("id5", result={"best_val": 0.4})
    assert s.suggest("id7") is Searcher.FINISHED


def test_a_trial_that_tune_starts_again_is_counted_running_once():
    """Tune's retry of a failed trial (--max-failures) calls on_trial_start again for the same
    trial: the progress line counted it twice and ended at "4/4 done, 2 running"."""
    from sweeps.tune_backend import _classes
    _, _, RecordKeeper = _classes()
    progress = Progress([("t/m", 2)], stream=io.StringIO(), live=False)
    keeper = RecordKeeper([], progress)
    trial = types.SimpleNamespace(trial_id="abc", config={"lane": 0})
    keeper.on_trial_start(0, [], trial)
    keeper.on_trial_start(0, [], trial)                              # the retry
    keeper.on_trial_start(0, [], types.SimpleNamespace(trial_id="def", config={"lane": 0}))
    assert progress.running == [2]


def test_a_trial_out_of_memory_again_halves_the_trials_at_once_and_is_errored_after_its_retries(tmp_path):
    """tune_backend.Keeper.out_of_memory on the sequence that lost Mamba's 8 x 512 at 2.5k on
    2026-12-07 (out of memory beside 15, 13, 11 and 9 others, the cap falling by one or two):
    one fewer at first, then half as many as ran beside it, never below 1; errored after
    OOM_RETRIES starts again or when it ran alone, the record saying how often."""
    from seqicl.train.record import RunRecord
    from sweeps.study import FixedTrials
    from sweeps.tune_backend import OOM_RETRIES, Keeper, cap_after_out_of_memory

    assert [cap_after_out_of_memory(o, e) for o, e in [(15, 0), (13, 1), (5, 2), (1, 1), (3, 0)]] == [15, 6, 2, 1, 3]
    source = FixedTrials(tmp_path, {"a-seed1": {"train": {}}})
    stream = io.StringIO()
    keeper = Keeper(0, Lane("t/reseeds", tmp_path, source, None, 1), Progress([("t/reseeds", 1)], stream=stream, live=False))
    name, cfg, sampled = source.next()
    config = {"trial": name, "cfg": cfg, "sampled": sampled}
    caps = []
    for others in (15, 13, 5):
        caps.append(keeper.out_of_memory(config, "CUDA out of memory", others))
        assert source.next()[0] == name                                # back in its source each time
    assert caps == [15, 6, 2] and OOM_RETRIES == 3
    said = stream.getvalue()
    assert "beside 15 other trials: it starts again when a slot is free, and from now on at most 15 trials" in said
    assert "out of GPU memory again beside 13 other trials" in said and "at most 6 trials run at once" in said
    assert keeper.out_of_memory(config, "CUDA out of memory", 1) is None          # the fourth: errored
    status = RunRecord(tmp_path / "trials" / name).status()
    assert status["status"] == "errored"
    assert status["reason"] == "CUDA out of memory (4 times, the last beside 1 other trials)"
    alone = {"trial": "b", "cfg": {"train": {}}, "sampled": {}}
    assert keeper.out_of_memory(alone, "CUDA out of memory", 0) is None         # alone: errored at once


def test_a_trial_out_of_memory_on_a_gpu_limits_the_trials_on_each_gpu_not_the_cluster(tmp_path):
    """With GPUs the limit is each new trial's share of one, from the trials on the GPU that ran out
    (it held at most 1/share of them), not a count over the cluster: 8 GPUs x 16 trials, one out of
    memory beside 100 others cluster-wide had 15 beside it on its GPU, so 15 may share a GPU (each
    takes 1/15) and the cluster still runs 8 x 15; a count cap would have let 15 run on all 8."""
    from seqicl.train.record import RunRecord
    from sweeps.study import FixedTrials
    from sweeps.tune_backend import Keeper, _classes, others_beside, trials_per_gpu

    assert [others_beside(100, s) for s in (1 / 16, 1 / 15, 1 / 7, 0.5, 1.0)] == [15, 14, 6, 1, 0]
    assert others_beside(3, 1 / 16) == 3 and others_beside(100, 0.0) == 100     # a CPU sweep: every trial
    assert trials_per_gpu(0.35) == 2 and others_beside(100, 0.35) == 1         # Ray fits 2 of 0.35, not 3
    TrialSearcher, _, _ = _classes()

    def searcher(jobs, share):
        source = FixedTrials(tmp_path / f"at{share:g}", {f"{i:04d}": {"train": {}} for i in range(jobs)})
        stream = io.StringIO()
        keeper = Keeper(0, Lane("t/m", source.exp_dir, source, None, jobs), Progress([("t/m", jobs)], stream=stream, live=False))
        return TrialSearcher([Lane("t/m", source.exp_dir, source, None, jobs)], [keeper], share), stream

    s, said = searcher(128, 1 / 16)
    given = [s.suggest(f"id{i}") for i in range(101)]                   # 101 running on 8 GPUs
    assert {c["gpu_share"] for c in given} == {1 / 16}
    s.on_trial_complete("id3", result={"out_of_memory": "CUDA out of memory"})
    assert s.share == 1 / 15 and s.cap is None                          # 15 on its GPU, none else counted
    assert "trial 0003 ran out of GPU memory beside 15 other trials on its GPU: it starts again when a GPU has " \
           "room, and from now on at most 15 trials share a GPU (each takes 1/15)" in said.getvalue()
    again = s.suggest("id101")
    assert again["trial"] == "0003" and again["gpu_share"] == 1 / 15      # no count cap: it starts now
    s.on_trial_complete("id101", result={"out_of_memory": "CUDA out of memory"})
    assert s.share == 1 / 7                                             # 14 beside it on its GPU, halved
    assert "0003 ran out of GPU memory again beside 14 other trials on its GPU" in said.getvalue()
    s.on_trial_complete("id5", result={"out_of_memory": "CUDA out of memory"})   # one of the first, at 1/16
    assert s.share == 1 / 7 and "at most 7 trials share a GPU (each takes 1/7)" in said.getvalue().splitlines()[-1]

    s, said = searcher(8, 1.0)                                          # a whole GPU each: alone on it
    [s.suggest(f"id{i}") for i in range(8)]
    s.on_trial_complete("id2", result={"out_of_memory": "CUDA out of memory"})
    status = RunRecord(tmp_path / "at1" / "trials" / "0002").status()
    assert status["status"] == "errored" and status["reason"] == "CUDA out of memory (alone)"
    assert s.share == 1.0 and s.suggest("id8") is None                   # not handed out again

    s, said = searcher(4, 0.0)                                          # a CPU sweep: the count cap as before
    given = [s.suggest(f"id{i}") for i in range(3)]
    assert all("gpu_share" not in c for c in given)
    s.on_trial_complete("id1", result={"out_of_memory": "CUDA out of memory"})
    assert s.cap == 2 and s.share == 0.0 and "at most 2 trials run at once" in said.getvalue()


def test_each_trial_asks_ray_for_its_own_share_of_a_gpu():
    """tune_backend.trial_resources: the share in the trial's config, else the sweep's; no GPU on a
    CPU sweep. Requests of different shares differ, so Tune never reuses the actor of a smaller one."""
    from sweeps.tune_backend import trial_resources
    gpu, cpu = trial_resources(0.5, 1 / 16), trial_resources(2.0, 0.0)
    assert gpu({"gpu_share": 1 / 15}).required_resources == {"CPU": 0.5, "GPU": 1 / 15}
    assert gpu({}).required_resources == {"CPU": 0.5, "GPU": 1 / 16}
    assert gpu({"gpu_share": 1 / 15}) != gpu({"gpu_share": 1 / 16}) and gpu({}) == gpu({"gpu_share": 1 / 16})
    assert cpu({}).required_resources == {"CPU": 2.0}


def test_the_fake_gpu_hook_takes_a_count_and_refuses_anything_else(monkeypatch):
    """SEQICL_FAKE_GPUS (a test hook): unset is no fake GPUs, a count is that many, garbage is one
    line (ConfigError, exit 2 in run.py), not a traceback."""
    from seqicl.config import ConfigError
    from sweeps.tune_backend import fake_gpus
    monkeypatch.delenv("SEQICL_FAKE_GPUS", raising=False)
    assert fake_gpus() == 0
    monkeypatch.setenv("SEQICL_FAKE_GPUS", "3")
    assert fake_gpus() == 3
    for bad in ("abc", "-1", "1.5"):
        monkeypatch.setenv("SEQICL_FAKE_GPUS", bad)
        with pytest.raises(ConfigError, match="SEQICL_FAKE_GPUS must be a number of GPUs"):
            fake_gpus()


def test_the_fault_hook_reads_kind_and_trial_and_refuses_a_mistyped_fault(monkeypatch):
    """SEQICL_FAULTS (a test hook): a mistyped kind used to be ignored, so a fault test could pass
    without its fault; now it is one line (ConfigError), checked before a sweep starts anything."""
    from seqicl.config import ConfigError
    from sweeps.tune_backend import injected_fault, injected_faults
    monkeypatch.delenv("SEQICL_FAULTS", raising=False)
    assert injected_faults() == {} and injected_fault("0001") is None
    monkeypatch.setenv("SEQICL_FAULTS", "crash:0002,oom-always:0001,")
    assert injected_faults() == {"0002": "crash", "0001": "oom-always"}
    assert injected_fault("0001") == "oom-always" and injected_fault("0003") is None
    for bad in ("crsh:0002", "crash", "crash:", "nan:0001,boom:0002"):
        monkeypatch.setenv("SEQICL_FAULTS", bad)
        with pytest.raises(ConfigError, match="SEQICL_FAULTS takes kind:trial items"):
            injected_faults()
