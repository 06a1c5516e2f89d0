"""sweeps/run.py: bad input gives one line and status 2 and writes nothing; a tiny sweep
runs end to end and produces the table."""
import json
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from analysis.results import best_trial, load_trials
from sweeps import run as sweep_run
from sweeps import search_space

from conftest import ROOT


@pytest.mark.parametrize("preset", sorted(p.stem for p in (ROOT / "sweeps" / "presets").glob("*.yaml")))
@pytest.mark.parametrize("task", ["associative_recall", "induction", "dfa"])
def test_every_presets_first_rung_comes_after_the_warm_up(preset, task, tmp_path):
    tasks = sweep_run.load_yaml(ROOT / "sweeps" / "presets" / f"{preset}.yaml").get("tasks")
    if tasks is not None and task not in tasks:
        pytest.skip(f"preset {preset} is not defined for {task}")
    plan, _ = sweep_run.make_plan(sweep_run.parse_args(["--task", task, "--preset", preset,
                                                        "--storage", str(tmp_path / "s")]))
    for e in plan.experiments.values():
        first = sweep_run.Rungs(plan.grace_period, plan.reduction_factor, e.cfg["train"]["epochs"]).milestones[0]
        # (the cpu preset's warm-up is its whole run: its only rung is the last epoch, which stops nothing)
        assert first > e.cfg["optim"]["warmup_frac"] * e.cfg["train"]["epochs"] or first >= e.cfg["train"]["epochs"]


@pytest.mark.parametrize("argv, message", [
    (["--task", "nope"], "unknown task 'nope'"),
    (["--models", "lstm"], "--task is required"),
    (["--task", "induction", "--models", "transformer,gpt9"], "unknown model 'gpt9'"),
    (["--task", "induction", "model.d_modl=3"], "bad override"),
    (["--task", "induction", "optim.lr=fast"], "optim.lr expects float"),
    (["--task", "induction", "model=lstm"], "--task/--models"),
    (["--task", "induction", "--num-samples", "0"], "--num-samples must be at least 1"),
    (["--task", "induction", "--max-concurrent", "-1"], "--max-concurrent must be at least 1"),
    (["--task", "induction", "--gpus-per-trial", "1.5"], "--gpus-per-trial must be a fraction in (0, 1]"),
    (["--task", "induction", "--gpus-per-trial", "0"], "--gpus-per-trial must be a fraction in (0, 1]"),
    (["--task", "induction", "--max-failures", "-1"], "--max-failures must be 0 or more"),
    (["--task", "induction", "--trials-per-gpu", "0"], "--trials-per-gpu must be at least 1"),
    (["--task", "induction", "--trials-per-gpu", "4", "--gpus-per-trial", "0.5"], "not both"),
    (["--task", "induction", "--cpus-per-trial", "0"], "--cpus-per-trial must be positive"),
    (["--task", "induction", "--time-budget", "0"], "--time-budget must be at least 30 seconds"),
    (["--task", "induction", "--time-budget", "1"], "--time-budget must be at least 30 seconds"),
    (["--task", "induction", "train.epochs=0"], "train.epochs must be an integer >= 1, got 0"),
    (["--task", "induction", "train.batch_size=0"], "train.batch_size must be an integer >= 1, got 0"),
    (["--task", "induction", "train.eval_every=0"], "train.eval_every must be an integer >= 1, got 0"),
    (["--task", "induction", "task.num_train=0"], "task.num_train must be an integer >= 1, got 0"),
    (["--task", "induction", "model.d_model=0"], "model.d_model must be an integer >= 1, got 0"),
    (["--task", "induction", "model.d_model=-8"], "model.d_model must be an integer >= 1, got -8"),  # a searched key
    (["--task", "induction", "train.batch_size=64", "task.num_train=10"], "must not exceed task.num_train"),
    (["--task", "induction", "--num-examples", "10", "train.batch_size=32"], "must not exceed task.num_train"),
    (["--task", "induction", "--preset", "huge"], "unknown preset 'huge'"),
    (["--task", "induction", "--num-samples", "many"], "invalid int value"),
    (["--task", "induction", "--bogus"], "unrecognized arguments"),
    (["--task", "induction", "--num-examples", "100,x"], "--num-examples takes comma-separated integers"),
    (["--task", "induction", "--num-examples", "0"], "--num-examples sizes must be positive"),
    (["--task", "induction", "--address", "127.0.0.1:1"], "cannot reach a Ray cluster at 127.0.0.1:1"),
    (["--task", "induction", "--address", "nonsense"], "--address must be auto or host:port"),
    (["--task", "induction", "--resume"], "--resume needs --storage"),
    # ASHA's first rung inside the warm-up: smoke's grace of 2 against 5 warm-up epochs
    (["--task", "induction", "train.epochs=50"], "ASHA's first rung (epoch 2) falls inside the learning-rate warm-up"),
    (["--task", "dfa", "--preset", "long", "--grace-period", "20"], "(20 of 200 epochs): pass --grace-period above 20"),
    (["--task", "dfa", "--preset", "paper", "--grace-period", "5"], "(5 of 50 epochs): pass --grace-period above 5"),
    (["--task", "induction", "--grace-period", "3", "optim.warmup_frac=0.5"], "(3 of 6 epochs)"),
    (["--task", "induction", "--grace-period", "0"], "--grace-period must be at least 1"),
    (["--task", "dfa", "--preset", "original"], "preset 'original' is defined for associative_recall, induction only"),
    (["--task", "induction", "--seeds", "0,1"], "--seeds trains one configuration, but transformer still searches"),
    (["--task", "induction", "--preset", "original", "--seeds", "0,x"], "--seeds takes comma-separated integers"),
    (["--task", "induction", "--preset", "original", "--seeds", "-1"], "--seeds must be integers >= 0"),
    (["--task", "induction", "--preset", "original", "--num-samples", "3"], "--seeds gives 5 runs per model"),
])
def test_bad_input_one_line_exit_2_nothing_written(argv, message, tmp_path, capsys):
    storage = tmp_path / "out"
    if "--resume" not in argv:
        argv = argv + ["--storage", str(storage)]
    assert run_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not storage.exists() and list(tmp_path.iterdir()) == []


def test_dashboard_without_its_packages_is_one_line(tmp_path, capsys):
    from sweeps.tune_backend import dashboard_missing
    if dashboard_missing() is None:
        pytest.skip("ray[default] is installed here")
    assert run_main(["--task", "induction", "--dashboard", "--storage", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--dashboard needs Ray's dashboard packages" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_an_override_of_a_searched_key_fixes_it(tmp_path):
    args = sweep_run.parse_args(["--task", "induction", "--models", "transformer", "--storage", str(tmp_path / "o"),
                                 "model.d_model=48", "optim.lr=2e-4"])
    plan, _ = sweep_run.make_plan(args)
    e = plan.experiments["transformer"]
    assert plan.fixed == ["model.d_model", "optim.lr"]
    assert "model.d_model" not in e.space and "optim.lr" not in e.space and "model.mixer.n_heads" in e.space
    assert e.cfg["model"]["d_model"] == 48 and e.cfg["optim"]["lr"] == 2e-4
    assert not (tmp_path / "o").exists()                   # planning writes nothing


def test_storage_under_proc_is_refused(capsys):
    assert run_main(["--task", "induction", "--storage", "/proc/seqicl-x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write results under /proc/seqicl-x" in err and len(err.splitlines()) == 1


def run_main(argv) -> int:
    try:
        return sweep_run.main(argv)
    except SystemExit as e:  # argparse's own errors exit directly
        return e.code


def test_storage_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert run_main(["--task", "induction", "--storage", str(blocker / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write results" in err and len(err.splitlines()) == 1
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("text, message", [
    ("optim.lr: {loguniform: [1e-4, 1e-3\n", "malformed YAML"),
    ("optim.lrate: {loguniform: [1.0e-4, 1.0e-3]}\n", "'optim.lrate' is not a key of the config"),
    ("model.d_model: {choice: [big, small]}\n", "model.d_model expects int"),
])
def test_bad_search_space_file(text, message, tmp_path, monkeypatch, capsys):
    (tmp_path / "induction").mkdir()
    (tmp_path / "induction" / "lstm.yaml").write_text(text)
    monkeypatch.setattr(search_space, "ROOT", tmp_path)
    assert sweep_run.main(["--task", "induction", "--models", "lstm", "--storage", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_refuses_existing_results_without_resume(tmp_path, capsys):
    (tmp_path / "induction" / "lstm").mkdir(parents=True)
    marker = tmp_path / "induction" / "lstm" / "keep.txt"
    marker.write_text("old results")
    assert sweep_run.main(["--task", "induction", "--models", "lstm", "--storage", str(tmp_path)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert marker.read_text() == "old results"


def test_resume_of_a_folder_in_rays_old_layout_is_refused(tmp_path, capsys):
    (tmp_path / "induction" / "lstm").mkdir(parents=True)
    (tmp_path / "induction" / "lstm" / "experiment_state-2026-11-29_17-58-18.json").write_text("{}")
    (tmp_path / "tuner.pkl").write_bytes(b"crafted pickle: never loaded")
    assert run_main(["--resume", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "older seqicl in Ray's layout" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["induction", "tuner.pkl"]


def test_a_second_driver_on_the_same_results_folder_is_refused(tmp_path, capsys):
    from sweeps.locks import locked
    with locked(tmp_path / ".lock"):   # a driver holds the folder
        assert run_main(["--task", "induction", "--models", "lstm", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is in use by another process" in err and f"pid {__import__('os').getpid()}" in err
    assert len(err.splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path):
    """Two models, two trials each, two epochs: the real Ray Tune + Optuna + ASHA path."""
    storage = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", "--task", "induction_head", "--models", "transformer,lstm",
         "--num-samples", "2", "--max-concurrent", "2", "--storage", str(storage), "train.epochs=2",
         "task.num_train=256", "task.num_val=64", "task.num_test=64"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (storage / "table.md").read_text()
    assert "| induction head |" in table and "Transformer" in table and "LSTM" in table
    assert "| Transformer |" in proc.stdout and "| LSTM |" in proc.stdout  # the run ends by printing it
    rows = json.loads((storage / "table.json").read_text())
    assert {(r["model"], r["trials"]) for r in rows} == {("transformer", 2), ("lstm", 2)}
    assert all(r["errored"] == 0 and 0 <= r["test"] <= 1 for r in rows)
    assert (storage / "best_configs.yaml").is_file() and (storage / "trials.csv").is_file()
    assert not (storage / ".ray").exists() or not any((storage / ".ray").iterdir())   # Tune's scratch is gone
    for model in ("transformer", "lstm"):
        exp = storage / "induction" / model
        assert sorted(p.name for p in (exp / "trials").iterdir()) == ["0000", "0001"]
        for trial in (exp / "trials").iterdir():  # TensorBoard finds per-trial curves under the results folder
            nodes = json.loads((trial / "run.json").read_text())["nodes"]   # the Ray node each attempt ran on
            assert len(nodes) == 1 and len(nodes[0]["id"]) == 56 and nodes[0]["ip"] == "127.0.0.1", nodes
            acc = EventAccumulator(str(trial / "tb"))
            acc.Reload()
            assert [e.step for e in acc.Scalars("val/accuracy")] == [1, 2] and len(acc.Scalars("train/loss")) == 2
    # the report can be regenerated from the folder alone, to the same table
    again = subprocess.run([sys.executable, "-m", "analysis.report", str(storage)], cwd=ROOT,
                           capture_output=True, text=True)
    assert again.returncode == 0 and (storage / "table.md").read_text() == table

    from sweeps.study import open_study
    study = open_study(storage / "induction" / "lstm" / "optuna.journal")   # Optuna's own study, reloadable
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    trials = {t.trial_id: t for t in load_trials(storage) if t.model == "lstm"}
    assert {f"{t.number:04d}": t.params for t in study.trials} == {k: t.params for k, t in trials.items()}
    assert all(t.value == trials[f"{t.number:04d}"].best_val for t in study.trials)

    # the best configuration of each model again, with another seed: mean and std in the report
    reseed = subprocess.run([sys.executable, "sweeps/reseed.py", str(storage), "--seeds", "7"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert reseed.returncode == 0, reseed.stdout[-3000:] + reseed.stderr[-3000:]
    rows = {r["model"]: r for r in json.loads((storage / "table.json").read_text())}
    assert all(r["seed_n"] == 2 and r["trials"] == 2 for r in rows.values())
    # each re-run trains the chosen configuration's whole schedule, to its last epoch
    trials = load_trials(storage)
    reruns = [t for t in trials if t.role == "reseed"]
    chosen = {t.model: best_trial([s for s in trials if s.role == "sweep" and s.model == t.model]) for t in reruns}
    assert len(reruns) == 2 and all(t.epochs_budget == t.epochs_run == chosen[t.model].config["train"]["epochs"] == 2
                                    for t in reruns)
    assert all(t.experiment == "induction/reseeds" and t.status == "finished" for t in reruns)
    assert "## Over seeds" in (storage / "table.md").read_text()
    again = subprocess.run([sys.executable, "sweeps/reseed.py", str(storage), "--seeds", "7"], cwd=ROOT,
                           capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to re-run" in again.stdout   # every seed-7 run is complete
    assert len([t for t in load_trials(storage) if t.role == "reseed"]) == 2
    bad = subprocess.run([sys.executable, "sweeps/reseed.py", str(storage), "--seeds", "x"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--seeds" in bad.stderr


@pytest.mark.slow
def test_regbench_end_to_end_sweep_export_generate_report(tmp_path):
    """RegBench on CPU: a learning-curve sweep at two sizes, export of every best checkpoint,
    generation checked against the automata, and a report that carries all of it."""
    storage = tmp_path / "dfa"
    sweep = subprocess.run(
        [sys.executable, "sweeps/run.py", "--task", "dfa", "--models", "transformer,lstm", "--num-samples", "1",
         "--num-examples", "48,96", "--storage", str(storage), "train.epochs=2", "task.num_val=16",
         "task.num_test=16", "model.d_model=16"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    exported = subprocess.run([sys.executable, "-m", "analysis.export", str(storage), "--all"], cwd=ROOT,
                              capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    exports = sorted(p.name for p in (storage / "exports").iterdir())
    assert exports == ["dfa-lstm-n48", "dfa-lstm-n96", "dfa-transformer-n48", "dfa-transformer-n96"]
    gen = subprocess.run([sys.executable, "-m", "analysis.generate", str(storage / "exports" / "dfa-lstm-n96"),
                          "--num-dfas", "3", "--samples", "2", "--seed", "1"], cwd=ROOT, capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    lines = (storage / "exports" / "dfa-lstm-n96" / "generations-T1.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all({"string", "accepted", "dfa", "ended"} <= set(json.loads(x)) for x in lines)
    assert len((storage / "exports" / "dfa-lstm-n96" / "generations-greedy.jsonl").read_text().splitlines()) == 3
    report = subprocess.run([sys.executable, "-m", "analysis.report", str(storage)], cwd=ROOT,
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    md = (storage / "table.md").read_text()
    assert "| RegBench (DFA), 48 train |" in md and "| RegBench (DFA), 96 train |" in md
    assert "2-gram" in md and "3-gram" in md and "total variation" in md
    assert "| dfa-lstm-n96 | 3 x 2 | T=1 |" in md and "| dfa-lstm-n96 | 3 x 1 | greedy |" in md
    assert "| model | 48 | 96 |" in md                             # the learning-curve tables
    png = storage / "learning_curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((storage / "table.json").read_text())
    assert {(r["model"], r["num_train"]) for r in rows} == {(m, n) for m in ("transformer", "lstm") for n in (48, 96)}
    assert all(0 <= r["test"] <= 1 and 0 <= r["test_tvd"] <= 1 for r in rows)


def test_the_cpu_default_preset_gives_the_transformer_its_jump_and_a_time_budget(tmp_path, monkeypatch):
    monkeypatch.delenv("SEQICL_PRESET")
    monkeypatch.setattr(sweep_run, "has_gpu", lambda args=None: False)
    plan, _ = sweep_run.make_plan(sweep_run.parse_args(["--task", "induction", "--storage", str(tmp_path / "s")]))
    assert plan.preset == "cpu" and plan.cluster.time_budget == 255 and plan.num_samples == 1
    assert list(plan.experiments)[0] == "transformer"          # the original table's order: it starts first
    t, lstm = plan.experiments["transformer"].cfg, plan.experiments["lstm"].cfg
    assert (t["model"]["d_model"], t["train"]["epochs"], lstm["model"]["d_model"], lstm["train"]["epochs"]) == (128, 18, 64, 16)
    assert t["optim"]["warmup_frac"] == 1.0 and t["optim"]["lr"] == 5e-4
    # the budget cuts the models last in line: a cut trial counts only up to its last saved state
    assert all(e.cfg["train"]["state_every"] == 1 for e in plan.experiments.values())
    # --time-budget on the command line wins over the preset's
    plan, _ = sweep_run.make_plan(sweep_run.parse_args(["--task", "induction", "--time-budget", "60",
                                                        "--storage", str(tmp_path / "t")]))
    assert plan.cluster.time_budget == 60
    text = sweep_run.ending(plan, 12.3)
    assert f"tables in {plan.storage}/table.md" in text and "wall time: 12 s" in text
    assert f"python -m analysis.export {plan.storage} --all" in text and "--preset paper" in text
    plan.task, plan.preset = "dfa", "cpu"                      # RegBench's GPU budget is its learning curve
    assert "--preset regbench" in sweep_run.ending(plan, 1) and "--preset paper" not in sweep_run.ending(plan, 1)
    plan.preset = "regbench"                                   # already the GPU budget: nothing to suggest
    assert "--preset" not in sweep_run.ending(plan, 1)
    assert "--resume" not in sweep_run.ending(plan, 1)
    cut = sweep_run.ending(plan, 1, "budget").splitlines()     # the budget ran out: partial, and how to go on
    assert cut[2].strip().startswith(f"python sweeps/run.py --resume --storage {plan.storage}") and "partial" in cut[2]


def sweep_output(storage, tty: bool) -> str:
    """A tiny two-model sweep's console output, through a pseudo-terminal or a pipe."""
    import os
    import pty
    argv = [sys.executable, "sweeps/run.py", "--task", "induction", "--models", "transformer,lstm",
            "--num-samples", "2", "--storage", str(storage), "train.epochs=2", "task.num_train=128",
            "task.num_val=32", "task.num_test=32"]
    if not tty:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=600) == 0
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("tty", [False, True], ids=["plain", "terminal"])
def test_progress_lines_and_the_tensorboard_hint(tmp_path, tty):
    storage = tmp_path / "sweep"
    out = sweep_output(storage, tty)
    lines = out.replace("\r", "").splitlines()
    assert lines[0].startswith("seqicl sweep: up in ")                        # where the start went
    assert lines[1].endswith(f"-> {storage}") and lines[2] == f"watch it: tensorboard --logdir {storage}"
    assert "View detailed results here" not in out and ".ray" not in out      # Ray's own hint is off
    block = [l for l in lines if l.lstrip("\x1b[0123456789FJ").startswith("induction/lstm")]
    assert block and "2/2 done,  0 running  best val 0." in block[-1]          # ended / running / total, best val
    assert any("left" in l for l in block)                                    # an estimate, or "done" at the end
    assert ("\x1b[2F\x1b[J" in out) == tty                                    # redrawn in place only on a terminal
    assert "next:" in out and f"python -m analysis.export {storage} --all" in out


def test_a_rung_at_the_last_epoch_ranks_but_stops_nothing():
    """With the budget on a rung (grace 2, rf 2, 4 epochs: rungs 2 and 4), a trial below the
    cutoff at epoch 4 has trained its whole schedule: it finishes, it is not "stopped early"."""
    from sweeps.asha import Rungs
    r = Rungs(grace=2, rf=2, max_t=4)
    assert r.milestones == [2, 4]
    assert [r.decide("a", 4, 0.9), r.decide("b", 4, 0.1)] == [False, False]
    assert r.recorded[4] == {"a": 0.9, "b": 0.1}
    assert [r.decide("c", 2, 0.9), r.decide("d", 2, 0.1)] == [False, True]   # earlier rungs still stop
    assert r.replay("e", [{"epoch": 2, "best_val": 0.95}, {"epoch": 4, "best_val": 0.05}]) is None


@pytest.mark.parametrize("task, schedule", [("associative_recall", "linear"), ("induction", "timm_cosine")])
def test_the_original_preset_is_the_originals_protocol_without_a_search(task, schedule, tmp_path):
    """original-protocol.md, per task and model: d_model 32, 2 layers, tied head, AdamW (0.9, 0.999)
    at 5e-4, weight decay 0.1 on every parameter but an SSM's dynamics, no clipping, TF32, 400
    epochs of batch 32, the task's schedule; five seeds of that one configuration per model."""
    plan, _ = sweep_run.make_plan(sweep_run.parse_args(["--task", task, "--preset", "original",
                                                        "--storage", str(tmp_path / "s")]))
    assert plan.seeds == [0, 1, 2, 3, 4] and plan.num_samples == 5 and len(plan.experiments) == 7
    for name, e in plan.experiments.items():
        c = e.cfg
        assert e.space == {}, name
        assert (c["model"]["d_model"], c["model"]["n_layers"], c["model"]["mlp_ratio"], c["model"]["tie_head"],
                c["model"]["dropout"], c["model"]["embed_dropout"]) == (32, 2, 4, True, 0.0, 0.1)
        o = c["optim"]
        assert (o["lr"], o["weight_decay"], o["decay"], o["beta1"], o["beta2"], o["warmup_frac"], o["schedule"]) == \
            (5e-4, 0.1, "all", 0.9, 0.999, 0.1, schedule)
        t = c["train"]
        assert (t["epochs"], t["batch_size"], t["grad_clip"], t["tf32"]) == (400, 32, 0, True)
    assert plan.experiments["transformer"].cfg["model"]["mixer"] == {"n_heads": 1, "dropout": 0.1}
    mixer = {name: e.cfg["model"]["mixer"] for name, e in plan.experiments.items()}
    assert (mixer["s4d"]["d_state"], mixer["s4d"]["init"], mixer["h3"]["shift_size"]) == (64, "inv", 64)
    assert (mixer["gilr"]["dropout"], mixer["lru"]["dropout"], mixer["lru"]["block"]) == (0.2, 0.2, "original")
    assert mixer["rwkv"]["variant"] == "original" and mixer["gilr"]["expand"] == 1
    assert all(e.cfg["model"]["init"] == "original" for e in plan.experiments.values())
    if task == "induction":
        o = plan.experiments["lstm"].cfg["optim"]
        assert 5e-4 * o["warmup_start_frac"] == pytest.approx(1e-6) and 5e-4 * o["min_lr_frac"] == pytest.approx(5e-5)
    lanes = sweep_run.lanes_of(plan, __import__("sweeps.tune_backend", fromlist=["Lane"]).Lane)
    jobs = [lanes[0].source.next() for _ in range(6)]
    assert [j[0] for j in jobs[:5]] == [f"seed{k}" for k in range(5)] and jobs[5] is None
    assert [j[1]["seed"] for j in jobs[:5]] == [0, 1, 2, 3, 4]
    assert all(j[1]["model"] == plan.experiments[lanes[0].label.split("/")[1]].cfg["model"] for j in jobs[:5])


@pytest.mark.slow
def test_the_original_preset_runs_its_seeds_side_by_side(tmp_path):
    storage = tmp_path / "orig"
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", "--task", "associative_recall", "--preset", "original", "--models",
         "lstm,rwkv,lru,s4d,h3,gilr,transformer", "--seeds", "0,1", "--max-concurrent", "2", "--storage", str(storage),
         "train.epochs=2", "task.num_train=64", "task.num_val=16", "task.num_test=16"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    every = load_trials(storage)          # every model's variant trains: 7 models x 2 seeds, all finished
    assert len(every) == 14 and {t.status for t in every} == {"finished"}
    trials = sorted((t for t in every if t.model == "lstm"), key=lambda t: t.trial_id)
    assert [(t.trial_id, t.seed, t.status, t.epochs_run) for t in trials] == [("seed0", 0, "finished", 2),
                                                                             ("seed1", 1, "finished", 2)]
    assert trials[0].config["model"] == trials[1].config["model"] and trials[0].config["optim"]["schedule"] == "linear"
    assert "| associative recall |" in (storage / "table.md").read_text()


def test_original_size_searches_lr_decay_and_schedule_at_the_originals_size(tmp_path):
    plan, _ = sweep_run.make_plan(sweep_run.parse_args(["--task", "associative_recall", "--preset", "original-size",
                                                        "--storage", str(tmp_path / "s")]))
    assert plan.seeds == [] and plan.num_samples == 32 and plan.grace_period == 50
    for name, e in plan.experiments.items():
        assert sorted(e.space) == ["optim.lr", "optim.schedule", "optim.weight_decay"], name
        assert list(e.space["optim.schedule"].args) == ["linear", "timm_cosine", "cosine"]
        assert (e.cfg["model"]["d_model"], e.cfg["model"]["n_layers"], e.cfg["model"]["tie_head"],
                e.cfg["optim"]["decay"], e.cfg["train"]["epochs"]) == (32, 2, True, "all", 400)
    assert plan.experiments["rwkv"].cfg["model"]["mixer"]["variant"] == "original"   # the base's variants


def test_paper_original_searches_as_paper_on_the_originals_model_variants(tmp_path):
    def plan(preset):
        return sweep_run.make_plan(sweep_run.parse_args(["--task", "induction", "--preset", preset,
                                                         "--storage", str(tmp_path / preset)]))[0]
    ours, paper, original = plan("paper-original"), plan("paper"), plan("original")
    assert ours.num_samples == paper.num_samples == 64 and ours.seeds == []
    variant_keys = ("init", "shift_size", "block", "variant")
    for name, e in ours.experiments.items():
        assert sorted(e.space) == sorted(paper.experiments[name].space), name          # the same search
        assert e.cfg["train"] == paper.experiments[name].cfg["train"], name            # and recipe
        assert e.cfg["optim"] == paper.experiments[name].cfg["optim"], name
        assert e.cfg["model"]["tie_head"] is False
        want = original.experiments[name].cfg["model"]
        assert e.cfg["model"]["init"] == want["init"] == "original", name
        assert {k: e.cfg["model"]["mixer"].get(k) for k in variant_keys} == \
            {k: want["mixer"].get(k) for k in variant_keys}, name                       # the original's variants
    assert ours.experiments["s4d"].cfg["model"]["mixer"]["init"] == "inv"
    assert paper.experiments["s4d"].cfg["model"]["mixer"]["init"] == "lin"


def test_a_preset_lays_over_its_base(tmp_path, monkeypatch):
    for name, text in {"a": "num_samples: 2\noverrides: [train.epochs=3]\nspace: {model.d_model: 16, optim.lr: 0.1}\n",
                       "b": "base: a\noverrides: [train.batch_size=8]\nspace: {optim.lr: 0.2}\n",
                       "loop1": "base: loop2\n", "loop2": "base: loop1\n"}.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    monkeypatch.setattr(sweep_run, "PRESETS", tmp_path)
    assert sweep_run.load_preset("b") == {"num_samples": 2, "overrides": ["train.epochs=3", "train.batch_size=8"],
                                          "space": {"model.d_model": 16, "optim.lr": 0.2}}
    with pytest.raises(sweep_run.ConfigError, match="preset 'loop1' is its own base"):
        sweep_run.load_preset("loop1")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["associative_recall", "induction", "dfa"])
def test_every_registered_model_sweeps_every_task(task, tmp_path):
    """The registry is the list: one tiny trial of each model, through Ray Tune, to a table."""
    from seqicl.models import MIXERS
    storage = tmp_path / "s"
    sizes = ["task.num_train=64", "task.num_val=16", "task.num_test=16"] + (
        ["task.max_states=5", "task.min_strings=2", "task.max_strings=3", "task.max_string_len=8"] if task == "dfa" else [])
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", "--task", task, "--models", ",".join(sorted(MIXERS)), "--num-samples", "1",
         "--storage", str(storage), "train.epochs=1", "model.d_model=16", *sizes],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = load_trials(storage)
    assert sorted(t.model for t in trials) == sorted(MIXERS) and {t.status for t in trials} == {"finished"}


def test_the_storage_probe_tells_a_folder_of_the_nodes_own_from_the_drivers(tmp_path):
    """What the task pinned to each cluster node answers (sweeps.tune_backend.check_storage_on_nodes)."""
    from sweeps.tune_backend import storage_seen_here
    (tmp_path / ".node-probe-x").write_text("token-1")
    assert storage_seen_here(str(tmp_path), ".node-probe-x", "token-1") is None
    assert storage_seen_here(str(tmp_path), ".node-probe-x", "token-2") == "sees another folder at that path"
    assert storage_seen_here(str(tmp_path / "absent"), ".node-probe-x", "token-1") == "cannot see it"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".node-probe-x"]   # its own write leaves nothing
