import json
import subprocess
import sys

from analysis.report import write_report
from analysis.results import best_trial, load_trials
from seqicl.config import compose

from conftest import ROOT


def fake_trial(root, model, name, results, epochs=10, error=False, chance=0.05, experiment=None):
    d = root / "induction" / (experiment or model) / name
    d.mkdir(parents=True)
    cfg = compose([f"model={model}", f"train.epochs={epochs}"])
    (d / "run.json").write_text(json.dumps({"config": cfg, "task_info": {"chance": chance}}))
    (d / "params.json").write_text(json.dumps({"optim.lr": 1e-3}))
    lines = [json.dumps({"epoch": e, "best_val": bv, "test_at_best": tb, "best_epoch": e, "trial_id": name})
             for e, bv, tb in results]
    (d / "result.json").write_text("\n".join(lines) + "\n")
    if error:
        (d / "error.txt").write_text("Traceback...\nRuntimeError: boom")
    return d


def test_ranking_uses_validation_skips_errored_and_prefers_longer_runs(tmp_path):
    fake_trial(tmp_path, "lstm", "a", [(1, 0.5, 0.9), (2, 0.6, 0.2)])                  # stopped at 2 of 10
    fake_trial(tmp_path, "lstm", "b", [(e, 0.6, 0.4) for e in range(1, 11)])            # finished, ties on val
    fake_trial(tmp_path, "lstm", "c", [(1, 0.99, 0.99)], error=True)                    # errored: never best
    trials = load_trials(tmp_path)
    assert {t.trial_id: t.status for t in trials} == {"a": "stopped", "b": "finished", "c": "errored"}
    best = best_trial(trials)
    assert best.trial_id == "b" and best.test_at_best == 0.4


def test_report_files_and_cli(tmp_path):
    fake_trial(tmp_path, "lstm", "a", [(1, 0.5, 0.25)])
    fake_trial(tmp_path, "transformer", "t", [(1, 0.9, 0.875)])
    md = write_report(tmp_path)
    assert "| induction head | 87.5 | 25.0 | 5.0 |" in md          # original layout: Transformer first
    rows = json.loads((tmp_path / "table.json").read_text())
    assert {r["model"]: r["test"] for r in rows} == {"lstm": 0.25, "transformer": 0.875}
    assert (tmp_path / "table.csv").read_text().count("\n") == 3
    assert "optim.lr" in (tmp_path / "best_configs.yaml").read_text()
    bad = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path / "missing")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_seed_statistics_and_the_original_numbers(tmp_path):
    fake_trial(tmp_path, "lstm", "a", [(1, 0.5, 0.5)])
    fake_trial(tmp_path, "lstm", "b", [(1, 0.9, 0.8)])                 # the chosen trial: test 0.8
    # its re-runs with other seeds; s3 was cut short by a time budget (1 of 10 epochs): not counted;
    # s1-cut was cut short too, but seed 1 later completed (s1): superseded, neither counted nor listed
    for name, seed, test, epochs in (("s1", 1, 0.6, 1), ("s2", 2, 0.7, 1), ("s3", 3, 0.1, 10), ("s1-cut", 1, 0.3, 10)):
        d = fake_trial(tmp_path, "lstm", name, [(1, 0.95, test)], epochs=epochs)
        run = json.loads((d / "run.json").read_text())
        run["config"]["role"], run["config"]["seed"] = "reseed", seed
        (d / "run.json").write_text(json.dumps(run))
    d = fake_trial(tmp_path, "lstm", "other", [(1, 0.95, 0.0)], epochs=1)  # a re-run of another config
    run = json.loads((d / "run.json").read_text())
    run["config"]["role"], run["config"]["optim"]["lr"] = "reseed", 0.123
    (d / "run.json").write_text(json.dumps(run))
    md = write_report(tmp_path)
    (row,) = json.loads((tmp_path / "table.json").read_text())
    assert row["trials"] == 2 and row["test"] == 0.8                     # re-runs never compete
    assert row["seed_n"] == 3 and abs(row["seed_mean"] - 0.7) < 1e-12
    assert abs(row["seed_std"] - 0.1) < 1e-12                            # sample std of 0.6, 0.7, 0.8
    assert "| induction head | 70.0 ± 10.0 (n=3); best 80.0; 1 cut short at 1 of 10 epochs: 10.0 |" in md
    # seqicl (mean ± std) / original, LSTM and Random
    assert "| induction head | 80.0 (70.0 ± 10.0) / 4.8 | 5.0 / 5.0 |" in md


def test_trials_a_killed_driver_left_behind_are_not_counted(tmp_path):
    """The resumed run restores the last snapshot: a trial folder older than that run but missing
    from its trial list was re-run as a new trial, and must not count twice."""
    exp = tmp_path / "induction" / "lstm"
    known = fake_trial(tmp_path, "lstm", "run_trial_aaaaa1_1_lr=1_2026-01-01_00-00-05", [(1, 0.5, 0.4)])
    orphan = fake_trial(tmp_path, "lstm", "run_trial_bbbbb2_2_lr=2_2026-01-01_00-00-06", [(1, 0.9, 0.9)])
    later = fake_trial(tmp_path, "lstm", "run_trial_ccccc3_3_lr=3_2026-01-01_00-00-12", [(1, 0.6, 0.5)])
    for d in (known, orphan, later):  # result lines without a trial_id: the id comes from the folder name
        (d / "result.json").write_text(json.dumps({"epoch": 1, "best_val": 0.5, "test_at_best": 0.4}) + "\n")
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": [
        [json.dumps({"trial_id": t}), "{}"] for t in ("aaaaa1", "bbbbb2")]}))
    assert len(load_trials(tmp_path)) == 3            # the first run's own snapshot: nothing to drop
    (exp / "experiment_state-2026-01-01_00-00-10.json").write_text(json.dumps({"trial_data": [
        [json.dumps({"trial_id": "aaaaa1"}), "{}"]]}))
    assert sorted(t.trial_id for t in load_trials(tmp_path)) == ["aaaaa1", "ccccc3"]


def test_reseed_plan_repeats_the_chosen_trials_epochs_and_skips_completed_seeds(tmp_path):
    from sweeps.reseed import plan
    fake_trial(tmp_path, "lstm", "a", [(1, 0.5, 0.5), (2, 0.9, 0.8), (3, 0.9, 0.8)])   # chosen, ASHA stopped it at 3
    fake_trial(tmp_path, "lstm", "b", [(e, 0.6, 0.6) for e in range(1, 11)])          # ran all 10
    ((folder, jobs),) = plan(tmp_path, [1, 2]).items()
    assert folder == tmp_path / "induction" and sorted(jobs) == ["lstm@1", "lstm@2"]
    assert jobs["lstm@1"]["train"]["epochs"] == 3 and jobs["lstm@2"]["seed"] == 2
    assert jobs["lstm@1"]["role"] == "reseed" and jobs["lstm@1"]["model"]["name"] == "lstm"
    ((_, full),) = plan(tmp_path, [1, 2], full_budget=True).items()
    assert full["lstm@1"]["train"]["epochs"] == 10
    # seed 1 re-ran to the end, seed 2 was cut short at epoch 2 of 3: only seed 2 is left to run
    for name, seed, rows in (("r1", 1, [(1, 0.9, 0.8), (2, 0.9, 0.8), (3, 0.9, 0.8)]), ("r2", 2, [(1, 0.9, 0.8)])):
        d = fake_trial(tmp_path, "lstm", name, rows, epochs=3, experiment="reseeds")
        cfg = {**jobs["lstm@1"], "seed": seed}
        (d / "run.json").write_text(json.dumps({"config": cfg, "task_info": {}}))
    ((_, left),) = plan(tmp_path, [1, 2]).items()
    assert sorted(left) == ["lstm@2"]
    assert plan(tmp_path, [1]) == {}


def test_reseed_experiment_names(tmp_path):
    from sweeps.reseed import experiment_name
    assert experiment_name(tmp_path, resume=False) == "reseeds"
    (tmp_path / "reseeds").mkdir()
    assert experiment_name(tmp_path, resume=False) == "reseeds-2"
    assert experiment_name(tmp_path, resume=True) == "reseeds"
    (tmp_path / "reseeds-2").mkdir()
    assert (experiment_name(tmp_path, False), experiment_name(tmp_path, True)) == ("reseeds-3", "reseeds-2")


def test_search_progress_is_the_running_best_against_time_since_the_sweep_began(tmp_path):
    from analysis.curves import search_progress
    a = fake_trial(tmp_path, "lstm", "a", [])
    b = fake_trial(tmp_path, "lstm", "b", [])
    rows = {a: [(100, 10, 0.3), (110, 20, 0.5)],                 # started at 90
            b: [(105, 5, 0.4), (115, 15, 0.45), (120, 20, 0.7)]}  # started at 100
    for d, rs in rows.items():
        (d / "result.json").write_text("".join(json.dumps({"epoch": i + 1, "timestamp": ts, "time_total_s": tt,
                                                           "best_val": v}) + "\n" for i, (ts, tt, v) in enumerate(rs)))
    curve = search_progress(load_trials(tmp_path))["induction"][("lstm", 5000)]
    assert curve == [(10, 0.3), (15, 0.4), (20, 0.5), (30, 0.7)]
