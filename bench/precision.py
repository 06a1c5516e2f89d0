"""bf16 autocast against fp32: does bf16 keep the accuracy, and how much faster is it?

    python bench/precision.py [--task induction] [--models transformer,lstm] [--epochs 20]
                              [--out bench/results/precision-<card>-<date>.md]

Every model trains the same configuration twice, same seed and data, once with
``train.precision=fp32`` and once with ``train.precision=bf16``, through ``seqicl.train.loop.train``
with graph-captured steps. Printed: a Markdown table of the best test metric (at the best
validation epoch) of each, their difference in points, seconds per epoch (training and the
evaluation of each epoch; the first epoch, which pays for warm-ups, is left out) and the
speed-up; then a verdict per model: "keeps accuracy" when bf16's best test is at most one
point below fp32's. ``--cpu`` runs the same plumbing on a CPU with tiny budgets (200 training
and 100 validation and test sequences, 2 epochs; a check of the script, not a measurement).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import shlex
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqicl.atomic import atomic_write_text  # noqa: E402
from seqicl.config import compose  # noqa: E402
from seqicl.models import MIXERS  # noqa: E402
from seqicl.train.loop import train  # noqa: E402

TOLERANCE = 1.0  # points of test accuracy that bf16 may lose and still "keep accuracy"


def run(model: str, precision: str, args, run_dir: Path) -> dict:
    """One training run; returns train()'s summary plus ``s_per_epoch`` and ``note``."""
    cfg = compose([f"task={args.task}", f"model={model}", f"train.epochs={args.epochs}", "train.progress=false",
                   "train.checkpoint=false", f"train.cuda_graph={str(not args.cpu).lower()}",
                   f"train.precision={precision}", f"task.num_train={args.num_train}", f"optim.lr={args.lr}",
                   f"seed={args.seed}", f"device={'cpu' if args.cpu else 'cuda'}"]
                  + (["task.num_val=100", "task.num_test=100"] if args.cpu else []))
    times = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # train() says so when a step could not be graph-captured
        summary = train(cfg, on_epoch=lambda m: times.append(m["time_total_s"]), run_dir=run_dir)
    said = out.getvalue().strip()
    if said:
        print(said, flush=True)
    # seconds per epoch after the first (cuBLAS, autotuning and other warm-ups land in the first)
    summary["s_per_epoch"] = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else times[-1]
    notes = [summary["status"]] if summary["status"] != "finished" else []
    if "not graph-captured" in said:
        notes.append("eager (not graph-captured)")
    summary["note"] = ", ".join(notes)
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="induction")
    p.add_argument("--models", default=None, help="comma-separated (default: all registered models; "
                                                   "with --cpu transformer,lstm)")
    p.add_argument("--epochs", type=int, default=None, help="default 20 (2 with --cpu)")
    p.add_argument("--num-train", type=int, default=None, help="training sequences (default 5000; 200 with --cpu)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the Markdown here")
    p.add_argument("--cpu", action="store_true", help="plumbing check on a CPU (tiny budgets, no graphs)")
    args = p.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print("error: needs a CUDA GPU (or --cpu for a plumbing check)", file=sys.stderr)
        return 2
    args.epochs = args.epochs or (2 if args.cpu else 20)
    args.num_train = args.num_train or (200 if args.cpu else 5000)
    models = (args.models or ("transformer,lstm" if args.cpu else ",".join(sorted(MIXERS)))).split(",")
    unknown = [m for m in models if m not in MIXERS]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)} (choose from {', '.join(sorted(MIXERS))})",
              file=sys.stderr)
        return 2

    card = "CPU (plumbing check, not a measurement)" if args.cpu else torch.cuda.get_device_name()
    head = [f"# bf16 autocast against fp32: {card}, {datetime.date.today()}", "",
            f"`{shlex.join(['python', 'bench/precision.py', *sys.argv[1:]])}`", "",
            f"task {args.task}, {args.num_train} training sequences, {args.epochs} epochs, lr {args.lr:g}, "
            f"seed {args.seed}, {'eager steps' if args.cpu else 'graph-captured steps'}; best test = the test "
            f"metric at the best validation epoch; s/epoch leaves out the first epoch", "",
            "| model | fp32 best test acc | bf16 best test acc | difference | fp32 s/epoch | bf16 s/epoch | speed-up |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(head), flush=True)
    rows, verdicts = [], []
    with tempfile.TemporaryDirectory(prefix="seqicl-precision-") as tmp:
        for model in models:
            fp32, bf16 = (run(model, prec, args, Path(tmp) / f"{model}-{prec}") for prec in ("fp32", "bf16"))
            a, b = 100 * fp32["test_at_best"], 100 * bf16["test_at_best"]
            cells = [f"{a:.1f}%", f"{b:.1f}%"]
            cells = [c + (f" ({s['note']})" if s["note"] else "") for c, s in zip(cells, (fp32, bf16))]
            rows.append(f"| {model} | {cells[0]} | {cells[1]} | {b - a:+.1f} | {fp32['s_per_epoch']:.3f} | "
                        f"{bf16['s_per_epoch']:.3f} | {fp32['s_per_epoch'] / bf16['s_per_epoch']:.2f}x |")
            keeps = b >= a - TOLERANCE
            verdicts.append(f"- {model}: {'keeps accuracy' if keeps else 'loses accuracy'} "
                            f"({b - a:+.1f} points, {fp32['s_per_epoch'] / bf16['s_per_epoch']:.2f}x the fp32 speed)")
            print(rows[-1], flush=True)
    tail = ["", f"Verdict (bf16 keeps accuracy when its best test is at most {TOLERANCE:g} point below fp32's):",
            ""] + verdicts
    print("\n".join(tail))
    text = "\n".join(head + rows + tail) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
