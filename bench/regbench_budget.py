"""GPU-minutes of a RegBench learning-curve sweep, from measured step times (issue 29, item 2).

    python bench/regbench_budget.py STEPS.md [--preset regbench] [--precision bf16]
                                    [--epochs E] [--samples K] [--sizes 1000,40000] [--models a,b]
                                    [--budget 120] [--out FILE.md]

``STEPS.md`` is the table ``bench/regbench_steps.py`` writes on the GPU (ms per graph-captured
training step at the table's length, batch 32, each model at the paper's best size; the first table,
of 2026-12-06, was made at length 1,000, where seqicl's RegBench sets are 720 long). Nothing runs on a
GPU here: for each (model, training size) the sweep costs

    samples x E[epochs per trial] x (steps per epoch + evaluation) x ms/step

where steps per epoch = size // batch; evaluation (validation and test, forward only) counts as
a third of a training step per batch of held-out examples; and E[epochs per trial] is ASHA's
expectation when a fraction 1/rf of the trials passes each rung (rungs at grace x rf^k), and at
least one trial: the first rung's epochs for every trial, each later stretch for the share that
got there (one trial of one sample trains every epoch). It is an
estimate of one trial at a time on one GPU unless ``--packing R`` gives the throughput of packed
trials over one alone (``bench/packing.py --regbench --mps``): the searched sizes differ from the
paper's (the steps table times the centre of each search), and ``stop_when_perfect`` ends some
trials early. Printed: a table (rows models, columns sizes) of GPU-minutes, each model's total,
and the total against ``--budget``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqicl.atomic import atomic_write_text  # noqa: E402
from sweeps.asha import Rungs  # noqa: E402
from sweeps.run import load_preset  # noqa: E402

BATCH = 32
EVAL_COST = 1 / 3   # a forward pass over one batch, in training steps (forward + backward + update)


def read_steps(path: Path, precision: str, buckets: int = 1) -> dict[str, float]:
    """model -> ms per training step at ``precision`` from a bench/regbench_steps.py table: rows
    ``| model | layers x width | parameters | precision | ms/step | ...``, or with ``buckets`` > 1
    its real-example rows ``| model | precision | N length buckets | widths | ms/step | ...``
    (``--buckets N`` there); failed rows skipped."""
    out = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if buckets == 1 and len(cells) >= 5 and cells[3] == precision:
            ms = cells[4]
        elif buckets > 1 and len(cells) >= 5 and cells[1] == precision and cells[2] == f"{buckets} length buckets":
            ms = cells[4]
        else:
            continue
        try:
            out[cells[0]] = float(ms)
        except ValueError:
            continue
    return out


def expected_epochs(epochs: int, grace: int, rf: float, samples: float = float("inf")) -> float:
    """ASHA's expected epochs per trial of ``samples``: every trial trains to the first rung, a
    fraction 1/rf**k of them past the k-th, and never fewer than one (the best trial always goes
    on: a lone trial trains every epoch, which the fraction alone would put at a few)."""
    total, start, share = 0.0, 0, 1.0
    for rung in [m for m in Rungs(grace, rf, epochs).milestones if m < epochs] + [epochs]:
        total += max(share, 1 / samples) * (rung - start)
        start, share = rung, share / rf
    return total


def plan_minutes(ms: float, size: int, held_out: int, epochs: int, samples: int, grace: int, rf: float) -> float:
    steps = size // BATCH + EVAL_COST * held_out / BATCH
    return samples * expected_epochs(epochs, grace, rf, samples) * steps * ms / 1e3 / 60


def preset_plan(name: str) -> dict:
    preset = load_preset(name)
    over = dict(o.split("=", 1) for o in preset.get("overrides") or [])
    return {"sizes": list(preset.get("num_examples") or []), "epochs": int(over.get("train.epochs", 200)),
            "samples": preset["num_samples"], "grace": preset["grace_period"], "rf": preset["reduction_factor"],
            "held_out": int(over.get("task.num_val", 500)) + int(over.get("task.num_test", 500)),
            "models": preset.get("default_models")}


def budget_table(ms: dict[str, float], plan: dict, budget: float | None) -> list[str]:
    sizes = sorted(plan["sizes"])
    models = [m for m in (plan["models"] or ms) if m in ms]
    head = (f"epochs {plan['epochs']}, {plan['samples']} trials per (model, size), ASHA grace {plan['grace']} rf "
            f"{plan['rf']:g} (expected {expected_epochs(plan['epochs'], plan['grace'], plan['rf'], plan['samples']):.2f} epochs per "
            f"trial), {plan['held_out']} held-out examples evaluated every epoch")
    rows = [head, "", "| model | ms/step | " + " | ".join(f"{n:,}" for n in sizes) + " | total |",
            "|---|---:|" + "---:|" * (len(sizes) + 1)]
    grand = 0.0
    for m in models:
        cells = [plan_minutes(ms[m], n, plan["held_out"], plan["epochs"], plan["samples"], plan["grace"], plan["rf"])
                 for n in sizes]
        grand += sum(cells)
        rows.append(f"| {m} | {ms[m]:.2f} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {sum(cells):.1f} |")
    missing = [m for m in (plan["models"] or []) if m not in ms]
    rows += ["", f"total: {grand:.1f} GPU-minutes"
             + (f" against a budget of {budget:g}: {grand / budget:.1f}x" if budget else "")]
    if missing:
        rows.append(f"no step time for: {', '.join(missing)}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("steps", help="the table bench/regbench_steps.py wrote")
    p.add_argument("--preset", default="regbench")
    p.add_argument("--precision", default="bf16", help="fp32, tf32 or bf16: the rows of STEPS.md to use")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--sizes", default=None, help="comma-separated training sizes (default: the preset's)")
    p.add_argument("--models", default=None, help="comma-separated (default: the preset's)")
    p.add_argument("--budget", type=float, default=120, help="GPU-minutes to compare against (issue 29: 120)")
    p.add_argument("--packing", type=float, default=1.0,
                   help="throughput of trials packed on one GPU over one trial alone (bench/packing.py --regbench): "
                        "GPU-minutes are divided by it")
    p.add_argument("--buckets", type=int, default=1,
                   help="step times of N length buckets on real examples (train.length_buckets; the table's "
                        "`--buckets N` rows) instead of the padded steps")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    try:
        ms = read_steps(Path(args.steps), args.precision, args.buckets)
        plan = preset_plan(args.preset)
        sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else plan["sizes"]
    except (OSError, ValueError) as e:  # a missing table, an unknown preset, a bad --sizes
        print(f"error: {e}".splitlines()[0], file=sys.stderr)
        return 2
    if not args.packing >= 1:
        print(f"error: --packing is a throughput ratio of at least 1, got {args.packing:g}", file=sys.stderr)
        return 2
    ms = {m: v / args.packing for m, v in ms.items()}
    plan.update({k: v for k, v in (("epochs", args.epochs), ("samples", args.samples)) if v is not None},
                sizes=sizes, models=args.models.split(",") if args.models else plan["models"])
    if not ms or not sizes or plan["epochs"] < 1 or plan["samples"] < 1 or min(sizes) < BATCH:
        print(f"error: nothing to plan (no {args.precision} rows in {args.steps}, or no sizes, epochs or samples)",
              file=sys.stderr)
        return 2
    lines = [f"# RegBench sweep budget from {Path(args.steps).name} ({args.precision}"
             + (f", {args.buckets} length buckets" if args.buckets > 1 else "")
             + (f", ms/step divided by packing {args.packing:g}" if args.packing != 1 else "") + ")", ""] + budget_table(
        ms, plan, args.budget)
    print("\n".join(lines))
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
