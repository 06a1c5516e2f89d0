"""ASHA's decisions when trials report only at rungs (and evaluate only every k epochs) are
the decisions of per-epoch reporting."""
import doctest
import random

import sweeps.asha
from sweeps.asha import RungReports, Rungs


def test_the_module_examples_hold():
    assert doctest.testmod(sweeps.asha).failed == 0


def fake_sweep(seed: int, n_trials: int = 24, epochs: int = 20):
    """Each trial's best-so-far validation score per epoch (non-decreasing, a trial-specific
    rate), and the order in which trials running side by side report their epochs."""
    rng = random.Random(seed)
    curves = {}
    for t in range(n_trials):
        rate, score, rows = rng.uniform(0.005, 0.05), 0.0, []
        for _ in range(epochs):
            score = min(1.0, max(score, score + rate * rng.uniform(-0.5, 1.5)))
            rows.append(round(score, 4))
        curves[f"{t:04d}"] = rows
    # interleaved: any trial may report next, its own epochs in order
    cursor, events = dict.fromkeys(curves, 0), []
    while any(c < epochs for c in cursor.values()):
        t = rng.choice([t for t, c in cursor.items() if c < epochs])
        cursor[t] += 1
        events.append((t, cursor[t]))
    return curves, events


def stops(curves, events, grace, rf, epochs, heard) -> dict:
    """The epoch at which each trial is stopped, when the driver hears of epoch e of a trial only
    where ``heard(trial, e)``; a stopped trial reports nothing more."""
    rungs, stopped = Rungs(grace, rf, epochs), {}
    for t, e in events:
        if t not in stopped and heard(t, e) and rungs.decide(t, e, curves[t][e - 1]):
            stopped[t] = e
    return stopped


def test_reporting_at_rungs_only_stops_the_trials_per_epoch_reporting_stops():
    for seed in range(5):
        for grace, rf, epochs in [(2, 2, 20), (3, 3, 20), (5, 2, 20)]:
            curves, events = fake_sweep(seed, epochs=epochs)
            every_epoch = stops(curves, events, grace, rf, epochs, lambda t, e: True)
            milestones = Rungs(grace, rf, epochs).milestones
            due = {t: RungReports(milestones) for t in curves}
            at_rungs = stops(curves, events, grace, rf, epochs, lambda t, e: due[t](e))
            assert at_rungs == every_epoch
            assert every_epoch and set(every_epoch.values()) <= set(milestones)   # the test can fail
            # evaluating every 3 epochs, with the rungs and the last epoch forced: the same again
            evaluated = {e for e in range(1, epochs + 1) if e % 3 == 0 or e in milestones or e == epochs}
            due = {t: RungReports(milestones) for t in curves}
            sparse = [(t, e) for t, e in events if e in evaluated]
            assert stops(curves, sparse, grace, rf, epochs, lambda t, e: due[t](e)) == every_epoch


def test_rung_reports_skip_to_the_next_rung_after_a_late_first_report():
    """A trial resumed past a rung (its first evaluation after the rung) reports once for it."""
    due = RungReports([2, 6, 18])
    assert [e for e in (7, 8, 17, 18, 19) if due(e)] == [7, 18]
