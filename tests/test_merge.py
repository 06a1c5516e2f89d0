"""analysis.merge: results run apart merged experiment by experiment, the later source winning."""
import json
import shutil
import subprocess
import sys

from analysis.merge import main as merge_main
from analysis.results import load_trials
from test_report import fake_trial

from conftest import ROOT
from seqicl.config import compose


def sweep_json(root, experiments, preset="original-size", task="induction", run="2026-12-06T08:00:00"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.json").write_text(json.dumps({
        "format": "seqicl.sweep/1", "title": root.name,
        "defining": {"task": task, "preset": preset, "seed": 0,
                     "experiments": {m: {"config": {"model": m}, "space": {}} for m in experiments}},
        "runs": [{"started": run}]}))


def compact_only(folder):
    """What a committed results folder holds: the report's files and trials.jsonl.gz, no trial folders."""
    from analysis.report import write_report
    write_report(folder)
    shutil.rmtree(folder / "induction")


def test_a_rerun_of_one_model_replaces_its_cell_and_its_stale_reseeds_and_nothing_else(tmp_path, capsys):
    old, new, out = tmp_path / "old", tmp_path / "new", tmp_path / "merged"
    fake_trial(old, "lstm", "0000", [(10, 0.5, 0.40)])
    fake_trial(old, "lstm", "0001", [(10, 0.6, 0.45)])
    fake_trial(old, "gilr", "0000", [(10, 0.7, 0.70)])
    fake_trial(old, "gilr", "gilr-seed1", [(10, 0.7, 0.66)], experiment="reseeds", role="reseed", seed=1)
    fake_trial(old, "lstm", "lstm-seed1", [(10, 0.6, 0.44)], experiment="reseeds", role="reseed", seed=1)
    sweep_json(old, ["lstm", "gilr"])
    compact_only(old)
    searched = {**compose(["model=lstm"])["optim"], "lr": 0.123}             # the re-run's search chose anew
    fake_trial(new, "lstm", "0000", [(10, 0.9, 0.85)], optim=searched)      # the re-run: one trial
    sweep_json(new, ["lstm"], run="2026-12-07T08:00:00")

    assert merge_main([str(out), str(old), str(new)]) == 0
    said = capsys.readouterr().out
    assert "induction/lstm: 1 trials from" in said and "1 kept, 1 dropped" in said
    trials = {(t.experiment, t.trial_id): t for t in load_trials(out)}
    assert set(trials) == {("induction/lstm", "0000"), ("induction/gilr", "0000"), ("induction/reseeds", "gilr-seed1")}
    assert trials[("induction/lstm", "0000")].test_at_best == 0.85            # the old 0000 and 0001 are gone
    rows = {r["model"]: r for r in json.loads((out / "table.json").read_text())}
    assert rows["lstm"]["test"] == 0.85 and rows["lstm"]["trials"] == 1
    assert rows["gilr"]["test"] == 0.70 and rows["gilr"]["seed_n"] == 2       # its re-run kept
    merged = json.loads((out / "merged.json").read_text())
    assert merged["reseeds_dropped"] == ["induction/reseeds/trials/lstm-seed1"]
    settings = json.loads((out / "sweep.json").read_text())
    assert sorted(settings["defining"]["experiments"]) == ["gilr", "lstm"] and len(settings["runs"]) == 2
    # the merged folder is an ordinary results folder: its report regenerates the same tables
    before = (out / "table.md").read_text()
    assert subprocess.run([sys.executable, "-m", "analysis.report", str(out)], cwd=ROOT,
                          capture_output=True).returncode == 0
    assert (out / "table.md").read_text() == before


def test_merging_into_a_compact_source_in_place_and_refusals_that_write_nothing(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    fake_trial(old, "lstm", "0000", [(10, 0.5, 0.40)])
    fake_trial(old, "gilr", "0000", [(10, 0.7, 0.70)])
    sweep_json(old, ["lstm", "gilr"])
    compact_only(old)
    fake_trial(new, "gilr", "0000", [(10, 0.8, 0.75)])
    sweep_json(new, ["gilr"], preset="paper")
    record = (old / "trials.jsonl.gz").read_bytes()

    assert merge_main([str(old), str(old), str(new)]) == 2                   # another preset
    assert "different presets" in capsys.readouterr().err
    sweep_json(new, ["gilr"])
    (new / "sweep.json").write_text((new / "sweep.json").read_text().replace('"model": "gilr"', '"model": "other"'))
    assert merge_main([str(old), str(old), str(new)]) == 2                   # same lane, other config
    assert "induction/gilr" in capsys.readouterr().err
    assert merge_main([str(new), str(old), str(new)]) == 2                   # OUT holds trial folders
    assert "holds trial folders" in capsys.readouterr().err
    assert merge_main([str(old), str(old), str(tmp_path / "missing")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    assert (old / "trials.jsonl.gz").read_bytes() == record                  # nothing written by a refusal

    sweep_json(new, ["gilr"])
    assert merge_main([str(old), str(old), str(new)]) == 0                   # in place, into the compact folder
    rows = {r["model"]: r["test"] for r in json.loads((old / "table.json").read_text())}
    assert rows == {"lstm": 0.40, "gilr": 0.75}


def test_bad_arguments_get_one_line(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "analysis.merge", str(tmp_path / "out")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


SUMMARY = {"num_dfas": 50, "decoding": "greedy", "samples": 1, "acceptance": 0.5, "ended": 0.9, "unterminated": 0.1,
           "mean_length": 24.5, "context_length": 25.0, "distinct": None, "novel": 0.7, "novel_accepted": 0.6, "empty": 0.0}


def test_generation_summaries_come_along_the_later_source_winning_and_no_checkpoint(tmp_path):
    old, new, out = tmp_path / "old", tmp_path / "new", tmp_path / "merged"
    fake_trial(old, "lstm", "0000", [(10, 0.5, 0.40)])
    fake_trial(new, "gilr", "0000", [(10, 0.7, 0.70)])
    for source, name, accept in ((old, "dfa-lstm-n40000", 0.5), (old, "dfa-gilr-n40000", 0.1), (new, "dfa-gilr-n40000", 0.9)):
        folder = source / "exports" / name
        folder.mkdir(parents=True)
        (folder / "generation-greedy.json").write_text(json.dumps({**SUMMARY, "acceptance": accept}))
        (folder / "model.pt").write_bytes(b"weights")
    (old / "exports" / "dfa-gilr-n40000" / "generation-T1.json").write_text(json.dumps(SUMMARY))  # the newer has none
    assert merge_main([str(out), str(old), str(new)]) == 0
    got = {p.relative_to(out / "exports").as_posix() for p in (out / "exports").rglob("*") if p.is_file()}
    assert got == {"dfa-lstm-n40000/generation-greedy.json", "dfa-gilr-n40000/generation-greedy.json"}
    assert json.loads((out / "exports" / "dfa-gilr-n40000" / "generation-greedy.json").read_text())["acceptance"] == 0.9
    assert json.loads((out / "merged.json").read_text())["generations"]["dfa-gilr-n40000"] == str(new)
    assert "| dfa-gilr-n40000 | 50 x 1 | greedy | 90.0 |" in (out / "table.md").read_text()


def test_a_rerun_follows_the_sweep_of_its_own_training_size(tmp_path, capsys):
    task = compose(["model=lstm"])["task"]
    old, new, out = tmp_path / "old", tmp_path / "new", tmp_path / "merged"
    for size in (100, 200):
        fake_trial(old, "lstm", "0000", [(10, 0.5, 0.4)], experiment=f"lstm-n{size}", task={**task, "num_train": size})
    fake_trial(old, "lstm", "lstm-n100-seed1", [(10, 0.5, 0.45)], experiment="reseeds", role="reseed", seed=1,
               task={**task, "num_train": 100})
    fake_trial(new, "lstm", "0000", [(10, 0.9, 0.8)], experiment="lstm-n200", task={**task, "num_train": 200})
    assert merge_main([str(out), str(old), str(new)]) == 0          # only the 200-example lane re-ran
    assert "1 kept, 0 dropped" in capsys.readouterr().out


def test_a_later_run_of_other_models_adds_their_cells(tmp_path, capsys):
    """How a table too big for one device call is built: models run in separate calls, then merged."""
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "merged"
    fake_trial(first, "transformer", "0000", [(10, 1.0, 0.99)])
    fake_trial(first, "transformer", "transformer-seed1", [(10, 1.0, 0.97)], experiment="reseeds", role="reseed", seed=1)
    sweep_json(first, ["transformer"])
    compact_only(first)
    fake_trial(second, "lstm", "0000", [(10, 0.4, 0.35)])
    sweep_json(second, ["lstm"], run="2026-12-07T08:00:00")

    assert merge_main([str(out), str(first), str(second)]) == 0
    said = capsys.readouterr().out
    assert "induction/lstm: 1 trials from" in said and "induction/transformer: 1 trials from" in said
    rows = {r["model"]: r for r in json.loads((out / "table.json").read_text())}
    assert rows["lstm"]["test"] == 0.35 and rows["transformer"]["test"] == 0.99
    assert rows["transformer"]["seed_n"] == 2                                 # the first run's re-run stays
    settings = json.loads((out / "sweep.json").read_text())
    assert sorted(settings["defining"]["experiments"]) == ["lstm", "transformer"]


def test_earlier_reruns_stay_when_a_later_rerun_folder_carries_a_copy_of_their_sweep(tmp_path, capsys):
    """bench/h200/regbench-reseed.sh re-runs in a folder holding a copy of the sweep's trials and its
    sweep.json: merged last, the sweep comes from there, and the re-runs made before it still
    re-ran that sweep's choice (2026-12-07: three 20-epoch seeds were dropped by the old rule)."""
    old, again, out = tmp_path / "old", tmp_path / "again", tmp_path / "merged"
    fake_trial(old, "transformer", "0000", [(10, 0.9, 0.90)])
    fake_trial(old, "transformer", "transformer-seed1", [(10, 0.9, 0.88)], experiment="reseeds", role="reseed", seed=1)
    sweep_json(old, ["transformer"])
    compact_only(old)
    fake_trial(again, "transformer", "0000", [(10, 0.9, 0.90)])                 # the copy
    fake_trial(again, "transformer", "transformer-seed2", [(10, 0.9, 0.86)], experiment="reseeds", role="reseed", seed=2)
    shutil.copy(old / "sweep.json", again / "sweep.json")
    assert merge_main([str(out), str(old), str(again)]) == 0
    assert "2 kept, 0 dropped" in capsys.readouterr().out
    row = json.loads((out / "table.json").read_text())[0]
    assert row["seed_n"] == 3 and abs(row["seed_mean"] - 0.88) < 1e-9
    assert len(json.loads((out / "sweep.json").read_text())["runs"]) == 1     # the copied run once
