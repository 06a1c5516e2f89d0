"""Convert a results folder written by seqicl before its own trial records (2026-11-29 and
earlier: Tune's folder layout) into today's compact form, once:

    python -m sweeps.convert_legacy results/2026-11-29-h200

It lives in ``sweeps/`` because it is the one place that still reads Ray Tune's files. Two
kinds of legacy folder:
- with trial folders (``run.json``, ``params.json``, Tune's ``result.json``): every trial becomes
  a line of ``trials.jsonl.gz`` with its config, sampled values, status and epochs; trials a
  killed driver left behind (missing from the newest ``experiment_state-*.json``) are dropped,
  as the report of that time did;
- with only the report's files (``trials.csv``, ``table.json``, ``best_configs.yaml``): each
  row of ``trials.csv`` becomes a summary line; the best trials keep their full config.
Each line keeps the numbers the old report used (``summary``), so the tables come out the same.
Generation files under ``generation/`` move to ``exports/<name>/`` with their summary rebuilt
from the per-string lines. Afterwards the trial folders can be deleted; ``--delete`` does so.

    python -m sweeps.convert_legacy --params results/2026-11-29-h200

fills in the parameter count of every line that has a config but no count (records written before
2026-12-03 did not carry it into the compact file), from the config and today's model code. A
count that depends on the sequence length (learned positions) is filled in only where the task
fixes that length (associative recall, induction head), not for RegBench, whose length came from
that run's data.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.results import make_trial, write_compact  # noqa: E402

TUNE_ID = re.compile(r"[a-z_]+?_([0-9a-f]{5,})_\d+_")
STAMP = re.compile(r"(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)(?:\.json)?$")
KEEP = {"epoch", "lr", "best_val", "test_at_best", "best_epoch", "time_total_s", "timestamp"}


def json_lines(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash ended the old record
    return rows


def orphans(exp_dir: Path) -> set[str]:
    """Trial folders older than the newest run of the experiment but missing from its state."""
    states = sorted(exp_dir.glob("experiment_state-*.json"))
    if not states or not (newest := STAMP.search(states[-1].name)):
        return set()
    entries = json.loads(states[-1].read_text())["trial_data"]
    known = {json.loads(e[0] if isinstance(e, list) else e)["trial_id"] for e in entries}
    out = set()
    for folder in exp_dir.iterdir():
        named, stamp = TUNE_ID.match(folder.name), STAMP.search(folder.name)
        if folder.is_dir() and named and stamp and named.group(1) not in known and stamp.group(1) < newest.group(1):
            out.add(folder.name)
    return out


def trial_line(path: Path, root: Path) -> dict | None:
    """One legacy trial folder as a compact line, with the old report's reading as its summary."""
    run = next((json.loads((path / n).read_text()) for n in ("run.json", "trial.json") if (path / n).is_file()), None)
    if run is None:
        return None
    cfg, rows = run["config"], json_lines(path / "result.json")
    last = rows[-1] if rows else {}
    errored = (path / "error.txt").is_file()
    if errored:
        status = "errored"
    elif last.get("diverged"):
        status = "diverged"
        last = next((r for r in reversed(rows) if not r.get("diverged")), {"epoch": last.get("epoch", 0)})
    else:
        status = "finished" if last.get("epoch") == cfg["train"]["epochs"] else "stopped"
    named = TUNE_ID.match(path.name)
    trial_id = next((r["trial_id"] for r in rows if "trial_id" in r), named.group(1) if named else path.name)
    epochs = {}
    for r in rows:  # the last line of each epoch, seqicl's own metrics only
        if not r.get("diverged") and "epoch" in r:
            epochs[r["epoch"]] = {k: v for k, v in r.items() if k in KEEP or k.startswith(("train_", "val_", "test_"))}
    summary = {k: last[k] for k in ("epoch", "best_val", "test_at_best", "best_epoch") if k in last}
    summary.update({k: v for k, v in last.items() if k.startswith("test_") and k.endswith("_at_best")})
    params = json.loads((path / "params.json").read_text()) if (path / "params.json").is_file() else {}
    reason = (path / "error.txt").read_text().strip().splitlines()[-1][:300] if errored else None
    return {"path": path.relative_to(root).as_posix(), "experiment": path.parent.relative_to(root).as_posix(),
            "trial_id": trial_id, "config": cfg, "sampled": params, "task_info": run.get("task_info", {}),
            "status": status, "reason": reason, "epochs": [epochs[e] for e in sorted(epochs)], "summary": summary}


def from_trial_folders(root: Path) -> list[dict]:
    folders = {p.parent for n in ("run.json", "trial.json") for p in root.rglob(n)}
    dropped = {exp / name for exp in {f.parent for f in folders} for name in orphans(exp)}
    return [line for f in sorted(folders - dropped) if (line := trial_line(f, root)) is not None]


def number(text: str):
    return None if text == "" else json.loads(text)


def from_report_files(root: Path) -> list[dict]:
    """Summary lines from trials.csv, with the task facts of table.json and the best configs."""
    from seqicl.config import compose
    default_size = {t: compose([f"task={t}"])["task"]["num_train"] for t in ("associative_recall", "induction", "dfa")}
    # the oldest reports had no training-size column: the task's default size then
    facts = {(r["task"], r.get("num_train", default_size[r["task"]]), r["model"]): r
             for r in json.loads((root / "table.json").read_text())}
    best = yaml.safe_load((root / "best_configs.yaml").read_text()) or {}
    best = {task: {m: (v if all(isinstance(k, int) for k in v) else {default_size[task]: v}) for m, v in models.items()}
            for task, models in best.items()}
    lines = []
    with open(root / "trials.csv", newline="") as f:
        for row in csv.DictReader(f):
            key = (row["task"], int(row.get("num_train") or default_size[row["task"]]), row["model"])
            fact = facts[key]
            chosen = best.get(key[0], {}).get(key[2], {}).get(key[1], {})
            is_best = chosen.get("trial") == row["trial_id"] and fact["best_trial"] == row["path"]
            summary = {"epoch": int(row["epochs_run"]), "best_val": number(row["best_val"]),
                       "test_at_best": number(row["test_at_best"]), "best_epoch": number(row["best_epoch"])}
            if is_best and fact.get("test_tvd") is not None:
                summary["test_tvd_at_best"] = fact["test_tvd"]
            lines.append({"path": row["path"], "experiment": str(Path(row["path"]).parent), "trial_id": row["trial_id"],
                          "config": chosen.get("config") if is_best else None, "sampled": json.loads(row["params"]),
                          "task_info": {"chance": fact["chance"], "baselines": fact.get("baselines", {})},
                          "status": row["status"], "reason": row["error"] or None, "epochs": [],
                          "summary": summary, "task": key[0], "num_train": key[1], "model": key[2],
                          "metric": fact["metric"], "role": row.get("role", "sweep"), "seed": int(row.get("seed", 0)),
                          "epochs_budget": None})
    return lines


def move_generations(root: Path) -> None:
    from analysis.generate import summarize
    for jsonl in sorted((root / "generation").glob("*.jsonl")):
        md = jsonl.with_suffix(".md")
        head = re.search(r"(\d+) held-out DFAs x (\d+) samples, (\S+)", md.read_text())
        records = [json.loads(x) for x in jsonl.read_text().splitlines()]
        out = root / "exports" / jsonl.stem
        out.mkdir(parents=True, exist_ok=True)
        summary = summarize(records, int(head.group(1)), int(head.group(2)), head.group(3))
        (out / "generation.json").write_text(json.dumps(summary, indent=1))
        shutil.move(str(jsonl), out / "generations.jsonl")
        shutil.move(str(md), out / "generation.md")
    if (root / "generation").is_dir() and not any((root / "generation").iterdir()):
        (root / "generation").rmdir()


def params_of(cfg: dict, cache: dict) -> int | None:
    """The parameter count of ``cfg``'s model, or None where it depends on an unknown length."""
    import torch
    from seqicl.data import generate
    from seqicl.models.lm import build_model

    def n(length: int) -> int:
        key = (json.dumps(cfg["model"], sort_keys=True), cfg["task"]["vocab_size"], length)
        if key not in cache:
            with torch.device("meta"):   # shapes only: no memory, no init
                cache[key] = sum(p.numel() for p in build_model(cfg["model"], cfg["task"]["vocab_size"], length).parameters())
        return cache[key]
    if n(1) == n(2):
        return n(1)
    if cfg["task"]["name"] in ("associative_recall", "induction"):  # the format fixes the length
        return n(generate({**cfg["task"], "num_train": 1, "num_val": 1, "num_test": 1}).train.inputs.shape[1])
    return None


def backfill_params(root: Path) -> int:
    """Parameter counts into the compact record where a line has a config and no count."""
    from analysis.results import load_results
    results = load_results(root)
    cache: dict = {}
    filled = 0
    for t in results.trials:
        if t.n_params is None and t.config:
            t.n_params = params_of(t.config, cache)
            filled += t.n_params is not None
    write_compact(root, results.trials, results.title or root.name)
    return filled


def convert(root: Path, delete: bool = False) -> int:
    title = re.match(r"# seqicl results: (.*)", (root / "table.md").read_text()).group(1)
    lines = from_trial_folders(root) or from_report_files(root)
    move_generations(root)
    write_compact(root, [make_trial(line, root) for line in lines], title)
    if delete:
        for exp in {Path(line["experiment"]).parts[0] for line in lines}:
            if (root / exp).is_dir():
                shutil.rmtree(root / exp)
    return len(lines)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a not in ("--delete", "--params")]
    for folder in args:
        if "--params" in sys.argv:
            print(f"{folder}: {backfill_params(Path(folder))} parameter counts filled in")
        else:
            print(f"{folder}: {convert(Path(folder), '--delete' in sys.argv)} trials")
