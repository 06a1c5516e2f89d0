import json
import subprocess
import sys

from analysis.report import write_report
from analysis.results import best_trial, load_results, load_trials
from seqicl.config import compose
from seqicl.train.record import RunRecord

from conftest import ROOT


def fake_trial(root, model, name, results, epochs=10, error=False, chance=0.05, experiment=None,
               status=None, sampled=None, **cfg_changes):
    """A trial folder as a sweep writes it: <task>/<experiment>/trials/<name>/ with its record.
    ``results``: (epoch, best_val, test_at_best) per evaluated epoch."""
    d = root / "induction" / (experiment or model) / "trials" / name
    cfg = compose([f"model={model}", f"train.epochs={epochs}"])
    for key, value in cfg_changes.items():
        cfg[key] = value
    record = RunRecord(d)
    record.start(cfg, {"chance": chance}, 1000, "cpu", {"trial": name, "sampled": sampled or {"optim.lr": 1e-3}})
    for e, bv, tb in results:
        record.append_epoch({"epoch": e, "best_val": bv, "test_at_best": tb, "best_epoch": e})
    last = results[-1][0] if results else 0
    record.set_status(status or ("errored" if error else "finished" if last == epochs else "stopped"),
                      "RuntimeError: boom" if error else None)
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
        fake_trial(tmp_path, "lstm", name, [(1, 0.95, test)], epochs=epochs, experiment="reseeds",
                   role="reseed", seed=seed)
    other = compose(["model=lstm", "train.epochs=1"])["optim"]
    fake_trial(tmp_path, "lstm", "other", [(1, 0.95, 0.0)], epochs=1, experiment="reseeds", role="reseed",
               optim={**other, "lr": 0.123})                      # a re-run of another config
    md = write_report(tmp_path)
    (row,) = json.loads((tmp_path / "table.json").read_text())
    assert row["trials"] == 2 and row["test"] == 0.8                     # re-runs never compete
    assert row["seed_n"] == 3 and abs(row["seed_mean"] - 0.7) < 1e-12
    assert abs(row["seed_std"] - 0.1) < 1e-12                            # sample std of 0.6, 0.7, 0.8
    assert "| induction head | 70.0 ± 10.0 (n=3); best 80.0; 1 cut short at 1 of 10 epochs: 10.0 |" in md
    # seqicl (mean ± std) / original, LSTM and Random
    assert "| induction head | 80.0 (70.0 ± 10.0) / 4.8 | 5.0 / 5.0 |" in md


def test_reseed_plan_repeats_the_chosen_trials_epochs_and_skips_completed_seeds(tmp_path):
    from sweeps.reseed import plan
    fake_trial(tmp_path, "lstm", "0000", [(1, 0.5, 0.5), (2, 0.9, 0.8), (3, 0.9, 0.8)])   # chosen, ASHA stopped it at 3
    fake_trial(tmp_path, "lstm", "0001", [(e, 0.6, 0.6) for e in range(1, 11)])          # ran all 10
    ((folder, jobs),) = plan(tmp_path, [1, 2]).items()
    assert folder == tmp_path / "induction" and sorted(jobs) == ["lstm-seed1-e3", "lstm-seed2-e3"]
    job = jobs["lstm-seed1-e3"]
    assert job["train"]["epochs"] == 3 and jobs["lstm-seed2-e3"]["seed"] == 2
    assert job["role"] == "reseed" and job["model"]["name"] == "lstm"
    ((_, full),) = plan(tmp_path, [1, 2], full_budget=True).items()
    assert full["lstm-seed1-e10"]["train"]["epochs"] == 10
    # seed 1 re-ran to the end, seed 2 was cut short at epoch 2 of 3: only seed 2 is left to run
    for name, seed, rows in (("lstm-seed1-e3", 1, [(1, 0.9, 0.8), (2, 0.9, 0.8), (3, 0.9, 0.8)]),
                             ("lstm-seed2-e3", 2, [(1, 0.9, 0.8)])):
        record = RunRecord(tmp_path / "induction" / "reseeds" / "trials" / name)
        record.start({**job, "seed": seed}, {}, 1000, "cpu", {"trial": name})
        for e, bv, tb in rows:
            record.append_epoch({"epoch": e, "best_val": bv, "test_at_best": tb, "best_epoch": e})
        record.set_status("finished" if len(rows) == 3 else "stopped")
    ((_, left),) = plan(tmp_path, [1, 2]).items()
    assert sorted(left) == ["lstm-seed2-e3"]
    assert plan(tmp_path, [1]) == {}


def test_search_progress_is_the_running_best_against_time_since_the_sweep_began(tmp_path):
    from analysis.curves import search_progress
    rows = {"a": [(100, 10, 0.3), (110, 20, 0.5)],                 # started at 90
            "b": [(105, 5, 0.4), (115, 15, 0.45), (120, 20, 0.7)]}  # started at 100
    for name, rs in rows.items():
        d = fake_trial(tmp_path, "lstm", name, [])
        (d / "epochs.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "timestamp": ts, "time_total_s": tt,
                                                            "best_val": v}) + "\n" for i, (ts, tt, v) in enumerate(rs)))
    curve = search_progress(load_trials(tmp_path))["induction"][("lstm", 5000)]
    assert curve == [(10, 0.3), (15, 0.4), (20, 0.5), (30, 0.7)]


def test_a_corrupt_record_is_reported_and_skipped_not_fatal(tmp_path, capsys):
    fake_trial(tmp_path, "lstm", "0000", [(1, 0.5, 0.25)])
    bad = fake_trial(tmp_path, "lstm", "0001", [(1, 0.9, 0.9)])
    (bad / "run.json").write_text("{ not json")
    md = write_report(tmp_path)
    assert "| LSTM | 25.0 |" in md and "Unreadable trial records" in md and "0001/run.json" in md
    assert "0001/run.json: unreadable" in capsys.readouterr().err
    empty = fake_trial(tmp_path, "lstm", "0002", [(1, 0.7, 0.7)])
    (empty / "status.json").write_text("")
    assert [t.trial_id for t in load_results(tmp_path).trials] == ["0000"]


def test_the_compact_record_alone_reproduces_every_table(tmp_path):
    """A results folder committed without its run folders: trials.jsonl.gz gives the same report."""
    import shutil
    fake_trial(tmp_path, "lstm", "0000", [(1, 0.5, 0.25), (2, 0.6, 0.3)])
    fake_trial(tmp_path, "transformer", "0000", [(1, 0.9, 0.875)], epochs=1)
    fake_trial(tmp_path, "transformer", "0001", [(1, 0.99, 0.99)], error=True)
    write_report(tmp_path)
    names = ("table.md", "table.json", "table.csv", "trials.csv", "best_configs.yaml", "trials.jsonl.gz")
    before = {n: (tmp_path / n).read_bytes() for n in names}
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    shutil.copytree(tmp_path, moved)
    shutil.rmtree(moved / "induction")
    write_report(moved)
    assert {n: (moved / n).read_bytes() for n in names} == before
    assert [t.status for t in load_trials(moved)] == ["stopped", "finished", "errored"]
