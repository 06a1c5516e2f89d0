import json
import shutil
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
    record.start(cfg, {"chance": chance}, 1000, "cpu",
                 {"trial": name, "sampled": {"optim.lr": 1e-3} if sampled is None else sampled})
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


def test_ties_on_validation_and_epochs_go_to_the_lower_trial_id_in_any_order(tmp_path):
    for name in ("0007", "0002", "0011"):
        fake_trial(tmp_path, "lstm", name, [(1, 0.4, 0.1), (2, 0.7, int(name) / 100)], epochs=2)
    trials = load_trials(tmp_path)
    assert best_trial(trials).trial_id == best_trial(trials[::-1]).trial_id == "0002"


def test_report_files_and_cli(tmp_path):
    fake_trial(tmp_path, "lstm", "a", [(1, 0.5, 0.25)])
    fake_trial(tmp_path, "transformer", "t", [(1, 0.9, 0.875)])
    md = write_report(tmp_path)
    assert "| induction head | 87.5 | 25.0 | 5.0 |" in md          # original layout: Transformer first
    rows = json.loads((tmp_path / "table.json").read_text())
    assert {r["model"]: r["test"] for r in rows} == {"lstm": 0.25, "transformer": 0.875}
    assert (tmp_path / "table.csv").read_text().count("\n") == 3
    assert "optim.lr" in (tmp_path / "best_configs.yaml").read_text()
    # each cell's parameter count (fake_trial records 1000): in the main table, per model, csv, json
    assert "| parameters | 1.0k | 1.0k |  |" in md and "| LSTM | 25.0 | 50.0 | 1.0k |" in md
    assert all(r["n_params"] == 1000 for r in rows) and "n_params" in (tmp_path / "table.csv").read_text()
    bad = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path / "missing")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_seed_statistics_and_the_original_numbers(tmp_path):
    fake_trial(tmp_path, "lstm", "a", [(1, 0.5, 0.5)])
    fake_trial(tmp_path, "lstm", "b", [(1, 0.9, 0.8)])                 # the chosen trial: test 0.8
    # its re-runs with other seeds; s3 was cut short by a time budget (1 of 10 epochs): not counted;
    # s1-cut was cut short too, but seed 1 later completed (s1): superseded, neither counted nor listed
    # s4 re-ran a shorter schedule (1 epoch, as reseeds before 2026-12-03 did): not counted either
    for name, seed, test, last in (("s1", 1, 0.6, 10), ("s2", 2, 0.7, 10), ("s3", 3, 0.1, 1), ("s1-cut", 1, 0.3, 1)):
        fake_trial(tmp_path, "lstm", name, [(last, 0.95, test)], epochs=10, experiment="reseeds",
                   role="reseed", seed=seed)
    fake_trial(tmp_path, "lstm", "s4", [(1, 0.95, 0.2)], epochs=1, experiment="reseeds", role="reseed", seed=4)
    other = compose(["model=lstm", "train.epochs=1"])["optim"]
    fake_trial(tmp_path, "lstm", "other", [(1, 0.95, 0.0)], epochs=1, experiment="reseeds", role="reseed",
               optim={**other, "lr": 0.123})                      # a re-run of another config
    md = write_report(tmp_path)
    (row,) = json.loads((tmp_path / "table.json").read_text())
    assert row["trials"] == 2 and row["test"] == 0.8                     # re-runs never compete
    assert row["seed_n"] == 3 and abs(row["seed_mean"] - 0.7) < 1e-12
    assert abs(row["seed_std"] - 0.1) < 1e-12                            # sample std of 0.6, 0.7, 0.8
    assert "| induction head | 70.0 ± 10.0 (n=3); best 80.0; 2 not counted, trained 1 of 10 epochs: 10.0 20.0 |" in md
    # seqicl (mean ± std) / original, LSTM and Random
    assert "| induction head | 80.0 (70.0 ± 10.0) / 4.8 | 5.0 / 5.0 |" in md


def test_reseed_plan_trains_the_whole_configured_schedule_and_skips_completed_seeds(tmp_path):
    from sweeps.reseed import plan
    fake_trial(tmp_path, "lstm", "0000", [(1, 0.5, 0.5), (2, 0.9, 0.8), (3, 0.9, 0.8)])   # chosen, ASHA stopped it at 3
    fake_trial(tmp_path, "lstm", "0001", [(e, 0.6, 0.6) for e in range(1, 11)])          # ran all 10
    ((folder, jobs),) = plan(tmp_path, [1, 2]).items()
    assert folder == tmp_path / "induction" and sorted(jobs) == ["lstm-seed1-e10", "lstm-seed2-e10"]
    job = jobs["lstm-seed1-e10"]
    assert job["train"]["epochs"] == 10 and jobs["lstm-seed2-e10"]["seed"] == 2   # not the 3 it ran
    assert job["role"] == "reseed" and job["model"]["name"] == "lstm"
    # an old re-run of a shorter schedule (3 epochs) is no complete re-run of this configuration
    old = RunRecord(tmp_path / "induction" / "reseeds" / "trials" / "lstm-seed1-e3")
    old.start({**job, "seed": 1, "train": {**job["train"], "epochs": 3}}, {}, 1000, "cpu", {"trial": "lstm-seed1-e3"})
    for e in (1, 2, 3):
        old.append_epoch({"epoch": e, "best_val": 0.9, "test_at_best": 0.8, "best_epoch": e})
    old.set_status("finished")
    assert sorted(next(iter(plan(tmp_path, [1, 2]).values()))) == ["lstm-seed1-e10", "lstm-seed2-e10"]
    # seed 1 re-ran to the end, seed 2 was cut short at epoch 1 of 10: only seed 2 is left to run
    for name, seed, rows in (("lstm-seed1-e10", 1, [(e, 0.9, 0.8) for e in range(1, 11)]),
                             ("lstm-seed2-e10", 2, [(1, 0.9, 0.8)])):
        record = RunRecord(tmp_path / "induction" / "reseeds" / "trials" / name)
        record.start({**job, "seed": seed}, {}, 1000, "cpu", {"trial": name})
        for e, bv, tb in rows:
            record.append_epoch({"epoch": e, "best_val": bv, "test_at_best": tb, "best_epoch": e})
        record.set_status("finished" if len(rows) == 10 else "stopped")
    ((_, left),) = plan(tmp_path, [1, 2]).items()
    assert sorted(left) == ["lstm-seed2-e10"]
    assert plan(tmp_path, [1]) == {}


def test_parameter_counts_filled_in_from_configs_match_the_built_models():
    from seqicl.data import generate
    from seqicl.models.lm import build_model
    from sweeps.convert_legacy import params_of
    for task, model in (("associative_recall", "transformer"), ("induction", "transformer"), ("dfa", "lstm"),
                        ("dfa", "h3")):
        cfg = compose([f"task={task}", f"model={model}", "task.num_train=40", "task.num_val=4", "task.num_test=4"])
        data = generate(cfg["task"])
        built = build_model(cfg["model"], len(data.vocab), data.train.inputs.shape[1])
        assert params_of(cfg, {}) == sum(p.numel() for p in built.parameters()) > 0
    # learned positions on RegBench: the length came from that run's data, so no count
    assert params_of(compose(["task=dfa", "model=transformer"]), {}) is None


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


def test_seeds_of_one_configuration_give_mean_std_range_and_the_original_inside_or_out(tmp_path):
    """--seeds runs (nothing sampled): every seed counts; the original's 4.8 (LSTM, induction head)
    lies inside [4.0, 6.0], its 97.2 (Transformer) outside [98.0, 100.0]; the range's ends are
    compared as printed."""
    for k, test in enumerate([0.04, 0.05, 0.06]):
        fake_trial(tmp_path, "lstm", f"seed{k}", [(10, 0.5 + k / 100, test)], sampled={}, seed=k)
    for k, test in enumerate([0.98, 1.0]):
        fake_trial(tmp_path, "transformer", f"seed{k}", [(10, 0.9, test)], sampled={}, seed=k)
    md = write_report(tmp_path)
    assert "| induction head | 99.0 ± 1.4 [98.0, 100.0] (n=2) / 97.2, outside | 5.0 ± 1.0 [4.0, 6.0] (n=3) / 4.8, inside |" in md
    # float32 accuracies of 24/500 and 30/500, as records hold them: the original's LSTM 4.8 and
    # RWKV 6.0 (induction head) are the ends of these ranges, so inside
    edges = tmp_path / "edges"
    for model in ("lstm", "rwkv"):
        for k, test in enumerate([0.048000000417, 0.0599999986]):
            fake_trial(edges, model, f"seed{k}", [(10, 0.9, test)], sampled={}, seed=k)
    md = write_report(edges)
    assert "| 5.4 ± 0.8 [4.8, 6.0] (n=2) / 4.8, inside | 5.4 ± 0.8 [4.8, 6.0] (n=2) / 6.0, inside |" in md
    rows = {r["model"]: r for r in json.loads((tmp_path / "table.json").read_text())}
    assert rows["lstm"]["seed_runs"] and rows["lstm"]["seed_n"] == 3 and rows["lstm"]["seed_min"] == 0.04
    fake_trial(tmp_path, "lstm", "0000", [(10, 0.2, 0.1)])      # a searched trial: LSTM is a search now
    md = write_report(tmp_path)
    assert "| induction head | 99.0 ± 1.4 [98.0, 100.0] (n=2) / 97.2, outside |  |" in md
    assert "seed_runs" not in {r["model"]: r for r in json.loads((tmp_path / "table.json").read_text())}["lstm"]
