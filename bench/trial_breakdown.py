"""Where one trial's wall time goes, from a sweep's records: per experiment, the mean over its
ended trials of the recorded timings (``seqicl.train`` writes them into every epoch row).

    python bench/trial_breakdown.py <results folder>

- wall:   the record's start (``run.json`` "started") to its last word (``status.json`` "updated");
- train:  ``time_total_s`` minus ``eval_s``: the training steps;
- eval:   ``eval_s``, every evaluation of validation and test;
- save:   ``save_s``, checkpoints and training states;
- setup:  ``setup_s``, from building the run to the captured step (partly before "started"), and
          within it ``build_s`` (task data, model, optimiser) and ``capture_s`` (warm-up and capture);
- other:  wall - train - eval - save: waiting on Tune's reports, record and TensorBoard writes,
          the capture after "started".
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqicl.train.record import FINAL  # noqa: E402
from sweep_timeline import trial_records  # noqa: E402  (beside this file)


def breakdown(root: Path) -> str:
    rows = {}
    for exp_dir, _, run, status, epochs in trial_records(root):
        if status["status"] not in FINAL or not epochs:
            continue
        last = epochs[-1]
        wall = status["updated"] - run["started"]
        train = last["time_total_s"] - last.get("eval_s", 0.0)
        parts = (wall, train, *(last.get(k, 0.0) for k in ("eval_s", "save_s", "setup_s", "build_s", "capture_s")),
                 status["epochs"])
        rows.setdefault(exp_dir.name, []).append(parts)
    lines = ["| experiment | trials | epochs/trial | wall s | train | eval | save | other | setup s | build s | capture s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, parts in rows.items():
        n = len(parts)
        wall, train, ev, save, setup, build, capture, epochs = (sum(p[i] for p in parts) / n for i in range(8))
        other = wall - train - ev - save
        pct = lambda x: f"{100 * x / wall:.0f}%" if wall > 0 else "?"  # noqa: E731
        lines.append(f"| {name} | {n} | {epochs:.0f} | {wall:.1f} | {pct(train)} | {pct(ev)} | {pct(save)} | "
                     f"{pct(other)} | {setup:.1f} | {build:.1f} | {capture:.1f} |")
    return "\n".join(lines) if rows else f"{root}: no ended trials"


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: python bench/trial_breakdown.py <results folder>", file=sys.stderr)
        sys.exit(2)
    print(breakdown(Path(sys.argv[1])))
