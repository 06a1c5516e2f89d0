"""Learning curves: test DFA accuracy and TVD against the number of training examples, one
line per model, with the in-context n-gram baselines as dashed reference lines."""
from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from seqicl.atomic import atomic_write


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

    from .report import MODEL_NAMES, TASK_NAMES, model_order
    panels = [(t, "test", "accuracy (%)") for t in tasks] + [(t, "test_tvd", "TVD") for t in tasks if t == "dfa"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (task, key, label) in zip(axes[0], panels):
        scale = 100 if key == "test" else 1
        for model in model_order(by_task[task]):
            pts = sorted((n, r[key]) for n, r in by_task[task][model].items() if r[key] is not None)
            if pts:
                ax.plot([n for n, _ in pts], [v * scale for _, v in pts], marker="o", label=MODEL_NAMES.get(model, model))
        first = next(iter(next(iter(by_task[task].values())).values()))
        for i, (name, scores) in enumerate(sorted(first["baselines"].items())):
            metric = first["metric"] if key == "test" else "tvd"
            if metric in scores:
                ax.axhline(scores[metric] * scale, linestyle="--", color=f"C{7 + i}", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("training examples")
        ax.set_ylabel(label)
        ax.set_title(TASK_NAMES.get(task, task))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return True
