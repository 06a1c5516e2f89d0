"""Stack dumps of a run that sits in one phase too long, for diagnosing trials that stop
recording mid-sweep (issue 29 saw several, with nothing in their logs).

``StallWatch(run_dir)`` arms ``faulthandler.dump_traceback_later`` and each ``phase(name)`` re-arms
it. If the run stays in one phase (building, capturing, an epoch's training, evaluation, a save,
the caller's report) longer than ``SEQICL_STALL_DUMP_S`` seconds (default 300; 0 turns it off),
every thread's Python stack is appended to ``<run_dir>/stall-stacks.txt``, again every further
period. faulthandler's watchdog is a C thread: it writes even while a stuck call holds the GIL.
A slow but healthy phase gives a dump too. Each phase also writes one line (its name and the
time), so a run killed outright leaves its last phase named; a run that ends normally removes the
file when it holds those lines only.

    >>> watch = StallWatch(run_dir)    # doctest: +SKIP
    >>> watch.phase("epoch 3: training")
    ...                                # blocked here for 300 s: a dump names each thread's frames
    >>> watch.close()
"""
from __future__ import annotations

import faulthandler
import os
import time
from pathlib import Path

ENV = "SEQICL_STALL_DUMP_S"
DEFAULT_S = 300.0
FILE_NAME = "stall-stacks.txt"


def stall_seconds() -> float:
    """The configured period; 0 when off. A value that is not a number is refused."""
    raw = os.environ.get(ENV, "")
    try:
        seconds = float(raw) if raw.strip() else DEFAULT_S
    except ValueError:
        raise ValueError(f"{ENV} must be a number of seconds (0 turns it off), got '{raw}'") from None
    return max(seconds, 0.0)


class StallWatch:
    def __init__(self, run_dir: str | Path, seconds: float | None = None):
        self.seconds = stall_seconds() if seconds is None else seconds
        self.path = Path(run_dir) / FILE_NAME
        self.file = None
        # the folders this opens the file in: a run refused before its record starts leaves none
        self.made = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
        if self.seconds > 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a")

    def phase(self, name: str) -> None:
        """Enter a phase: the timer starts again, and a line with the phase's name and the time
        goes into the file (a run killed outright leaves its last phase named there)."""
        if self.file is None:
            return
        faulthandler.cancel_dump_traceback_later()
        self.name, self.since = name, time.time()
        self._label()
        faulthandler.dump_traceback_later(self.seconds, repeat=True, file=self.file)

    def _label(self) -> None:
        # written now but only kept when a dump follows (close() drops a file of labels alone)
        self.file.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} phase: {self.name} "
                        f"(stacks below if it lasts {self.seconds:g} s or more)\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is None:
            return
        faulthandler.cancel_dump_traceback_later()
        self.file.close()
        self.file = None
        if not any(not line.startswith("# ") for line in self.path.read_text().splitlines()):
            self.path.unlink(missing_ok=True)  # labels only: no phase lasted long enough
            for folder in self.made:  # innermost first; one the run has written into stays
                try:
                    folder.rmdir()
                except OSError:
                    break

    def __enter__(self) -> "StallWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
