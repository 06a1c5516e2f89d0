"""Read a results folder: every trial of every (task, model) experiment, from files alone.

A trial is a folder holding ``run.json`` (written by ``seqicl.train`` at the start: config
and task facts) and/or Tune's ``params.json`` / ``result.json`` (one JSON line per
evaluation). Status: ``errored`` when Tune left an ``error.txt``; ``finished`` when it ran
every epoch; ``diverged`` when its loss became NaN or infinite (it stopped itself);
``stopped`` when it ended early (ASHA) or was interrupted.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Trial:
    task: str
    model: str
    num_train: int
    trial_id: str
    path: Path
    status: str                 # finished | stopped | diverged | errored
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
    role: str = "sweep"                                   # sweep, or reseed (a chosen config re-run)
    seed: int = 0
    test_at_best_all: dict = field(default_factory=dict)  # every test metric at the best epoch
    baselines: dict = field(default_factory=dict)          # reference scores of the task (n-grams)

    @property
    def rankable(self) -> bool:
        return self.status not in ("errored", "diverged") and self.best_val is not None


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
    # run.json comes from the trainer once its data is loaded; trial.json from the sweep's
    # trainable before anything can fail, so a trial that crashed at once is still listed
    run = None
    for name in ("run.json", "trial.json"):
        if (path / name).is_file():
            run = json.loads((path / name).read_text())
            break
    params = json.loads((path / "params.json").read_text()) if (path / "params.json").is_file() else {}
    if run is None:
        return None  # not a seqicl trial
    cfg = run["config"]
    info = run.get("task_info", {})
    rows = read_json_lines(path / "result.json")
    last = rows[-1] if rows else {}
    budget = cfg["train"]["epochs"]
    errored = (path / "error.txt").is_file()
    if errored:
        status = "errored"
    elif last.get("diverged"):
        status = "diverged"
        last = next((r for r in reversed(rows) if not r.get("diverged")), {"epoch": last.get("epoch", 0)})
    else:
        status = "finished" if last.get("epoch") == budget else "stopped"
    error = (path / "error.txt").read_text().strip().splitlines()[-1][:300] if errored else None
    # Tune names trial folders <trainable>_<trial id>_<index>_...; a trial that never reported
    # has only that name to go by
    named = re.match(r"[a-z_]+?_([0-9a-f]{5,})_\d+_", path.name)
    trial_id = next((r["trial_id"] for r in rows if "trial_id" in r), named.group(1) if named else path.name)
    at_best = {k[len("test_"): -len("_at_best")]: v for k, v in last.items()
               if k.startswith("test_") and k.endswith("_at_best") and k != "test_at_best"}
    return Trial(task=cfg["task"]["name"], model=cfg["model"]["name"], num_train=cfg["task"]["num_train"],
                 trial_id=trial_id,
                 path=path, status=status, epochs_run=last.get("epoch", 0), epochs_budget=budget,
                 metric=cfg["task"]["metric"], best_val=last.get("best_val"), test_at_best=last.get("test_at_best"),
                 best_epoch=last.get("best_epoch"), chance=info.get("chance"), params=params,
                 config=cfg, error=error, role=cfg.get("role", "sweep"), seed=cfg.get("seed", 0),
                 test_at_best_all=at_best,
                 baselines=info.get("baselines", {}))


STAMP = re.compile(r"(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)(?:\.json)?$")


def orphans(exp_dir: Path) -> set[str]:
    """Trial folders of ``exp_dir`` that the experiment no longer has: a driver killed between
    two snapshots leaves the trials it started since the last one, and the resumed run, which
    restores that snapshot, runs their slots again as new trials. Such a folder is older than
    the newest run of the experiment but missing from that run's trial list."""
    states = sorted(exp_dir.glob("experiment_state-*.json"))
    if not states or not (newest := STAMP.search(states[-1].name)):
        return set()
    try:
        entries = json.loads(states[-1].read_text())["trial_data"]
        # Ray 2.60 stores each trial as [its JSON, its run metadata JSON]
        known = {json.loads(e[0] if isinstance(e, list) else e)["trial_id"] for e in entries}
    except (ValueError, KeyError, TypeError):
        return set()  # a format this code does not know: keep every folder
    out = set()
    for folder in exp_dir.iterdir():
        named = re.match(r"[a-z_]+?_([0-9a-f]{5,})_\d+_", folder.name)
        stamp = STAMP.search(folder.name)
        if folder.is_dir() and named and stamp and named.group(1) not in known and stamp.group(1) < newest.group(1):
            out.add(folder.name)
    return out


def load_trials(root: str | Path) -> list[Trial]:
    folders = {p.parent for name in ("run.json", "trial.json") for p in Path(root).rglob(name)}
    dropped = {exp / name for exp in {f.parent for f in folders} for name in orphans(exp)}
    trials = [read_trial(p) for p in sorted(folders - dropped)]
    return [t for t in trials if t is not None]


def rerun_of(rerun: Trial, chosen: Trial) -> bool:
    """``rerun`` trains ``chosen``'s configuration (other seed, perhaps another epoch count)."""
    def key(cfg):
        train = {k: v for k, v in cfg["train"].items() if k not in ("epochs", "progress", "run_dir")}
        return cfg["task"], cfg["model"], cfg["optim"], train
    return key(rerun.config) == key(chosen.config)


def best_trial(trials: list[Trial]) -> Trial | None:
    """Highest best-so-far validation metric; ties go to the trial that trained longer.
    Errored and diverged trials are never chosen; the test metric plays no part in the choice."""
    ok = [t for t in trials if t.rankable]
    return max(ok, key=lambda t: (t.best_val, t.epochs_run)) if ok else None
