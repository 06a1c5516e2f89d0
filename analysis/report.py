"""The accuracy tables of a results folder, in the original seq_icl layout.

    python -m analysis.report <results dir>

Writes, atomically, into the results folder: ``table.md`` (printed too), ``table.csv``,
``table.json`` (one row per task, training size and model), ``trials.csv`` (one row per trial),
``best_configs.yaml`` (the chosen trial's sampled values and full config per pair) and, for a
task swept at several training sizes, ``learning_curves.png``. RegBench tables carry the
in-context n-gram baselines as reference rows, and generation summaries found under
``<results dir>/exports/*/generation*.json`` (see ``analysis.generate``) get a table too. A task
swept at several training sizes also gets the learning-curve tables (rows models, columns sizes:
its metric and, for RegBench, TVD, with the n-gram baselines as rows).
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

from .names import METRIC_NAMES, MODEL_NAMES, TASK_NAMES, model_order
from .original import ORIGINAL
from .results import Trial, best_trial, load_results, rerun_of, write_compact

def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def fmt_params(n: int | None) -> str:
    """A parameter count the way papers print it: 840, 52k, 4.2M."""
    if n is None:
        return "?"
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1e3:.0f}k" if n >= 10_000 else f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.1f}M"


def seed_stats(best: Trial | None, reseeds: list[Trial], with_range: bool = False) -> dict:
    """Mean and sample standard deviation of the test metric over the best configuration's runs:
    the chosen trial plus its re-runs with other seeds (``sweeps/reseed.py``), one run per seed.
    A re-run counts once it trained the chosen configuration's whole schedule or diverged (a seed
    that fails is part of the spread, at its last good value). The others are listed apart
    (``seed_cut``), never averaged, until a complete re-run of the same seed exists: re-runs cut
    short by a time budget, and re-runs of a shorter schedule (results made before 2026-12-03
    re-ran the chosen trial only for the epochs it had trained, annealing to zero there).
    Re-runs on a longer schedule (``reseed.py --epochs``) are another recipe: their complete runs
    go to ``schedules``, one entry per length with its own mean and spread, never into the mean."""
    mine = [r for r in reseeds if best is not None and rerun_of(r, best) and r.test_at_best is not None]
    full = best.epochs_budget if best is not None else None

    def complete(r: Trial) -> bool:
        return r.status in ("diverged", "finished")

    def longest_per_seed(runs) -> dict[int, Trial]:
        out = {}
        for r in sorted(runs, key=lambda r: r.epochs_run):
            out[r.seed] = r
        return out
    longer = sorted({r.epochs_budget for r in mine if full is not None and (r.epochs_budget or 0) > full})
    schedules, cut = [], []
    for budget in [full] + longer:
        runs = [r for r in mine if r.epochs_budget == budget or (budget == full and (r.epochs_budget or 0) < full)]
        done = longest_per_seed(r for r in runs if complete(r) and r.epochs_budget == budget)
        short = longest_per_seed(r for r in runs if not (complete(r) and r.epochs_budget == budget)
                                 and r.status in ("finished", "stopped", "running") and r.seed not in done)
        cut += [{"test": r.test_at_best, "epochs": r.epochs_run, "of": budget, "seed": r.seed}
                for _, r in sorted(short.items())]
        if budget == full:
            chosen_done = done
        elif done:
            tests = sorted(r.test_at_best for r in done.values())
            tvds = [r.test_at_best_all.get("tvd") for r in done.values()]
            schedules.append({"epochs": budget, "n": len(tests), "mean": sum(tests) / len(tests),
                              "std": _sample_std(tests), "seeds": sorted(done),
                              "tvd_mean": sum(tvds) / len(tvds) if None not in tvds else None})
    values = [best.test_at_best] + [r.test_at_best for r in chosen_done.values()] \
        if best is not None and best.test_at_best is not None else []
    extra = {"seed_cut": cut, **({"schedules": schedules} if schedules else {})}
    span = {"seed_min": min(values, default=None), "seed_max": max(values, default=None)} if with_range else {}
    if len(values) < 2:
        return {"seed_mean": None, "seed_std": None, "seed_n": len(values), **extra, **span}
    values = sorted(values)  # one summation order, whichever order the records were read in
    return {"seed_mean": sum(values) / len(values), "seed_std": _sample_std(values), "seed_n": len(values),
            **extra, **span}


def _sample_std(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def cut_by_budget(t: Trial) -> bool:
    """A trial the sweep's time budget ended before its last epoch, as seqicl before 2026-12-06 recorded
    it ("stopped", never continued): not counted as stopped early by ASHA."""
    return t.status == "stopped" and (t.reason or "").startswith("the time budget")


def name_trials(trials: list[Trial], at_most: int = 8) -> str:
    """"induction/rwkv 0000 (3 of 10 epochs), ...": by experiment, which tells the training sizes of
    a learning curve apart; past at_most the rest are counted (an interrupted cluster leaves many)."""
    names = ", ".join(f"{t.experiment} {t.trial_id} ({t.epochs_run} of {t.epochs_budget} epochs)"
                      for t in trials[:at_most])
    return names + (f" and {len(trials) - at_most} more" if len(trials) > at_most else "")


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
        count = {s: sum(t.status == s and not cut_by_budget(t) for t in ts)
                 for s in ("finished", "stopped", "diverged", "errored")}
        # one configuration once per seed (--seeds: nothing sampled): every seed is a run of it
        seed_runs = len(ts) > 1 and not any(t.params for t in ts)
        others = [t for t in ts if t is not best] if seed_runs else []
        rows.append({
            "task": task, "num_train": size, "model": model, "metric": ts[0].metric,
            "test": best.test_at_best if best else None, "val": best.best_val if best else None,
            "test_tvd": best.test_at_best_all.get("tvd") if best else None,
            "best_epoch": best.best_epoch if best else None, "chance": next((t.chance for t in ts if t.chance is not None), None),
            "n_params": best.n_params if best else None,
            "trials": len(ts), **count, "best_trial": str(best.path) if best else None,
            "params": best.params if best else {}, "baselines": next((t.baselines for t in ts if t.baselines), {}),
            **seed_stats(best, others + reseeds.get((task, size, model), []), with_range=seed_runs),
            **({"seed_runs": True} if seed_runs else {}),
        })
    return rows


def task_label(task: str, size: int, sizes: set) -> str:
    name = TASK_NAMES.get(task, task)
    return f"{name}, {size:,} train" if len(sizes) > 1 else name


def md_table(header: list[str], align: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body]) + "\n"


class Grid:
    """The rows of a report indexed by (task, size) and model, and the labels to print them."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.keys = list(dict.fromkeys((r["task"], r["num_train"]) for r in rows))
        self.sizes = defaultdict(set)
        for task, size in self.keys:
            self.sizes[task].add(size)
        self.models = model_order({r["model"] for r in rows})
        self.names = [MODEL_NAMES.get(m, m) for m in self.models]
        self.cell = {(r["task"], r["num_train"], r["model"]): r for r in rows}
        self.baselines = sorted({b for r in rows for b in r["baselines"]})

    def label(self, task: str, size: int) -> str:
        return task_label(task, size, self.sizes[task])

    def first(self, task: str, size: int) -> dict:
        return next(r for r in self.rows if (r["task"], r["num_train"]) == (task, size))


def main_table(g: Grid) -> str:
    body = []
    for task, size in g.keys:
        first = g.first(task, size)
        vals = [pct(g.cell[(task, size, m)]["test"]) if (task, size, m) in g.cell else "" for m in g.models]
        base = [pct(first["baselines"].get(b, {}).get(first["metric"])) if first["baselines"] else ""
                for b in g.baselines]
        body.append([g.label(task, size)] + vals + [pct(first["chance"])] + base)
        body.append(["parameters"] + [fmt_params(g.cell[(task, size, m)]["n_params"]) if (task, size, m) in g.cell else ""
                                      for m in g.models] + [""] * (1 + len(g.baselines)))
    return ("## Test accuracy (%) of the best trial per model, chosen on validation\n\n"
            "RegBench cells are DFA accuracy. Random: chance computed from the task. Under each task, "
            "the parameter count of each cell's chosen configuration.\n\n"
            + md_table(["task"] + g.names + ["Random"] + g.baselines,
                       ["---"] + [":---:"] * (len(g.models) + 1 + len(g.baselines)), body))


def tvd_table(g: Grid) -> str:
    body = []
    for task, size in g.keys:
        if task != "dfa":
            continue
        first = g.first(task, size)
        vals = [f"{g.cell[(task, size, m)]['test_tvd']:.3f}"
                if g.cell.get((task, size, m), {}).get("test_tvd") is not None else "" for m in g.models]
        base = [f"{first['baselines'][b]['tvd']:.3f}" if b in first["baselines"] else "" for b in g.baselines]
        body.append([g.label(task, size)] + vals + base)
    return ("\n## RegBench total variation distance to the DFA (lower is better), test set\n\n"
            + md_table(["task"] + g.names + g.baselines, ["---"] + [":---:"] * (len(g.models) + len(g.baselines)), body))


def seed_table(g: Grid) -> str:
    def fmt(r):
        if r is None:
            return ""
        text = (f"chosen {pct(r['test'])}" if r["seed_mean"] is None else
                f"{100 * r['seed_mean']:.1f} ± {100 * r['seed_std']:.1f} (n={r['seed_n']}); chosen {pct(r['test'])}")
        for s in r.get("schedules", []):  # another recipe: its own mean, never mixed into the chosen one's
            spread = f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}" if s["std"] is not None else pct(s["mean"])
            tvd = f", TVD {s['tvd_mean']:.3f}" if s.get("tvd_mean") is not None else ""
            text += f"; {s['epochs']} epochs: {spread} (n={s['n']}{tvd})"
        for of in sorted({c["of"] for c in r["seed_cut"]}):
            # shown, never averaged: cut short, or a shorter schedule than the chosen config's
            cut = [c for c in r["seed_cut"] if c["of"] == of]
            epochs = sorted(c["epochs"] for c in cut)
            span = f"{epochs[0]}" if epochs[0] == epochs[-1] else f"{epochs[0]}-{epochs[-1]}"
            text += f"; {len(cut)} not counted, trained {span} of {of} epochs: " + " ".join(pct(c["test"]) for c in cut)
        return text
    body = [[g.label(task, size)] + [fmt(g.cell.get((task, size, m))) for m in g.models] for task, size in g.keys]
    return ("\n## Over seeds: mean ± std of the chosen configuration's runs (n runs); chosen: the run picked "
            "on validation, not the seed best on test\n\n"
            + md_table(["task"] + g.names, ["---"] + [":---:"] * len(g.models), body))


def original_table(g: Grid) -> str:
    body = []
    for task, size in g.keys:
        if task not in ORIGINAL:
            continue
        orig = ORIGINAL[task]
        cells = []
        for m in g.models:
            r = g.cell.get((task, size, m))
            ours = "" if r is None else pct(r["test"]) + (
                "" if r["seed_mean"] is None else f" ({100 * r['seed_mean']:.1f} ± {100 * r['seed_std']:.1f})")
            cells.append(f"{ours} / {orig[m]:.1f}" if r is not None and m in orig else ours)
        body.append([g.label(task, size)] + cells + [f"{pct(g.first(task, size)['chance'])} / {orig['random']:.1f}"])
    return ("\n## Against the original seq_icl table: seqicl / original (test accuracy, %; "
            "seqicl's run chosen on validation, with the mean ± std over seeds where re-runs exist)\n\n"
            + md_table(["task"] + g.names + ["Random"], ["---"] + [":---:"] * (len(g.models) + 1), body))


def reproduction_table(g: Grid) -> str:
    """Seeds of one configuration (``--preset original``) beside the original's single run."""
    body = []
    for task, size in g.keys:
        orig = ORIGINAL.get(task, {})
        cells = []
        for m in g.models:
            r = g.cell.get((task, size, m))
            if r is None or not r.get("seed_runs") or r["seed_mean"] is None:
                cells.append("")
                continue
            lo, hi = 100 * r["seed_min"], 100 * r["seed_max"]
            text = f"{100 * r['seed_mean']:.1f} ± {100 * r['seed_std']:.1f} [{lo:.1f}, {hi:.1f}] (n={r['seed_n']})"
            if m in orig:
                # at the original's precision (0.1): a float32 0.0599999 is the 6.0 printed beside it
                text += f" / {orig[m]:.1f}, " + ("inside" if round(lo, 1) <= orig[m] <= round(hi, 1) else "outside")
            cells.append(text)
        body.append([g.label(task, size)] + cells + [pct(g.first(task, size)["chance"])])
    return ("\n## One configuration over seeds: mean ± std [lowest, highest] (n runs) / the original's "
            "number, and whether it lies inside our seed range (test accuracy, %)\n\n"
            + md_table(["task"] + g.names + ["Random"], ["---"] + [":---:"] * (len(g.models) + 1), body))


def per_model_tables(g: Grid) -> str:
    out = []
    for task, size in g.keys:
        metric = g.first(task, size)["metric"]
        body = []
        for m in g.models:
            r = g.cell.get((task, size, m))
            if r is None:
                continue
            conf = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(r["params"].items()))
            body.append([MODEL_NAMES.get(m, m), pct(r["test"]), pct(r["val"]), fmt_params(r["n_params"]),
                         str(r["best_epoch"] or "-"),
                         str(r["trials"]), str(r["finished"]), str(r["stopped"]), str(r["diverged"]),
                         str(r["errored"]), conf or "-"])
        out.append(f"\n### {g.label(task, size)}: {METRIC_NAMES.get(metric, metric)} per model\n\n" + md_table(
            ["model", "test (%)", "val (%)", "parameters", "best epoch", "trials", "finished", "stopped early",
             "diverged", "errored", "best configuration"], ["---"] + ["---:"] * 9 + ["---"], body))
    return "".join(out)


def generation_table(generations: list[dict]) -> str:
    """One row per export and decoding (``analysis.generate``'s summaries). Summaries written
    before 2026-12-06 lack the share that ends (given as unterminated), the context strings'
    length and accepted-and-not-copied: shown as "-" where missing."""
    def num(x, fmt="{:.1f}"):
        return "-" if x is None else fmt.format(x)
    body = []
    for x in generations:
        ended = x.get("ended", None if x.get("unterminated") is None else 1 - x["unterminated"])
        body.append([x["export"], f"{x['num_dfas']} x {x['samples']}", x["decoding"], pct(x["acceptance"]), pct(ended),
                     num(x["mean_length"]), num(x.get("context_length")),
                     pct(x["distinct"]) if x.get("samples", 2) > 1 else "-", pct(x["novel"]),
                     pct(x.get("novel_accepted"))])
    return ("\n## Generation on held-out DFAs (analysis.generate)\n\n"
            "Accepted: every transition of the string exists in its DFA. Ends: the string emits `|` before the letter "
            "cap. Mean length against the mean length of the prompt's context strings. Distinct: distinct strings "
            "among each DFA's samples (greedy writes one). Not in context: not a copy of a prompt string.\n\n" + md_table(
        ["export", "DFAs x samples", "decoding", "accepted (%)", "ends (%)", "mean length", "context mean length",
         "distinct (%)", "not in context (%)", "accepted, not in context (%)"],
        ["---", "---:", "---"] + ["---:"] * 7, body))


def size_label(n: int) -> str:
    """1000 -> 1k, 2500 -> 2.5k, 40000 -> 40k, 48 -> 48."""
    return f"{n / 1000:g}k" if n >= 1000 else str(n)


def learning_curve_tables(g: Grid) -> str:
    """For a task swept at several training sizes: rows models, columns sizes, one table for its
    metric and, for RegBench, one for TVD; the n-gram baselines (same test set) as the last rows."""
    out = []
    for task in dict.fromkeys(t for t, _ in g.keys):
        sizes = sorted(g.sizes[task])
        if len(sizes) < 2:
            continue
        metric = g.first(task, sizes[0])["metric"]
        tables = [(metric, lambda r: pct(r["test"]), METRIC_NAMES.get(metric, metric) + " (%)", pct)]
        if task == "dfa":
            tables.append(("tvd", lambda r: "-" if r["test_tvd"] is None else f"{r['test_tvd']:.3f}",
                           "total variation distance to the DFA (lower is better)", lambda x: f"{x:.3f}"))
        for key, cell, title, fmt in tables:
            body = [[MODEL_NAMES.get(m, m)] + [cell(g.cell[(task, n, m)]) if (task, n, m) in g.cell else ""
                                                  for n in sizes] for m in g.models]
            for b in g.baselines:
                vals = [g.first(task, n)["baselines"].get(b, {}).get(key) for n in sizes]
                if any(v is not None for v in vals):
                    body.append([f"{b} (in context)"] + ["" if v is None else fmt(v) for v in vals])
            out.append(f"\n## {TASK_NAMES.get(task, task)}: {title} against training examples, best trial on "
                       "validation per cell\n\n"
                       + md_table(["model"] + [size_label(n) for n in sizes], ["---"] + [":---:"] * len(sizes), body))
    return "".join(out)


def failed_table(failed: list[Trial]) -> str:
    body = [[TASK_NAMES.get(t.task, t.task), MODEL_NAMES.get(t.model, t.model), t.trial_id, t.status,
             str(t.epochs_run), ((t.error if t.status == "errored" else "loss became NaN or infinite") or "").replace("|", "/")]
            for t in failed]
    return ("\n## Failed trials (never chosen as best)\n\n"
            + md_table(["task", "model", "trial", "status", "epochs", "reason"], ["---"] * 4 + ["---:", "---"], body))


def markdown(rows: list[dict], generations: list[dict], failed: list[Trial] = ()) -> str:
    g = Grid(rows)
    parts = [main_table(g)]
    if any(r["test_tvd"] is not None for r in rows):
        parts.append(tvd_table(g))
    if any(r["seed_mean"] is not None or r["seed_cut"] or r.get("schedules") for r in rows):
        parts.append(seed_table(g))
    if any(r.get("seed_runs") for r in rows):
        parts.append(reproduction_table(g))
    if any(task in ORIGINAL for task, _ in g.keys):
        parts.append(original_table(g))
    parts.append(learning_curve_tables(g))
    parts.append(per_model_tables(g))
    if generations:
        parts.append(generation_table(generations))
    if failed:
        parts.append(failed_table(failed))
    if any(len(s) > 1 for s in g.sizes.values()):
        parts.append("\n![learning curves](learning_curves.png)\n")
    return "".join(parts)


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
    for path in sorted(root.glob("exports/*/generation*.json")):   # generation-<decoding>.json; older: generation.json
        try:
            out.append({**json.loads(path.read_text()), "export": path.parent.name})
        except (json.JSONDecodeError, OSError):
            continue  # a summary being written or damaged: the table skips it
    # per export: the model's rows, then the generator's law (analysis.generation_law); greedy first
    def order(x):
        d = x.get("decoding", "")
        return x["export"], "law" in d, not d.startswith("greedy"), d
    return sorted(out, key=order)


def write_report(root: str | Path) -> str:
    """Write every report file into ``root``; returns the Markdown. Raises FileNotFoundError
    when ``root`` holds no trials. Unreadable trial records are listed and left out."""
    root = Path(root)
    results = load_results(root)
    for line in results.skipped:
        print(f"warning: skipped a trial record: {line}", file=sys.stderr)
    trials = results.trials
    if not trials:
        raise FileNotFoundError(f"{root}: no seqicl trials found")
    title = sweep_title(root) or results.title or root.name
    rows = summarize(trials)
    for r in rows:
        r["best_trial"] = r["best_trial"] and rel(r["best_trial"], root)
    failed = [t for t in trials if t.status in ("errored", "diverged")]
    md = f"# seqicl results: {title}\n\n" + markdown(rows, load_generations(root), failed)
    running = [t for t in trials if t.status == "running"]
    if running:  # named, so a reader knows which cells may still change
        md += (f"\n{len(running)} trial(s) still running, or cut by the time budget or an interrupted driver "
               f"(`--resume` continues them): counted with their best epoch up to their last saved state: "
               f"{name_trials(running)}.\n")
    cut = [t for t in trials if cut_by_budget(t)]
    if cut:
        md += (f"\n{len(cut)} trial(s) cut by the sweep's time budget before their last epoch and recorded as "
               f"stopped, so that `--resume` never continued them (seqicl before 2026-12-06); counted with "
               f"their best epoch so far, not as stopped early: {name_trials(cut)}.\n")
    if results.skipped:
        md += "\n## Unreadable trial records (left out)\n\n" + "".join(f"- {line}\n" for line in results.skipped)
    from .curves import plot_learning_curves, plot_search_progress  # matplotlib only when a report is written
    plot_learning_curves(rows, root / "learning_curves.png")
    if plot_search_progress(trials, root / "search_progress.png"):
        md += "\n![search progress: best validation score so far against wall time](search_progress.png)\n"
    atomic_write_text(root / "table.md", md)
    atomic_write_text(root / "table.json", json.dumps(rows, indent=1))
    atomic_write_text(root / "table.csv", to_csv(rows, ["task", "num_train", "model", "metric", "test", "val",
                                                         "test_tvd", "n_params", "best_epoch", "chance", "trials", "finished",
                                                         "stopped", "diverged", "errored", "seed_mean", "seed_std",
                                                         "seed_n", "params", "best_trial"]))
    trial_rows = [{"task": t.task, "num_train": t.num_train, "model": t.model, "trial_id": t.trial_id,
                   "role": t.role, "seed": t.seed, "status": t.status, "epochs_run": t.epochs_run, "best_val": t.best_val,
                   "test_at_best": t.test_at_best, "best_epoch": t.best_epoch, "n_params": t.n_params,
                   "params": t.params,
                   "error": t.error, "path": rel(t.path, root)} for t in trials]
    atomic_write_text(root / "trials.csv", to_csv(trial_rows, list(trial_rows[0])))
    best = {}
    for r in rows:
        if r["best_trial"]:
            t = next(t for t in trials if rel(t.path, root) == r["best_trial"])
            best.setdefault(r["task"], {}).setdefault(r["model"], {})[r["num_train"]] = {
                "val": r["val"], "test": r["test"], "best_epoch": r["best_epoch"], "n_params": t.n_params,
                "trial": t.trial_id,
                "checkpoint": rel(t.path / "best.pt", root), "params": t.params, "config": t.config}
    atomic_write_text(root / "best_configs.yaml", yaml.safe_dump(best, sort_keys=False))
    write_compact(root, trials, title)
    return md


def sweep_title(root: Path) -> str | None:
    """The name a sweep was started under (sweep.json), which stays when the folder moves."""
    try:
        return json.loads((root / "sweep.json").read_text()).get("title")
    except (OSError, ValueError, AttributeError):
        return None


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
