import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seqicl.config import compose
from seqicl.data import load_task
from seqicl.train import CheckpointError, load_checkpoint, save_checkpoint, train
from seqicl.train.optim import lr_factor
from seqicl.train.record import RecordError, RunRecord

from conftest import ROOT


def test_lr_schedule_warms_up_then_decays_to_min():
    total = 100
    f = [lr_factor(s, total, 0.1, 0.1) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(0.1, abs=0.01)


def test_tiny_transformer_learns_induction_head(tmp_path):
    """The whole loop must actually learn: a short induction-head variant goes past 90%."""
    cfg = compose(["task.seq_len=16", "task.num_train=2000", "task.num_val=200", "task.num_test=200",
                   "model.mlp_ratio=0", "optim.lr=1e-3", "train.epochs=30", "train.progress=false",
                   "device=cpu"])
    summary = train(cfg, run_dir=tmp_path)
    assert summary["test_at_best"] > 0.9, summary
    assert summary["best_val"] > 0.9


def test_run_writes_checkpoint_tensorboard_and_reports(tmp_path):
    cfg = compose(["task=dfa", "task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                   "train.epochs=3", "train.progress=false", "device=cpu"])
    seen = []
    summary = train(cfg, on_epoch=seen.append, run_dir=tmp_path)
    assert [m["epoch"] for m in seen] == [1, 2, 3]
    assert {"val_dfa_accuracy", "test_dfa_accuracy", "val_tvd", "test_tvd_at_best", "best_val",
            "test_at_best"} <= set(seen[-1])
    assert summary["best_val"] == max(m["val_dfa_accuracy"] for m in seen) and summary["status"] == "finished"
    record = RunRecord(tmp_path)   # the record holds what on_epoch saw, and the run's last word
    assert record.epochs() == seen and record.status()["status"] == "finished"
    assert record.run()["config"] == cfg and not (tmp_path / "state.pt").exists()

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "val/dfa_accuracy", "test/accuracy"} <= set(tags)
    assert [e.step for e in acc.Scalars("val/dfa_accuracy")] == [1, 2, 3]
    assert acc.Scalars("val/dfa_accuracy")[-1].value == pytest.approx(seen[-1]["val_dfa_accuracy"])

    model, ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt["config"] == cfg and ckpt["epoch"] == summary["best_epoch"]
    data = load_task(cfg["task"])
    again, _ = load_checkpoint(tmp_path / "best.pt")
    assert torch.equal(model(data.test.inputs[:4]), again(data.test.inputs[:4]))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    real = tmp_path / "real.pt"
    save_checkpoint(real, torch.nn.Linear(2, 2).state_dict(), {"model": {}}, ["a"], 4, 1, {})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated)
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a seqicl checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_cli_single_run_and_bad_override(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "seqicl.train", "task.num_train=64", "task.num_val=16",
                         "task.num_test=16", "train.epochs=1", f"train.run_dir={tmp_path / 'run'}",
                         "device=cpu", "model.d_model=16"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "run" / "best.pt").is_file()
    bad = subprocess.run([sys.executable, "-m", "seqicl.train", "model.d_modl=16", f"train.run_dir={tmp_path / 'x'}"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: unknown config key 'model.d_modl' (use +model.d_modl=... to add one)"
    assert not (tmp_path / "x").exists()


class Killed(Exception):
    pass


def test_a_run_killed_and_started_again_continues_exactly_and_records_each_epoch_once(tmp_path):
    """Kill after epoch 4 (state saved at 2 and at each best): the second start continues from
    the state, replaces epochs 3-4, and ends with the numbers of a run that never stopped."""
    cfg = compose(["task.num_train=256", "task.num_val=32", "task.num_test=32", "model.d_model=16",
                   "train.epochs=6", "train.state_every=2", "train.progress=false", "device=cpu"])
    straight = []
    train(cfg, on_epoch=straight.append, run_dir=tmp_path / "a")

    def die_after_4(m):
        if m["epoch"] == 4:
            raise KeyboardInterrupt  # like a SIGINT/SIGKILL: not an error of the run
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch=die_after_4, run_dir=tmp_path / "b")
    record = RunRecord(tmp_path / "b")
    assert record.status()["status"] == "running" and [r["epoch"] for r in record.epochs()] == [1, 2, 3, 4]
    state_epoch = torch.load(tmp_path / "b" / "state.pt", weights_only=True)["epoch"]
    assert 2 <= state_epoch <= 4
    resumed = []
    summary = train(cfg, on_epoch=resumed.append, run_dir=tmp_path / "b")
    assert [m["epoch"] for m in resumed] == list(range(state_epoch + 1, 7))
    rows = record.epochs()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in map(__import__("json").loads, (tmp_path / "b" / "epochs.jsonl").read_text().splitlines())] \
        == [1, 2, 3, 4, 5, 6]   # on disk too: the repeated epochs replaced, not appended
    for key in ("train_loss", "val_loss", "val_accuracy", "best_val", "test_at_best"):
        assert [r[key] for r in rows] == [r[key] for r in straight], key
    assert summary["status"] == "finished" and record.status()["status"] == "finished"
    acc = EventAccumulator(str(tmp_path / "b" / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]   # TensorBoard: no repeated steps
    again = train(cfg, on_epoch=resumed.append, run_dir=tmp_path / "b")    # over: nothing trains again
    assert again["status"] == "finished" and len(resumed) == 6 - state_epoch


@pytest.mark.gpu
def test_a_graph_captured_run_on_the_gpu_resumes_from_its_state(tmp_path):
    """On CUDA (graph-captured step, capturable AdamW) the state loads back too, and the run
    continues to the same numbers."""
    cfg = compose(["task.num_train=512", "task.num_val=64", "task.num_test=64", "model.d_model=32",
                   "train.epochs=6", "train.state_every=2", "train.progress=false", "device=cuda"])
    straight = []
    train(cfg, on_epoch=straight.append, run_dir=tmp_path / "a")

    def die_after_4(m):
        if m["epoch"] == 4:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch=die_after_4, run_dir=tmp_path / "b")
    summary = train(cfg, run_dir=tmp_path / "b")
    rows = RunRecord(tmp_path / "b").epochs()
    assert summary["status"] == "finished" and [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(straight, rows):
        assert b["train_loss"] == a["train_loss"]   # exact on the H200 (bench/results/records-resume-h200-2026-12-02.md)


def test_a_run_folder_of_another_config_is_refused(tmp_path):
    cfg = compose(["task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                   "train.epochs=1", "train.progress=false", "device=cpu"])
    train(cfg, run_dir=tmp_path)
    other = compose(["task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                     "train.epochs=2", "train.progress=false", "device=cpu"])
    with pytest.raises(RecordError, match="another config"):
        train(other, run_dir=tmp_path)


def test_a_run_continues_under_other_bookkeeping_and_records_it(tmp_path):
    """How often a run saves its state is not what it trains: a run killed under state_every=2
    continues under state_every=1 (a time budget may cut it next) to the numbers of a straight run."""
    base = ["task.num_train=256", "task.num_val=32", "task.num_test=32", "model.d_model=16",
            "train.epochs=4", "train.progress=false", "device=cpu"]
    straight = []
    train(compose(base + ["train.state_every=1"]), on_epoch=straight.append, run_dir=tmp_path / "a")

    def die_after_3(m):
        if m["epoch"] == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(compose(base + ["train.state_every=2"]), on_epoch=die_after_3, run_dir=tmp_path / "b")
    resumed = []
    summary = train(compose(base + ["train.state_every=1"]), on_epoch=resumed.append, run_dir=tmp_path / "b")
    record = RunRecord(tmp_path / "b")
    assert summary["status"] == "finished" and [r["epoch"] for r in record.epochs()] == [1, 2, 3, 4]
    assert resumed and resumed[0]["epoch"] > 1                        # it continued, it did not start over
    assert record.run()["config"]["train"]["state_every"] == 1         # the record says what ran last
    assert [r["train_loss"] for r in record.epochs()] == [r["train_loss"] for r in straight]


def test_out_of_gpu_memory_leaves_the_run_to_go_on_from_its_last_state(tmp_path):
    """An OOM is not the run's fault: the record stays "running" at its last state (a sweep starts
    the trial again beside fewer others), and the next start continues from that state."""
    from seqicl.train.loop import is_out_of_memory
    cfg = compose(["task.num_train=128", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                   "train.epochs=4", "train.state_every=2", "train.progress=false", "device=cpu"])

    def oom_at_3(m):
        if m["epoch"] == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")
    with pytest.raises(torch.cuda.OutOfMemoryError):
        train(cfg, on_epoch=oom_at_3, run_dir=tmp_path)
    status = RunRecord(tmp_path).status()
    assert status["status"] == "running" and status["epochs"] == 2          # its last state
    resumed = []
    assert train(cfg, on_epoch=resumed.append, run_dir=tmp_path)["status"] == "finished"
    assert [m["epoch"] for m in resumed] == [3, 4]
    assert is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
    assert not is_out_of_memory(RuntimeError("disk on fire"))


def test_an_error_is_recorded_with_its_reason(tmp_path):
    cfg = compose(["task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                   "train.epochs=2", "train.progress=false", "device=cpu"])

    def boom(m):
        raise RuntimeError("disk on fire")
    with pytest.raises(RuntimeError):
        train(cfg, on_epoch=boom, run_dir=tmp_path)
    status = RunRecord(tmp_path).status()
    assert status["status"] == "errored" and status["reason"] == "RuntimeError: disk on fire"


def test_a_note_sets_callers_fields_of_run_json_and_keeps_the_rest(tmp_path):
    record = RunRecord(tmp_path)
    record.start({"seed": 3}, {"vocab": 20}, 100, "cpu", {"trial": "0007", "nodes": [{"id": "a"}]})
    record.note(nodes=[{"id": "a"}, {"id": "b"}])
    run = record.run()
    assert run["nodes"] == [{"id": "a"}, {"id": "b"}] and run["trial"] == "0007" and run["config"] == {"seed": 3}
    assert run["n_params"] == 100 and record.status()["status"] == "running"


def test_nan_loss_stops_the_run_as_diverged(tmp_path):
    cfg = compose(["task.num_train=128", "task.num_val=16", "task.num_test=16", "optim.lr=1e30",
                   "optim.warmup_frac=0.0", "train.grad_clip=0", "train.epochs=5", "train.progress=false",
                   "device=cpu"])
    seen = []
    summary = train(cfg, on_epoch=seen.append, run_dir=tmp_path)
    assert summary["status"] == "diverged" and len(seen) < 5
    status = RunRecord(tmp_path).status()
    assert status["status"] == "diverged" and "became nan" in status["reason"]


def test_state_and_best_checkpoint_are_saved_at_the_given_epochs_only(tmp_path):
    """save_at (a sweep's rungs) and the end: best.pt and state.pt are written there and nowhere
    else, best.pt always the best epoch up to the state, and a run killed between saves resumes
    from the last one to the numbers and weights of a run that never stopped."""
    cfg = compose(["task.num_train=256", "task.num_val=32", "task.num_test=32", "model.d_model=16",
                   "train.epochs=5", "train.state_every=0", "train.progress=false", "device=cpu"])
    straight = []
    train(cfg, on_epoch=straight.append, run_dir=tmp_path / "a", save_at=[2])
    seen = {}

    def kill_after_3(m):
        seen[m["epoch"]] = ((tmp_path / "b" / "state.pt").exists(), (tmp_path / "b" / "best.pt").exists())
        if m["epoch"] == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch=kill_after_3, run_dir=tmp_path / "b", save_at=[2])
    assert seen == {1: (False, False), 2: (True, True), 3: (True, True)}
    assert torch.load(tmp_path / "b" / "state.pt", weights_only=True)["epoch"] == 2
    best_by_2 = max(straight[:2], key=lambda m: m["val_accuracy"])["epoch"]
    assert load_checkpoint(tmp_path / "b" / "best.pt")[1]["epoch"] == best_by_2 == straight[1]["best_epoch"]
    assert RunRecord(tmp_path / "b").status()["epochs"] == 2     # what the driver truncates a cut-off trial to
    summary = train(cfg, run_dir=tmp_path / "b", save_at=[2])
    assert summary["best_epoch"] == straight[-1]["best_epoch"]
    a, _ = load_checkpoint(tmp_path / "a" / "best.pt")
    b, ckpt = load_checkpoint(tmp_path / "b" / "best.pt")
    assert ckpt["epoch"] == summary["best_epoch"]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def writer_threads() -> list:
    """TensorBoard's background writer threads that are still running."""
    import threading
    return [t for t in threading.enumerate() if t.is_alive() and "event_file_writer" in type(t).__module__]


def test_a_stopped_run_closes_its_tensorboard_writer_and_keeps_its_events(tmp_path):
    """Tune stops a trial by raising SystemExit from its report (on_epoch): the run's writer must
    end there too, or a reused process collects one live writer thread per stopped trial."""
    cfg = compose(["task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
                   "train.epochs=5", "train.progress=false", "device=cpu"])
    before = len(writer_threads())

    def stop_at_2(m):
        if m["epoch"] == 2:
            raise SystemExit(0)
    for i in range(3):
        with pytest.raises(SystemExit):
            train(cfg, on_epoch=stop_at_2, run_dir=tmp_path / str(i))
    assert len(writer_threads()) == before
    acc = EventAccumulator(str(tmp_path / "0" / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    assert RunRecord(tmp_path / "0").status()["status"] == "running"   # stopped, not errored: Tune says how it ended


@pytest.mark.gpu
def test_a_stopped_trial_gives_its_gpu_memory_back(tmp_path):
    """What a trial stopped at a rung held on the GPU is freed before its process takes the next
    trial (sweeps.tune_backend.run_trial does this after train unwinds): trial after trial, the
    process holds no more than after its first (cuBLAS's workspace and the like stay)."""
    from sweeps.tune_backend import release_memory
    cfg = compose(["task.num_train=512", "task.num_val=64", "task.num_test=64", "model.d_model=64",
                   "train.epochs=4", "train.progress=false", "device=cuda"])
    peak, after = [], []

    def stop_at_2(m):
        if m["epoch"] == 2:
            peak.append((torch.cuda.memory_allocated(), torch.cuda.memory_reserved()))
            raise SystemExit(0)
    for i in range(3):
        try:
            train(cfg, on_epoch=stop_at_2, run_dir=tmp_path / str(i))
        except SystemExit:
            pass
        release_memory()
        after.append((torch.cuda.memory_allocated(), torch.cuda.memory_reserved()))
    # (a new cuBLAS stream per trial grew it by 65 MiB a trial: seqicl.train.step.warmup_stream)
    assert after[1] == after[0] and after[2] == after[0], (peak, after)
    assert after[0][0] < peak[0][0], (peak, after)   # the run's model, optimiser and data were freed
    assert after[0][1] < peak[0][1], (peak, after)   # and the allocator's cache given back to the GPU


def test_evaluation_every_k_epochs_is_forced_at_the_rungs_and_the_last_epoch(tmp_path):
    """eval_every 3 over 8 epochs with rungs at 2 and 5: evaluated at 2, 3, 5, 6 and 8, with the
    numbers of a run evaluated every epoch (evaluation changes no weights and draws no batches);
    killed after epoch 6 (state at 5), it resumes to the rows of the uninterrupted run."""
    base = ["task.num_train=256", "task.num_val=32", "task.num_test=32", "model.d_model=16", "train.epochs=8",
            "train.state_every=0", "train.progress=false", "device=cpu"]
    every = []
    train(compose(base), on_epoch=every.append, run_dir=tmp_path / "every", save_at=[2, 5])
    cfg = compose([*base, "train.eval_every=3"])
    sparse = []
    train(cfg, on_epoch=sparse.append, run_dir=tmp_path / "sparse", save_at=[2, 5])
    assert [m["epoch"] for m in sparse] == [2, 3, 5, 6, 8]
    for m in sparse:
        e = every[m["epoch"] - 1]
        assert (m["train_loss"], m["val_accuracy"], m["test_accuracy"]) == \
            (e["train_loss"], e["val_accuracy"], e["test_accuracy"])
    assert [r["epoch"] for r in RunRecord(tmp_path / "sparse").epochs()] == [2, 3, 5, 6, 8]

    def kill_after_6(m):
        if m["epoch"] == 6:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch=kill_after_6, run_dir=tmp_path / "killed", save_at=[2, 5])
    assert torch.load(tmp_path / "killed" / "state.pt", weights_only=True)["epoch"] == 5
    resumed = []
    summary = train(cfg, on_epoch=resumed.append, run_dir=tmp_path / "killed", save_at=[2, 5])
    assert [m["epoch"] for m in resumed] == [6, 8]
    keys = ("epoch", "train_loss", "val_accuracy", "test_accuracy", "best_val", "test_at_best", "best_epoch")
    assert [[r[k] for k in keys] for r in RunRecord(tmp_path / "killed").epochs()] == [[m[k] for k in keys] for m in sparse]
    assert summary["best_epoch"] == sparse[-1]["best_epoch"]


def test_a_process_keeps_one_tasks_data_on_its_device_for_the_next_run(tmp_path):
    """A reused sweep worker trains trial after trial of one task: the second build reads no file."""
    from seqicl.train import loop
    cfg = compose(["task.num_train=64", "task.num_val=16", "task.num_test=16", "device=cpu",
                   f"data.cache_dir={tmp_path / 'cache'}"])
    first = loop.task_data(cfg, torch.device("cpu"))
    for f in (tmp_path / "cache").iterdir():
        f.unlink()                                             # gone from disk: only the kept copy remains
    assert loop.task_data(cfg, torch.device("cpu")) is first
    other = compose(["task.num_train=64", "task.num_val=16", "task.num_test=16", "task.seed=1", "device=cpu",
                     f"data.cache_dir={tmp_path / 'cache'}"])
    second = loop.task_data(other, torch.device("cpu"))
    assert second is not first and not torch.equal(second.train.inputs, first.train.inputs)
    assert list(loop._DATA_ON_DEVICE.values()) == [second]   # one task at a time


def fake_evaluations(monkeypatch, vals):
    """seqicl.train's evaluations give validation accuracy ``vals[k]`` at the k-th evaluation
    (test accuracy: half of it), whatever the model: a run's course fixed in advance."""
    from seqicl.train import loop
    calls = []

    def evaluate(model, split, bf16=False):
        k = len(calls) // 2
        calls.append(k)
        v = vals[min(k, len(vals) - 1)] * (1.0 if len(calls) % 2 else 0.5)
        return {"loss": 1.0 - v, "accuracy": v}
    monkeypatch.setattr(loop, "evaluate", evaluate)
    return calls


def test_a_run_at_perfect_validation_ends_there_with_the_result_of_the_whole_schedule(tmp_path, monkeypatch):
    """stop_when_perfect: validation 0.2, 0.5, 1.0, 0.9, 1.0, 1.0 -> the run ends after epoch 3,
    "finished", with the best epoch, its metrics and best.pt of the run that trains all 6; a run
    killed right after epoch 3 (state saved there) ends at once when started again."""
    vals = [0.2, 0.5, 1.0, 0.9, 1.0, 1.0]
    base = ["task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16", "train.epochs=6",
            "train.state_every=0", "train.progress=false", "device=cpu"]
    fake_evaluations(monkeypatch, vals)
    whole = train(compose(base), run_dir=tmp_path / "whole")
    cfg = compose([*base, "train.stop_when_perfect=true"])
    fake_evaluations(monkeypatch, vals)
    early = train(cfg, run_dir=tmp_path / "early")
    assert whole["epochs"] == 6 and early["epochs"] == 3 and early["status"] == "finished"
    for key in ("best_val", "test_at_best", "best_epoch"):
        assert early[key] == whole[key], key
    status = RunRecord(tmp_path / "early").status()
    assert status["status"] == "finished" and status["epochs"] == 3
    assert status["reason"] == "validation accuracy reached its maximum at epoch 3 (of 6)"
    assert not (tmp_path / "early" / "state.pt").exists()
    a, ca = load_checkpoint(tmp_path / "whole" / "best.pt")
    b, cb = load_checkpoint(tmp_path / "early" / "best.pt")
    assert ca["epoch"] == cb["epoch"] == 3
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    def kill_after_3(m):
        if m["epoch"] == 3:
            raise KeyboardInterrupt
    fake_evaluations(monkeypatch, vals)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch=kill_after_3, run_dir=tmp_path / "killed", save_at=[3])
    calls = fake_evaluations(monkeypatch, vals)
    again = train(cfg, run_dir=tmp_path / "killed", save_at=[3])
    assert calls == [] and again["epochs"] == 3 and again["best_epoch"] == 3   # nothing trained or evaluated
    assert [r["epoch"] for r in RunRecord(tmp_path / "killed").epochs()] == [1, 2, 3]
    assert RunRecord(tmp_path / "killed").status()["status"] == "finished"


def test_the_originals_schedules_as_its_protocol_states_them():
    """original-protocol.md: 400 epochs of 157 steps, warm-up 10% (6,280 steps), lr 5e-4.
    AR: linear from 0 up to 5e-4, then linear down to 0 at step 62,800. IH: timm's cosine,
    warm-up from 1e-6, the cosine counted from step 0 down to 5e-5, so about 4.89e-4 just after
    the warm-up."""
    total, lr = 62_800, 5e-4
    ar = lambda s: lr * lr_factor(s, total, 0.1, 0.0, "linear")  # noqa: E731
    assert ar(0) == 0.0 and ar(3_140) == pytest.approx(2.5e-4) and ar(6_280) == pytest.approx(lr)
    assert ar(34_540) == pytest.approx(2.5e-4) and ar(total) == 0.0
    ih = lambda s: lr * lr_factor(s, total, 0.1, 0.1, "timm_cosine", 1e-6 / lr)  # noqa: E731
    assert ih(0) == pytest.approx(1e-6) and ih(6_279) == pytest.approx(lr, rel=1e-3)
    assert ih(6_280) == pytest.approx(4.89e-4, rel=1e-3) and ih(total) == pytest.approx(5e-5)
    assert all(ih(s) >= ih(s + 1) for s in range(6_280, total, 997))
    with pytest.raises(ValueError, match="optim.schedule must be one of"):
        lr_factor(0, total, 0.1, 0.0, "step")


def test_a_run_follows_its_configured_schedule(tmp_path):
    cfg = compose(["task.num_train=64", "task.num_val=8", "task.num_test=8", "model.d_model=16", "train.epochs=4",
                   "train.batch_size=16", "optim.schedule=linear", "optim.warmup_frac=0.25", "train.progress=false",
                   "device=cpu"])
    rows = []
    train(cfg, run_dir=tmp_path, on_epoch=rows.append)
    # 16 steps; each row's lr is the last step's of its epoch (3, 7, 11, 15): 0.75, then 9/12, 5/12, 1/12
    assert [r["lr"] / 5e-4 for r in rows] == pytest.approx([0.75, 9 / 12, 5 / 12, 1 / 12])


@pytest.mark.gpu
def test_tf32_is_set_per_run_on_the_gpu():
    from seqicl.train.loop import build_run
    base = ["task.num_train=64", "task.num_val=8", "task.num_test=8", "model.d_model=16", "device=cuda"]
    build_run(compose([*base, "train.tf32=true"]))
    assert torch.backends.cuda.matmul.allow_tf32
    build_run(compose(base))                       # a reused worker's next trial: off again
    assert not torch.backends.cuda.matmul.allow_tf32
