"""Read a results folder: every trial, from seqicl's own records alone.

Two sources, the same trials:
- run folders: any folder with a ``run.json`` of ``seqicl.train.record`` (a sweep puts them at
  ``<task>/<experiment>/trials/<id>/``, a single run wherever ``train.run_dir`` says);
- ``trials.jsonl.gz``: the compact record ``analysis.report`` writes beside the tables, one
  JSON line per trial (config, sampled values, task facts, status, every epoch's metrics), so
  a folder committed without its run folders still reports the same tables.
A run folder wins over a compact line of the same path. A record that cannot be read is
listed in ``Results.skipped`` and left out, never fatal. Nothing here knows Ray's files.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

from seqicl.atomic import atomic_write
from seqicl.train.record import BOOKKEEPING, RecordError, RunRecord

COMPACT = "trials.jsonl.gz"
COMPACT_FORMAT = "seqicl.trials/1"
IGNORED = {"exports"}   # exported models are not trials; nor is anything in a hidden folder (scratch files)


@dataclass
class Trial:
    task: str
    model: str
    num_train: int
    trial_id: str
    path: Path                  # the run folder (it may exist only in the compact record)
    experiment: str             # its experiment, relative to the results folder: "induction/lstm"
    status: str                 # running | finished | stopped | diverged | errored
    epochs_run: int
    epochs_budget: int
    metric: str
    best_val: float | None      # best-so-far validation metric: comparable across budgets
    test_at_best: float | None  # test metric at the best validation epoch
    best_epoch: int | None
    chance: float | None
    params: dict = field(default_factory=dict)             # the sampled values
    config: dict = field(default_factory=dict)
    reason: str | None = None                              # why it errored, diverged or stopped
    role: str = "sweep"                                    # sweep, or reseed (a chosen config re-run)
    seed: int = 0
    test_at_best_all: dict = field(default_factory=dict)  # every test metric at the best epoch
    baselines: dict = field(default_factory=dict)          # reference scores of the task (n-grams)
    epochs: list = field(default_factory=list)             # one dict per evaluated epoch
    task_info: dict = field(default_factory=dict)
    summary: dict | None = None   # converted older results: the numbers their report used
    n_params: int | None = None   # the model's parameter count (None where the record lacks it)

    @property
    def rankable(self) -> bool:
        return self.status not in ("errored", "diverged") and self.best_val is not None

    @property
    def error(self) -> str | None:
        return self.reason if self.status == "errored" else None


@dataclass
class Results:
    trials: list[Trial]
    skipped: list[str]          # one line per record that could not be read
    title: str | None = None


def make_trial(line: dict, root: Path) -> Trial:
    """A Trial from one compact line (the same dict ``compact_line`` writes)."""
    cfg, info = line.get("config") or {}, line.get("task_info") or {}
    rows = line.get("epochs") or []
    last = dict(line.get("summary") or (rows[-1] if rows else {}))
    task = cfg.get("task", {})
    at_best = {k[len("test_"): -len("_at_best")]: v for k, v in last.items()
               if k.startswith("test_") and k.endswith("_at_best") and k != "test_at_best"}
    return Trial(task=line.get("task", task.get("name")), model=line.get("model", cfg.get("model", {}).get("name")),
                 num_train=line.get("num_train", task.get("num_train")), trial_id=line["trial_id"],
                 path=root / line["path"], experiment=line["experiment"], status=line["status"],
                 epochs_run=last.get("epoch", 0), epochs_budget=line.get("epochs_budget", cfg.get("train", {}).get("epochs")),
                 metric=line.get("metric", task.get("metric")), best_val=last.get("best_val"),
                 test_at_best=last.get("test_at_best"), best_epoch=last.get("best_epoch"), chance=info.get("chance"),
                 params=line.get("sampled") or {}, config=cfg, reason=line.get("reason"),
                 role=line.get("role", cfg.get("role", "sweep")), seed=line.get("seed", cfg.get("seed", 0)),
                 test_at_best_all=at_best, baselines=info.get("baselines", {}), epochs=rows, task_info=info,
                 summary=line.get("summary"), n_params=line.get("n_params"))


def read_run_folder(folder: Path, root: Path) -> dict:
    """The compact line of one run folder; raises RecordError."""
    record = RunRecord(folder)
    run, status = record.run(), record.status()
    rows = record.kept_epochs(status)
    rel = folder.relative_to(root)
    in_sweep = len(rel.parts) >= 3 and rel.parts[-2] == "trials"
    experiment = Path(*rel.parts[:-2]) if in_sweep else rel.parent
    return {"path": rel.as_posix(), "experiment": experiment.as_posix(), "trial_id": run.get("trial", folder.name),
            "config": run["config"], "sampled": run.get("sampled", {}), "task_info": run.get("task_info", {}),
            "status": status["status"], "reason": status.get("reason"), "epochs": rows,
            "n_params": run.get("n_params")}


def read_compact(root: Path) -> tuple[list[dict], dict, list[str]]:
    path = root / COMPACT
    if not path.is_file():
        return [], {}, []
    lines, header, skipped = [], {}, []
    try:
        with gzip.open(path, "rt") as f:
            text = f.read()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        return [], {}, [f"{path}: unreadable ({type(e).__name__})"]
    for i, raw in enumerate(text.splitlines()):
        try:
            line = json.loads(raw)
            if i == 0:
                if line.get("format") != COMPACT_FORMAT:
                    return [], {}, [f"{path}: not a seqicl compact record"]
                header = line
                continue
            if not isinstance(line.get("path"), str) or line.get("status") is None:
                raise ValueError("no path or status")
            lines.append(line)
        except (ValueError, AttributeError, TypeError) as e:
            skipped.append(f"{path}: line {i + 1} unreadable ({type(e).__name__})")
    return lines, header, skipped


def load_results(root: str | Path) -> Results:
    root = Path(root)
    lines, header, skipped = read_compact(root)
    by_path = {line["path"]: line for line in lines}
    for run_json in sorted(root.rglob("run.json")):
        folder = run_json.parent
        parts = folder.relative_to(root).parts
        if IGNORED & set(parts) or any(part.startswith(".") for part in parts):
            continue
        try:
            line = read_run_folder(folder, root)
        except RecordError as e:
            skipped.append(str(e))
            continue
        by_path[line["path"]] = line
    trials = []
    for path in sorted(by_path, key=lambda p: Path(p).parts):  # the order older reports used
        try:
            trials.append(make_trial(by_path[path], root))
        except (KeyError, TypeError, AttributeError) as e:
            skipped.append(f"{root / path}: incomplete record ({type(e).__name__}: {e})")
    return Results(trials, skipped, header.get("title"))


def load_trials(root: str | Path) -> list[Trial]:
    return load_results(root).trials


def compact_line(t: Trial, root: Path) -> dict:
    line = {"path": t.path.relative_to(root).as_posix(), "experiment": t.experiment, "trial_id": t.trial_id,
            "config": t.config, "sampled": t.params, "task_info": t.task_info, "status": t.status,
            "reason": t.reason, "epochs": t.epochs}
    if not t.config:  # converted from a report's files: no config to derive these from
        line.update(task=t.task, model=t.model, num_train=t.num_train, metric=t.metric, role=t.role, seed=t.seed,
                    epochs_budget=t.epochs_budget)
    if t.summary is not None:
        line["summary"] = t.summary
    if t.n_params is not None:
        line["n_params"] = t.n_params
    return line


def write_compact(root: Path, trials: list[Trial], title: str) -> None:
    """Every trial in one gzip'd JSON-lines file, byte-identical for the same trials."""
    header = json.dumps({"format": COMPACT_FORMAT, "title": title})
    body = [json.dumps(compact_line(t, root)) for t in sorted(trials, key=lambda t: str(t.path))]
    data = gzip.compress(("\n".join([header] + body) + "\n").encode(), mtime=0)
    atomic_write(root / COMPACT, lambda f: f.write(data))


def rerun_of(rerun: Trial, chosen: Trial) -> bool:
    """``rerun`` trains ``chosen``'s configuration (other seed, perhaps another epoch count)."""
    def key(cfg):
        train = {k: v for k, v in cfg.get("train", {}).items() if k not in ("epochs", *BOOKKEEPING)}
        return cfg.get("task"), cfg.get("model"), cfg.get("optim"), train
    return bool(rerun.config and chosen.config) and key(rerun.config) == key(chosen.config)


def best_trial(trials: list[Trial]) -> Trial | None:
    """Highest best-so-far validation metric; ties go to the trial that trained longer, then to
    the lower trial id (a fixed order, whatever the folder order). Errored and diverged trials
    are never chosen; the test metric plays no part in the choice."""
    ok = [t for t in trials if t.rankable]
    return min(ok, key=lambda t: (-t.best_val, -t.epochs_run, t.trial_id)) if ok else None
