"""bench/sweep_timeline.py reads a sweep's records into per-experiment counts and slot use."""
import json
import sys

from seqicl.train.record import RunRecord

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import sweep_timeline  # noqa: E402


def trial(root, experiment, name, start, end, status, epochs, num_train=100, batch=10):
    record = RunRecord(root / "induction" / experiment / "trials" / name)
    record.start({"task": {"num_train": num_train}, "train": {"batch_size": batch}}, {}, 1, "cpu")
    for e in range(1, epochs + 1):
        record.append_epoch({"epoch": e, "timestamp": start + (end - start) * e / epochs})
    record.set_status(status, epochs=epochs)
    run = json.loads((record.dir / "run.json").read_text())
    (record.dir / "run.json").write_text(json.dumps({**run, "started": start}))
    if status != "running":
        st = json.loads((record.dir / "status.json").read_text())
        (record.dir / "status.json").write_text(json.dumps({**st, "updated": end}))


def test_counts_first_starts_and_busy_slots(tmp_path):
    t0 = 1000.0
    trial(tmp_path, "lstm", "0000", t0 + 5, t0 + 50, "finished", 4)
    trial(tmp_path, "lstm", "0001", t0 + 50, t0 + 100, "running", 3)     # cut off: ends at its last epoch
    trial(tmp_path, "gilr", "0000", t0 + 70, t0 + 100, "stopped", 2, num_train=95)
    spans = {(s.experiment, s.trial): s for s in sweep_timeline.spans(tmp_path)}
    assert spans[("induction/lstm", "0001")].end == t0 + 100 and spans[("induction/gilr", "0000")].steps == 18  # 9 full batches of 10
    text = sweep_timeline.timeline(tmp_path, since=t0, until=t0 + 100, slots=2, step=10)
    assert "| induction/lstm | 5.0 | 2 | 1 | 1 | 7 | 70 | 1 |" in text
    assert "| induction/gilr | 70.0 | 1 | 1 | 0 | 2 | 18 | 0 |" in text
    assert "in the first 60 s: 1 of 2" in text
    # at 0..100 s every 10 s: 0 1 1 1 1 1 1 2 2 2 0 -> mean 12/11
    assert "every 10 s: 0 1 1 1 1 1 1 2 2 2 0" in text and "mean over the window: 1.1 of 2 slots (55% busy)" in text


def test_trial_breakdown_shares_of_the_wall_time(tmp_path):
    import trial_breakdown
    trial(tmp_path, "lstm", "0000", 1000.0, 1010.0, "finished", 2)
    path = tmp_path / "induction" / "lstm" / "trials" / "0000" / "epochs.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[-1].update(time_total_s=8.0, eval_s=2.0, save_s=1.0, setup_s=0.5, build_s=0.1, capture_s=0.3)  # train 6, other 1
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trial(tmp_path, "lstm", "0001", 1000.0, 1005.0, "running", 1)            # not over: left out
    assert "| lstm | 1 | 2 | 10.0 | 60% | 20% | 10% | 10% | 0.5 | 0.1 | 0.3 |" in trial_breakdown.breakdown(tmp_path)
