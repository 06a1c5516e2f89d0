"""Packing: training throughput when N independent processes share one GPU, without and with MPS.

    python bench/packing.py --mps --out bench/results/packing-<card>-<date>.md
    python bench/packing.py --cpu          # plumbing check on a CPU (not a measurement)

What a packed sweep does (``sweeps/run.py --trials-per-gpu N``), without Ray and data loading:
for each N in --procs, N fresh processes each build a model (d_model 64, 2 layers, vocabulary
20), take training steps of batch 32 and length 31, and after warm-up all start together and
step for --seconds. Printed per row: total steps/s over the N processes, per process, the
scaling against N=1, and with --mps the ratio to the same row without MPS.

MPS: the "off" rows run first; then the control daemon is started (sweeps/mps.py), the same rows
run again, and it is stopped. A process joins MPS only if the daemon already runs when it first
initialises CUDA: the workers are fresh processes started after the daemon, and this parent never
uses CUDA (its GPU check asks NVML; the card's name comes from a worker).
"""
from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import queue
import shlex
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqicl.atomic import atomic_write_text  # noqa: E402

from sweeps import mps  # noqa: E402  (no torch: importing it touches no GPU)

SETUP_TIMEOUT_S = 600  # model building and graph capture, 16 processes at once
EPOCH_STEPS = 10


def worker(rank: int, opts: dict, barrier, results) -> None:
    """One process of a packed GPU: build, warm up, wait for the others, step for opts["seconds"]."""
    try:
        import torch

        from seqicl.models import build_model
        from seqicl.train.optim import make_optimizer
        from seqicl.train.step import make_step

        torch.set_num_threads(1)  # N processes share the CPU cores, as packed trials do
        device = torch.device("cpu" if opts["cpu"] else "cuda")
        torch.manual_seed(rank)
        # a trial's shape (bench/sweep_efficiency.py packs the sweep's own trials), or the default
        shape = opts["shapes"][rank % len(opts["shapes"])] if opts.get("shapes") else {
            "model": {"name": opts["model"], "d_model": 64, "n_layers": 2}, "vocab": 20, "length": 31, "batch": 32}
        vocab = shape["vocab"]
        model = build_model(shape["model"], vocab, shape["length"]).to(device)
        opt = make_optimizer(model, shape.get("optim", {"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.98}),
                             device, capturable=opts["graph"])
        # an epoch as a trial steps through one: EPOCH_STEPS batches of a training set in a fixed
        # order (the order does not change the cost), the rate set every step
        bs = shape["batch"]
        data = torch.randint(0, vocab, (EPOCH_STEPS * bs, shape["length"]), device=device)
        step, why = make_step(model, opt, shape.get("grad_clip", 1.0), data, data, opts["graph"],
                              bf16=shape.get("bf16", False), batch_size=bs)
        order = torch.arange(EPOCH_STEPS * bs, device=device).view(EPOCH_STEPS, bs)
        lrs = [1e-3] * EPOCH_STEPS
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        step.epoch(data, data, order, lrs)
        sync()
        card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
        barrier.wait(timeout=SETUP_TIMEOUT_S)
        steps, start = 0, time.perf_counter()
        deadline = start + opts["seconds"]
        while time.perf_counter() < deadline:
            step.epoch(data, data, order, lrs)  # asynchronous: the count is settled by the sync below
            steps += EPOCH_STEPS
        sync()
        results.put({"rank": rank, "steps": steps, "seconds": time.perf_counter() - start, "why": why, "card": card,
                     "name": shape["model"]["name"]})
    except BaseException:
        barrier.abort()  # the others stop waiting
        results.put({"rank": rank, "error": traceback.format_exc()})


def regbench_shape(name: str, length: int, cpu: bool) -> dict:
    """A trial at RegBench's shape: the model at the paper's best size, its optimiser settings."""
    sys.path.insert(0, str(ROOT / "bench"))
    from regbench_steps import BATCH, VOCAB, model_config
    cfg = model_config(name, cpu)
    return {"model": cfg["model"], "optim": cfg["optim"], "grad_clip": cfg["train"]["grad_clip"],
            "vocab": VOCAB, "length": 16 if cpu else length, "batch": BATCH}


def describe(shape: dict) -> str:
    m = shape["model"]
    return (f"{m['n_layers']} x {m['d_model']}, batch {shape['batch']}, length {shape['length']}"
            + (", bf16 autocast" if shape.get("bf16") else ""))


def run_row(n: int, opts: dict) -> dict:
    """N processes at once; their summed steps/s, the card and why a step was not graph-captured."""
    ctx = mp.get_context("spawn")  # fresh interpreters, as Ray's workers are
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, opts, barrier, results)) for r in range(n)]
    for p in procs:
        p.start()
    got, deadline = [], time.time() + SETUP_TIMEOUT_S + opts["seconds"] + 60
    try:
        while len(got) < n:
            try:
                got.append(results.get(timeout=5))
            except queue.Empty:  # a worker killed outright (out of memory, a crash) reports nothing
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead or time.time() > deadline:
                    barrier.abort()
                    raise RuntimeError(f"{n} workers: {len(got)} reported; exit codes "
                                       f"{[p.exitcode for p in procs]}") from None
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [g for g in got if "error" in g]
    if errors:
        raise RuntimeError(f"worker {errors[0]['rank']} of {n} failed:\n{errors[0]['error']}")
    return {"total": sum(g["steps"] / g["seconds"] for g in got), "card": got[0]["card"],
            "why": next((g["why"] for g in got if g["why"]), None),
            "per_rank": {g["rank"]: g["steps"] / g["seconds"] for g in got}}


def ratio(row: dict, base: dict | None) -> str:
    return f"{row['total'] / base['total']:.2f}x" if base else "-"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", default=None, help="comma-separated process counts (default 1,4,16; --cpu: 1,2)")
    p.add_argument("--seconds", type=float, default=None, help="timed stepping per row (default 20; --cpu: 2)")
    p.add_argument("--model", default="transformer")
    p.add_argument("--regbench", action="store_true",
                   help="the model at RegBench's shape instead: the paper's best size (bench/regbench_steps.py), "
                        "length --length, batch 32")
    p.add_argument("--length", type=int, default=720, help="sequence length with --regbench (720: the padded "
                   "length of seqicl's RegBench sets, bench/regbench_steps.py REGBENCH_LENGTH)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast steps, as train.precision=bf16")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--graph", action="store_true", help="graph-captured steps only (default: both)")
    mode.add_argument("--eager", action="store_true", help="eager steps only (default: both)")
    p.add_argument("--mps", action="store_true", help="run every row again with the MPS control daemon started")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    p.add_argument("--cpu", action="store_true", help="plumbing check on a CPU: eager, no MPS, tiny budgets")
    args = p.parse_args(argv)
    try:
        args.procs = [int(x) for x in (args.procs or ("1,2" if args.cpu else "1,4,16")).split(",") if x.strip()]
    except ValueError:
        p.error(f"--procs takes comma-separated integers, got '{args.procs}'")
    if not args.procs or min(args.procs) < 1:
        p.error("--procs counts must be at least 1")
    args.seconds = args.seconds if args.seconds is not None else (2.0 if args.cpu else 20.0)
    if args.cpu and (args.mps or args.graph):
        p.error("--cpu runs eager steps without MPS (drop --mps/--graph)")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from seqicl.models import MIXERS
    if args.model not in MIXERS:
        print(f"error: unknown model '{args.model}' (choose from {', '.join(sorted(MIXERS))})", file=sys.stderr)
        return 2
    if not args.cpu:
        # through NVML: no cuInit here before the daemon starts (see the module's docstring)
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
        import torch
        if not torch.cuda.is_available():
            print("error: needs a CUDA GPU (or --cpu for a plumbing check)", file=sys.stderr)
            return 2
    if args.mps:
        why = mps.mps_available()
        if why:
            print(f"error: --mps: {why}", file=sys.stderr)
            return 2
    if not args.cpu and mps.running():  # its clients would be every "off" row
        print(f"error: an MPS control daemon already answers at "
              f"{os.environ.get('CUDA_MPS_PIPE_DIRECTORY', '/tmp/nvidia-mps')}: the rows without MPS would use it; "
              f"stop it first (echo quit | {mps.BINARY})", file=sys.stderr)
        return 2

    shapes = None
    if args.regbench or args.bf16:
        shapes = [regbench_shape(args.model, args.length, args.cpu) if args.regbench else
                  {"model": {"name": args.model, "d_model": 64, "n_layers": 2}, "vocab": 20, "length": 31, "batch": 32}]
        shapes[0]["bf16"] = args.bf16
    modes = ["eager"] if args.cpu or args.eager else ["graph"] if args.graph else ["eager", "graph"]
    rows, notes, card = [], [], "CPU"
    for use_mps in ([False, True] if args.mps else [False]):
        if use_mps and not mps.start_mps():
            print(f"error: --mps: {mps.last_error}", file=sys.stderr)
            return 2
        try:
            for mode in modes:
                for n in args.procs:
                    opts = {"model": args.model, "graph": mode == "graph", "seconds": args.seconds, "cpu": args.cpu,
                            "shapes": shapes}
                    r = run_row(n, opts)
                    card = r["card"]
                    note = f"{mode} rows stepped eagerly: {r['why']}"
                    if r["why"] and note not in notes:  # make_step fell back: a step it cannot capture
                        notes.append(note)
                    rows.append({"mode": mode, "mps": use_mps, "n": n, "total": r["total"]})
                    print(f"{mode} mps={'on' if use_mps else 'off'} procs={n}: {r['total']:.1f} steps/s", flush=True)
        finally:
            if use_mps:
                mps.stop_mps()

    command = shlex.join(["python"] + (sys.argv if argv is None else ["bench/packing.py", *argv]))
    lines = [f"# Packing: {card}, {datetime.date.today()}", "", f"`{command}`", "",
             f"{args.model}, {describe(shapes[0]) if shapes else 'd_model 64, 2 layers, batch 32, length 31'}; "
             f"{args.seconds:g} s of stepping per row, "
             "all processes of a row at once; steps/s summed over the processes." + (
                 " CPU plumbing check, not a measurement." if args.cpu else ""), "",
             "| mode | MPS | procs | total steps/s | per-proc steps/s | vs N=1 |" + (" vs MPS off |" if args.mps else ""),
             "|---|---|---:|---:|---:|---:|" + ("---:|" if args.mps else "")]
    for r in rows:
        one = next((o for o in rows if (o["mode"], o["mps"], o["n"]) == (r["mode"], r["mps"], 1)), None)
        off = next((o for o in rows if (o["mode"], o["mps"], o["n"]) == (r["mode"], False, r["n"])), None)
        lines.append(f"| {r['mode']} | {'on' if r['mps'] else 'off'} | {r['n']} | {r['total']:.1f} | "
                     f"{r['total'] / r['n']:.1f} | {ratio(r, one)} |"
                     + (f" {ratio(r, off) if r['mps'] else '-'} |" if args.mps else ""))
    lines += [""] + [f"- {n}" for n in notes]
    text = "\n".join(lines).rstrip() + "\n"
    print("\n" + text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
