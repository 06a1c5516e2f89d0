"""Asynchronous successive halving (ASHA, Li et al. 2020), as data seqicl owns.

Rungs sit at ``grace * rf**k`` epochs (up to the epoch budget). The first time a trial
reports at or past a rung, its score (best validation so far) is recorded there, and the
trial stops if the score is below the rung's ``1 - 1/rf`` quantile of the scores already
recorded. The rungs are rebuilt from the trial records on resume (``replay``), so a resumed
sweep stops trials as the uninterrupted one would; nothing is pickled.

    >>> r = Rungs(grace=2, rf=2, max_t=8)
    >>> r.milestones
    [2, 4, 8]
    >>> r.decide("a", 2, 0.5), r.decide("b", 2, 0.3), r.decide("c", 2, 0.7)
    (False, True, False)
"""
from __future__ import annotations

import math

import numpy as np


class Rungs:
    def __init__(self, grace: int, rf: float, max_t: int):
        grace = max(1, min(grace, max_t))
        count = int(math.log(max_t / grace) / math.log(rf) + 1 + 1e-9) if max_t > grace else 1
        self.milestones = [int(round(grace * rf ** k)) for k in range(count)]
        self.rf, self.max_t = rf, max_t
        self.recorded: dict[int, dict[str, float]] = {m: {} for m in self.milestones}

    def decide(self, trial: str, epoch: int, score: float) -> bool:
        """Record ``score`` at the highest rung reached and not yet recorded; True: stop. A rung
        at the last epoch ranks but stops nothing: the trial has trained its whole schedule."""
        for m in reversed(self.milestones):
            if epoch < m or trial in self.recorded[m]:
                continue
            seen = list(self.recorded[m].values())
            cutoff = float(np.percentile(seen, (1 - 1 / self.rf) * 100)) if seen else None
            self.recorded[m][trial] = score
            return cutoff is not None and score < cutoff and epoch < self.max_t
        return False

    def finish(self, trial: str, score: float) -> None:
        """A trial that ended before the budget at its best possible score (``train.stop_when_perfect``)
        is recorded at every rung it did not reach, as it would have been had it trained on: its
        score could not have changed, and no rung stops a trial at the top."""
        for m in self.milestones:
            self.recorded[m].setdefault(trial, score)

    def replay(self, trial: str, rows: list[dict]) -> int | None:
        """Record a trial's past epochs (from its record); returns the first epoch at which it
        would have been stopped, or None. A trial still running when its driver died may have
        been stopped there without hearing of it: the resumed sweep stops it at that epoch."""
        stop = None
        for row in rows:
            if isinstance(row.get("best_val"), (int, float)) and self.decide(trial, row["epoch"], row["best_val"]):
                stop = stop or row["epoch"]
        return stop


class RungReports:
    """Which of a trial's evaluated epochs the driver hears of: the first at or past each rung
    (a trial evaluates at every rung, so that is the rung itself). ``decide`` only acts at a rung,
    so these reports give the same decisions as reporting every epoch, without a round trip to
    the driver per epoch.

    >>> due = RungReports([2, 6])
    >>> [e for e in range(1, 9) if due(e)]
    [2, 6]
    """

    def __init__(self, milestones: list[int]):
        self.left = sorted(milestones)

    def __call__(self, epoch: int) -> bool:
        if not self.left or epoch < self.left[0]:
            return False
        while self.left and epoch >= self.left[0]:
            self.left.pop(0)
        return True
