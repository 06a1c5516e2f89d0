"""Processes a run leaves behind: found before it stops them, waited for, and killed if they stay.

A stopped Ray trial's process can finish the epoch it is in, and write its record and state,
after the driver has moved on; seqicl once found such a write in a resumed sweep's record. The
driver of a local cluster therefore waits for its cluster's processes to end before it returns.
Linux only (/proc); elsewhere nothing is found and nothing waits.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _children() -> dict[int, list[int]]:
    """parent pid -> child pids, from /proc (empty where there is none)."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(match: str, root: int | None = None) -> list[int]:
    """Pids below ``root`` (this process) whose command line contains ``match``."""
    tree, found, todo = _children(), [], [root or os.getpid()]
    while todo:
        for child in tree.get(todo.pop(), []):
            todo.append(child)
            if match in _cmdline(child):
                found.append(child)
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def reap(pids: list[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds for ``pids`` to end, then SIGKILL the rest; returns those killed."""
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = []
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed
