"""Does a run killed mid-way and started again end where an uninterrupted one ends? On the
device the sweep uses (graph-captured steps on a GPU), one run straight, one interrupted after
epoch K and continued from its state, then the per-epoch differences.

    python bench/resume_exactness.py [--device cuda] [--model transformer] [--epochs 8] [--kill-after 5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqicl.config import compose  # noqa: E402
from seqicl.train import train  # noqa: E402
from seqicl.train.record import RunRecord  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="transformer")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--kill-after", type=int, default=5)
    args = p.parse_args()
    cfg = compose([f"model={args.model}", f"train.epochs={args.epochs}", "train.state_every=2",
                   "train.progress=false", f"device={args.device}", "task.num_train=2000"])
    tmp = Path(tempfile.mkdtemp(prefix="seqicl-resume-"))
    straight = []
    train(cfg, run_dir=tmp / "straight", on_epoch=straight.append)

    def stop(m):
        if m["epoch"] == args.kill_after:
            raise KeyboardInterrupt
    try:
        train(cfg, run_dir=tmp / "resumed", on_epoch=stop)
    except KeyboardInterrupt:
        pass
    train(cfg, run_dir=tmp / "resumed")
    rows = RunRecord(tmp / "resumed").epochs()
    print(f"{args.model} on {args.device}: {args.epochs} epochs, interrupted after epoch {args.kill_after}")
    print("| epoch | train_loss straight | resumed | val_accuracy straight | resumed |")
    print("|---:|---:|---:|---:|---:|")
    worst = 0.0
    for a, b in zip(straight, rows):
        worst = max(worst, abs(a["train_loss"] - b["train_loss"]))
        print(f"| {a['epoch']} | {a['train_loss']:.6f} | {b['train_loss']:.6f} | {a['val_accuracy']:.4f} | {b['val_accuracy']:.4f} |")
    print(f"epochs in the resumed record: {[r['epoch'] for r in rows]}; largest train-loss difference {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
