"""RWKV-4 wkv: the reference against the direct formula, the Triton kernel (forward and every
gradient) against the reference; on CPU through Triton's interpreter, on CUDA natively."""
import math

import pytest
import torch

from seqicl.ops.dispatch import force_backend
from seqicl.ops.wkv import triton_wkv, wkv, wkv_ref
from kernel_checks import assert_close, reference_float64

SHAPES = [(2, 63, 40), (1, 17, 7), (2, 64, 64)]


def make_inputs(batch, steps, channels, *, seed, device="cpu", dtype=torch.float32,
                k_range=None, decay_range=None):
    """time_decay, time_first (float32 parameters) and k, v in dtype, all requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    if decay_range is None:
        time_decay = torch.randn(channels, generator=gen)
    else:
        low, high = decay_range
        time_decay = low + (high - low) * torch.rand(channels, generator=gen)
    time_first = torch.randn(channels, generator=gen)
    if k_range is None:
        k = torch.randn(batch, steps, channels, generator=gen)
    else:
        k = k_range * (2 * torch.rand(batch, steps, channels, generator=gen) - 1)
    v = torch.randn(batch, steps, channels, generator=gen)
    params = [x.to(device).requires_grad_() for x in (time_decay, time_first)]
    activations = [x.to(device, dtype).requires_grad_() for x in (k, v)]
    return params + activations


def strided_grad(batch, steps, channels, *, seed, device="cpu", dtype=torch.float32):
    """A random grad_output that is not contiguous (a transposed tensor)."""
    gen = torch.Generator().manual_seed(seed)
    grad = torch.randn(batch, channels, steps, generator=gen).to(device, dtype).transpose(1, 2)
    assert not grad.is_contiguous()
    return grad


def run_triton_and_compare(inputs, grad, rel_tol, grad_rel_tol):
    saved = [x.detach().clone() for x in inputs]
    with force_backend("triton"):
        out = wkv(*inputs)
    grads = torch.autograd.grad(out, inputs, grad)
    # backward must not write into what forward saved
    for before, after in zip(saved, inputs):
        assert torch.equal(before, after.detach())
    assert out.dtype == inputs[2].dtype
    expected_out, expected_grads = reference_float64(wkv_ref, inputs, grad)
    assert_close(out, expected_out, rel_tol, "y")
    for name, x, got, want in zip(("time_decay", "time_first", "k", "v"), inputs, grads,
                                  expected_grads):
        assert got.dtype == x.dtype
        assert_close(got, want, grad_rel_tol, f"d{name}")


def direct_formula(time_decay, time_first, k, v):
    """y_t as the ratio of two explicit sums (no log-space tricks)."""
    w, u = -torch.exp(time_decay), time_first
    batch, steps, channels = k.shape
    out = torch.empty(batch, steps, channels, dtype=k.dtype)
    for t in range(steps):
        num = torch.exp(u + k[:, t]) * v[:, t]
        den = torch.exp(u + k[:, t])
        for i in range(t):
            weight = torch.exp((t - 1 - i) * w + k[:, i])
            num = num + weight * v[:, i]
            den = den + weight
        out[:, t] = num / den
    return out


def test_reference_matches_direct_formula_and_its_gradients():
    inputs = [x.detach().double().requires_grad_() for x in make_inputs(2, 7, 3, seed=0)]
    grad = torch.randn(2, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = wkv_ref(*inputs)
    direct = direct_formula(*inputs)
    torch.testing.assert_close(ref, direct, rtol=1e-12, atol=1e-12)
    for got, want in zip(torch.autograd.grad(ref, inputs, grad),
                         torch.autograd.grad(direct, inputs, grad)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_reference_hand_case_decays():
    # k = 0, u = 0, time_decay = 0 so w = -1: y_0 = v_0, y_1 = (v_0 + v_1) / 2,
    # y_2 = (e^-1 v_0 + v_1 + v_2) / (e^-1 + 2): the older token weighs less
    v = torch.tensor([[[1.0], [2.0], [4.0]]], dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    y = wkv_ref(zero, zero, torch.zeros_like(v), v)
    decay = math.exp(-1)
    expected = torch.tensor([[[1.0], [1.5], [(decay + 2 + 4) / (decay + 2)]]], dtype=torch.float64)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=0)


def test_cpu_dispatches_to_reference():
    inputs = make_inputs(1, 5, 3, seed=2)
    assert torch.equal(wkv(*inputs), wkv_ref(*inputs))


@pytest.mark.parametrize("shape", SHAPES)
def test_triton_matches_reference(shape):
    inputs = make_inputs(*shape, seed=sum(shape))
    run_triton_and_compare(inputs, strided_grad(*shape, seed=7), 1e-5, 1e-5)


def test_triton_large_exponents_stay_finite_and_exact():
    # k up to +-30 (e^30 overflows nothing in log space) and w = -exp(time_decay) down to -e^3
    shape = (2, 40, 16)
    inputs = make_inputs(*shape, seed=3, k_range=30.0, decay_range=(-3.0, 3.0))
    run_triton_and_compare(inputs, strided_grad(*shape, seed=4), 1e-5, 1e-4)


# whole and partial tiles of time (one tile, one whole and a part, several), channels that fill their
# last block or not (40 in 8s, 7 in 8s, 3 in 4s), with and without the next tile's loads issued early
SEQUENTIAL_CASES = [((2, 63, 40), 4, 8, True), ((1, 17, 7), 8, 8, True), ((2, 64, 64), 16, 16, False),
                    ((1, 5, 3), 8, 4, True), ((2, 12, 5), 4, 8, False), ((1, 8, 16), 8, 8, True)]


def sequential(monkeypatch, tile, block_d, prefetch=True):
    """Both kernels with time inside the program, tiles of `tile` steps and `block_d` channels."""
    for name in ("FORWARD_CONFIG", "BACKWARD_CONFIG"):
        monkeypatch.setattr(triton_wkv, name, dict(BLOCK_L=tile, BLOCK_D=block_d, SEQUENTIAL=True,
                                                   PREFETCH=prefetch, num_warps=1))


@pytest.mark.parametrize("shape, tile, block_d, prefetch", SEQUENTIAL_CASES)
def test_the_sequential_kernels_match_the_reference(shape, tile, block_d, prefetch, monkeypatch):
    sequential(monkeypatch, tile, block_d, prefetch)
    inputs = make_inputs(*shape, seed=sum(shape) + tile)
    run_triton_and_compare(inputs, strided_grad(*shape, seed=tile), 1e-5, 1e-5)


# (shape, tile, block_d, prefetch, segments, (segment length, count)): several segments with a
# partial last tile, a last segment shorter than the others, one tile a segment, too short to cut
SEGMENTED_CASES = [((2, 63, 40), 4, 8, True, 4, (16, 4)), ((1, 50, 7), 8, 8, False, 3, (24, 3)),
                   ((2, 64, 16), 4, 16, True, 16, (4, 16)), ((1, 5, 3), 8, 4, True, 3, (8, 1)),
                   # "fill" on the interpreter's nominal 4 SMs (2 programs each): one program -> 8
                   # segments; 10 programs fill it already -> one
                   ((1, 50, 7), 8, 8, True, "fill", (8, 7)), ((2, 63, 40), 4, 8, True, "fill", (64, 1))]


@pytest.mark.parametrize("shape, tile, block_d, prefetch, segments, split", SEGMENTED_CASES)
def test_the_segmented_forward_matches_the_reference(shape, tile, block_d, prefetch, segments, split, monkeypatch):
    """SEGMENTS: each segment's end state from the empty state in parallel, then every segment
    from the earlier ends put one after the other; y and (through the stored log D) every gradient
    as the reference's."""
    sequential(monkeypatch, tile, block_d, prefetch)
    monkeypatch.setattr(triton_wkv, "FORWARD_CONFIG", {**triton_wkv.FORWARD_CONFIG, "SEGMENTS": segments})
    launched, split_of = [], triton_wkv._segments
    monkeypatch.setattr(triton_wkv, "_segments", lambda *args: launched.append(split_of(*args)) or launched[-1])
    seed = segments if isinstance(segments, int) else 5
    inputs = make_inputs(*shape, seed=sum(shape) + seed, k_range=5.0, decay_range=(-2.0, 1.0))
    run_triton_and_compare(inputs, strided_grad(*shape, seed=seed), 1e-5, 1e-5)
    assert launched == [split]


def test_segments_need_the_sequential_forward(monkeypatch):
    monkeypatch.setattr(triton_wkv, "FORWARD_CONFIG", {**triton_wkv.SCAN_FORWARD_CONFIG, "SEGMENTS": 2})
    with pytest.raises(ValueError, match="SEGMENTS needs SEQUENTIAL"), force_backend("triton"):
        wkv(*make_inputs(1, 20, 4, seed=1))


def test_the_sequential_kernels_with_large_exponents_and_a_growing_past(monkeypatch):
    sequential(monkeypatch, 8, 8)
    shape = (2, 40, 16)
    inputs = make_inputs(*shape, seed=3, k_range=30.0, decay_range=(-3.0, 3.0))
    run_triton_and_compare(inputs, strided_grad(*shape, seed=4), 1e-5, 1e-4)
    inputs = make_inputs(2, 33, 12, seed=10, decay_range=(-2.0, 2.0))
    grad = strided_grad(2, 33, 12, seed=11)
    with force_backend("triton"):
        out = wkv(*inputs, decay_sign=1.0)
    expected_out, expected_grads = reference_float64(lambda *xs: wkv_ref(*xs, decay_sign=1.0), inputs, grad)
    assert_close(out, expected_out, 1e-5, "y")
    for got, want in zip(torch.autograd.grad(out, inputs, grad), expected_grads):
        assert_close(got, want, 1e-4, "grad")


def test_triton_forward_without_grad():
    inputs = [x.detach() for x in make_inputs(1, 17, 7, seed=5)]
    with force_backend("triton"):
        out = wkv(*inputs)
    assert_close(out, wkv_ref(*[x.double() for x in inputs]), 1e-5, "y")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("segments", [1, 4, 8])   # 1: the unsegmented kernel ("fill" is the default)
def test_the_segmented_forward_cuda(segments, dtype, monkeypatch):
    monkeypatch.setattr(triton_wkv, "FORWARD_CONFIG", {**triton_wkv.FORWARD_CONFIG, "SEGMENTS": segments})
    shape = (4, 1000, 200)
    inputs = make_inputs(*shape, seed=segments, device="cuda", dtype=dtype)
    grad = strided_grad(*shape, seed=7, device="cuda", dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    run_triton_and_compare(inputs, grad, tol, tol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES + [(4, 2048, 256)])
def test_triton_matches_reference_cuda(shape, dtype):
    if shape[1] > 64 and dtype == torch.bfloat16:
        pytest.skip("the large shape runs once, in float32")
    inputs = make_inputs(*shape, seed=sum(shape), device="cuda", dtype=dtype)
    grad = strided_grad(*shape, seed=7, device="cuda", dtype=dtype)
    # bf16: inputs are exact bf16 values, but y (saved for backward) is rounded to bf16
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    run_triton_and_compare(inputs, grad, tol, tol)


OTHER_KERNELS = {
    "scan": (triton_wkv.SCAN_FORWARD_CONFIG, triton_wkv.SCAN_BACKWARD_CONFIG),
    "sequential-without-prefetch": (dict(BLOCK_L=16, BLOCK_D=32, SEQUENTIAL=True, num_warps=1),) * 2,
    "sequential-one-warp": (dict(BLOCK_L=8, BLOCK_D=32, SEQUENTIAL=True, PREFETCH=True, num_warps=1),) * 2,
}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kernels", OTHER_KERNELS)
def test_the_other_kernels_cuda(kernels, dtype, monkeypatch):
    # the scan-based kernels (the default before 2026-12-07) and the sequential ones at other
    # settings: 63 steps leave a partial tile, 40 channels a partial block
    forward, backward = OTHER_KERNELS[kernels]
    monkeypatch.setattr(triton_wkv, "FORWARD_CONFIG", forward)
    monkeypatch.setattr(triton_wkv, "BACKWARD_CONFIG", backward)
    shape = (2, 63, 40)
    inputs = make_inputs(*shape, seed=1, device="cuda", dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    run_triton_and_compare(inputs, strided_grad(*shape, seed=2, device="cuda", dtype=dtype), tol, tol)


@pytest.mark.gpu
def test_triton_large_exponents_cuda():
    shape = (2, 300, 96)
    inputs = make_inputs(*shape, seed=3, device="cuda", k_range=30.0, decay_range=(-3.0, 3.0))
    run_triton_and_compare(inputs, strided_grad(*shape, seed=4, device="cuda"), 1e-4, 1e-4)


@pytest.mark.gpu
def test_parameter_gradients_are_deterministic_cuda():
    inputs = make_inputs(8, 500, 96, seed=9, device="cuda")
    grad = strided_grad(8, 500, 96, seed=10, device="cuda")
    runs = []
    for _ in range(2):
        runs.append(torch.autograd.grad(wkv(*inputs), inputs, grad))
    for first, second in zip(*runs):
        assert torch.equal(first, second)


def direct_formula_growing(time_decay, time_first, k, v):
    """The original seq_icl RWKV's sign, w = +exp(time_decay), as explicit sums."""
    w, u = torch.exp(time_decay), time_first
    batch, steps, channels = k.shape
    out = torch.empty(batch, steps, channels, dtype=k.dtype)
    for t in range(steps):
        num, den = torch.exp(u + k[:, t]) * v[:, t], torch.exp(u + k[:, t])
        for i in range(t):
            weight = torch.exp((t - 1 - i) * w + k[:, i])
            num, den = num + weight * v[:, i], den + weight
        out[:, t] = num / den
    return out


def test_the_original_sign_matches_its_direct_formula_and_the_triton_kernel():
    inputs = [x.detach().double().requires_grad_() for x in make_inputs(2, 7, 3, seed=8)]
    grad = torch.randn(2, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    ref = wkv_ref(*inputs, decay_sign=1.0)
    torch.testing.assert_close(ref, direct_formula_growing(*inputs), rtol=1e-12, atol=1e-12)
    for got, want in zip(torch.autograd.grad(ref, inputs, grad),
                         torch.autograd.grad(direct_formula_growing(*inputs), inputs, grad)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(ref, wkv_ref(*inputs))            # the sign matters
    # the kernel, forward and every gradient, with the past growing by up to e^(e^2) a step
    shape = (2, 33, 12)
    inputs = make_inputs(*shape, seed=10, decay_range=(-2.0, 2.0))
    grad = strided_grad(*shape, seed=11)
    with force_backend("triton"):
        out = wkv(*inputs, decay_sign=1.0)
    grads = torch.autograd.grad(out, inputs, grad)
    exact = [x.detach().double().requires_grad_() for x in inputs]
    want = wkv_ref(*exact, decay_sign=1.0)
    assert_close(out, want, 1e-5, "y")
    for name, got, w in zip(("time_decay", "time_first", "k", "v"), grads, torch.autograd.grad(want, exact, grad.double())):
        assert_close(got, w, 1e-4, f"d{name}")
