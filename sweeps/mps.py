"""Start and stop NVIDIA's Multi-Process Service (MPS) control daemon around a run.

Without MPS, every process that uses the GPU has its own CUDA context and the GPU time-slices
between them; with MPS their kernels can run side by side. On the H200, 16 processes taking
graph-captured steps of a tiny model got 4.2x the steps/s under MPS (bench/results/packing-*). What these helpers rely on (NVIDIA's MPS documentation and the
``nvidia-cuda-mps-control`` man page):

- ``nvidia-cuda-mps-control -d`` starts the control daemon in the background; ``quit`` on the
  stdin of ``nvidia-cuda-mps-control`` stops it. That front end exits with 0 when it reached a
  daemon and non-zero when it found none, which is how ``running`` asks.
- Daemon and clients meet through named pipes in ``CUDA_MPS_PIPE_DIRECTORY`` (default
  /tmp/nvidia-mps), so every client must see the same value as the daemon. ``start_mps`` puts it
  (and ``CUDA_MPS_LOG_DIRECTORY``) in ``os.environ``: processes started afterwards inherit it.
- A process connects when it first initialises CUDA; one that did so before the daemon started
  stays outside MPS. Start the daemon before the processes that train are started.

No torch here: importing this module must not touch CUDA.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BINARY = "nvidia-cuda-mps-control"
ENV_KEYS = ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")
# Volta and later MPS serves at most 48 client CUDA contexts per GPU (NVIDIA's MPS guide, "Volta
# MPS"); each trial process is one. Tune starts a trial's process only once its GPU share is
# free, and a reused process keeps its share, so a GPU never has more clients than trials per GPU.
MAX_CLIENTS = 48

last_error = ""   # why the last start_mps() returned False
_ours: dict | None = None  # the daemon this process started: its environment and the previous values


def mps_available() -> str | None:
    """None when MPS can be tried here, else the reason it cannot."""
    if not sys.platform.startswith("linux"):
        return "MPS runs on Linux only"
    if shutil.which(BINARY) is None:
        return f"{BINARY} is not on PATH (it comes with the NVIDIA driver's compute utilities)"
    if not list(Path("/dev").glob("nvidia[0-9]*")):  # the device files; no CUDA call, so no context
        return "no NVIDIA GPU on this machine (no /dev/nvidia0)"
    return None


def running(env: dict | None = None) -> bool:
    """Whether a control daemon answers at the pipe directory ``env`` (default: os.environ) names."""
    try:
        done = subprocess.run([BINARY], input="get_server_list\n", env=dict(os.environ if env is None else env),
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def start_mps(pipe_dir: str | os.PathLike | None = None, wait_s: float = 10.0) -> bool:
    """Start a control daemon with its pipes and logs in ``pipe_dir``/pipe and ``pipe_dir``/log
    (default: a new temporary folder) and export both variables to os.environ. A daemon that
    already answers for the current environment is left alone. True when one runs afterwards."""
    global last_error
    last_error = ""
    if _ours is not None or running():
        return True
    root = Path(pipe_dir) if pipe_dir is not None else Path(tempfile.mkdtemp(prefix="seqicl-mps-"))
    made = root if pipe_dir is None else None  # ours to remove when the daemon is gone
    if not _start(root, wait_s):
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        return False
    _ours["made"] = made
    return True


def _start(root: Path, wait_s: float) -> bool:
    global last_error, _ours
    dirs = {"CUDA_MPS_PIPE_DIRECTORY": root / "pipe", "CUDA_MPS_LOG_DIRECTORY": root / "log"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    # a daemon started under CUDA_VISIBLE_DEVICES renumbers the GPUs it serves, and Ray sets the
    # variable in each trial with the machine's numbering: let the daemon see every GPU
    env.pop("CUDA_VISIBLE_DEVICES", None)
    err = root / "start.err"
    try:
        with open(err, "w") as f:  # a file, not a pipe: the daemon may keep the stream open
            done = subprocess.run([BINARY, "-d"], env=env, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                  timeout=30, start_new_session=True)  # Ctrl-C of the run must not reach it
    except (OSError, subprocess.TimeoutExpired) as e:
        last_error = f"{BINARY} -d failed: {e}"
        return False
    if done.returncode != 0:
        text = err.read_text().strip().splitlines()
        last_error = f"{BINARY} -d exited with {done.returncode}" + (f": {text[-1]}" if text else "")
        return False
    deadline = time.time() + wait_s  # -d returns once it forked; the pipes come a moment later
    while not running(env):
        if time.time() > deadline:
            log = dirs["CUDA_MPS_LOG_DIRECTORY"] / "control.log"  # the folder may be removed: quote its end
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
            last_error = f"the MPS control daemon did not answer within {wait_s:g} s" + (
                f" (its log ends: {tail[0]})" if tail else "")
            subprocess.run([BINARY], input="quit\n", env=env, capture_output=True, text=True, timeout=10)
            return False
        time.sleep(0.2)
    _ours = {"env": env, "previous": {k: os.environ.get(k) for k in ENV_KEYS}}
    os.environ.update({k: env[k] for k in ENV_KEYS})
    return True


def stop_mps() -> None:
    """Quit the daemon that start_mps started (never one that was already running) and put the
    two variables back as they were."""
    global _ours
    if _ours is None:
        return
    ours, _ours = _ours, None
    for k, v in ours["previous"].items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        done = subprocess.run([BINARY], input="quit\n", env=ours["env"], capture_output=True, text=True,
                              timeout=30)
        ok = done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if ok and ours.get("made") is not None:  # a folder of our own: its pipes and logs go with the daemon
        shutil.rmtree(ours["made"], ignore_errors=True)
    if not ok:
        print(f"warning: could not stop the MPS control daemon at {ours['env']['CUDA_MPS_PIPE_DIRECTORY']}; "
              f"stop it with: CUDA_MPS_PIPE_DIRECTORY={ours['env']['CUDA_MPS_PIPE_DIRECTORY']} "
              f"sh -c 'echo quit | {BINARY}'", file=sys.stderr)
