import json
import math
import shutil
import subprocess
import sys

import pytest

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


def test_trials_cut_by_the_time_budget_are_named_not_counted_as_stopped_early(tmp_path):
    fake_trial(tmp_path, "lstm", "asha", [(1, 0.2, 0.2), (2, 0.3, 0.3)])              # ASHA stopped at 2
    cut = fake_trial(tmp_path, "lstm", "cut", [(e, 0.1 * e, 0.1 * e) for e in range(1, 8)])
    RunRecord(cut).set_status("stopped", "the time budget of 500 s ran out")
    md = write_report(tmp_path)
    row = json.loads((tmp_path / "table.json").read_text())[0]
    assert row["stopped"] == 1 and row["finished"] == 0 and row["trials"] == 2 and row["test"] == pytest.approx(0.7)
    assert "1 trial(s) cut by the sweep's time budget" in md and "induction/lstm cut (7 of 10 epochs)" in md


def test_trials_still_running_are_named_under_the_table(tmp_path):
    """A sweep cut by its budget or an interrupted driver leaves trials "running" at their last
    state: the line under the table names them, so a reader knows which cells --resume may change;
    past 8 it counts the rest (an interrupted cluster leaves many)."""
    fake_trial(tmp_path, "lstm", "done", [(10, 0.9, 0.8)])
    fake_trial(tmp_path, "rwkv", "0000", [(e, 0.1 * e, 0.1 * e) for e in range(1, 4)], status="running")
    md = write_report(tmp_path)
    assert "1 trial(s) still running" in md and "last saved state: induction/rwkv 0000 (3 of 10 epochs)." in md, md
    for i in range(1, 10):
        fake_trial(tmp_path, "rwkv", f"{i:04d}", [(1, 0.1, 0.1)], status="running")
    md = write_report(tmp_path)
    assert "10 trial(s) still running" in md and "induction/rwkv 0007 (1 of 10 epochs) and 2 more." in md, md


def test_a_rerun_cut_by_the_time_budget_is_listed_as_not_counted(tmp_path):
    fake_trial(tmp_path, "lstm", "b", [(10, 0.9, 0.8)])
    fake_trial(tmp_path, "lstm", "s1", [(10, 0.95, 0.6)], experiment="reseeds", role="reseed", seed=1)
    # seqicl since 2026-12-06 leaves a re-run the budget cut "running" at its last state
    fake_trial(tmp_path, "lstm", "s2", [(3, 0.5, 0.3)], experiment="reseeds", role="reseed", seed=2,
               status="running")
    md = write_report(tmp_path)
    (row,) = json.loads((tmp_path / "table.json").read_text())
    assert row["seed_n"] == 2 and row["seed_cut"] == [{"test": 0.3, "epochs": 3, "of": 10, "seed": 2}]
    assert "1 not counted, trained 3 of 10 epochs: 30.0" in md, md


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
    assert "| induction head | 70.0 ± 10.0 (n=3); chosen 80.0; 2 not counted, trained 1 of 10 epochs: 10.0 20.0 |" in md
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
    # --state-every: the re-run saves its state that often; it is still a re-run of the chosen
    # configuration (seed 1's complete run counts), and the chosen trial's own record is untouched
    ((_, left),) = plan(tmp_path, [1, 2], state_every=1).items()
    assert sorted(left) == ["lstm-seed2-e10"] and left["lstm-seed2-e10"]["train"]["state_every"] == 1
    assert job["train"]["state_every"] != 1
    record = RunRecord(tmp_path / "induction" / "reseeds" / "trials" / "lstm-seed2-e10")
    record.start(left["lstm-seed2-e10"], {}, 1000, "cpu", {"trial": "lstm-seed2-e10"})
    for e in range(1, 11):
        record.append_epoch({"epoch": e, "best_val": 0.9, "test_at_best": 0.8, "best_epoch": e})
    record.set_status("finished")
    assert plan(tmp_path, [1, 2], state_every=1) == {} and plan(tmp_path, [1, 2]) == {}
    # seed 3's folder holds a re-run of a configuration chosen earlier (another lr): kept, and the
    # new re-run gets a folder of its own
    stale = RunRecord(tmp_path / "induction" / "reseeds" / "trials" / "lstm-seed3-e10")
    stale.start({**job, "seed": 3, "optim": {**job["optim"], "lr": 0.123}}, {}, 1000, "cpu", {"trial": "lstm-seed3-e10"})
    stale.set_status("running", "cut", epochs=0)
    ((_, left),) = plan(tmp_path, [3]).items()
    assert sorted(left) == ["lstm-seed3-e10-2"] and left["lstm-seed3-e10-2"]["seed"] == 3
    chosen = RunRecord(tmp_path / "induction" / "lstm" / "trials" / "0000").run()["config"]
    assert chosen["train"]["state_every"] == job["train"]["state_every"]


def test_a_longer_schedule_is_its_own_recipe_never_averaged_with_the_chosen_one(tmp_path):
    from sweeps.reseed import plan
    fake_trial(tmp_path, "lstm", "0000", [(e, 0.9, 0.8) for e in range(1, 11)])          # chosen: 10 epochs, seed 0
    fake_trial(tmp_path, "lstm", "s1", [(10, 0.95, 0.6)], experiment="reseeds", role="reseed", seed=1)
    # --epochs 30: every seed, the chosen trial's own included, on the chosen config stretched to 30
    jobs = next(iter(plan(tmp_path, [0, 1, 2], epochs=30).values()))
    assert sorted(jobs) == ["lstm-seed0-e30", "lstm-seed1-e30", "lstm-seed2-e30"]
    assert all(j["train"]["epochs"] == 30 and j["seed"] == s for j, s in zip(
        (jobs["lstm-seed0-e30"], jobs["lstm-seed1-e30"], jobs["lstm-seed2-e30"]), (0, 1, 2)))
    with pytest.raises(Exception, match="own seed"):
        plan(tmp_path, [0], epochs=10)                                                  # that is the chosen run itself
    for name, seed, test, last in (("lstm-seed0-e30", 0, 0.90, 30), ("lstm-seed1-e30", 1, 0.94, 30),
                                   ("lstm-seed2-e30", 2, 0.50, 12)):                    # seed 2 cut at 12 of 30
        fake_trial(tmp_path, "lstm", name, [(last, 0.99, test)], epochs=30, experiment="reseeds", role="reseed",
                   seed=seed, status=None if last == 30 else "running")
    md = write_report(tmp_path)
    (row,) = json.loads((tmp_path / "table.json").read_text())
    assert row["test"] == 0.8 and row["seed_n"] == 2 and row["seed_mean"] == pytest.approx(0.7)  # 0.8, 0.6: 10 epochs only
    (long,) = row["schedules"]
    assert long["epochs"] == 30 and long["n"] == 2 and long["seeds"] == [0, 1]
    assert long["mean"] == pytest.approx(0.92) and long["std"] == pytest.approx(0.02 * 2 ** 0.5)
    assert row["seed_cut"] == [{"test": 0.5, "epochs": 12, "of": 30, "seed": 2}]
    assert "70.0 ± 14.1 (n=2); chosen 80.0; 30 epochs: 92.0 ± 2.8 (n=2); 1 not counted, trained 12 of 30 epochs: 50.0" in md
    # the 30-epoch runs done: nothing more to plan for them, and the 10-epoch plan is unchanged
    assert sorted(next(iter(plan(tmp_path, [0, 1, 2], epochs=30).values()))) == ["lstm-seed2-e30"]
    assert sorted(next(iter(plan(tmp_path, [1, 2]).values()))) == ["lstm-seed2-e10"]


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


# ---- RegBench learning curves: tables (rows models, columns sizes), the figure, generations --------

NGRAMS = {"2-gram": {"dfa_accuracy": 0.832, "tvd": 0.299}, "3-gram": {"dfa_accuracy": 0.936, "tvd": 0.223}}
CURVES = {"transformer": {1000: (0.60, 0.50), 5000: (0.75, 0.40), 40000: (0.95, 0.15)},
          "lstm": {1000: (0.55, 0.62), 5000: (0.58, 0.60)}}              # LSTM not swept at 40k


def fake_regbench(root):
    """A RegBench results folder swept at several sizes: per (model, size) a weak trial and the
    best one (higher validation), with the test DFA accuracy and TVD of ``CURVES``."""
    for model, by_size in CURVES.items():
        for size, (acc, tvd) in by_size.items():
            cfg = compose(["task=dfa", f"model={model}", "train.epochs=2", f"task.num_train={size}"])
            for name, val, shift in (("0000", 0.3, -0.2), ("0001", 0.9, 0.0)):
                record = RunRecord(root / "dfa" / f"{model}-n{size}" / "trials" / name)
                record.start(cfg, {"chance": 0.1, "baselines": NGRAMS}, 1000, "cpu", {"trial": name, "sampled": {}})
                record.append_epoch({"epoch": 2, "best_val": val, "test_at_best": acc + shift, "best_epoch": 2,
                                     "test_dfa_accuracy_at_best": acc + shift, "test_tvd_at_best": tvd - shift})
                record.set_status("finished")


def test_regbench_learning_curve_tables_rows_models_columns_sizes(tmp_path):
    fake_regbench(tmp_path)
    md = write_report(tmp_path)
    acc = md[md.index("## RegBench (DFA): test DFA accuracy (%) against training examples"):]
    assert "| model | 1k | 5k | 40k |" in acc
    assert "| Transformer | 60.0 | 75.0 | 95.0 |" in acc and "| LSTM | 55.0 | 58.0 |  |" in acc
    assert "| 2-gram (in context) | 83.2 | 83.2 | 83.2 |" in acc and "| 3-gram (in context) | 93.6 | 93.6 | 93.6 |" in acc
    tvd = md[md.index("## RegBench (DFA): total variation distance to the DFA (lower is better) against"):]
    assert "| Transformer | 0.500 | 0.400 | 0.150 |" in tvd and "| LSTM | 0.620 | 0.600 |  |" in tvd
    assert "| 2-gram (in context) | 0.299 | 0.299 | 0.299 |" in tvd and "| 3-gram (in context) | 0.223 | 0.223 | 0.223 |" in tvd
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "![learning curves](learning_curves.png)" in md


def test_regbench_figure_log_x_one_line_per_model_ngrams_dashed(tmp_path, monkeypatch):
    import analysis.curves as curves
    from analysis.report import summarize
    from analysis.results import load_trials
    fake_regbench(tmp_path)
    figures = []
    monkeypatch.setattr(curves, "save_png", lambda fig, path: figures.append(fig))
    assert curves.plot_learning_curves(summarize(load_trials(tmp_path)), tmp_path / "x.png")
    (fig,) = figures
    acc_ax, tvd_ax = fig.axes
    for ax, index, scale, ngram_key in ((acc_ax, 0, 100, "dfa_accuracy"), (tvd_ax, 1, 1, "tvd")):
        assert ax.get_xscale() == "log"
        solid = {line.get_label(): line for line in ax.lines if line.get_linestyle() == "-"}
        dashed = {line.get_label(): line for line in ax.lines if line.get_linestyle() == "--"}
        assert sorted(solid) == ["LSTM", "Transformer"]
        assert list(solid["Transformer"].get_xdata()) == [1000, 5000, 40000]
        assert list(solid["Transformer"].get_ydata()) == pytest.approx([v[index] * scale for v in CURVES["transformer"].values()])
        assert list(solid["LSTM"].get_xdata()) == [1000, 5000]
        assert sorted(dashed) == ["2-gram (in context)", "3-gram (in context)"]
        assert dashed["3-gram (in context)"].get_ydata()[0] == pytest.approx(NGRAMS["3-gram"][ngram_key] * scale)
    # a size missing inside a model's range is a gap in its line, not a straight segment across it
    figures.clear()
    rows = [r for r in summarize(load_trials(tmp_path)) if (r["model"], r["num_train"]) != ("transformer", 5000)]
    assert curves.plot_learning_curves(rows, tmp_path / "z.png")
    line = next(x for x in figures[0].axes[0].lines if x.get_label() == "Transformer")
    assert list(line.get_xdata()) == [1000, 5000, 40000] and math.isnan(line.get_ydata()[1])
    assert line.get_ydata()[0] == pytest.approx(100 * CURVES["transformer"][1000][0])
    # one size only: no curve to draw
    assert not curves.plot_learning_curves([r for r in summarize(load_trials(tmp_path)) if r["num_train"] == 1000],
                                           tmp_path / "y.png")


def test_search_progress_of_a_learning_curve_has_a_panel_per_size_and_each_model_once_in_one_colour(tmp_path, monkeypatch):
    import analysis.curves as curves
    from analysis.report import summarize
    from analysis.results import load_trials
    fake_regbench(tmp_path)
    trials = load_trials(tmp_path)
    for i, t in enumerate(trials):
        t.epochs[0].update(timestamp=1000.0 + i, time_total_s=5.0 + i)
    figures = []
    monkeypatch.setattr(curves, "save_png", lambda fig, path: figures.append(fig))
    assert curves.plot_search_progress(trials, tmp_path / "p.png")
    assert curves.plot_learning_curves(summarize(trials), tmp_path / "c.png")
    progress, learning = figures
    panels = [ax for ax in progress.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["RegBench (DFA), 1k examples", "RegBench (DFA), 5k examples",
                                                "RegBench (DFA), 40k examples"]
    # each panel its size's models, named without the size, in the tables' order (no LSTM at 40k)
    assert [[line.get_label() for line in ax.lines] for ax in panels] == [["Transformer", "LSTM"]] * 2 + [["Transformer"]]
    # one legend for the figure, each model once; a model's colour is the same in every panel and figure
    (legend,) = progress.legends
    assert [t.get_text() for t in legend.get_texts()] == ["Transformer", "LSTM"]
    colour = {line.get_label(): line.get_color() for line in learning.axes[0].lines if line.get_linestyle() == "-"}
    assert colour["Transformer"] != colour["LSTM"]
    for ax in panels:
        for line in ax.lines:
            assert line.get_color() == colour[line.get_label()]
    # one size: one panel, titled by its task alone
    figures.clear()
    assert curves.plot_search_progress([t for t in trials if t.num_train == 5000], tmp_path / "q.png")
    assert [ax.get_title() for ax in figures[0].axes if ax.get_visible()] == ["RegBench (DFA)"]


def test_generation_table_reads_every_decoding_and_older_summaries(tmp_path):
    fake_regbench(tmp_path)
    new = {"num_dfas": 50, "decoding": "greedy", "samples": 1, "acceptance": 0.92, "ended": 0.96,
           "unterminated": 0.04, "mean_length": 24.5, "context_length": 25.25, "distinct": None, "novel": 0.7,
           "novel_accepted": 0.66, "empty": 0.0}
    exp = tmp_path / "exports" / "dfa-transformer-n40000"
    exp.mkdir(parents=True)
    (exp / "generation-greedy.json").write_text(json.dumps(new))
    (exp / "generation-T1.json").write_text(json.dumps({**new, "decoding": "T=1", "samples": 8, "distinct": 0.75}))
    old = tmp_path / "exports" / "dfa-lstm-n5000"            # a summary of before 2026-12-06
    old.mkdir()
    (old / "generation.json").write_text(json.dumps({"num_dfas": 100, "samples": 4, "decoding": "T=1", "acceptance": 0.0075,
                                                    "mean_length": 57.8725, "distinct": 1.0, "novel": 1.0, "empty": 0.0,
                                                    "unterminated": 0.93}))
    md = write_report(tmp_path)
    table = md[md.index("## Generation on held-out DFAs"):]
    rows = [line for line in table.splitlines() if line.startswith("| dfa-")]
    assert rows == ["| dfa-lstm-n5000 | 100 x 4 | T=1 | 0.8 | 7.0 | 57.9 | - | 100.0 | 100.0 | - |",
                    "| dfa-transformer-n40000 | 50 x 1 | greedy | 92.0 | 96.0 | 24.5 | 25.2 | - | 70.0 | 66.0 |",
                    "| dfa-transformer-n40000 | 50 x 8 | T=1 | 92.0 | 96.0 | 24.5 | 25.2 | 75.0 | 70.0 | 66.0 |"]
