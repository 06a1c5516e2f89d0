"""The sweep's console: one line per experiment while it runs.

    induction/transformer  12/64 done, 16 running  best val 0.982  3m10s  ~4m left
    induction/lstm          5/64 done,  2 running  best val 0.061  3m10s  ~9m left

On a terminal the block is redrawn in place every couple of seconds, with a line above it for
each trial that ends; in a log (not a terminal) each trial's end is a line and the block is
printed every ``every_s`` seconds. The estimate of the time left is the experiment's trials
still to end at the rate its trials ended in this run (rough: ASHA stops most trials early).
No Ray here.
"""
from __future__ import annotations

import sys
import time


def clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    def __init__(self, lanes: list[tuple[str, int]], stream=None, live: bool | None = None, every_s: float = 60.0):
        self.labels = [label for label, _ in lanes]
        self.total = [total for _, total in lanes]
        self.done = [0] * len(lanes)          # trials over, earlier runs included
        self.ended_now = [0] * len(lanes)     # trials that ended in this run
        self.running = [0] * len(lanes)
        self.best: list[float | None] = [None] * len(lanes)
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.every_s = every_s if not self.live else 2.0
        self.start = self.last = time.time()
        self.drawn = 0                        # lines of the block on screen (live mode)

    def preset(self, lane: int, done: int, best: float | None) -> None:
        """What a resumed experiment had already done."""
        self.done[lane] = done
        self.best[lane] = best

    def begin(self) -> None:
        self.start = self.last = time.time()
        self.draw()

    def started(self, lane: int) -> None:
        self.running[lane] += 1

    def waiting(self, lane: int, trial: str, why: str) -> None:
        """A running trial went back to wait for a slot (out of GPU memory): not ended."""
        self.running[lane] = max(0, self.running[lane] - 1)
        self.write_above(f"[{self.labels[lane]}] trial {trial} {why} ({time.time() - self.start:.0f} s)")

    def result(self, lane: int, best_val: float | None) -> None:
        if isinstance(best_val, float) and (self.best[lane] is None or best_val > self.best[lane]):
            self.best[lane] = best_val

    def ended(self, lane: int, trial: str, status: str, epochs: int, best_val: float | None,
              test: float | None) -> None:
        self.running[lane] = max(0, self.running[lane] - 1)
        self.done[lane] += 1
        self.ended_now[lane] += 1
        self.result(lane, best_val)
        score = f": best val {best_val:.3f}, test {test or 0:.3f}" if best_val is not None else ""
        self.write_above(f"[{self.labels[lane]}] {self.done[lane]}/{self.total[lane]} trial {trial} {status} "
                         f"after {epochs} epochs{score} ({time.time() - self.start:.0f} s)")

    def tick(self) -> None:
        if time.time() - self.last >= self.every_s:
            self.draw()

    def close(self) -> None:
        self.draw()
        self.drawn = 0

    # -- output ------------------------------------------------------------------------------
    def line(self, lane: int) -> str:
        elapsed = time.time() - self.start
        left = self.total[lane] - self.done[lane]
        if left == 0:
            eta = "done"
        elif self.ended_now[lane] >= 2:
            eta = f"~{clock(elapsed / self.ended_now[lane] * left)} left"
        else:
            eta = "time left: ?"
        best = f"{self.best[lane]:.3f}" if self.best[lane] is not None else "-"
        width = max(len(x) for x in self.labels)
        return (f"{self.labels[lane]:<{width}}  {self.done[lane]:>3}/{self.total[lane]} done, "
                f"{self.running[lane]:>2} running  best val {best}  {clock(elapsed)}  {eta}")

    def block(self) -> list[str]:
        return [self.line(i) for i in range(len(self.labels))]

    def draw(self) -> None:
        self.last = time.time()
        lines = self.block()
        if self.live:
            self._erase()
            self.drawn = len(lines)
        else:
            lines = ["-- progress --", *lines]
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def write_above(self, text: str) -> None:
        if self.live:
            self._erase()
            self.stream.write(text + "\n")
            lines = self.block()
            self.stream.write("\n".join(lines) + "\n")
            self.drawn = len(lines)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")  # up to the block's first line, clear below
            self.drawn = 0
