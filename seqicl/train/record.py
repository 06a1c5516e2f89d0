"""The run record: what one training run leaves in its folder, owned by seqicl and readable
without Ray, torch or the code that wrote it.

    run.json       format, config, task facts, parameter count, start time, and the caller's
                   fields (a sweep adds its trial id, sampled values and the nodes it ran on)
    status.json    running | finished | stopped | diverged | errored, the reason, epochs done
    epochs.jsonl   one JSON line per evaluated epoch, keyed by "epoch"
    state.pt       everything needed to continue (while the run is not over)
    best.pt        the best-validation checkpoint (seqicl.train.checkpoint)
    tb/            TensorBoard scalars

A run resumed from its ``state.pt`` at epoch k first drops every line after epoch k, so an
epoch appears once however often the run was interrupted; readers also keep the last line of
an epoch, so even a record cut by a crash mid-rewrite reads the same. The status is the run's
last word: a run that failed, was retried and finished is "finished".
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..atomic import atomic_write_text

FORMAT = "seqicl.run/1"
FINAL = ("finished", "stopped", "diverged", "errored")
STATUSES = ("running",) + FINAL


# train keys that say how a run is watched and kept, not what it trains: a run may continue
# under other values (say, its state saved every epoch where a time budget may cut it)
BOOKKEEPING = ("progress", "run_dir", "state_every")


def same_training(a: dict, b: dict) -> bool:
    """Whether configs ``a`` and ``b`` train the same run, bookkeeping aside."""
    def key(cfg):
        return {**cfg, "train": {k: v for k, v in cfg.get("train", {}).items() if k not in BOOKKEEPING}}
    return key(a) == key(b)


class RecordError(ValueError):
    """A run folder whose record is missing, unreadable or not seqicl's (one-line message)."""


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{path}: unreadable ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not a JSON object")
    return data


class RunRecord:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)

    # -- writing ---------------------------------------------------------------------------
    def start(self, cfg: dict, task_info: dict, n_params: int, device: str, meta: dict | None = None) -> None:
        """A fresh run: the description, an empty epoch log, status running."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "run.json", json.dumps(
            {"format": FORMAT, **(meta or {}), "config": cfg, "task_info": task_info, "n_params": n_params,
             "device": device, "started": time.time()}, indent=1))
        atomic_write_text(self.dir / "epochs.jsonl", "")
        self.set_status("running", epochs=0)

    def note(self, **fields) -> None:
        """Set caller's fields of ``run.json`` in place (a retried trial adds the node it runs on)."""
        atomic_write_text(self.dir / "run.json", json.dumps({**self.run(), **fields}, indent=1))

    def set_status(self, status: str, reason: str | None = None, epochs: int | None = None) -> None:
        assert status in STATUSES, status
        if epochs is None:
            rows = self.epochs()
            epochs = rows[-1]["epoch"] if rows else 0
        atomic_write_text(self.dir / "status.json", json.dumps(
            {"status": status, "reason": reason, "epochs": epochs, "updated": time.time()}))

    def append_epoch(self, metrics: dict) -> None:
        # no fsync per line: a resumed run drops every line after its saved state anyway, and
        # sync() makes the lines up to a saved state durable
        with open(self.dir / "epochs.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")

    def sync(self) -> None:
        """Make the epoch lines written so far durable (called before a state is saved)."""
        with open(self.dir / "epochs.jsonl", "rb+") as f:
            os.fsync(f.fileno())

    def truncate(self, last_epoch: int) -> None:
        """Keep the lines of epochs 1..last_epoch (before a resumed run repeats the rest)."""
        kept = [r for r in self.epochs() if r["epoch"] <= last_epoch]
        atomic_write_text(self.dir / "epochs.jsonl", "".join(json.dumps(r) + "\n" for r in kept))

    # -- reading ---------------------------------------------------------------------------
    def run(self) -> dict:
        data = _read_json(self.dir / "run.json")
        if data.get("format") != FORMAT or not isinstance(data.get("config"), dict):
            raise RecordError(f"{self.dir / 'run.json'}: not a seqicl run record")
        return data

    def status(self) -> dict:
        data = _read_json(self.dir / "status.json")
        if data.get("status") not in STATUSES:
            raise RecordError(f"{self.dir / 'status.json'}: unknown status {data.get('status')!r}")
        return data

    def epochs(self) -> list[dict]:
        """Epoch lines sorted by epoch, the last line of each epoch winning; a line cut short
        by a crash (the last one) is ignored."""
        path = self.dir / "epochs.jsonl"
        if not path.is_file():
            return []
        by_epoch: dict[int, dict] = {}
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("epoch"), int):
                by_epoch[row["epoch"]] = row
        return [by_epoch[e] for e in sorted(by_epoch)]

    def kept_epochs(self, status: dict | None = None) -> list[dict]:
        """The epochs a reader counts: every one of a run that is over; of a running run (or one
        cut by a sweep's time budget), those up to its last saved state, where a resume goes on
        from (later lines are trained again). A cut run's process may outlive the cut and write
        another epoch and state: counting up to the status, not truncating the file, keeps that."""
        rows = self.epochs()
        try:
            status = status or self.status()
        except RecordError:  # no status yet: nothing says where its saved state is
            return rows
        if status["status"] != "running":
            return rows
        return [r for r in rows if r["epoch"] <= (status.get("epochs") or 0)]

    def exists(self) -> bool:
        return (self.dir / "run.json").is_file()
