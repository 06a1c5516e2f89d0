"""sweeps/mps.py against a fake nvidia-cuda-mps-control that behaves as the man page says (the
front end exits non-zero when no daemon answers), sweeps/run.py --mps, and bench/packing.py."""
import os
import tempfile
import subprocess
import sys

import pytest

from sweeps import mps
from sweeps import run as sweep_run

from conftest import ROOT

FAKE = """#!/bin/sh
# records every call; "-d" marks a daemon as up in the pipe directory, "quit" takes it down
echo "call $* pipe=${{CUDA_MPS_PIPE_DIRECTORY-unset}} log=${{CUDA_MPS_LOG_DIRECTORY-unset}} cvd=${{CUDA_VISIBLE_DEVICES-unset}}" >> {record}
pipe=${{CUDA_MPS_PIPE_DIRECTORY:-{default}}}
if [ "$1" = "-d" ]; then
  [ -n "$FAKE_NEVER_UP" ] || : > "$pipe/up"
  exit ${{FAKE_START_RC:-0}}
fi
while read -r line; do
  echo "stdin $line" >> {record}
  [ -e "$pipe/up" ] || exit 1
  [ "$line" != quit ] || rm -f "$pipe/up"
done
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake control binary first on PATH; returns (record file, its default pipe directory)."""
    bin_dir, record, default = tmp_path / "bin", tmp_path / "record.txt", tmp_path / "default-pipe"
    bin_dir.mkdir()
    default.mkdir()
    script = bin_dir / mps.BINARY
    script.write_text(FAKE.format(record=record, default=default))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key in mps.ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(mps, "_ours", None)
    yield record, default
    mps.stop_mps()


def calls(record) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


def test_missing_binary_is_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "nvidia-cuda-mps-control is not on PATH" in mps.mps_available()
    assert mps.running() is False


def test_start_exports_dirs_and_stop_quits(fake, tmp_path, monkeypatch):
    record, _ = fake
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert mps.start_mps(tmp_path / "mps") is True
    pipe, log = tmp_path / "mps" / "pipe", tmp_path / "mps" / "log"
    assert os.environ["CUDA_MPS_PIPE_DIRECTORY"] == str(pipe) and os.environ["CUDA_MPS_LOG_DIRECTORY"] == str(log)
    assert pipe.is_dir() and log.is_dir()
    lines = calls(record)
    assert lines[0].startswith("call  pipe=unset")            # first: is a daemon already running?
    assert f"call -d pipe={pipe} log={log} cvd=unset" in lines  # the daemon sees every GPU
    assert mps.running()                                        # clients of this environment reach it
    started = len(calls(record))
    mps.stop_mps()
    after = calls(record)[started:]
    assert after[0].startswith(f"call  pipe={pipe} log={log}") and after[1] == "stdin quit"
    assert not any(k in os.environ for k in mps.ENV_KEYS)       # put back as before the start
    assert not (pipe / "up").exists()
    mps.stop_mps()                                              # a second stop does nothing
    assert len(calls(record)) == started + 2


def test_a_running_daemon_is_used_and_left_running(fake):
    record, default = fake
    (default / "up").touch()
    assert mps.start_mps() is True
    assert not any(" -d " in line for line in calls(record))
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ          # its clients find it without
    mps.stop_mps()
    assert (default / "up").exists() and "stdin quit" not in calls(record)


@pytest.mark.parametrize("env, message", [
    ({"FAKE_START_RC": "1"}, "nvidia-cuda-mps-control -d exited with 1"),
    ({"FAKE_NEVER_UP": "1"}, "did not answer within 0.5 s"),
])
def test_start_that_fails_says_why_and_leaves_no_environment(fake, env, message, tmp_path, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert mps.start_mps(tmp_path / "mps", wait_s=0.5) is False
    assert message in mps.last_error
    assert not any(k in os.environ for k in mps.ENV_KEYS)
    before = calls(fake[0])
    mps.stop_mps()                                   # nothing of ours runs: nothing to quit
    assert calls(fake[0]) == before


def test_run_mps_without_binary_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    storage = tmp_path / "out"
    assert sweep_run.main(["--task", "induction", "--mps", "--storage", str(storage)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --mps: nvidia-cuda-mps-control is not on PATH") and len(err.splitlines()) == 1
    assert not storage.exists()


def test_run_mps_refuses_a_cluster_address(tmp_path, capsys):
    assert sweep_run.main(["--task", "induction", "--mps", "--address", "auto", "--storage", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--mps: works with the local cluster only" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("outcome", ["done", "interrupted"])
def test_run_mps_starts_before_and_stops_after_the_sweep(fake, outcome, tmp_path, monkeypatch):
    record, _ = fake
    monkeypatch.setattr(mps, "mps_available", lambda: None)  # no GPU needed: nothing trains here
    seen = {}

    def run_lanes(lanes, **kwargs):
        seen["lanes"] = [lane.label for lane in lanes]
        seen["pipe"] = os.environ.get("CUDA_MPS_PIPE_DIRECTORY")
        seen["daemon"] = any(" -d " in line for line in calls(record))
        if outcome == "interrupted":
            raise KeyboardInterrupt
        return "complete"

    from sweeps import tune_backend
    monkeypatch.setattr(tune_backend, "init_ray", lambda *a, **k: seen.setdefault("ray_saw_daemon", any(
        " -d " in line for line in calls(record))))
    monkeypatch.setattr(tune_backend, "shutdown_ray", lambda: seen.setdefault("ray_stopped_before", calls(record)[-1]))
    monkeypatch.setattr(tune_backend, "run_lanes", run_lanes)
    monkeypatch.setattr("analysis.report.write_report", lambda root: "report")
    argv = ["--task", "induction", "--models", "lstm", "--mps", "--storage", str(tmp_path / "o")]
    assert sweep_run.main(argv) == (0 if outcome == "done" else 130)
    assert seen["daemon"] and seen["pipe"] and seen["ray_saw_daemon"]   # MPS first, then Ray
    assert seen["lanes"] == ["induction/lstm"]
    assert seen["ray_stopped_before"] != "stdin quit"                     # Ray stopped, then MPS
    assert calls(record)[-1] == "stdin quit"
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ


def test_run_mps_start_failure_one_line_exit_2(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mps, "mps_available", lambda: None)
    monkeypatch.setenv("FAKE_START_RC", "3")
    from sweeps import tune_backend
    monkeypatch.setattr(tune_backend, "run_lanes", lambda *a, **k: pytest.fail("the sweep must not run"))
    storage = tmp_path / "o"
    assert sweep_run.main(["--task", "induction", "--models", "lstm", "--mps", "--storage", str(storage)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --mps: nvidia-cuda-mps-control -d exited with 3") and len(err.splitlines()) == 1
    assert not storage.exists()


def test_init_ray_forwards_the_mps_environment(monkeypatch, tmp_path):
    import ray

    from sweeps import tune_backend
    got = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: got.update(kw))
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", "/x/pipe")
    monkeypatch.setenv("CUDA_MPS_LOG_DIRECTORY", "/x/log")
    tune_backend.init_ray(None, tmp_path)
    env = got["runtime_env"]["env_vars"]
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/x/pipe" and env["CUDA_MPS_LOG_DIRECTORY"] == "/x/log"


@pytest.mark.slow
def test_packing_cpu_table(tmp_path):
    out = tmp_path / "packing.md"
    proc = subprocess.run([sys.executable, "bench/packing.py", "--cpu", "--procs", "1,2", "--seconds", "0.5",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("# Packing: CPU, ") and "`python bench/packing.py --cpu --procs 1,2" in text
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| eager |")]
    assert [r[2].strip() for r in rows] == ["1", "2"]
    assert all(float(r[3]) > 0 for r in rows) and rows[0][5].strip() == "1.00x"


def test_packing_at_the_regbench_shape_says_its_shape(tmp_path):
    # --regbench: the model at the paper's size (1 x 16 on a CPU), bf16 autocast steps
    out = tmp_path / "packing.md"
    proc = subprocess.run([sys.executable, "bench/packing.py", "--cpu", "--regbench", "--bf16", "--model", "mamba",
                           "--procs", "1", "--seconds", "0.3", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "mamba, 1 x 16, batch 32, length 16, bf16 autocast;" in out.read_text()


def test_packing_refuses_mps_on_cpu():
    proc = subprocess.run([sys.executable, "bench/packing.py", "--cpu", "--mps"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--cpu runs eager steps without MPS" in proc.stderr


@pytest.mark.parametrize("start_rc", [0, 3])
def test_default_mps_starts_and_stops_or_runs_without_it(fake, start_rc, tmp_path, monkeypatch, capsys):
    """The default ("auto", chosen where trials share a GPU): the daemon starts before Ray and
    stops after it; one that fails to start is a note, and the sweep runs without MPS."""
    from sweeps import tune_backend
    from sweeps.options import Cluster
    record, _ = fake
    monkeypatch.setenv("FAKE_START_RC", str(start_rc))
    monkeypatch.setattr(tune_backend, "init_ray", lambda *a, **k: None)
    monkeypatch.setattr(tune_backend, "shutdown_ray", lambda: None)
    cluster = Cluster(16, 1 / 16, 1.0, 1, None, None, "auto", False)
    with tune_backend._session(cluster, ROOT, tmp_path):
        inside = os.environ.get("CUDA_MPS_PIPE_DIRECTORY")
    if start_rc == 0:
        assert inside and cluster.mps == "auto" and calls(record)[-1] == "stdin quit"
    else:
        assert inside is None and cluster.mps == "off"
        assert "note: running without MPS" in capsys.readouterr().err
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ


@pytest.mark.parametrize("env", [{}, {"FAKE_START_RC": "1"}, {"FAKE_NEVER_UP": "1"}])
def test_a_temporary_pipe_folder_goes_with_the_daemon(fake, env, tmp_path, monkeypatch):
    """Without a pipe_dir, start_mps makes a temporary folder: stop_mps (or a failed start)
    removes it, so that runs leave nothing behind in /tmp."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    started = mps.start_mps(wait_s=0.5)
    assert started is not bool(env)
    if started:
        assert [p.name.startswith("seqicl-mps-") for p in scratch.iterdir()] == [True]
        mps.stop_mps()
    assert list(scratch.iterdir()) == []
