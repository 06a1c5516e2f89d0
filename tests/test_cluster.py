"""The README's cluster path on one machine (CPU): a Ray head and a second node started with
`ray start`, token authentication on, and sweeps/run.py joining them with --address.

The cluster lives in a network namespace of its own that has only a loopback interface, so
nothing of it can be reached from outside the namespace (Ray's servers bind every interface
in cluster mode) and its ports cannot clash with another test's local Ray. The second node
also runs in a mount namespace of its own, where `<base>/local` is a tmpfs: a folder of that
machine only, like a per-machine /tmp, which the storage check must refuse. Needs root and
util-linux's unshare and nsenter; skipped without them."""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from analysis.results import load_trials

from conftest import ROOT
from procs import kill_session, session_pids

pytestmark = pytest.mark.slow

RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
TASK = "induction"
MODELS = ("lstm", "gilr")
# trials of a few seconds each on a CPU; one state every 2 epochs, ASHA's rungs at 2 and 4
SWEEP = ["--task", TASK, "--models", ",".join(MODELS), "--num-samples", "3", "--max-failures", "2",
         "train.epochs=6", "train.state_every=2", "task.num_train=4096", "task.num_val=64", "task.num_test=64",
         "model.d_model=16"]
# each node declares one GPU (a logical resource: trials still train on the CPU) so that the
# driver, on a machine without one, must take its packing from the cluster's GPUs
NODE = ["--block", "--num-cpus", "1", "--num-gpus", "1", "--object-store-memory", str(100 * 1024 ** 2), "--disable-usage-stats"]


def usable() -> str | None:
    if os.geteuid() != 0 or not RAY or not shutil.which("nsenter"):
        return "needs root, nsenter and Ray's `ray` command"
    probe = subprocess.run(["unshare", "--net", "--mount", "sh", "-c", "ip link set lo up"], capture_output=True)
    return None if probe.returncode == 0 else "unshare --net --mount does not work here"


def wait_for(what: str, condition, procs=(), timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        for p in procs:
            assert p.poll() is None, f"{p.args[-1][:80]}... ended before {what}"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def node_id(proc: subprocess.Popen) -> str:
    """The id of the node a `ray start` process runs: its raylet's --node_id."""
    for pid in session_pids(proc.pid):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if args[0].endswith("/raylet"):
            return next(a.split("=", 1)[1] for a in args if a.startswith("--node_id="))
    raise AssertionError("no raylet found")


@dataclass
class Cluster:
    base: Path
    env: dict
    head: subprocess.Popen
    node2: subprocess.Popen
    ids: dict            # "head" / "node2" -> node id

    def driver(self, *argv: str, log: Path) -> subprocess.Popen:
        """sweeps/run.py inside the cluster's network, in a session of its own."""
        return subprocess.Popen(["nsenter", f"--net=/proc/{self.head.pid}/ns/net", sys.executable, "sweeps/run.py",
                                 *argv, "--address", "127.0.0.1:6379"], cwd=ROOT, env=self.env,
                                stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True)


def start_node(argv: list[str], log: Path, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(argv, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(f"Ray to start ({log.name})", lambda: "Ray runtime started" in log.read_text(), [proc], timeout=180)
    return proc


def stop_node(proc: subprocess.Popen) -> None:
    """`ray start --block` stops its node's processes on SIGTERM; whatever is left is killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    kill_session(proc.pid)


@pytest.fixture(scope="module")
def cluster():
    if why := usable():
        pytest.skip(why)
    # short: Ray's unix sockets live under its temp dir and their paths must stay below 108 bytes
    base = Path(tempfile.mkdtemp(prefix="seqicl-cl-", dir="/tmp"))
    for sub in ("shared", "local", "cache"):
        (base / sub).mkdir()
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0",
               SEQICL_CACHE=str(base / "cache"), SEQICL_PRESET="smoke", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    env.pop("RAY_ADDRESS", None)
    started = []
    try:
        head = start_node(["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {RAY} start --head --port 6379 "
                           f"--node-ip-address 127.0.0.1 --include-dashboard=false --temp-dir {base}/ray-head "
                           + " ".join(NODE)], base / "head.log", env)
        started.append(head)
        node2 = start_node(["nsenter", f"--net=/proc/{head.pid}/ns/net", "unshare", "--mount", "--propagation",
                            "private", "sh", "-c", f"mount -t tmpfs seqicl-node2 {base}/local && exec {RAY} start "
                            f"--address 127.0.0.1:6379 --node-ip-address 127.0.0.1 --temp-dir {base}/ray-node2 "
                            + " ".join(NODE)], base / "node2.log", env)
        started.append(node2)
        yield Cluster(base, env, head, node2, {"head": node_id(head), "node2": node_id(node2)})
    finally:
        for proc in reversed(started):
            stop_node(proc)
        shutil.rmtree(base, ignore_errors=True)


def epochs_on_disk(folder: Path) -> list[int]:
    path = folder / "epochs.jsonl"
    return [json.loads(x)["epoch"] for x in path.read_text().splitlines()] if path.is_file() else []


def trial_folders(storage: Path) -> list[Path]:
    return sorted(storage.glob(f"{TASK}/*/trials/*"))


def nodes_of(folder: Path) -> list[str]:
    try:
        return [n["id"] for n in json.loads((folder / "run.json").read_text()).get("nodes", [])]
    except (OSError, json.JSONDecodeError):
        return []


def running(storage: Path, node: str | None = None, epochs=range(1, 100)) -> Path | None:
    """A trial now training (on ``node``, if given) with a number of epochs on disk in ``epochs``."""
    for folder in trial_folders(storage):
        try:
            status = json.loads((folder / "status.json").read_text())["status"]
        except (OSError, json.JSONDecodeError, KeyError):
            continue
        if status == "running" and node in (None, *nodes_of(folder)[-1:]) and len(epochs_on_disk(folder)) in epochs:
            return folder
    return None


def ran_on(storage: Path) -> set[str]:
    return {n for folder in trial_folders(storage) for n in nodes_of(folder)}


def test_a_storage_folder_one_node_cannot_see_is_refused_before_any_trial(cluster, tmp_path):
    storage = cluster.base / "local" / "sweep"    # on the head's disk; the second node has its own /local
    log = tmp_path / "driver.log"
    proc = cluster.driver(*SWEEP, "--storage", str(storage), log=log)
    assert proc.wait(timeout=300) == 2, log.read_text()[-3000:]
    err = [x for x in log.read_text().splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "cannot see it" in err[0], log.read_text()[-3000:]
    assert cluster.ids["node2"][:12] in err[0] and cluster.ids["head"][:12] not in err[0], err[0]
    assert "Traceback" not in log.read_text()
    assert not storage.exists()                    # nothing written, the folder made for it gone
    assert list((cluster.base / "local").iterdir()) == []


def test_a_sweep_on_two_nodes_survives_a_killed_driver_and_a_dead_node(cluster, tmp_path, sessions):
    storage, log = cluster.base / "shared" / "sweep", tmp_path / "driver.log"
    head, node2 = cluster.ids["head"], cluster.ids["node2"]

    first = cluster.driver(*SWEEP, "--storage", str(storage), log=log)
    sessions.append(first)
    # two slots, one CPU each on nodes of one CPU: the first two trials run on different nodes
    wait_for("trials on both nodes, one past its first state",
             lambda: ran_on(storage) == {head, node2} and running(storage, epochs=range(2, 6)), [first], timeout=400)
    # packed by the cluster's GPUs, not by the driver's machine (which has none)
    assert "gpu/trial=0.0625" in log.read_text(), log.read_text()[-3000:]
    os.kill(first.pid, signal.SIGKILL)                 # the driver alone; its trials die with its job
    first.wait()

    second = cluster.driver("--resume", "--storage", str(storage), log=log)
    sessions.append(second)
    # a trial training on the second node in the resumed run, two epochs or more before its end and
    # its next rung (4); then that whole node dies
    resumed, victim = time.time(), []
    wait_for("a trial training on the second node after the resume",
             lambda: (t := running(storage, node2, range(1, 4))) and (t / "epochs.jsonl").stat().st_mtime > resumed
             and not victim.append(t), [second], timeout=400)
    kill_session(cluster.node2.pid)                    # raylet, workers, everything of the node
    cluster.node2.wait()
    victim = victim[0]
    assert json.loads((victim / "status.json").read_text())["status"] == "running"   # cut off mid-trial
    assert second.wait(timeout=600) == 0, log.read_text()[-4000:]

    trials = {(t.experiment.rsplit("/", 1)[-1], t.trial_id): t for t in load_trials(storage)}
    assert sorted(trials) == sorted((m, f"{i:04d}") for m in MODELS for i in range(3))    # none lost, none doubled
    for folder in trial_folders(storage):
        t = trials[(folder.parent.parent.name, folder.name)]
        assert t.status in ("finished", "stopped"), (folder, t.status, t.reason)    # retried, never errored
        assert epochs_on_disk(folder) == list(range(1, t.epochs_run + 1)), folder  # every epoch once
        assert nodes_of(folder) and set(nodes_of(folder)) <= {head, node2}, folder
    assert ran_on(storage) == {head, node2}
    # the trial cut off by the dead node was retried on the head, from its state
    assert nodes_of(victim)[-2:] == [node2, head], nodes_of(victim)
    rows = json.loads((storage / "table.json").read_text())
    assert {(r["model"], r["trials"], r["errored"]) for r in rows} == {(m, 3, 0) for m in MODELS}, rows
    assert len((storage / "trials.csv").read_text().splitlines()) == 1 + len(trials)
    assert not (storage / ".ray").exists() and not list(storage.glob(".node-probe-*"))
