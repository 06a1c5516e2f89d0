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


def test_a_trial_that_ended_at_its_best_possible_score_counts_at_every_rung_it_skipped():
    """Trial p reaches validation 1.0 at epoch 3 and ends there (train.stop_when_perfect). Had it
    trained on, it would have reported 1.0 at rungs 4 and 8: ``finish`` records exactly that, so
    the trials after it are ranked against the same scores."""
    def later(rungs):
        return [rungs.decide(t, 4, s) for t, s in [("a", 0.7), ("b", 0.95), ("c", 0.6)]]
    trained_on, ended = Rungs(2, 2, 8), Rungs(2, 2, 8)
    for r in (trained_on, ended):
        r.decide("p", 2, 0.8)
    trained_on.decide("p", 4, 1.0)
    ended.finish("p", 1.0)
    assert ended.recorded[4]["p"] == ended.recorded[8]["p"] == 1.0 and ended.recorded[2]["p"] == 0.8
    assert later(ended) == later(trained_on) == [True, False, True]
    assert later(Rungs(2, 2, 8)) != later(trained_on)   # without p's score the cutoff differs


def test_a_resumed_sweep_counts_a_trial_that_ended_early_at_its_rungs(tmp_path):
    """--resume rebuilds the rungs from the records: a trial "finished" before the budget (at its
    best possible score) is recorded at the rungs it skipped."""
    from seqicl.train.record import RunRecord
    from sweeps.run import make_plan, parse_args, rungs_of
    plan, _ = make_plan(parse_args(["--task", "induction", "--models", "lstm", "--preset", "smoke",
                                    "--storage", str(tmp_path / "s"), "train.epochs=8"]))
    e = plan.experiments["lstm"]
    exp_dir = tmp_path / "s" / "induction" / "lstm"
    record = RunRecord(exp_dir / "trials" / "0000")
    record.start(e.cfg, {}, 1, "cpu")
    for epoch, v in [(1, 0.5), (2, 0.8), (3, 1.0)]:
        record.append_epoch({"epoch": epoch, "best_val": v})
    record.set_status("finished", "validation accuracy reached its maximum at epoch 3 (of 8)", epochs=3)
    rungs = rungs_of(plan, e, exp_dir)
    later = [m for m in rungs.milestones if m > 3]
    assert later and all(rungs.recorded[m]["0000"] == 1.0 for m in later)
