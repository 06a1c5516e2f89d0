"""Sweep throughput: the original project's way of sweeping against seqicl's, in one run.

    python bench/sweep_throughput.py --seconds 240 --out bench/results/sweep-throughput-<card>-<date>.md
    python bench/sweep_throughput.py --models transformer --seconds 60 --original-seconds 420 --mps

Both sides sweep induction head for the same models, over the same search space, with the same
epoch budget per trial and the same wall-clock budget per model (``--original-seconds`` gives the
original side longer, to measure its time to the target, or bound it from below, when it is slow):

- original: the whole grid in order, one trial at a time on the GPU, no early stopping, eager steps;
- seqicl:   Optuna (TPE) + ASHA, ``--trials-per-gpu`` trials packed on the GPU, graph-captured steps.

Printed per side: trials per GPU-hour, training steps per second summed over trials, GPU-seconds
until the first trial reaches 97% test accuracy, the best test accuracy found (best-validation
trial), and the ratios. Then a per-model step-time table, eager against graph-captured, at the
original configuration (d_model 64, 2 layers, batch 32, length 31). ``--cpu`` runs the same
plumbing on a CPU with tiny budgets (a check of the script, not a measurement).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqicl.atomic import atomic_write_text  # noqa: E402

from analysis.results import best_trial, load_trials  # noqa: E402
from seqicl.data import load_task  # noqa: E402
from seqicl.models import MIXERS, build_model  # noqa: E402
from seqicl.train.optim import make_optimizer  # noqa: E402
from seqicl.train.step import make_step  # noqa: E402
from sweeps import mps, tune_backend  # noqa: E402
from seqicl.config import set_dotted  # noqa: E402
from sweeps.asha import Rungs  # noqa: E402
from sweeps.compose import compose  # noqa: E402
from sweeps.options import Cluster  # noqa: E402
from sweeps.search_space import Param, load_space  # noqa: E402
from sweeps.study import FixedTrials, OptunaTrials  # noqa: E402

TARGET = 0.97


def side_stats(exp_dir: Path, started: float, wall: float, steps_per_epoch: int) -> dict:
    trials = load_trials(exp_dir)
    rows = {t.trial_id: t.epochs for t in trials}
    ended = [t for t in trials if t.status in ("finished", "stopped", "diverged")]
    epochs = sum(len(r) for r in rows.values())
    hits = [r["timestamp"] - started for rs in rows.values() for r in rs if r.get("test_accuracy", 0) >= TARGET]
    best = best_trial(trials)
    return {"trials_started": len(trials), "trials_ended": len(ended), "wall_s": wall,
            "trials_per_gpu_hour": len(ended) / (wall / 3600), "steps_per_s": epochs * steps_per_epoch / wall,
            "to_target_s": min(hits) if hits else None, "best_test": 100 * best.test_at_best if best else None}


def original_grid(space: dict[str, Param], points: int = 3) -> list[dict]:
    """The original project's exhaustive grid, in its order: every choice, a few points of a range."""
    axes = []
    for key, p in sorted(space.items()):
        if p.kind == "choice":
            values = list(p.args)
        else:
            lo, hi = p.args
            if p.kind == "randint":
                values = sorted({round(lo + (hi - lo) * i / (points - 1)) for i in range(points)})
            elif p.kind == "loguniform":
                values = [lo * (hi / lo) ** (i / (points - 1)) for i in range(points)]
            else:
                values = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
        axes.append([(key, v) for v in values])
    return [dict(combo) for combo in itertools.product(*axes)]


def sweep_side(style: str, model: str, args, storage: Path) -> dict:
    """original: the whole grid in order, one trial at a time, a fresh process per trial, no
    early stopping; seqicl: Optuna + ASHA, packed trials, reused processes."""
    graph = style == "seqicl" and not args.cpu
    overrides = [f"train.epochs={args.epochs}", f"train.cuda_graph={str(graph).lower()}"]
    cfg = compose("induction", model, overrides)
    cfg["train"]["progress"] = False
    load_task(cfg["task"], cfg["data"]["cache_dir"])
    space = load_space("induction", model, cfg)
    for key, p in list(space.items()):
        if p.kind == "fixed":
            set_dotted(cfg, key, space.pop(key).args[0])
    gpus = 0.0 if args.cpu else (1.0 if style == "original" else 1.0 / args.trials_per_gpu)
    concurrent = 1 if style == "original" else (2 if args.cpu else args.trials_per_gpu)
    exp_dir = storage / f"{style}-{model}"
    if style == "original":
        jobs = {}
        for i, values in enumerate(original_grid(space)):
            jobs[f"{i:04d}"] = copy.deepcopy(cfg)
            for key, value in values.items():
                set_dotted(jobs[f"{i:04d}"], key, value)
        source, rungs = FixedTrials(exp_dir, jobs), None
    else:
        source = OptunaTrials(exp_dir, cfg, space, seed=0, num_samples=10_000)
        rungs = Rungs(max(1, args.epochs // 10), 3, args.epochs)
    lane = tune_backend.Lane(f"{style}/{model}", exp_dir, source, rungs, source.remaining())
    # each side on its own cluster: MPS only under seqicl's, and only with --mps
    cluster = Cluster(concurrent, gpus, 1.0, 0, args.original_seconds if style == "original" else args.seconds,
                      None, "on" if style == "seqicl" and args.mps else "off", False)
    clock = {}

    def prepare(_cluster):  # the clock starts once Ray is up, as the trials can
        clock["start"] = time.time()
        return [lane]

    tune_backend.run_experiments(prepare, cluster, storage=storage, name=f"{style}-{model}", root=ROOT,
                                 reuse_actors=style != "original")
    started = clock["start"]
    wall = time.time() - started
    return side_stats(exp_dir, started, wall, cfg["task"]["num_train"] // cfg["train"]["batch_size"])


def step_times(models: list[str], cpu: bool) -> list[str]:
    import triton.testing
    rows = ["| model | eager ms/step | graph ms/step | speed-up | graphed? |", "|---|---:|---:|---:|---|"]
    device = torch.device("cpu" if cpu else "cuda")
    for name in models:
        times, note = [], ""
        for graph in (False, True):
            torch.manual_seed(0)
            model = build_model({"name": name, "d_model": 64, "n_layers": 2}, 20, 31).to(device)
            opt = make_optimizer(model, {"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.98}, device,
                                 capturable=graph and not cpu)
            x = torch.randint(0, 20, (32, 31), device=device)
            step, why = make_step(model, opt, 1.0, x, x, graph and not cpu)
            note = note or (why or "")
            order = torch.arange(32, device=device).view(1, 32)  # an epoch of one step

            def one_step():
                step.epoch(x, x, order, [1e-3])
            if cpu:
                t0 = time.perf_counter()
                for _ in range(5):
                    one_step()
                times.append((time.perf_counter() - t0) / 5 * 1e3)
            else:
                times.append(triton.testing.do_bench(one_step, warmup=25, rep=200, return_mode="median"))
        rows.append(f"| {name} | {times[0]:.3f} | {times[1]:.3f} | {times[0] / times[1]:.1f}x | "
                    f"{'no (CPU run)' if cpu else 'no: ' + note if note else 'yes'} |")
        print(rows[-1], flush=True)
    return rows


def fmt(x, missing: str = "-") -> str:
    return missing if x is None else f"{x:.1f}"


def comparison(orig: dict, fast: dict) -> list[str]:
    """The Markdown table of one model: each measure for both sides and seqicl's gain."""
    lines = ["| | original | seqicl | ratio |", "|---|---:|---:|---:|"]
    for key, label, better in (("trials_per_gpu_hour", "trials per GPU-hour", "up"),
                               ("steps_per_s", "steps/s summed over trials", "up"),
                               ("to_target_s", f"GPU-seconds to first {TARGET:.0%} test accuracy", "down"),
                               ("best_test", "best test accuracy, % (best-val trial)", "up")):
        a, b = orig[key], fast[key]
        missing = "not reached" if key == "to_target_s" else "-"
        a_text = fmt(a, missing)
        if key == "to_target_s" and a is None and b:
            # the original side never got there: its whole budget is a lower bound on its time
            ratio, a_text = f"> {orig['wall_s'] / b:.1f}x", f"not reached in {orig['wall_s']:.0f}"
        elif a is None or b is None or min(a, b) == 0:
            ratio = "-"
        else:
            ratio = f"{b / a:.1f}x" if better == "up" else f"{a / b:.1f}x"
        lines.append(f"| {label} | {a_text} | {fmt(b, missing)} | {ratio} |")
    lines.append(f"| trials started / ended | {orig['trials_started']} / {orig['trials_ended']} "
                 f"| {fast['trials_started']} / {fast['trials_ended']} | |")
    return lines


def publish(title: str, body: list[str], args) -> int:
    """Title line, body, then the per-model step-time table: printed, and written to --out."""
    # the card's name only now: this process makes no CUDA context before MPS has come and gone
    card = "CPU" if args.cpu else torch.cuda.get_device_name()
    lines = [f"# {title}: {card}, {datetime.date.today()}"] + body
    lines += ["## One training step, eager against graph-captured", ""] + step_times(sorted(MIXERS), args.cpu)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="transformer,lstm")
    p.add_argument("--seconds", type=float, default=240, help="wall-clock budget per side and model")
    p.add_argument("--original-seconds", type=float, default=None,
                   help="a longer budget for the original side (default: --seconds), so that its time to the "
                        "target can be measured, or bounded from below, when it is slow to get there")
    p.add_argument("--epochs", type=int, default=60, help="epoch budget per trial (both sides)")
    p.add_argument("--trials-per-gpu", type=int, default=16)
    p.add_argument("--storage", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--mps", action="store_true", help="run the seqicl side's packed trials under NVIDIA MPS")
    p.add_argument("--cpu", action="store_true", help="plumbing check on a CPU (tiny budgets, no graphs)")
    p.add_argument("--steps-only", action="store_true", help="only the per-model step-time table (no sweeps)")
    args = p.parse_args()
    if args.mps and (args.cpu or mps.mps_available()):
        print(f"error: --mps: {'not with --cpu' if args.cpu else mps.mps_available()}", file=sys.stderr)
        return 2
    if not args.cpu and not torch.cuda.is_available():
        print("error: needs a CUDA GPU (or --cpu for a plumbing check)", file=sys.stderr)
        return 2
    command = shlex.join(["python"] + sys.argv)
    if args.steps_only:
        return publish("Step times", ["", f"`{command}`", ""], args)
    args.original_seconds = args.original_seconds or args.seconds
    models = args.models.split(",")
    storage = Path(args.storage or tempfile.mkdtemp(prefix="seqicl-throughput-")).resolve()
    lines = ["", f"`{command}`", "", f"induction head; {args.epochs} epochs per trial; {args.original_seconds:.0f} s (original) and "
             f"{args.seconds:.0f} s (seqicl) per model; "
             f"seqicl packs {args.trials_per_gpu} trials per GPU with graph-captured steps"
             f"{' under MPS' if args.mps else ''}; results in {storage}", ""]
    sides: dict[str, dict[str, dict]] = {"original": {}, "seqicl": {}}
    for style in ("original", "seqicl"):
        for model in models:
            sides[style][model] = sweep_side(style, model, args, storage)
    for model in models:
        block = [f"## {model}", ""] + comparison(sides["original"][model], sides["seqicl"][model]) + [""]
        print("\n".join(block), flush=True)
        lines += block
    return publish("Sweep throughput", lines, args)


if __name__ == "__main__":
    sys.exit(main())
