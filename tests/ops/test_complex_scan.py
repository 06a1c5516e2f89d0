"""The complex diagonal scan (LRU): the reference against hand-worked and closed-form cases, the
Triton kernel (forward and hand-written backward) against the reference."""
import pytest
import torch

from seqicl.ops.complex_scan import complex_scan, complex_scan_ref
from seqicl.ops.dispatch import force_backend

SHAPES = [(2, 63, 40), (1, 17, 7), (2, 64, 64)]
# forced-Triton tests: the interpreter on CPU, the real kernel where a GPU is present (the
# interpreter is only switched on without CUDA)
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def random_inputs(batch, length, channels, device="cpu", dtype=torch.float32, lam_dtype=torch.float32, seed=0):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # |lambda| in [0.5, 0.99] with any phase: a stable decay, as in the LRU's ring init
    radius = 0.5 + 0.49 * torch.rand(channels, generator=gen)
    phase = 2 * torch.pi * torch.rand(channels, generator=gen)
    lam_re = (radius * torch.cos(phase)).to(device, lam_dtype).requires_grad_()
    lam_im = (radius * torch.sin(phase)).to(device, lam_dtype).requires_grad_()
    b_re = torch.randn(batch, length, channels, generator=gen).to(device, dtype).requires_grad_()
    b_im = torch.randn(batch, length, channels, generator=gen).to(device, dtype).requires_grad_()
    return lam_re, lam_im, b_re, b_im


def non_contiguous_grads(batch, length, channels, device="cpu", dtype=torch.float32, seed=1):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # one transposed back, one a strided slice: neither is contiguous
    g_re = torch.randn(batch, channels, length, generator=gen).to(device, dtype).transpose(1, 2)
    g_im = torch.randn(batch, length, 2 * channels, generator=gen).to(device, dtype)[:, :, ::2]
    assert not g_re.is_contiguous() and not g_im.is_contiguous()
    return g_re, g_im


def assert_rel_close(actual, expected, rel, name):
    """Max error over the largest magnitude: sensitive to a wrong kernel, robust to scale."""
    expected = expected.detach().double()
    scale = expected.abs().max().item()
    assert scale > 1e-3, f"{name}: reference is (near) zero, the comparison would prove nothing"
    assert torch.isfinite(actual).all(), f"{name}: non-finite values"
    err = (actual.detach().double() - expected).abs().max().item() / scale
    assert err <= rel, f"{name}: relative error {err:.2e} > {rel:.0e}"


def outputs_and_grads(fn, inputs, grads):
    h_re, h_im = fn(*inputs)
    return (h_re, h_im) + torch.autograd.grad((h_re, h_im), inputs, grads)


NAMES = ("h_re", "h_im", "grad_lam_re", "grad_lam_im", "grad_b_re", "grad_b_im")


# ---- the reference is the specification: check it on its own ----

def test_reference_hand_case():
    # lambda = 0.5+0.5i, b = 1, i, 0:  h0 = 1, h1 = lambda + i = 0.5+1.5i, h2 = lambda*h1 = -0.5+1i
    lam_re, lam_im = torch.tensor([0.5]), torch.tensor([0.5])
    b_re = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1)
    b_im = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1)
    h_re, h_im = complex_scan_ref(lam_re, lam_im, b_re, b_im)
    assert torch.equal(h_re.flatten(), torch.tensor([1.0, 0.5, -0.5]))
    assert torch.equal(h_im.flatten(), torch.tensor([0.0, 1.5, 1.0]))


def test_reference_matches_closed_form_and_adjoint_formula():
    """h_t = sum_{s<=t} lambda^(t-s) b_s, and autograd through the loop gives the adjoint formula
    that the Triton backward implements: C_t = G_t + conj(lambda) C_{t+1}, grad_b = C,
    grad_lambda = sum conj(h_{t-1}) C_t."""
    lam_re, lam_im, b_re, b_im = (x.detach().double().requires_grad_() for x in random_inputs(2, 9, 3))
    g_re, g_im = (g.double() for g in non_contiguous_grads(2, 9, 3))
    h_re, h_im, *grads = outputs_and_grads(complex_scan_ref, (lam_re, lam_im, b_re, b_im), (g_re, g_im))

    lam = torch.complex(lam_re, lam_im).detach()
    b = torch.complex(b_re, b_im).detach()
    length = b.shape[1]
    t = torch.arange(length)
    lag = t[:, None] - t[None, :]
    # decay[t, s, d] = lambda_d^(t-s) for s <= t, else 0
    decay = torch.where((lag >= 0)[..., None], lam ** lag.clamp(min=0)[..., None], 0)
    h = torch.einsum("tsd,bsd->btd", decay, b)
    assert torch.allclose(h_re, h.real, atol=1e-12, rtol=1e-12)
    assert torch.allclose(h_im, h.imag, atol=1e-12, rtol=1e-12)

    G = torch.complex(g_re, g_im)
    adjoint = torch.zeros_like(G)
    running = torch.zeros_like(G[:, 0])
    for step in reversed(range(length)):
        running = G[:, step] + lam.conj() * running
        adjoint[:, step] = running
    h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
    grad_lam = (h_prev.conj() * adjoint).sum(dim=(0, 1))
    expected = (grad_lam.real, grad_lam.imag, adjoint.real, adjoint.imag)
    for name, got, want in zip(NAMES[2:], grads, expected):
        assert torch.allclose(got, want, atol=1e-12, rtol=1e-10), name


# ---- Triton (through the interpreter on CPU) against the reference ----

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("blocks", [None, (16, 16)], ids=["default-blocks", "tiles16"])
def test_triton_matches_reference(shape, blocks):
    from seqicl.ops.complex_scan.triton_complex_scan import complex_scan_triton

    inputs = random_inputs(*shape, device=TRITON_DEVICE)
    grads = non_contiguous_grads(*shape, device=TRITON_DEVICE)
    expected = outputs_and_grads(complex_scan_ref, inputs, grads)
    if blocks is None:
        with force_backend("triton"):
            got = outputs_and_grads(complex_scan, inputs, grads)
        assert "ComplexScanFunction" in type(got[0].grad_fn).__name__
    else:
        # 16-step tiles: several tiles with the carry between them, and partial channel blocks
        got = outputs_and_grads(lambda *x: complex_scan_triton(*x, block_l=blocks[0], block_d=blocks[1]), inputs, grads)
    for name, g, e in zip(NAMES, got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype, name
        assert_rel_close(g, e, 1e-4, name)


def test_backward_leaves_saved_tensors_and_grad_output_unchanged():
    inputs = random_inputs(2, 33, 20, device=TRITON_DEVICE)
    grads = non_contiguous_grads(2, 33, 20, device=TRITON_DEVICE)
    with force_backend("triton"):
        h_re, h_im = complex_scan(*inputs)
    saved = h_re.grad_fn.saved_tensors
    # lambda is saved as the (D,) vector, never expanded over batch and time
    assert [tuple(s.shape) for s in saved] == [(20,), (20,), (2, 33, 20), (2, 33, 20)]
    before = [t.detach().clone() for t in (*inputs, h_re, h_im, *grads)]
    torch.autograd.grad((h_re, h_im), inputs, grads)
    after = [t.detach() for t in (*inputs, h_re, h_im, *grads)]
    for b, a in zip(before, after):
        assert torch.equal(a, b)


def test_one_output_unused_in_loss():
    inputs = random_inputs(1, 20, 5, device=TRITON_DEVICE)
    with force_backend("triton"):
        got = torch.autograd.grad(complex_scan(*inputs)[1].sum(), inputs)
    expected = torch.autograd.grad(complex_scan_ref(*inputs)[1].sum(), inputs)
    for name, g, e in zip(NAMES[2:], got, expected):
        assert_rel_close(g, e, 1e-4, name)


def test_cpu_dispatches_to_reference():
    inputs = random_inputs(1, 5, 3)
    h_re, _ = complex_scan(*inputs)
    assert "ComplexScanFunction" not in type(h_re.grad_fn).__name__
    assert torch.equal(h_re, complex_scan_ref(*inputs)[0])


def test_bad_shapes_rejected():
    lam_re, lam_im, b_re, b_im = random_inputs(1, 4, 3)
    with pytest.raises(ValueError):
        complex_scan(lam_re[:2], lam_im, b_re, b_im)
    with pytest.raises(ValueError):
        complex_scan(lam_re, lam_im, b_re[0], b_im[0])


# ---- CUDA: float32 and bfloat16, including a long sequence ----

GPU_CASES = [
    (shape, torch.float32, 1e-4) for shape in SHAPES + [(4, 2048, 256)]
] + [
    # bf16 input and output, float32 lambda and accumulation: output rounding dominates
    (shape, torch.bfloat16, 2e-2) for shape in SHAPES + [(4, 2048, 256)]
]


@pytest.mark.gpu
@pytest.mark.parametrize("shape,dtype,rel", GPU_CASES, ids=lambda v: str(v).replace("torch.", ""))
def test_triton_matches_reference_cuda(shape, dtype, rel):
    inputs = random_inputs(*shape, device="cuda", dtype=dtype)
    grads = non_contiguous_grads(*shape, device="cuda", dtype=dtype)
    got = outputs_and_grads(complex_scan, inputs, grads)
    assert "ComplexScanFunction" in type(got[0].grad_fn).__name__
    # the reference in float64 on the same (rounded) inputs
    inputs64 = [x.detach().double().requires_grad_() for x in inputs]
    expected = outputs_and_grads(complex_scan_ref, inputs64, [g.double() for g in grads])
    for name, g, e, x in zip(NAMES, got, expected, [inputs[2]] * 2 + list(inputs)):
        assert g.dtype == x.dtype, name
        assert_rel_close(g, e, rel, name)


@pytest.mark.gpu
def test_lambda_grad_deterministic_cuda():
    inputs = random_inputs(8, 512, 96, device="cuda")
    grads = non_contiguous_grads(8, 512, 96, device="cuda")
    first = outputs_and_grads(complex_scan, inputs, grads)
    second = outputs_and_grads(complex_scan, inputs, grads)
    for name, a, b in zip(NAMES, first, second):
        assert torch.equal(a, b), name
