"""Training-step times at the RegBench shape, every registered model at the paper's best size.

    python bench/regbench_steps.py [--precisions fp32,tf32,bf16] [--length 720] [--out FILE.md]
    python bench/regbench_steps.py --cpu        # plumbing check on a CPU (tiny sizes, not a measurement)

For each model: the RegBench paper's best size at 40k examples (In-Context Language Learning,
Akyurek et al. 2024; ``PAPER_SIZES`` below, from ``../shared/design.md``), batch 32, vocabulary
20, sequences of ``--length`` tokens (default ``REGBENCH_LENGTH``, the padded length of seqicl's
RegBench sets; the first table, of 2026-12-06, was made at 1,000). One training
step (forward, backward, clipping, AdamW) as a sweep trial takes it: replayed from a CUDA graph
(``seqicl.train.step.make_step``; a model that cannot be captured runs eagerly and the row says
so). Printed per model and precision: parameters, ms per step, tokens per second and the peak
GPU memory of one trial. ``tf32`` is fp32 with TF32 matmuls; ``bf16`` runs the forward under
bfloat16 autocast (weights and optimiser state stay fp32), as ``train.precision=bf16`` does.
The precision that is faster here is only worth taking where accuracy holds (bench/precision.py).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqicl.atomic import atomic_write_text  # noqa: E402
from seqicl.config import compose  # noqa: E402
from seqicl.data.regbench import generate  # noqa: E402
from seqicl.models import MIXERS, build_model  # noqa: E402
from seqicl.train.buckets import epoch_batches, make_buckets, supervised_lengths  # noqa: E402
from seqicl.train.optim import make_optimizer  # noqa: E402
from seqicl.train.step import make_bucketed_step, make_step  # noqa: E402

# (layers, d_model, extra overrides): the paper's best at 40k examples. GILR, LRU and GLA are
# not in its table: GLA takes its linear-attention siblings' size, GILR and LRU the other
# recurrent models'.
PAPER_SIZES = {
    "transformer": (12, 128, ["model.mixer.n_heads=2"]),
    "mamba": (8, 512, []),
    "linear_transformer": (4, 256, []),
    "retnet": (4, 256, []),
    "gla": (4, 256, []),
    "hyena": (4, 256, []),
    "h3": (4, 128, []),
    "rwkv": (4, 128, []),
    "s4d": (4, 128, []),
    "gilr": (4, 128, []),
    "lru": (4, 128, []),
    "lstm": (2, 256, []),
}
FALLBACK_SIZE = (4, 128, [])  # a model registered after this table was written
BATCH, VOCAB = 32, 20
# The padded length of seqicl's RegBench sets: the longest example over the test, validation and
# training automata, 716 at 1k-5k training examples and 720 at 10k-40k (generator version 3).
# The "about 1,000" was an estimate: timing at 1,000 overstates every step.
REGBENCH_LENGTH = 720


def model_config(name: str, cpu: bool) -> dict:
    layers, width, extra = PAPER_SIZES.get(name, FALLBACK_SIZE)
    if cpu:  # plumbing only: the smallest model that exercises the same code
        layers, width = 1, 16
        extra = [e for e in extra if "n_heads" not in e]
    return compose([f"model={name}", "task=dfa", f"model.n_layers={layers}", f"model.d_model={width}", *extra])


def trial(name: str, precision: str, length: int, device: torch.device) -> tuple[dict, torch.nn.Module, object, bool]:
    """A sweep trial's config, model, optimiser and whether its step is captured, at ``precision``."""
    cfg = model_config(name, device.type == "cpu")
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    model = build_model(cfg["model"], VOCAB, length).to(device)
    graph = device.type == "cuda"
    return cfg, model, make_optimizer(model, cfg["optim"], device, capturable=graph), graph


@functools.lru_cache(maxsize=2)
def real_examples(num_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RegBench training inputs and targets as the sweep pads them (generated once per size)."""
    data = generate(compose(["task=dfa", f"task.num_train={num_train}", "task.num_val=16", "task.num_test=16"])["task"])
    return data.train.inputs, data.train.targets


def time_steps(name: str, precision: str, length: int, steps: int, repeats: int, device: torch.device) -> dict:
    cfg, model, opt, graph = trial(name, precision, length, device)
    x = torch.randint(0, VOCAB, (BATCH * steps, length), device=device)
    y = torch.randint(0, VOCAB, (BATCH * steps, length), device=device)
    if graph:
        torch.cuda.reset_peak_memory_stats(device)
    step, why_eager = make_step(model, opt, cfg["train"]["grad_clip"], x, y, graph,
                                bf16=precision == "bf16", batch_size=BATCH)
    order = torch.arange(BATCH * steps, device=device).view(steps, BATCH)
    lrs = [cfg["optim"]["lr"]] * steps
    per_step = []
    for i in range(repeats + 1):  # the first epoch warms up (allocator, cuDNN plans)
        if graph:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss = step.epoch(x, y, order, lrs)
        float(loss)  # waits for the epoch's last step
        if i:
            per_step.append((time.perf_counter() - t0) / steps)
    ms = 1e3 * statistics.median(per_step)
    return {"size": f"{cfg['model']['n_layers']} x {cfg['model']['d_model']}",
            "params": sum(p.numel() for p in model.parameters()), "ms": ms,
            "tokens_s": BATCH * length / (ms / 1e3), "loss": float(loss) / steps,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if graph else None,
            "graph": graph and why_eager is None, "why_eager": why_eager}


def time_real_epochs(name: str, precision: str, n_buckets: int, repeats: int, device: torch.device) -> dict:
    """Epochs on real RegBench examples (1,000 of them, padded to the set's width as the sweep
    does), with ``n_buckets`` length buckets (train.length_buckets; 1: padded batches): ms per step
    and real (unpadded) tokens per second."""
    inputs, targets = real_examples(1000 if device.type == "cuda" else 64)
    x, y = inputs.to(device), targets.to(device)
    cfg, model, opt, graph = trial(name, precision, x.shape[1], device)
    lengths = supervised_lengths(y)
    buckets = make_buckets(lengths, n_buckets, BATCH, x.shape[1])
    step, why_eager = make_bucketed_step(model, opt, cfg["train"]["grad_clip"], x, y, [b.length for b in buckets],
                                         graph, bf16=precision == "bf16", batch_size=BATCH)
    gen = torch.Generator().manual_seed(0)
    per_step, tokens = [], 0
    for i in range(repeats + 1):  # the first epoch warms up
        batches = epoch_batches(buckets, BATCH, gen)
        if graph:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        float(step.epoch_batches(batches, [cfg["optim"]["lr"]] * len(batches), device))
        if i:
            per_step.append((time.perf_counter() - t0) / len(batches))
            tokens = int(sum(lengths[rows].sum() for _, rows in batches)) / len(batches)
    ms = 1e3 * statistics.median(per_step)
    return {"ms": ms, "tokens_s": tokens / (ms / 1e3), "widths": [b.length for b in buckets],
            "graph": graph and why_eager is None, "why_eager": why_eager}


def real_data_rows(models: list[str], precisions: list[str], n_buckets: int, repeats: int,
                   device: torch.device) -> list[str]:
    rows = ["| model | precision | batches | widths | ms/step | real tokens/s | against padded |",
            "|---|---|---|---|---:|---:|---:|"]
    for name in models:
        for precision in precisions:
            results = {}
            for n in (1, n_buckets):
                try:
                    results[n] = time_real_epochs(name, precision, n, repeats, device)
                except Exception as e:
                    results[n] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            for n, r in results.items():
                label = "padded" if n == 1 else f"{n} length buckets"
                if "error" in r:
                    rows.append(f"| {name} | {precision} | {label} | | failed: {r['error']} | | |")
                else:
                    base = results[1].get("ms")
                    ratio = f"{r['ms'] / base:.2f}" if base else ""
                    rows.append(f"| {name} | {precision} | {label} | {', '.join(map(str, r['widths']))} | "
                                f"{r['ms']:.2f} | {r['tokens_s']:,.0f} | {ratio} |")
                print(rows[-1], flush=True)
    return rows


def table(models: list[str], precisions: list[str], length: int, steps: int, repeats: int,
          device: torch.device) -> list[str]:
    rows = ["| model | layers x width | parameters | precision | ms/step | tokens/s | peak GiB | step |",
            "|---|---|---:|---|---:|---:|---:|---|"]
    for name in models:
        layers, width, _ = PAPER_SIZES.get(name, FALLBACK_SIZE)
        for precision in precisions:
            try:
                r = time_steps(name, precision, length, steps, repeats, device)
            except Exception as e:  # one model's failure is a row, not the end of the table
                rows.append(f"| {name} | {layers} x {width} | | {precision} | failed: "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} | | | |")
            else:
                kind = "graph" if r["graph"] else ("eager (CPU)" if device.type == "cpu" else f"eager: {r['why_eager']}")
                peak = "—" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
                rows.append(f"| {name} | {r['size']} | {r['params']:,} | {precision} | {r['ms']:.2f} | "
                            f"{r['tokens_s']:,.0f} | {peak} | {kind} |")
            print(rows[-1], flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated (default: every registered model)")
    p.add_argument("--precisions", default="fp32,tf32,bf16")
    p.add_argument("--length", type=int, default=REGBENCH_LENGTH, help=f"sequence length ({REGBENCH_LENGTH}: RegBench's)")
    p.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs; the median is printed")
    p.add_argument("--buckets", type=int, default=0, help="also time epochs of real RegBench examples, padded "
                   "and in this many length buckets (train.length_buckets)")
    p.add_argument("--cpu", action="store_true", help="plumbing check on a CPU (tiny sizes)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    models = args.models.split(",") if args.models else list(PAPER_SIZES) + sorted(set(MIXERS) - set(PAPER_SIZES))
    unknown = [m for m in models if m not in MIXERS]
    precisions = args.precisions.split(",")
    bad = [q for q in precisions if q not in ("fp32", "tf32", "bf16")]
    if unknown or bad:
        print(f"error: unknown {'model' if unknown else 'precision'} {(unknown or bad)[0]!r}", file=sys.stderr)
        return 2
    if args.cpu:
        device, length, steps, repeats = torch.device("cpu"), min(args.length, 64), 2, 1
    elif not torch.cuda.is_available():
        print("error: bench/regbench_steps.py needs a CUDA GPU (--cpu for a plumbing check)", file=sys.stderr)
        return 2
    else:
        device, length, steps, repeats = torch.device("cuda"), args.length, args.steps, args.repeats
    card = "CPU (plumbing check, not a measurement)" if args.cpu else torch.cuda.get_device_name()
    head = [f"# Training steps at the RegBench shape: {card}, {datetime.date.today()}",
            f"torch {torch.__version__}; batch {BATCH}, length {length}, vocabulary {VOCAB}; the paper's best "
            f"size per model (bench/regbench_steps.py PAPER_SIZES); median over {repeats} epochs of {steps} steps", ""]
    print("\n".join(head), flush=True)
    lines = head + table(models, precisions, length, steps, repeats, device)
    if args.buckets > 1:
        lines += ["", f"Real examples ({'1,000' if not args.cpu else '64'} RegBench training examples, the set's own "
                  "padded width), padded batches against length buckets; real tokens exclude padding:", ""]
        print("\n".join(lines[-3:]), flush=True)
        lines += real_data_rows(models, precisions, args.buckets, repeats, device)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
