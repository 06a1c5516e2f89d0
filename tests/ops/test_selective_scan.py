"""Mamba's selective scan: the loop reference against its closed form
y_t = C_t . sum_{j<=t} exp(A sum_{j<s<=t} delta_s) delta_j B_j u_j + D u_t, with every gradient."""
import torch

from seqicl.ops.selective_scan import selective_scan, selective_scan_ref


def closed_form(u, delta, A, B, C, D):
    Bt, L, E = u.shape
    cum = delta.cumsum(1)                                         # (B, L, E)
    y = torch.zeros_like(u)
    for t in range(L):
        for j in range(t + 1):
            decay = torch.exp(A.unsqueeze(0) * (cum[:, t] - cum[:, j]).unsqueeze(-1))   # (B, E, N)
            y[:, t] += torch.einsum("ben,bn,bn->be", decay, B[:, j], C[:, t]) * delta[:, j] * u[:, j]
        y[:, t] += D * u[:, t]
    return y


def test_reference_is_the_closed_form_with_its_gradients():
    g = torch.Generator().manual_seed(0)
    Bt, L, E, N = 2, 11, 5, 3
    u = torch.randn(Bt, L, E, generator=g, dtype=torch.float64)
    delta = torch.rand(Bt, L, E, generator=g, dtype=torch.float64) * 0.5
    A = -torch.rand(E, N, generator=g, dtype=torch.float64) - 0.1
    B, C = (torch.randn(Bt, L, N, generator=g, dtype=torch.float64) for _ in range(2))
    D = torch.randn(E, generator=g, dtype=torch.float64)
    inputs = [x.requires_grad_() for x in (u, delta, A, B, C, D)]
    got, want = selective_scan_ref(*inputs), closed_form(*inputs)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    grad = torch.randn(got.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, inputs, grad), torch.autograd.grad(want, inputs, grad)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_a_hand_case_and_dtypes():
    # one channel, one state, A = log(1/2), delta = 1, B = C = 1, D = 0, u = 1: y_t = 1 + 1/2 + ... 
    ones = torch.ones(1, 4, 1)
    y = selective_scan(ones, ones, torch.tensor([[0.5]]).log(), ones, ones, torch.zeros(1))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.flatten(), torch.tensor([1.0, 1.5, 1.75, 1.875]))


# ---- the Triton kernels against the reference (on CPU through Triton's interpreter) ----

import os  # noqa: E402

import pytest  # noqa: E402

from seqicl.ops.dispatch import force_backend  # noqa: E402
from kernel_checks import assert_close, reference_float64  # noqa: E402

SHAPES = [(2, 13, 7, 4), (1, 17, 40, 16), (2, 63, 8, 8)]
NAMES = ("u", "delta", "A", "B", "C", "D")

interpreter = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                 reason="needs Triton's CPU interpreter (TRITON_INTERPRET=1)")


def make_inputs(batch, L, E, N, *, seed, device="cpu", dtype=torch.float32, delta_dtype=None):
    """u, delta, A, B, C, D as Mamba makes them: delta a softplus (positive), A = -exp(A_log) from
    log(1..N), B and C slices of one projection output (not contiguous). A, D float32 leaves; u,
    delta and the projection in dtype (delta in delta_dtype if given)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, L, E, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(batch, L, E, generator=g) - 1.0)
    A_log = torch.log(torch.arange(1.0, N + 1)).repeat(E, 1) + 0.3 * torch.randn(E, N, generator=g)
    proj = torch.randn(batch, L, 3 + 2 * N, generator=g)         # [dt rank | B | C] as x_proj gives
    D = torch.randn(E, generator=g)
    u, proj = (x.to(device, dtype).requires_grad_() for x in (u, proj))
    delta = delta.to(device, delta_dtype or dtype).requires_grad_()
    A, D = ((-A_log.exp()).to(device).requires_grad_(), D.to(device).requires_grad_())
    B, C = proj[..., 3:3 + N], proj[..., 3 + N:]
    assert L == 1 or not (B.is_contiguous() or C.is_contiguous())
    return [u, delta, A, B, C, D]


def strided_grad(batch, L, E, *, seed, device="cpu", dtype=torch.float32):
    """A random grad_output that is not contiguous (every other element of a wider tensor)."""
    g = torch.Generator().manual_seed(seed)
    grad = torch.randn(batch, L, 2 * E, generator=g).to(device, dtype)[..., ::2]
    assert not grad.is_contiguous()
    return grad


def triton_output_and_grads(inputs, grad):
    with force_backend("triton"):
        out = selective_scan(*inputs)
    assert out.grad_fn.name() == "SelectiveScanBackward"
    return out, torch.autograd.grad(out, inputs, grad)


def run_triton_and_compare(inputs, grad, rel_tol, grad_rel_tol, exactly_zero=()):
    """exactly_zero: gradients that must come out 0 (dA for L = 1: no state before the step)."""
    saved = [x.detach().clone() for x in inputs]
    out, grads = triton_output_and_grads(inputs, grad)
    for name, before, after in zip(NAMES, saved, inputs):   # backward writes into no input
        assert torch.equal(before, after.detach()), name
    assert out.dtype == inputs[0].dtype and out.shape == inputs[0].shape
    expected_out, expected_grads = reference_float64(selective_scan_ref, inputs, grad)
    assert_close(out, expected_out, rel_tol, "y")
    for name, x, got, want in zip(NAMES, inputs, grads, expected_grads):
        assert got.dtype == x.dtype and got.shape == x.shape, name
        if name in exactly_zero:
            assert not want.any() and not got.any(), name
        else:
            assert_close(got, want, grad_rel_tol, f"d{name}")


@interpreter
@pytest.mark.parametrize("shape", SHAPES)
def test_triton_matches_reference(shape):
    inputs = make_inputs(*shape, seed=sum(shape))
    run_triton_and_compare(inputs, strided_grad(*shape[:3], seed=1), 1e-5, 1e-5)


@interpreter
@pytest.mark.parametrize("shape", [(2, 1, 3, 2), (1, 6, 3, 64), (1, 10, 5, 3)],
                         ids=["one-step", "N64", "N3-not-a-power-of-two"])
def test_triton_edge_shapes(shape):
    inputs = make_inputs(*shape, seed=3)
    run_triton_and_compare(inputs, strided_grad(*shape[:3], seed=4), 1e-5, 1e-5,
                           exactly_zero=("A",) if shape[1] == 1 else ())


@interpreter
def test_triton_contiguous_inputs_and_the_reverse_scan_variant(monkeypatch):
    # plain contiguous tensors, and the adjoint through tl.associative_scan(reverse=True)
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setitem(kernels.BACKWARD_CONFIG, "REVERSE_SCAN", True)
    inputs = [x.detach().contiguous().requires_grad_() for x in make_inputs(2, 19, 6, 4, seed=5)]
    grad = torch.randn(2, 19, 6, generator=torch.Generator().manual_seed(6))
    run_triton_and_compare(inputs, grad, 1e-5, 1e-5)


@interpreter
def test_triton_forward_tiles_longer_than_the_saved_chunks(monkeypatch):
    # forward tiles of 16 steps save the states before backward's tiles of 8 from inside a tile
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setitem(kernels.FORWARD_CONFIG, "BLOCK_L", 2 * kernels.BACKWARD_CONFIG["BLOCK_L"])
    inputs = make_inputs(1, 37, 5, 4, seed=18)
    run_triton_and_compare(inputs, strided_grad(1, 37, 5, seed=19), 1e-5, 1e-5)


def check_sequential(config: str, shape, tile: int, monkeypatch, **settings):
    """The kernel of `config` with time inside the program (SEQUENTIAL), tiles of `tile` steps and
    4 channels: output and every gradient against the reference, float32 and then bfloat16."""
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    for key, value in dict(BLOCK_L=tile, BLOCK_E=4, SEQUENTIAL=True, **settings).items():
        monkeypatch.setitem(getattr(kernels, config), key, value)
    inputs = make_inputs(*shape, seed=sum(shape) + tile)
    run_triton_and_compare(inputs, strided_grad(*shape[:3], seed=tile), 1e-5, 1e-5,
                           exactly_zero=("A",) if shape[1] == 1 else ())
    bf16 = make_inputs(1, 11, 6, 4, seed=7, dtype=torch.bfloat16, delta_dtype=torch.float32)
    run_triton_and_compare(bf16, strided_grad(1, 11, 6, seed=8, dtype=torch.bfloat16), 1e-2, 2e-2)


@interpreter
@pytest.mark.parametrize("tile", [4, 16], ids=["tiles-shorter-than-the-saved-chunks", "tiles-longer"])
@pytest.mark.parametrize("shape", [(2, 19, 6, 4), (1, 37, 5, 3), (2, 1, 3, 2), (1, 6, 9, 64), (2, 32, 8, 4)],
                         ids=["odd", "N3", "one-step", "N64", "no-bounds-checks"])
def test_the_sequential_forward_matches_the_reference_and_saves_the_states_backward_reads(shape, tile, monkeypatch):
    # "no-bounds-checks": whole tiles, channels and states, the path without any mask
    # time inside the program (FORWARD_CONFIG SEQUENTIAL): outputs, and through the states it saves
    # for backward (tiles of 8 under the interpreter) every gradient
    check_sequential("FORWARD_CONFIG", shape, tile, monkeypatch)


@interpreter
@pytest.mark.parametrize("shape, scan", [((1, 13, 8, 4), True), ((1, 13, 32, 4), True), ((2, 13, 24, 4), False)],
                         ids=["one-program", "four-programs", "six-programs"])
def test_a_small_launch_takes_the_parallel_scan_forward(shape, scan, monkeypatch):
    # FEW_PROGRAMS "scan": at most one sequential program an SM (the interpreter's nominal 4 SMs;
    # 8 channels a program here) runs the parallel-scan forward instead; its outputs and, through
    # the states it saves, every gradient as the reference's
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setattr(kernels, "FORWARD_CONFIG", dict(BLOCK_L=4, BLOCK_E=8, SEQUENTIAL=True, num_warps=1,
                                                         FEW_PROGRAMS="scan"))
    monkeypatch.setattr(kernels, "SCAN_FORWARD_CONFIG", dict(BLOCK_L=8, BLOCK_E=8, num_warps=1))
    launched = []
    for name in ("_forward_kernel", "_forward_sequential_kernel"):
        kernel = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, type("Spy", (), {"__getitem__": lambda self, grid, k=kernel, n=name:
                                                              launched.append(n) or k[grid]})())
    inputs = make_inputs(*shape, seed=sum(shape))
    run_triton_and_compare(inputs, strided_grad(*shape[:3], seed=3), 1e-5, 1e-5)
    assert launched == ["_forward_kernel" if scan else "_forward_sequential_kernel"]


@interpreter
@pytest.mark.parametrize("shape", [(2, 19, 6, 4), (1, 6, 9, 64), (2, 32, 8, 4), (1, 4, 5, 3)],
                         ids=["odd", "one-whole-tile-and-a-part", "whole-tiles", "one-whole-tile"])
def test_the_sequential_forward_with_its_next_tile_loaded_early(shape, monkeypatch):
    # PREFETCH: each tile's inputs are loaded during the tile before (a loop-carried tuple)
    check_sequential("FORWARD_CONFIG", shape, 4, monkeypatch, PREFETCH=True)


@interpreter
@pytest.mark.parametrize("shape, tile, prefetch, segments, split", [
    ((2, 19, 6, 4), 4, False, 3, (8, 3)),     # a partial last tile in the last segment
    ((1, 37, 5, 3), 4, True, 4, (12, 4)),     # segments of 3 tiles, N 3
    ((2, 32, 8, 4), 4, True, 8, (4, 8)),      # one tile a segment
    ((1, 3, 5, 4), 4, True, 3, (4, 1))], ids=["odd", "N3", "tile-segments", "one-segment"])
def test_the_segmented_sequential_forward(shape, tile, prefetch, segments, split, monkeypatch):
    """SEGMENTS: each segment's end state from h = 0 and its sum of delta in parallel, then every
    segment from the earlier ends: y, and through the states it saves for backward every gradient."""
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    launched, split_of = [], kernels._segments
    monkeypatch.setattr(kernels, "_segments", lambda *args: launched.append(split_of(*args)) or launched[-1])
    check_sequential("FORWARD_CONFIG", shape, tile, monkeypatch, PREFETCH=prefetch, SEGMENTS=segments)
    assert launched[0] == split


def test_segments_need_the_sequential_forward(monkeypatch):
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setattr(kernels, "FORWARD_CONFIG", {**kernels.SCAN_FORWARD_CONFIG, "SEGMENTS": 2})
    with pytest.raises(ValueError, match="SEGMENTS needs SEQUENTIAL"), force_backend("triton"):
        selective_scan(*make_inputs(1, 20, 4, 4, seed=1))


@interpreter
@pytest.mark.parametrize("tile", [4, 8], ids=["tiles-shorter-than-the-forward's", "tiles-of-the-forward's-length"])
@pytest.mark.parametrize("shape", [(2, 19, 6, 4), (1, 37, 5, 3), (2, 1, 3, 2), (1, 6, 9, 64), (2, 16, 8, 4)],
                         ids=["odd", "N3", "one-step", "N64", "whole-tiles"])
def test_the_sequential_backward_matches_the_reference(shape, tile, monkeypatch):
    # time inside the backward program (BACKWARD_CONFIG SEQUENTIAL): every gradient, from states
    # saved every `tile` steps by the forward's tiles of 8, in float32 and bfloat16
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setitem(kernels.FORWARD_CONFIG, "BLOCK_L", 8)
    check_sequential("BACKWARD_CONFIG", shape, tile, monkeypatch)


@pytest.fixture
def nan_empty(monkeypatch):
    """torch.empty that fills every new floating-point tensor with NaN: the kernels allocate their
    outputs and partial sums with it, so an entry nothing writes shows up in a result."""
    empty = torch.empty

    def nan_filled(*shape, **kwargs):
        out = empty(*shape, **kwargs)
        return out.fill_(float("nan")) if out.is_floating_point() else out
    monkeypatch.setattr(torch, "empty", nan_filled)


@interpreter
@pytest.mark.parametrize("sequential", [False, True], ids=["scan-backward", "sequential-backward"])
def test_the_backward_fills_every_entry_of_its_buffers(sequential, monkeypatch, nan_empty):
    # an entry no kernel writes (a masked tile's edge) would be NaN in a gradient
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setitem(kernels.BACKWARD_CONFIG, "SEQUENTIAL", sequential)
    inputs = make_inputs(2, 19, 6, 3, seed=20)
    run_triton_and_compare(inputs, strided_grad(2, 19, 6, seed=21), 1e-5, 1e-5)


@interpreter
def test_an_empty_sequence_has_zero_gradients(nan_empty):
    # no kernel runs: backward itself must zero what it allocated
    u, delta = torch.zeros(2, 0, 5), torch.zeros(2, 0, 5)
    B, C = torch.zeros(2, 0, 3), torch.zeros(2, 0, 3)
    inputs = [x.requires_grad_() for x in (u, delta, -torch.ones(5, 3), B, C, torch.ones(5))]
    out, grads = triton_output_and_grads(inputs, torch.zeros(2, 0, 5))
    assert out.shape == (2, 0, 5)
    for name, x, got in zip(NAMES, inputs, grads):
        assert got.shape == x.shape and not got.any(), name


@interpreter
def test_triton_bfloat16_keeps_each_dtype():
    # as Mamba under autocast: bf16 activations, a float32 step
    inputs = make_inputs(1, 11, 6, 4, seed=7, dtype=torch.bfloat16, delta_dtype=torch.float32)
    # bf16 inputs are exact; y and the activation gradients are rounded to bf16
    run_triton_and_compare(inputs, strided_grad(1, 11, 6, seed=8, dtype=torch.bfloat16), 1e-2, 2e-2)


@interpreter
def test_triton_backward_is_deterministic():
    inputs = make_inputs(2, 21, 9, 4, seed=9)
    grad = strided_grad(2, 21, 9, seed=10)
    first, second = (triton_output_and_grads(inputs, grad)[1] for _ in range(2))
    for name, a, b in zip(NAMES, first, second):
        assert torch.equal(a, b), name


@interpreter
def test_triton_forward_without_grad():
    inputs = [x.detach() for x in make_inputs(1, 17, 7, 4, seed=11)]
    with force_backend("triton"):
        out = selective_scan(*inputs)
    assert out.grad_fn is None
    assert_close(out, selective_scan_ref(*[x.double() for x in inputs]), 1e-5, "y")


def test_cpu_tensors_use_the_reference():
    inputs = make_inputs(1, 5, 3, 2, seed=12)
    assert selective_scan(*inputs).grad_fn.name() != "SelectiveScanBackward"


@interpreter
def test_triton_rejects_bad_inputs():
    from seqicl.ops.selective_scan.triton_selective_scan import selective_scan_triton
    u, delta, A, B, C, D = [x.detach() for x in make_inputs(1, 4, 3, 2, seed=13)]
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        selective_scan_triton(u.double(), delta, A, B, C, D)
    with pytest.raises(ValueError, match="B must be"):
        selective_scan_triton(u, delta, A, B[:, :, :1], C, D)
    with pytest.raises(ValueError, match="A must be"):
        selective_scan_triton(u, delta, A[:2], B, C, D)


@interpreter
def test_mamba_mixer_same_output_and_gradients_with_triton_and_torch():
    from seqicl.models import build_model
    torch.manual_seed(0)
    model = build_model({"name": "mamba", "d_model": 8, "n_layers": 1, "mlp_ratio": 0,
                         "mixer": {"d_state": 4}}, 20, 12)
    tokens = torch.randint(0, 20, (2, 12))
    results = []
    for backend in ("torch", "triton"):
        model.zero_grad()
        with force_backend(backend):
            logits = model(tokens)
        (logits.square().mean()).backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (torch_out, torch_grads), (triton_out, triton_grads) = results
    torch.testing.assert_close(triton_out, torch_out, rtol=1e-5, atol=1e-6)
    assert "blocks.0.mixer.A_log" in triton_grads
    for name, want in torch_grads.items():
        torch.testing.assert_close(triton_grads[name], want, rtol=1e-4, atol=1e-7, msg=lambda m: f"{name}: {m}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES + [(4, 1000, 128, 16), (2, 2048, 256, 16)])
def test_triton_matches_reference_cuda(shape, dtype):
    if shape[1] > 1000 and dtype == torch.bfloat16:
        pytest.skip("the longest shape runs once, in float32")
    inputs = make_inputs(*shape, seed=sum(shape), device="cuda", dtype=dtype)
    grad = strided_grad(*shape[:3], seed=1, device="cuda", dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    run_triton_and_compare(inputs, grad, tol, tol)


@pytest.mark.gpu
def test_triton_backward_is_deterministic_cuda():
    inputs = make_inputs(8, 500, 96, 16, seed=14, device="cuda")
    grad = strided_grad(8, 500, 96, seed=15, device="cuda")
    first, second = (triton_output_and_grads(inputs, grad)[1] for _ in range(2))
    for name, a, b in zip(NAMES, first, second):
        assert torch.equal(a, b), name


@pytest.mark.gpu
def test_triton_reverse_scan_variant_cuda(monkeypatch):
    # the alternative adjoint (reverse=True scan): correct on this Triton build?
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setattr(kernels, "BACKWARD_CONFIG", dict(kernels.SCAN_BACKWARD_CONFIG, REVERSE_SCAN=True))
    inputs = make_inputs(2, 300, 64, 16, seed=16, device="cuda")
    run_triton_and_compare(inputs, strided_grad(2, 300, 64, seed=17, device="cuda"), 1e-4, 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("config", ["scan", "sequential-8-32-4-warps"])
def test_the_other_backwards_cuda(config, monkeypatch):
    # the default backward is the sequential one on one warp (test_triton_matches_reference_cuda);
    # the scan-based one, and the sequential one on other tiles and warps, stay correct and deterministic
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setattr(kernels, "BACKWARD_CONFIG", kernels.SCAN_BACKWARD_CONFIG if config == "scan" else
                        dict(BLOCK_L=8, BLOCK_E=32, SEQUENTIAL=True, num_warps=4))
    tile = kernels.BACKWARD_CONFIG["BLOCK_L"]
    for shape in ((2, 300, 64, 16), (3, 517, 96, 13)):
        inputs = make_inputs(*shape, seed=tile + shape[1], device="cuda")
        run_triton_and_compare(inputs, strided_grad(*shape[:3], seed=2, device="cuda"), 1e-4, 1e-4)
    grad = strided_grad(2, 300, 64, seed=3, device="cuda")
    first, second = (triton_output_and_grads(make_inputs(2, 300, 64, 16, seed=4, device="cuda"), grad)[1]
                     for _ in range(2))
    for name, a, b in zip(NAMES, first, second):
        assert torch.equal(a, b), name


@pytest.mark.gpu
@pytest.mark.parametrize("segments", [4, 8])
def test_the_segmented_forward_cuda(segments, monkeypatch):
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    monkeypatch.setattr(kernels, "FORWARD_CONFIG", {**kernels.FORWARD_CONFIG, "SEGMENTS": segments})
    for shape in ((2, 300, 64, 16), (3, 517, 96, 13)):
        inputs = make_inputs(*shape, seed=segments + shape[1], device="cuda")
        run_triton_and_compare(inputs, strided_grad(*shape[:3], seed=2, device="cuda"), 1e-4, 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("config", ["parallel-scan", "sequential-16-16", "sequential-8-32", "sequential-32-32"])
def test_the_other_forwards_cuda(config, monkeypatch):
    # the default forward is the sequential one, (16, 16) on one warp, and the parallel-scan one for
    # launches of at most one program an SM (FEW_PROGRAMS: these shapes); each of them, and the
    # sequential one at other tiles (around backward's 16) and 32 channels a warp stay correct
    from seqicl.ops.selective_scan import triton_selective_scan as kernels
    tile = 16 if config == "parallel-scan" else int(config.split("-")[1])
    monkeypatch.setattr(kernels, "FORWARD_CONFIG", kernels.SCAN_FORWARD_CONFIG if config == "parallel-scan" else
                        dict(BLOCK_L=tile, BLOCK_E=int(config.split("-")[2]), SEQUENTIAL=True, num_warps=1))
    for shape in ((2, 300, 64, 16), (3, 517, 96, 13)):
        inputs = make_inputs(*shape, seed=tile + shape[1], device="cuda")
        run_triton_and_compare(inputs, strided_grad(*shape[:3], seed=2, device="cuda"), 1e-4, 1e-4)
