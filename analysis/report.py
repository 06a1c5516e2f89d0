"""The accuracy tables of a results folder, in the original seq_icl layout.

    python -m analysis.report <results dir>

Writes, atomically, into the results folder: ``table.md`` (printed too), ``table.csv``,
``table.json`` (one row per task, training size and model), ``trials.csv`` (one row per trial),
``best_configs.yaml`` (the chosen trial's sampled values and full config per pair) and, for a
task swept at several training sizes, ``learning_curves.png``. RegBench tables carry the
in-context n-gram baselines as reference rows, and generation summaries found under
``<results dir>/exports/*/generation.json`` (see ``analysis.generate``) get a table too.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from seqicl.atomic import atomic_write_text

from .original import ORIGINAL
from .results import Trial, best_trial, load_trials

MODEL_NAMES = {"transformer": "Transformer", "s4d": "S4D", "h3": "H3", "gilr": "GILR", "lru": "LRU",
               "lstm": "LSTM", "rwkv": "RWKV", "hyena": "Hyena", "retnet": "RetNet", "gla": "GLA",
               "mamba": "Mamba", "linear_transformer": "Linear Transformer"}
TASK_NAMES = {"associative_recall": "associative recall", "induction": "induction head", "dfa": "RegBench (DFA)"}
METRIC_NAMES = {"accuracy": "test accuracy", "dfa_accuracy": "test DFA accuracy"}


def model_order(models) -> list[str]:
    known = [m for m in MODEL_NAMES if m in models]
    return known + sorted(set(models) - set(known))


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def seed_stats(best: Trial | None, reseeds: list[Trial]) -> dict:
    """Mean and sample standard deviation of the test metric over the best configuration's runs:
    the chosen trial plus its re-runs with other seeds (``sweeps/reseed.py``)."""
    values = [t.test_at_best for t in [best] + reseeds if t is not None and t.rankable]
    if best is None or len(values) < 2:
        return {"seed_mean": None, "seed_std": None, "seed_n": len(values)}
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return {"seed_mean": mean, "seed_std": std, "seed_n": len(values)}


def summarize(trials: list[Trial]) -> list[dict]:
    """One row per (task, training size, model): the best trial's numbers and the trial counts.
    Only searched trials compete; re-runs of the chosen config give the seed statistics."""
    groups: dict[tuple, list[Trial]] = defaultdict(list)
    reseeds: dict[tuple, list[Trial]] = defaultdict(list)
    for t in trials:
        (reseeds if t.role == "reseed" else groups)[(t.task, t.num_train, t.model)].append(t)
    rows = []
    for (task, size, model), ts in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], model_order([kv[0][2]]))):
        best = best_trial(ts)
        count = {s: sum(t.status == s for t in ts) for s in ("finished", "stopped", "diverged", "errored")}
        rows.append({
            "task": task, "num_train": size, "model": model, "metric": ts[0].metric,
            "test": best.test_at_best if best else None, "val": best.best_val if best else None,
            "test_tvd": best.test_at_best_all.get("tvd") if best else None,
            "best_epoch": best.best_epoch if best else None, "chance": ts[0].chance,
            "trials": len(ts), **count, "best_trial": str(best.path) if best else None,
            "params": best.params if best else {}, "baselines": ts[0].baselines,
            **seed_stats(best, reseeds.get((task, size, model), [])),
        })
    return rows


def task_label(task: str, size: int, sizes: set) -> str:
    name = TASK_NAMES.get(task, task)
    return f"{name}, {size:,} train" if len(sizes) > 1 else name


def markdown(rows: list[dict], generations: list[dict], failed: list[Trial] = ()) -> str:
    out = io.StringIO()
    keys = list(dict.fromkeys((r["task"], r["num_train"]) for r in rows))
    sizes = defaultdict(set)
    for task, size in keys:
        sizes[task].add(size)
    models = model_order({r["model"] for r in rows})
    cell = {(r["task"], r["num_train"], r["model"]): r for r in rows}
    baseline_names = sorted({b for r in rows for b in r["baselines"]})
    out.write("## Test accuracy (%) of the best trial per model, chosen on validation\n\n"
              "RegBench cells are DFA accuracy. Random: chance computed from the task.\n\n")
    out.write("| task | " + " | ".join(MODEL_NAMES.get(m, m) for m in models) + " | Random |"
              + "".join(f" {b} |" for b in baseline_names) + "\n")
    out.write("|---|" + ":---:|" * (len(models) + 1 + len(baseline_names)) + "\n")
    for task, size in keys:
        first = next(r for r in rows if (r["task"], r["num_train"]) == (task, size))
        vals = [pct(cell[(task, size, m)]["test"]) if (task, size, m) in cell else "" for m in models]
        base = [pct(first["baselines"].get(b, {}).get(first["metric"])) if first["baselines"] else ""
                for b in baseline_names]
        out.write(f"| {task_label(task, size, sizes[task])} | " + " | ".join(vals) + f" | {pct(first['chance'])} |"
                  + "".join(f" {b} |" for b in base) + "\n")
    if any(r["test_tvd"] is not None for r in rows):
        out.write("\n## RegBench total variation distance to the DFA (lower is better), test set\n\n")
        out.write("| task | " + " | ".join(MODEL_NAMES.get(m, m) for m in models) + " |"
                  + "".join(f" {b} |" for b in baseline_names) + "\n")
        out.write("|---|" + ":---:|" * (len(models) + len(baseline_names)) + "\n")
        for task, size in keys:
            if task != "dfa":
                continue
            first = next(r for r in rows if (r["task"], r["num_train"]) == (task, size))
            vals = [f"{cell[(task, size, m)]['test_tvd']:.3f}" if (task, size, m) in cell and cell[(task, size, m)]["test_tvd"] is not None else ""
                    for m in models]
            base = [f"{first['baselines'][b]['tvd']:.3f}" if b in first["baselines"] else "" for b in baseline_names]
            out.write(f"| {task_label(task, size, sizes[task])} | " + " | ".join(vals) + " |"
                      + "".join(f" {b} |" for b in base) + "\n")
    if any(r["seed_mean"] is not None for r in rows):
        out.write("\n## Over seeds: mean ± std of the best configuration's runs (n runs), best single run\n\n")
        out.write("| task | " + " | ".join(MODEL_NAMES.get(m, m) for m in models) + " |\n")
        out.write("|---|" + ":---:|" * len(models) + "\n")
        for task, size in keys:
            cells = []
            for m in models:
                r = cell.get((task, size, m))
                if r is None or r["seed_mean"] is None:
                    cells.append(pct(r["test"]) if r else "")
                else:
                    cells.append(f"{100 * r['seed_mean']:.1f} ± {100 * r['seed_std']:.1f} (n={r['seed_n']}); "
                                 f"best {pct(r['test'])}")
            out.write(f"| {task_label(task, size, sizes[task])} | " + " | ".join(cells) + " |\n")
    if any(task in ORIGINAL for task, _ in keys):
        out.write("\n## Against the original seq_icl table: seqicl / original (test accuracy, %)\n\n")
        out.write("| task | " + " | ".join(MODEL_NAMES.get(m, m) for m in models) + " | Random |\n")
        out.write("|---|" + ":---:|" * (len(models) + 1) + "\n")
        for task, size in keys:
            if task not in ORIGINAL:
                continue
            orig = ORIGINAL[task]
            cells = [f"{pct(cell[(task, size, m)]['test'])} / {orig[m]:.1f}" if (task, size, m) in cell and m in orig
                     else (pct(cell[(task, size, m)]["test"]) if (task, size, m) in cell else "") for m in models]
            chance = next(r["chance"] for r in rows if (r["task"], r["num_train"]) == (task, size))
            out.write(f"| {task_label(task, size, sizes[task])} | " + " | ".join(cells)
                      + f" | {pct(chance)} / {orig['random']:.1f} |\n")
    for task, size in keys:
        metric = next(r["metric"] for r in rows if r["task"] == task)
        out.write(f"\n### {task_label(task, size, sizes[task])}: {METRIC_NAMES.get(metric, metric)} per model\n\n")
        out.write("| model | test (%) | val (%) | best epoch | trials | finished | stopped early | diverged | errored "
                  "| best configuration |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
        for m in models:
            r = cell.get((task, size, m))
            if r is None:
                continue
            conf = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(r["params"].items()))
            out.write(f"| {MODEL_NAMES.get(m, m)} | {pct(r['test'])} | {pct(r['val'])} | {r['best_epoch'] or '-'} "
                      f"| {r['trials']} | {r['finished']} | {r['stopped']} | {r['diverged']} | {r['errored']} | {conf or '-'} |\n")
    if generations:
        out.write("\n## Generation on held-out DFAs (analysis.generate)\n\n"
                  "| export | DFAs x samples | decoding | accepted (%) | mean length | distinct (%) | not in context (%) |\n"
                  "|---|---:|---|---:|---:|---:|---:|\n")
        for g in generations:
            out.write(f"| {g['export']} | {g['num_dfas']} x {g['samples']} | {g['decoding']} | {pct(g['acceptance'])} "
                      f"| {g['mean_length']:.1f} | {pct(g['distinct'])} | {pct(g['novel'])} |\n")
    if failed:
        out.write("\n## Failed trials (never chosen as best)\n\n| task | model | trial | status | epochs | reason |\n"
                  "|---|---|---|---|---:|---|\n")
        for t in failed:
            reason = t.error if t.status == "errored" else "loss became NaN or infinite"
            out.write(f"| {TASK_NAMES.get(t.task, t.task)} | {MODEL_NAMES.get(t.model, t.model)} | {t.trial_id} "
                      f"| {t.status} | {t.epochs_run} | {(reason or '').replace('|', '/')} |\n")
    if any(len(s) > 1 for s in sizes.values()):
        out.write("\n![learning curves](learning_curves.png)\n")
    return out.getvalue()


def to_csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()})
    return buf.getvalue()


def rel(path: str | Path, root: Path) -> str:
    """Paths in reports are relative to the results folder, so the folder can move."""
    return os.path.relpath(path, root)


def load_generations(root: Path) -> list[dict]:
    out = []
    for path in sorted(root.glob("exports/*/generation.json")):
        try:
            out.append({**json.loads(path.read_text()), "export": path.parent.name})
        except (json.JSONDecodeError, OSError):
            continue  # a summary being written or damaged: the table skips it
    return out


def write_report(root: str | Path) -> str:
    """Write every report file into ``root``; returns the Markdown. Raises FileNotFoundError
    when ``root`` holds no trials."""
    root = Path(root)
    trials = load_trials(root)
    if not trials:
        raise FileNotFoundError(f"{root}: no seqicl trials found")
    rows = summarize(trials)
    for r in rows:
        r["best_trial"] = r["best_trial"] and rel(r["best_trial"], root)
    failed = [t for t in trials if t.status in ("errored", "diverged")]
    md = f"# seqicl results: {root.name}\n\n" + markdown(rows, load_generations(root), failed)
    from .curves import plot_learning_curves  # matplotlib only when a report is written
    plot_learning_curves(rows, root / "learning_curves.png")
    atomic_write_text(root / "table.md", md)
    atomic_write_text(root / "table.json", json.dumps(rows, indent=1))
    atomic_write_text(root / "table.csv", to_csv(rows, ["task", "num_train", "model", "metric", "test", "val",
                                                         "test_tvd", "best_epoch", "chance", "trials", "finished",
                                                         "stopped", "diverged", "errored", "seed_mean", "seed_std",
                                                         "seed_n", "params", "best_trial"]))
    trial_rows = [{"task": t.task, "num_train": t.num_train, "model": t.model, "trial_id": t.trial_id,
                   "role": t.role, "seed": t.seed, "status": t.status, "epochs_run": t.epochs_run, "best_val": t.best_val,
                   "test_at_best": t.test_at_best, "best_epoch": t.best_epoch, "params": t.params,
                   "error": t.error, "path": rel(t.path, root)} for t in trials]
    atomic_write_text(root / "trials.csv", to_csv(trial_rows, list(trial_rows[0])))
    best = {}
    for r in rows:
        if r["best_trial"]:
            t = next(t for t in trials if rel(t.path, root) == r["best_trial"])
            best.setdefault(r["task"], {}).setdefault(r["model"], {})[r["num_train"]] = {
                "val": r["val"], "test": r["test"], "best_epoch": r["best_epoch"], "trial": t.trial_id,
                "checkpoint": rel(t.path / "best.pt", root), "params": t.params, "config": t.config}
    atomic_write_text(root / "best_configs.yaml", yaml.safe_dump(best, sort_keys=False))
    return md


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m analysis.report <results dir>", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    root = Path(argv[0])
    if not root.is_dir():
        print(f"error: {root}: no such results folder", file=sys.stderr)
        return 2
    try:
        print(write_report(root))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
