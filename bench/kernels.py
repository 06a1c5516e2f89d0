"""Kernel and step-time benchmark (needs a CUDA GPU).

    python bench/kernels.py [--out bench/results/kernels-<card>-<date>.md]

For every kernel and shape: forward and forward+backward time of the Triton kernel and of the
torch reference, the speed-up, the forward's achieved bandwidth (bytes it must move: inputs read
once, outputs written once) and that as a percentage of the device-to-device copy bandwidth
measured in the same run, and the backward's time (forward + backward less forward) over the
forward's. Linear attention (d_model D as H=4 heads of K=V=D/4, so K=V=64 at
D=256) may be partly compute bound: its rows also give the forward's TFLOP/s, counting the
matmuls of the chunked form (per step and head 2C(K+V) for the chunk's scores and their product
with v, 4KV for the state's; with a decay per key the scores take log2(C) matmuls, not counted).
Then, for each kernel's forward at the large shape, every Triton launch it makes with its programs,
registers and shared memory as compiled, and the programs and warps an SM holds at once
(bench/occupancy.py): a kernel far above its instruction floor (bench/sass_report.py) with few
warps an SM waits on latency it cannot hide. Then one training step (forward, backward, AdamW) of every model at
the original configuration (d_model 64, 2 layers, batch 32) at lengths 40 and 512.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqicl.atomic import atomic_write_text  # noqa: E402
from seqicl.models import MIXERS, build_model  # noqa: E402
from seqicl.ops.complex_scan import complex_scan  # noqa: E402
from seqicl.ops.complex_scan.reference import complex_scan_ref  # noqa: E402
from seqicl.ops.linear_attention import linear_attention  # noqa: E402
from seqicl.ops.linear_attention import triton_linear_attention as la  # noqa: E402
from seqicl.ops.linear_attention.reference import linear_attention_ref  # noqa: E402
from seqicl.ops.scan import linear_scan  # noqa: E402
from seqicl.ops.scan.reference import linear_scan_ref  # noqa: E402
from seqicl.ops.selective_scan import selective_scan, selective_scan_ref  # noqa: E402
from seqicl.ops.wkv import wkv  # noqa: E402
from seqicl.ops.wkv.reference import wkv_ref  # noqa: E402

SHAPES = [(32, 40, 64), (64, 2048, 256)]


def bench_ms(fn, fast: bool) -> float:
    import triton.testing
    return triton.testing.do_bench(fn, warmup=5 if fast else 25, rep=20 if fast else 100, return_mode="median")


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes read + written per second (GB/s)."""
    x = torch.empty(2 ** 28, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    ms = bench_ms(lambda: y.copy_(x), fast=False)
    return 2 * x.numel() * 4 / ms / 1e6


def kernel_cases(B, L, D):
    """name -> (make inputs, triton fn, reference fn, forward bytes, forward FLOPs or None)."""
    n = B * L * D

    def scan_inputs():
        a = torch.rand(B, L, D, device="cuda").requires_grad_()
        return a, torch.randn(B, L, D, device="cuda").requires_grad_()

    def cscan_inputs():
        r = torch.rand(D, device="cuda") * 0.1 + 0.9
        th = torch.rand(D, device="cuda") * 6.28
        # b packed (B, L, 2, D): real and imaginary parts
        return ((r * th.cos()).requires_grad_(), (r * th.sin()).requires_grad_(),
                torch.randn(B, L, 2, D, device="cuda").requires_grad_())

    def wkv_inputs():
        return (torch.randn(D, device="cuda").requires_grad_(), torch.randn(D, device="cuda").requires_grad_(),
                torch.randn(B, L, D, device="cuda").requires_grad_(), torch.randn(B, L, D, device="cuda").requires_grad_())

    def selective_scan_inputs(N=16):
        # E = D channels, N states; delta and A in Mamba's ranges (A = -(1..N), S4D-Real)
        A = -torch.arange(1.0, N + 1, device="cuda").repeat(D, 1)
        return (torch.randn(B, L, D, device="cuda").requires_grad_(),
                (0.1 * torch.rand(B, L, D, device="cuda")).requires_grad_(), A.requires_grad_(),
                torch.randn(B, L, N, device="cuda").requires_grad_(), torch.randn(B, L, N, device="cuda").requires_grad_(),
                torch.ones(D, device="cuda").requires_grad_())

    from seqicl.ops.linear_attention.triton_linear_attention import FORWARD_CONFIG
    H, K = 4, D // 4

    def la_flops(chunk):
        return B * H * L * (2 * chunk * 2 * K + 4 * K * K)

    def la_inputs(decay):
        def make():
            q, k, v = (torch.randn(B, H, L, K, device="cuda").requires_grad_() for _ in range(3))
            if decay == "per_head":
                return q, k, v, (1 - 2.0 ** (-5 - torch.arange(H, device="cuda"))).log()
            if decay == "per_key":  # GLA's gate, logsigmoid / 16
                g = torch.nn.functional.logsigmoid(torch.randn(B, H, L, K, device="cuda")) / 16
                return q, k, v, g.requires_grad_()
            return q, k, v
        return make

    cases = {
        "linear_scan (GILR)": (scan_inputs, linear_scan, linear_scan_ref, 3 * n * 4, None),
        "complex_scan (LRU)": (cscan_inputs, complex_scan, complex_scan_ref, 4 * n * 4, None),
        "wkv (RWKV-4)": (wkv_inputs, wkv, wkv_ref, 3 * n * 4, None),
        # reads u, delta (B, L, E) and B, C (B, L, 16); writes y (B, L, E)
        "selective_scan (Mamba, N=16)": (selective_scan_inputs, selective_scan, selective_scan_ref,
                                         (3 * n + 2 * B * L * 16) * 4, None),
    }
    # read q, k, v (and g per key), write o
    for model, decay, nbytes in (("linear_transformer", None, 4 * n * 4), ("retnet", "per_head", 4 * n * 4),
                                 ("gla", "per_key", 5 * n * 4)):
        name = f"linear_attention ({model}, H=4 K=V=D/4)"
        chunk = FORWARD_CONFIG["CHUNK_PER_KEY" if decay == "per_key" else "CHUNK"]
        cases[name] = (la_inputs(decay), linear_attention, linear_attention_ref, nbytes, la_flops(chunk))
    return cases


def ratio(a: float, b: float, spec: str, unit: str = "") -> str:
    return "—" if a != a else format(a / b, spec) + unit  # a NaN: the reference was not timed


def total(out):
    return sum(o.float().sum() for o in out) if isinstance(out, tuple) else out.float().sum()


def kernel_table(copy_gbs: float, only: list[str] | None = None, shapes=SHAPES, reference: bool = True) -> list[str]:
    rows = ["| kernel | B, L, D | fwd ms | fwd+bwd ms | ref fwd ms | ref fwd+bwd ms | fwd speed-up | "
            "fwd+bwd speed-up | bwd / fwd | fwd GB/s | % of copy | fwd TFLOP/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for B, L, D in shapes:
        for name, (make, fast_fn, ref_fn, nbytes, flops) in kernel_cases(B, L, D).items():
            if only and not any(o in name for o in only):
                continue
            args = make()
            times = {("ref", "fwd"): float("nan"), ("ref", "both"): float("nan")}
            for label, fn in (("fast", fast_fn), ("ref", ref_fn))[:2 if reference else 1]:
                slow = label == "ref" and L > 100
                with torch.no_grad():
                    times[label, "fwd"] = bench_ms(lambda: fn(*args), fast=slow)

                def step():
                    for a in args:
                        a.grad = None
                    total(fn(*args)).backward()
                times[label, "both"] = bench_ms(step, fast=slow)
            gbs = nbytes / times["fast", "fwd"] / 1e6
            tflops = "—" if flops is None else f"{flops / times['fast', 'fwd'] / 1e9:.1f}"
            rows.append(f"| {name} | {B}, {L}, {D} | {times['fast', 'fwd']:.4f} | {times['fast', 'both']:.4f} | "
                        f"{ratio(times['ref', 'fwd'], 1, '.3f')} | {ratio(times['ref', 'both'], 1, '.3f')} | "
                        f"{ratio(times['ref', 'fwd'], times['fast', 'fwd'], '.0f', 'x')} | "
                        f"{ratio(times['ref', 'both'], times['fast', 'both'], '.0f', 'x')} | "
                        f"{(times['fast', 'both'] - times['fast', 'fwd']) / times['fast', 'fwd']:.1f} | {gbs:.0f} | {100 * gbs / copy_gbs:.0f}% | {tflops} |")
            print(rows[-1], flush=True)
    return rows


def occupancy_table(only: list[str] | None = None) -> list[str]:
    """Every Triton launch of each kernel's forward at the large shape: its programs, registers and
    shared memory as compiled, and the programs and warps an SM holds at once (bench/occupancy.py)."""
    from occupancy import RecordLaunches, occupancy
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = [f"{sms} SMs; a program's registers a thread and shared memory as the card compiled it; warps an SM "
            "at once of the 64 an SM can hold (sm_90)", "",
            "| kernel | launch | programs | registers | shared KB | programs an SM | warps an SM |",
            "|---|---|---:|---:|---:|---:|---:|"]
    B, L, D = SHAPES[-1]
    for name, (make, fast_fn, _, _, _) in kernel_cases(B, L, D).items():
        if only and not any(o in name for o in only):
            continue
        args = make()
        with torch.no_grad(), RecordLaunches() as recorded:
            fast_fn(*args)
        torch.cuda.synchronize()
        for launch in recorded.launches:
            programs, warps = occupancy(launch, sms)
            rows.append(f"| {name} | {launch.kernel} | {launch.programs} | {launch.registers} | "
                        f"{launch.shared / 1024:.0f} | {programs} | {warps} |")
            print(rows[-1], flush=True)
    return rows


def step_table() -> list[str]:
    rows = ["| model | L=40 step ms | L=512 step ms |", "|---|---:|---:|"]
    order = ["transformer", "s4d", "h3", "gilr", "lru", "lstm", "rwkv"]
    for name in order + sorted(set(MIXERS) - set(order)):
        cells = []
        for L in (40, 512):
            torch.manual_seed(0)
            model = build_model({"name": name, "d_model": 64, "n_layers": 2}, 20, L).cuda()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
            x = torch.randint(0, 20, (32, L), device="cuda")
            y = torch.randint(0, 20, (32, L), device="cuda")

            def step():
                loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            cells.append(f"{bench_ms(step, fast=False):.2f}")
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None)
    p.add_argument("--only", default=None, help="comma-separated parts of kernel names, e.g. selective_scan,gla")
    p.add_argument("--large-only", action="store_true", help="only the B 64, L 2048, D 256 shape")
    p.add_argument("--no-reference", action="store_true", help="skip the torch references (slow at L 2048)")
    p.add_argument("--no-steps", action="store_true", help="skip the training-step table")
    p.add_argument("--float32-precision", default=None, choices=la.FLOAT32_PRECISIONS,
                   help="linear attention's float32 matmuls as this instead of its default (split3)")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("error: bench/kernels.py needs a CUDA GPU", file=sys.stderr)
        return 2
    import triton
    if args.float32_precision:
        la.PRECISION[torch.float32] = args.float32_precision
    card = torch.cuda.get_device_name()
    head = [f"# Kernel benchmark: {card}, {datetime.date.today()}",
            f"torch {torch.__version__}, triton {triton.__version__}; float32 (linear attention's matmuls as "
            f"{la.PRECISION[torch.float32]}); median of do_bench; eager steps (no CUDA graphs)", ""]
    copy = copy_bandwidth()
    head.append(f"Device-to-device copy bandwidth (read + write): {copy:.0f} GB/s\n")
    print("\n".join(head), flush=True)
    only = args.only.split(",") if args.only else None
    lines = head + ["## Kernels", ""] + kernel_table(copy, only, SHAPES[-1:] if args.large_only else SHAPES,
                                                     not args.no_reference)
    try:  # read from Triton's compiled kernels: an internal interface, so a failure only leaves it out
        lines += ["", "## Forward launches at B 64, L 2048, D 256: registers and warps an SM", ""] + occupancy_table(only)
    except Exception as e:  # noqa: BLE001
        print(f"note: no occupancy table ({type(e).__name__}: {e})", file=sys.stderr)
    if not args.no_steps:
        lines += ["", "## One training step (d_model 64, 2 layers, batch 32, AdamW)", ""] + step_table()
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
