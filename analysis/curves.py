"""Plots of a results folder. Learning curves (the RegBench paper's figure): test DFA accuracy and
TVD of each (model, size)'s best-on-validation trial against the number of training examples on
a log axis, one line per model, with the in-context 2-gram and 3-gram baselines as dashed lines. Search progress: the best validation score found so far against the sweep's wall time."""
from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from seqicl.atomic import atomic_write

from .names import METRIC_NAMES, MODEL_NAMES, TASK_NAMES, model_order
from .results import Trial


def save_png(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    # the figures lay themselves out (constrained); "tight" keeps a legend beside the panels in the picture
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def model_colours(models) -> dict[str, tuple]:
    """One colour per model, the same in every figure of a folder: twelve models get the dark then
    the light tab20 colours, never a baseline's black or grey."""
    import matplotlib.pyplot as plt
    palette = plt.get_cmap("tab20").colors
    return {m: palette[(2 * i) % 20 + (i >= 10)] for i, m in enumerate(model_order(models))}


def plot_learning_curves(rows: list[dict], path: Path) -> bool:
    """Draw the curves of every task swept at two or more sizes; False when there is none."""
    by_task = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["test"] is not None:
            by_task[r["task"]][r["model"]][r["num_train"]] = r
    tasks = [t for t, models in by_task.items() if len({n for m in models.values() for n in m}) > 1]
    if not tasks:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = {t: next(iter(next(iter(by_task[t].values())).values()))["metric"] for t in tasks}
    panels = [(t, "test", f"{METRIC_NAMES.get(metric[t], metric[t])} (%)") for t in tasks] + \
             [(t, "test_tvd", "test TVD to the DFA (lower is better)") for t in tasks if t == "dfa"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 1.8, 4), squeeze=False, layout="constrained")
    for ax, (task, key, label) in zip(axes[0], panels):
        scale = 100 if key == "test" else 1
        sizes = sorted({n for m in by_task[task].values() for n in m})
        colours = model_colours(by_task[task])
        for model in model_order(by_task[task]):
            have = {n: r[key] * scale for n, r in by_task[task][model].items() if r[key] is not None}
            if have:  # a size not run inside the model's range is a gap in its line, not a straight segment
                xs = [n for n in sizes if min(have) <= n <= max(have)]
                ax.plot(xs, [have.get(n, float("nan")) for n in xs], marker="o", color=colours[model],
                        label=MODEL_NAMES.get(model, model))
        first = next(iter(next(iter(by_task[task].values())).values()))
        for i, (name, scores) in enumerate(sorted(first["baselines"].items())):
            score = first["metric"] if key == "test" else "tvd"
            if score in scores:
                ax.axhline(scores[score] * scale, linestyle="--", color=("0.45", "k")[i % 2], label=f"{name} (in context)")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{n / 1000:g}k" if n >= 1000 else str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training examples")
        ax.set_ylabel(label)
        ax.set_title(TASK_NAMES.get(task, task))
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))   # beside the curves, not on them
    save_png(fig, path)
    return True


def search_progress(trials: list[Trial]) -> dict[str, dict[tuple, list[tuple[float, float]]]]:
    """task -> (model, training size) -> [(seconds since that sweep's first trial started,
    best validation score so far)], one point per improvement. Re-runs are left out."""
    events = defaultdict(lambda: defaultdict(list))
    for t in trials:
        if t.role != "sweep":
            continue
        for r in t.epochs:
            if "timestamp" in r and "time_total_s" in r and r.get("best_val") is not None and r["best_val"] >= 0:
                events[t.task][(t.model, t.num_train)].append((r["timestamp"], r["timestamp"] - r["time_total_s"], r["best_val"]))
    out = defaultdict(dict)
    for task, series in events.items():
        for key, points in series.items():
            start = min(s for _, s, _ in points)
            best, curve = float("-inf"), []
            for stamp, _, value in sorted(points):
                if value > best:
                    best = value
                    curve.append((stamp - start, value))
            out[task][key] = curve
    return dict(out)


def size_name(n: int) -> str:
    return f"{n / 1000:g}k examples" if n >= 1000 else f"{n} examples"


def plot_search_progress(trials: list[Trial], path: Path) -> bool:
    """One panel per task, or per task and training size where a task was swept at several (a
    learning curve's dozens of lines in one panel could not be told apart), a model's colour the
    same in every panel and in the learning curves; False when no sweep trial reported a
    timestamped score."""
    progress = search_progress(trials)
    if not progress:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []   # (task, size or None, {model: curve})
    for task in sorted(progress):
        sizes = sorted({n for _, n in progress[task]})
        for n in sizes:
            curves = {m: c for (m, size), c in progress[task].items() if size == n and c}
            panels.append((task, n if len(sizes) > 1 else None, curves))
    colours = model_colours({m for _, _, curves in panels for m in curves})
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols + 1.8, 3.6 * rows), squeeze=False, layout="constrained")
    for ax, (task, size, curves) in zip(axes.flat, panels):
        for model in model_order(curves):
            curve = curves[model]
            xs, ys = [x for x, _ in curve], [100 * y for _, y in curve]
            ax.step(xs + [max(xs[-1], 1.0)], ys + ys[-1:], where="post", color=colours[model],
                    label=MODEL_NAMES.get(model, model))
        ax.set_xlabel("seconds since the sweep began (wall clock)")
        ax.set_ylabel("best validation score so far (%)")
        ax.set_title(TASK_NAMES.get(task, task) + (f", {size_name(size)}" if size is not None else ""))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    labels = {}
    for ax in axes.flat:
        for line in ax.get_lines():
            labels.setdefault(line.get_label(), line)
    fig.legend(labels.values(), labels.keys(), fontsize=8, loc="outside right center")  # each model once
    save_png(fig, path)
    return True
