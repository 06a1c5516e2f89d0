"""The short causal convolutions of Mamba, Hyena and H3 (seqicl.ops.short_conv) at the RegBench
shape: "conv1d" (cuDNN's depthwise convolution, what the models used so far) against "shift"
(K shifted, scaled copies added), alone and inside each model's whole training step.

    python bench/short_conv.py [--out FILE.md]      # on a GPU, about 2 minutes
    python bench/short_conv.py --cpu                # plumbing check (tiny sizes, not a measurement)

Rows 1: forward + backward of the convolution alone on (32, 1000, channels), float32 and bfloat16,
channels and taps as each model has them at the paper's best size (bench/regbench_steps.py
PAPER_SIZES). Rows 2: ms per graph-captured bf16 training step of those three models with each
method (bench/regbench_steps.py's timing). The ratio is shift over conv1d (below 1: shift is
faster). seqicl.ops.short_conv.METHOD should follow rows 2.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import regbench_steps  # noqa: E402
from seqicl.atomic import atomic_write_text  # noqa: E402
from seqicl.models import build_model  # noqa: E402
from seqicl.ops import short_conv  # noqa: E402

MODELS = ("mamba", "hyena", "h3")


def conv_weight(name: str, cpu: bool) -> torch.Tensor:
    """The (channels, taps) weight of the model's first short convolution at the bench size."""
    cfg = regbench_steps.model_config(name, cpu)
    mixer = build_model(cfg["model"], regbench_steps.VOCAB, 64).blocks[0].mixer
    weight = {"mamba": lambda m: m.conv.weight, "hyena": lambda m: m.short.weight, "h3": lambda m: m.shift}[name](mixer)
    return weight.detach().reshape(weight.shape[0], -1)


def time_ms(fn, device: torch.device, repeats: int) -> float:
    times = []
    for i in range(repeats + 1):   # the first call warms up (cuDNN plans, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def op_rows(device: torch.device, length: int, repeats: int) -> list[str]:
    rows = ["| model | channels x taps | dtype | conv1d ms | shift ms | shift / conv1d |", "|---|---|---|---:|---:|---:|"]
    print("\n".join(rows), flush=True)
    for name in MODELS:
        w = conv_weight(name, device.type == "cpu").to(device).requires_grad_()
        C, K = w.shape
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(regbench_steps.BATCH, length, C, device=device, dtype=dtype, requires_grad=True)
            g = torch.randn_like(x)
            ms = {}
            for method in short_conv.METHODS:
                def run():
                    y = short_conv.causal_depthwise_conv(x, w.to(dtype), method=method)
                    torch.autograd.grad(y, (x, w), g)
                ms[method] = time_ms(run, device, repeats)
            rows.append(f"| {name} | {C} x {K} | {str(dtype)[6:]} | {ms['conv1d']:.3f} | {ms['shift']:.3f} | "
                        f"{ms['shift'] / ms['conv1d']:.2f} |")
            print(rows[-1], flush=True)
    return rows


def step_rows(device: torch.device, length: int, steps: int, repeats: int, precision: str) -> list[str]:
    rows = [f"| model | layers x width | {precision} step ms, conv1d | shift | shift / conv1d |", "|---|---|---:|---:|---:|"]
    print("\n".join(rows), flush=True)
    default = short_conv.METHOD
    for name in MODELS:
        ms, size = {}, ""
        try:
            for method in short_conv.METHODS:
                short_conv.METHOD = method
                r = regbench_steps.time_steps(name, precision, length, steps, repeats, device)
                ms[method], size = r["ms"], r["size"]
        finally:
            short_conv.METHOD = default
        rows.append(f"| {name} | {size} | {ms['conv1d']:.2f} | {ms['shift']:.2f} | {ms['shift'] / ms['conv1d']:.2f} |")
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="plumbing check on a CPU (tiny sizes)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.cpu:
        device, length, steps, repeats, precision = torch.device("cpu"), 32, 2, 1, "fp32"
    elif not torch.cuda.is_available():
        print("error: bench/short_conv.py needs a CUDA GPU (--cpu for a plumbing check)", file=sys.stderr)
        return 2
    else:
        device, length, steps, repeats, precision = torch.device("cuda"), 1000, 20, 3, "bf16"
    card = "CPU (plumbing check, not a measurement)" if args.cpu else torch.cuda.get_device_name()
    head = [f"# Short causal convolutions, conv1d against shift: {card}, {datetime.date.today()}",
            f"torch {torch.__version__}; batch {regbench_steps.BATCH}, length {length}; median of {repeats}", ""]
    print("\n".join(head), flush=True)
    lines = head + op_rows(device, length, repeats) + [""] + step_rows(device, length, steps, repeats, precision)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
