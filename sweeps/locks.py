"""File locks. A results folder has one sweep driver at a time, and a trial folder one training
process: after a driver is killed, a trial process of the dead cluster may live on for a few
seconds, and the retried trial must not write beside it. ``flock`` locks end with the process
that holds them, so a killed holder never leaves a stale lock behind."""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from seqicl.config import ConfigError


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def locked(path: Path, wait_s: float = 0.0, what: str = "this folder"):
    """Hold an exclusive lock on ``path`` (created if needed), waiting up to ``wait_s``
    seconds; raises ConfigError naming the holder's pid when it stays taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline = time.time() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() >= deadline:
                    raise ConfigError(f"{what} is in use by another process (pid {_holder(path)}, "
                                      f"lock {path.name}): wait for it to end") from None
                time.sleep(0.2)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
