"""Causal linear attention with a decay: the loop reference against the closed form
o_t = sum_{j<=t} (q_t * exp(G_t - G_j)) . k_j v_j, outputs and every gradient, on odd sizes; the
chunked Triton kernel (forward and every gradient) against the reference in float64, on CPU
through Triton's interpreter (chunks of 16 there), on CUDA natively; the three mixers on it."""
import pytest
import torch
import triton
import triton.language as tl

from seqicl.ops.dispatch import force_backend
from seqicl.ops.linear_attention import linear_attention, linear_attention_ref
from seqicl.ops.linear_attention.triton_linear_attention import _tf32_halves
from kernel_checks import assert_close, reference_float64


def closed_form(q, k, v, log_decay):
    B, H, L, K = q.shape
    if log_decay is None:
        log_decay = torch.zeros_like(q)
    elif log_decay.dim() == 1:
        log_decay = log_decay.view(1, H, 1, 1).expand(B, H, L, K)
    G = log_decay.cumsum(2)
    out = torch.zeros(B, H, L, v.shape[-1], dtype=q.dtype)
    for t in range(L):
        for j in range(t + 1):
            weight = (q[:, :, t] * (G[:, :, t] - G[:, :, j]).exp() * k[:, :, j]).sum(-1)   # (B, H)
            out[:, :, t] += weight.unsqueeze(-1) * v[:, :, j]
    return out


@pytest.mark.parametrize("decay", ["none", "per_head", "per_key"])
@pytest.mark.parametrize("shape", [(2, 3, 13, 5, 7), (1, 1, 17, 4, 1)])
def test_reference_is_the_closed_form_with_its_gradients(decay, shape):
    B, H, L, K, V = shape
    g = torch.Generator().manual_seed(sum(shape))
    q, k = (torch.randn(B, H, L, K, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, H, L, V, generator=g, dtype=torch.float64)
    log_decay = {"none": None, "per_head": -torch.rand(H, generator=g, dtype=torch.float64),
                 "per_key": -torch.rand(B, H, L, K, generator=g, dtype=torch.float64)}[decay]
    inputs = [x.requires_grad_() for x in (q, k, v)] + ([log_decay.requires_grad_()] if log_decay is not None else [])
    got = linear_attention_ref(q, k, v, log_decay)
    want = closed_form(q, k, v, log_decay)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    grad = torch.randn(got.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, inputs, grad), torch.autograd.grad(want, inputs, grad)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_a_state_decays_by_the_given_amount_and_float32_inputs_stay_float32():
    # one key and value channel, k = v = 1, q = 1, decay 1/2 per step: o_t = 1 + 1/2 + ... + 1/2^t
    ones = torch.ones(1, 1, 4, 1)
    o = linear_attention(ones, ones, ones, torch.tensor([0.5]).log())
    assert o.dtype == torch.float32
    torch.testing.assert_close(o.flatten(), torch.tensor([1.0, 1.5, 1.75, 1.875]))


# (B, H, L, K, V): L below one chunk, just above, several chunks; K and V odd, 1 and 16
SHAPES = [(2, 3, 13, 5, 7), (1, 1, 17, 4, 1), (1, 2, 40, 16, 8), (1, 1, 1, 3, 2)]
DECAYS = ["none", "per_head", "per_key"]


def make_inputs(shape, decay, *, seed, device="cpu", dtype=torch.float32, decay_scale=1.0,
                head_views=False):
    """q, k, v in dtype and log_decay (float32, in [-decay_scale, 0]), all requiring grad. With
    head_views, q, k, v and log_decay are (B, L, H, .) tensors seen as (B, H, L, .), as the
    mixers make them."""
    B, H, L, K, V = shape
    gen = torch.Generator().manual_seed(seed)

    def tensor(width):
        if head_views:
            return torch.randn(B, L, H, width, generator=gen).transpose(1, 2)
        return torch.randn(B, H, L, width, generator=gen)
    q, k, v = tensor(K), tensor(K), tensor(V)
    if decay == "none":
        log_decay = None
    elif decay == "per_head":
        log_decay = -decay_scale * torch.rand(H, generator=gen)
    else:
        log_decay = -decay_scale * tensor(K).uniform_(generator=gen)
    inputs = [x.to(device, dtype) for x in (q, k, v)] + ([log_decay.to(device)] if log_decay is not None else [])
    if head_views:  # a transposed view with one head or one step is contiguous all the same
        assert 1 in (H, L) or not inputs[0].is_contiguous()
    return [x.detach().requires_grad_() if x.is_leaf else x.requires_grad_() for x in inputs]


def strided_grad(shape, *, seed, device="cpu", dtype=torch.float32, head_view=False):
    """A random grad_output that is not contiguous: transposed in its last two dims, or (B, L, H, V)
    seen as (B, H, L, V)."""
    B, H, L, K, V = shape
    gen = torch.Generator().manual_seed(seed)
    if head_view:
        grad = torch.randn(B, L, H, V, generator=gen).to(device, dtype).transpose(1, 2)
    else:
        grad = torch.randn(B, H, V, L, generator=gen).to(device, dtype).transpose(2, 3)
    assert 1 in (L, V) or not grad.is_contiguous()
    return grad


def run_triton_and_compare(inputs, grad, rel_tol, grad_rel_tol):
    saved = [x.detach().clone() for x in inputs]
    with force_backend("triton"):
        out = linear_attention(*inputs)
    grads = torch.autograd.grad(out, inputs, grad)
    for before, after in zip(saved, inputs):  # backward must not write into its inputs
        assert torch.equal(before, after.detach())
    assert out.dtype == inputs[0].dtype
    expected_out, expected_grads = reference_float64(linear_attention_ref, inputs, grad)
    assert_close(out, expected_out, rel_tol, "o")
    for name, x, got, want in zip(("q", "k", "v", "log_decay"), inputs, grads, expected_grads):
        assert got.dtype == x.dtype and got.shape == x.shape
        # one step: the decay only meets the zero initial state, its gradient is 0, reached as
        # q dq - k dk, so up to the rounding of dq
        scale = expected_grads[0].abs().max().item() if name == "log_decay" and not want.any() else None
        assert_close(got, want, grad_rel_tol, f"d{name}", scale)


@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("shape", SHAPES)
def test_triton_matches_reference(shape, decay):
    inputs = make_inputs(shape, decay, seed=sum(shape))
    run_triton_and_compare(inputs, strided_grad(shape, seed=7), 1e-5, 1e-5)


def segmented_forward(monkeypatch, segments, device):
    """FORWARD_CONFIG with SEGMENTS; returns the (segment length, count) of each launch."""
    from seqicl.ops.linear_attention import triton_linear_attention as tla
    monkeypatch.setattr(tla, "FORWARD_CONFIG", {**tla.FORWARD_CONFIG, "SEGMENTS": segments})
    launched, split = [], tla._segments
    monkeypatch.setattr(tla, "_segments", lambda *args: launched.append(split(*args)) or launched[-1])
    return launched


@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("shape, segments, split", [
    ((2, 2, 70, 6, 40), 4, (32, 3)),   # 3 segments (chunks of 16 here), 3 value blocks of 16
    ((1, 3, 50, 5, 7), 3, (32, 2)),    # the last segment shorter
    ((1, 1, 93, 16, 8), 8, (16, 6)),   # 6 segments of one chunk each
    ((1, 2, 12, 4, 3), 4, (16, 1)),    # shorter than a chunk: one segment, the unsegmented kernel
    # "fill" on the interpreter's nominal 4 SMs (2 programs each): 2 programs -> 4 segments (3 of
    # 32 steps), 8 programs fill it already -> one
    ((1, 2, 70, 6, 8), "fill", (32, 3)),
    ((2, 4, 40, 6, 8), "fill", (48, 1))])
def test_triton_segmented_forward_matches_reference(shape, segments, split, decay, monkeypatch):
    """SEGMENTS > 1: one program per segment, each starting from the ends of the segments before
    it (computed in parallel, decayed and summed): o and every gradient as the reference's."""
    launched = segmented_forward(monkeypatch, segments, "cpu")
    inputs = make_inputs(shape, decay, seed=sum(shape))
    # the backward is the unsegmented one; a per-head dg sums 93 x 16 terms (1.7e-5 here)
    run_triton_and_compare(inputs, strided_grad(shape, seed=7), 1e-5, 5e-5)
    assert launched == [split]


def test_segments_are_whole_chunks_and_at_least_one():
    from seqicl.ops.segments import segments as _segments
    assert _segments(2048, 8, 32) == (256, 8)
    assert _segments(2048, 3, 32) == (704, 3)   # 683 steps rounded up to 22 chunks
    assert _segments(1000, 4, 16) == (256, 4)
    assert _segments(5, 4, 16) == (16, 1)
    from seqicl.ops.segments import fill_segments, segment_count
    # "fill": the most segments, a power of two up to 8, keeping programs x segments <= 2 an SM
    assert [fill_segments(p, 132) for p in (1, 33, 34, 66, 67, 132, 133, 256)] == [8, 8, 4, 4, 2, 2, 1, 1]
    assert segment_count(3, 1, torch.device("cpu")) == 3                 # a count is kept as it is
    assert segment_count("fill", 2, torch.device("cpu")) == 4            # the interpreter's nominal 4 SMs
    for bad in (0, "full", 2.0):
        with pytest.raises(ValueError, match="SEGMENTS must be an integer of at least 1 or 'fill'"):
            _segments(100, bad, 16)


@pytest.mark.parametrize("decay", DECAYS)
def test_triton_takes_head_views(decay):
    # q, k, v (and the per-key decay) as the mixers make them: (B, L, H, .) transposed
    shape = (2, 2, 21, 6, 9)
    inputs = make_inputs(shape, decay, seed=3, head_views=True)
    run_triton_and_compare(inputs, strided_grad(shape, seed=4, head_view=True), 1e-5, 1e-5)


@pytest.mark.parametrize("decay_scale", [5.0, 30.0])
def test_triton_strongly_negative_per_key_decays_stay_finite_and_exact(decay_scale):
    # a chunk of 16 steps at up to -5 (or -30) each: e^{-G} would overflow float32; half the
    # keys decay slowly, so the state still carries something across chunks
    shape = (1, 2, 40, 16, 8)
    q, k, v, log_decay = make_inputs(shape, "per_key", seed=5, decay_scale=decay_scale)
    with torch.no_grad():
        log_decay[..., ::2] *= 0.01
    run_triton_and_compare([q, k, v, log_decay], strided_grad(shape, seed=6), 1e-5, 1e-5)


@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("shape, heads", [((1, 2, 19, 21, 18), 2 * 3 * 3), ((2, 1, 18, 17, 9), 1 * 3 * 2)])
def test_triton_cuts_wide_heads_into_blocks(shape, heads, decay, monkeypatch):
    # keys and values wider than MAX_HEAD_DIM (8 under the interpreter, 64 on a GPU) run as
    # (key block, value block) heads whose outputs add up over key blocks: checked against the
    # reference with every gradient, and the kernel seen to get the blocks as heads
    from seqicl.ops.linear_attention import triton_linear_attention as tla
    assert tla.MAX_HEAD_DIM == 8
    launched, apply = [], tla.LinearAttentionFunction.apply
    monkeypatch.setattr(tla.LinearAttentionFunction, "apply",
                        lambda *args: launched.append(tuple(args[0].shape)) or apply(*args))
    inputs = make_inputs(shape, decay, seed=sum(shape))
    run_triton_and_compare(inputs, strided_grad(shape, seed=7), 1e-5, 1e-5)
    B, H, L, K, V = shape
    assert launched == [(B, heads, L, -(-K // -(-K // 8)))]


def test_float32_matmuls_run_as_tf32_only_where_the_user_allowed_it(monkeypatch):
    from seqicl.ops.linear_attention import triton_linear_attention as tla
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    assert tla._precision(torch.float32) == "split3" and tla._precision(torch.bfloat16) == "tf32"
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    assert tla._precision(torch.float32) == "tf32"


@triton.jit
def _halves_kernel(x_ptr, hi_ptr, lo_ptr, N: tl.constexpr):
    i = tl.arange(0, N)
    hi, lo = _tf32_halves(tl.load(x_ptr + i))
    tl.store(hi_ptr + i, hi)
    tl.store(lo_ptr + i, lo)


def test_split3_halves_are_exact_and_hi_is_tf32_rounded_to_nearest():
    # float32 matmuls run as three TF32 products of x = hi + lo (_dot): hi must hold only TF32's
    # bits, hi + lo must give x back exactly, and hi must be the nearest TF32 value (|lo| at most
    # half of hi's last bit), on random values of every scale, signs, ties and powers of two
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1024, generator=gen) * torch.logspace(-30, 30, 1024)
    ties = (torch.tensor([0x3F801000, 0x3F803000, 0xBF801000, 0x3F800FFF], dtype=torch.int64)
            .to(torch.int32).view(torch.float32))   # 1 + half a TF32 ulp (up), 1 + 1.5 ulps, negative, below half
    x = torch.cat([x, ties, torch.tensor([0.0, -0.0, 1.0, -2.0, 0.75])])
    x = torch.nn.functional.pad(x, (0, 2048 - x.numel()), value=3.0)
    hi, lo = torch.empty_like(x), torch.empty_like(x)
    _halves_kernel[(1,)](x, hi, lo, N=2048)
    assert not (hi.view(torch.int32) & 0x1FFF).any()
    assert torch.equal(hi + lo, x)
    ulp = torch.ldexp(torch.ones_like(x), torch.frexp(hi)[1] - 11)   # hi's last TF32 bit
    assert (lo.abs() <= ulp / 2).all()
    tie_hi = hi[1024:1028].view(torch.int32).tolist()
    assert tie_hi == [0x3F802000, 0x3F804000, torch.tensor(0xBF802000).to(torch.int32).item(), 0x3F800000]


def test_triton_bfloat16_inputs_keep_their_dtypes():
    # GLA's case: activations in bf16, the decay in float32
    shape = (1, 2, 20, 16, 16)
    q, k, v, log_decay = make_inputs(shape, "per_key", seed=8)
    inputs = [x.detach().bfloat16().requires_grad_() for x in (q, k, v)] + [log_decay]
    run_triton_and_compare(inputs, strided_grad(shape, seed=9, dtype=torch.bfloat16), 2e-2, 2e-2)


@pytest.mark.parametrize("decay", ["per_head", "per_key"])
def test_triton_gradients_are_deterministic(decay):
    shape = (2, 2, 33, 8, 8)
    inputs = make_inputs(shape, decay, seed=10)
    grad = strided_grad(shape, seed=11)
    runs = []
    for _ in range(2):
        with force_backend("triton"):
            runs.append(torch.autograd.grad(linear_attention(*inputs), inputs, grad))
    for first, second in zip(*runs):
        assert torch.equal(first, second)


def test_triton_forward_without_grad_and_a_fixed_decay():
    # RetNet's decay is a buffer: no gradient asked of it
    shape = (1, 3, 17, 5, 6)
    q, k, v, log_decay = make_inputs(shape, "per_head", seed=12)
    with force_backend("triton"), torch.no_grad():
        out = linear_attention(q, k, v, log_decay)
    assert_close(out, linear_attention_ref(*[x.detach().double() for x in (q, k, v, log_decay)]), 1e-5, "o")
    with force_backend("triton"):
        out = linear_attention(q, k, v, log_decay.detach())
    grads = torch.autograd.grad(out, (q, k, v), strided_grad(shape, seed=13))
    _, want = reference_float64(linear_attention_ref, [q, k, v, log_decay.detach()], strided_grad(shape, seed=13))
    for name, got, w in zip("qkv", grads, want):
        assert_close(got, w, 1e-5, f"d{name}")


def test_triton_rejects_mismatched_shapes():
    q = torch.randn(1, 2, 5, 4)
    with force_backend("triton"), pytest.raises(ValueError):
        linear_attention(q, q, torch.randn(1, 2, 5, 3), torch.zeros(3))


@pytest.mark.parametrize("name", ["linear_transformer", "retnet", "gla"])
def test_mixers_on_triton_match_torch(name):
    from seqicl.models import get_mixer
    torch.manual_seed(0)
    mixer = get_mixer(name)(32, 0)
    x = torch.randn(2, 19, 32)
    results = []
    for backend in ("torch", "triton"):
        mixer.zero_grad()
        with force_backend(backend):
            y = mixer(x)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results.append((y.detach(), {n: p.grad.clone() for n, p in mixer.named_parameters()}))
    (y_torch, g_torch), (y_triton, g_triton) = results
    assert_close(y_triton.double(), y_torch.double(), 1e-4, "y")
    for n in g_torch:
        assert_close(g_triton[n].double(), g_torch[n].double(), 1e-4, f"d{n}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("shape", SHAPES + [(4, 4, 1000, 64, 64), (2, 2, 300, 128, 65), (2, 2, 300, 128, 129)])
def test_triton_matches_reference_cuda(shape, decay, dtype):
    inputs = make_inputs(shape, decay, seed=sum(shape), device="cuda", dtype=dtype, head_views=True)
    grad = strided_grad(shape, seed=7, device="cuda", dtype=dtype, head_view=True)
    # fp32 matmuls run as three TF32 products (split3); bf16 ones as TF32 with o and the gradients rounded to bf16.
    # Sums over L=1000 steps (no decay) and dg's reverse cumsum of q dq - k dk lose some more.
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    run_triton_and_compare(inputs, grad, tol, tol if decay == "none" else 3 * tol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("shape, segments", [((4, 4, 1000, 64, 64), 4), ((2, 2, 300, 128, 65), 8),
                                            ((3, 4, 700, 64, 64), 1)])   # the unsegmented kernel ("fill" is the default)
def test_triton_segmented_forward_cuda(shape, segments, decay, dtype, monkeypatch):
    launched = segmented_forward(monkeypatch, segments, "cuda")
    inputs = make_inputs(shape, decay, seed=sum(shape), device="cuda", dtype=dtype, head_views=True)
    grad = strided_grad(shape, seed=7, device="cuda", dtype=dtype, head_view=True)
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    run_triton_and_compare(inputs, grad, tol, tol if decay == "none" else 3 * tol)
    assert launched and all((n > 1) == (segments > 1) for _, n in launched)


@pytest.mark.gpu
def test_triton_strongly_negative_per_key_decays_cuda():
    shape = (2, 2, 500, 64, 64)
    q, k, v, log_decay = make_inputs(shape, "per_key", seed=5, device="cuda", decay_scale=8.0)
    with torch.no_grad():
        log_decay[..., ::2] *= 0.01
    run_triton_and_compare([q, k, v, log_decay], strided_grad(shape, seed=6, device="cuda"), 1e-4, 3e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("decay", ["per_head", "per_key"])
def test_triton_gradients_are_deterministic_cuda(decay):
    shape = (8, 4, 700, 64, 64)
    inputs = make_inputs(shape, decay, seed=10, device="cuda")
    grad = strided_grad(shape, seed=11, device="cuda")
    runs = [torch.autograd.grad(linear_attention(*inputs), inputs, grad) for _ in range(2)]
    for first, second in zip(*runs):
        assert torch.equal(first, second)
