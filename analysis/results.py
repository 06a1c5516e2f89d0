"""Read a results folder: every trial of every (task, model) experiment, from files alone.

A trial is a folder holding ``run.json`` (written by ``seqicl.train`` at the start: config
and task facts) and/or Tune's ``params.json`` / ``result.json`` (one JSON line per
evaluation). Status: ``errored`` when Tune left an ``error.txt``; ``finished`` when it ran
every epoch; ``stopped`` when it ended early (ASHA) or was interrupted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Trial:
    task: str
    model: str
    num_train: int
    trial_id: str
    path: Path
    status: str                 # finished | stopped | errored
    epochs_run: int
    epochs_budget: int
    metric: str
    best_val: float | None      # best-so-far validation metric: comparable across budgets
    test_at_best: float | None  # test metric at the best validation epoch
    best_epoch: int | None
    chance: float | None
    params: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    error: str | None = None
    test_at_best_all: dict = field(default_factory=dict)  # every test metric at the best epoch
    baselines: dict = field(default_factory=dict)          # reference scores of the task (n-grams)

    @property
    def rankable(self) -> bool:
        return self.status != "errored" and self.best_val is not None


def read_json_lines(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash ends the record
    return rows


def read_trial(path: Path) -> Trial | None:
    run = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else None
    params = json.loads((path / "params.json").read_text()) if (path / "params.json").is_file() else {}
    if run is None:
        return None  # not a seqicl trial (or it died before starting: Tune's files say why)
    cfg = run["config"]
    rows = read_json_lines(path / "result.json")
    last = rows[-1] if rows else {}
    budget = cfg["train"]["epochs"]
    errored = (path / "error.txt").is_file()
    status = "errored" if errored else ("finished" if last.get("epoch") == budget else "stopped")
    error = (path / "error.txt").read_text().strip().splitlines()[-1][:300] if errored else None
    at_best = {k[len("test_"): -len("_at_best")]: v for k, v in last.items()
               if k.startswith("test_") and k.endswith("_at_best") and k != "test_at_best"}
    return Trial(task=cfg["task"]["name"], model=cfg["model"]["name"], num_train=cfg["task"]["num_train"],
                 trial_id=last.get("trial_id", path.name),
                 path=path, status=status, epochs_run=last.get("epoch", 0), epochs_budget=budget,
                 metric=cfg["task"]["metric"], best_val=last.get("best_val"), test_at_best=last.get("test_at_best"),
                 best_epoch=last.get("best_epoch"), chance=run["task_info"].get("chance"), params=params,
                 config=cfg, error=error, test_at_best_all=at_best,
                 baselines=run["task_info"].get("baselines", {}))


def load_trials(root: str | Path) -> list[Trial]:
    trials = [read_trial(p.parent) for p in sorted(Path(root).rglob("run.json"))]
    return [t for t in trials if t is not None]


def best_trial(trials: list[Trial]) -> Trial | None:
    """Highest best-so-far validation metric; ties go to the trial that trained longer.
    Errored trials are never chosen; the test metric plays no part in the choice."""
    ok = [t for t in trials if t.rankable]
    return max(ok, key=lambda t: (t.best_val, t.epochs_run)) if ok else None
