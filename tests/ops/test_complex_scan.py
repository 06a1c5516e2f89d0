"""The complex diagonal scan (LRU) on the packed (B, L, 2, D) layout: the reference against
hand-worked and closed-form cases in torch complex arithmetic, the Triton kernel (forward and
hand-written backward) against the reference."""
import pytest
import torch

from seqicl.ops.complex_scan import complex_scan, complex_scan_ref
from seqicl.ops.dispatch import force_backend

# odd sizes: L not a multiple of the tile, D not a power of two (a partial channel block, whose
# masked columns would otherwise reach into the imaginary half), batch 1 and 3
SHAPES = [(2, 63, 40), (1, 17, 7), (2, 64, 64), (3, 50, 24)]
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
    b = torch.randn(batch, length, 2, channels, generator=gen).to(device, dtype).requires_grad_()
    return lam_re, lam_im, b


def non_contiguous_grad(batch, length, channels, device="cpu", dtype=torch.float32, seed=1):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    g = torch.randn(batch, 2, length, channels, generator=gen).to(device, dtype).transpose(1, 2)
    assert not g.is_contiguous()
    return g


def assert_rel_close(actual, expected, rel, name):
    """Max error over the largest magnitude: sensitive to a wrong kernel, robust to scale."""
    expected = expected.detach().double()
    scale = expected.abs().max().item()
    assert scale > 1e-3, f"{name}: reference is (near) zero, the comparison would prove nothing"
    assert torch.isfinite(actual).all(), f"{name}: non-finite values"
    err = (actual.detach().double() - expected).abs().max().item() / scale
    assert err <= rel, f"{name}: relative error {err:.2e} > {rel:.0e}"


def outputs_and_grads(fn, inputs, grad):
    h = fn(*inputs)
    return (h,) + torch.autograd.grad(h, inputs, grad)


NAMES = ("h", "grad_lam_re", "grad_lam_im", "grad_b")


def as_complex(x):
    """(B, L, 2, D) packed -> (B, L, D) complex."""
    return torch.complex(x[:, :, 0], x[:, :, 1])


def as_packed(z):
    """(B, L, D) complex -> (B, L, 2, D) packed."""
    return torch.stack([z.real, z.imag], dim=2)


# ---- the reference is the specification: check it on its own ----

def test_reference_hand_case():
    # lambda = 0.5+0.5i, b = 1, i, 0:  h0 = 1, h1 = lambda + i = 0.5+1.5i, h2 = lambda*h1 = -0.5+1i
    lam_re, lam_im = torch.tensor([0.5]), torch.tensor([0.5])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).view(1, 3, 2, 1)  # [real, imaginary] per step
    h = complex_scan_ref(lam_re, lam_im, b)
    assert h.shape == (1, 3, 2, 1) and h.is_contiguous()
    assert torch.equal(h[0, :, 0, 0], torch.tensor([1.0, 0.5, -0.5]))
    assert torch.equal(h[0, :, 1, 0], torch.tensor([0.0, 1.5, 1.0]))


def closed_form(lam, b):
    """h_t = sum_{s<=t} lambda^(t-s) b_s in torch complex arithmetic; lam (D,), b (B, L, D)."""
    t = torch.arange(b.shape[1])
    lag = t[:, None] - t[None, :]
    # decay[t, s, d] = lambda_d^(t-s) for s <= t, else 0
    decay = torch.where((lag >= 0)[..., None], lam ** lag.clamp(min=0)[..., None], 0)
    return torch.einsum("tsd,bsd->btd", decay, b)


def test_reference_matches_complex_closed_form_and_its_autograd():
    """Outputs and all gradients of the reference (float64) against the closed form computed on
    complex tensors, differentiated by autograd through torch.complex."""
    lam_re, lam_im, b = (x.detach().double().requires_grad_() for x in random_inputs(3, 9, 5))
    g = non_contiguous_grad(3, 9, 5).double()
    got = outputs_and_grads(complex_scan_ref, (lam_re, lam_im, b), g)

    h = closed_form(torch.complex(lam_re, lam_im), as_complex(b))
    # the real loss sum(g * h) on the packed layout, written on the complex h
    loss = (g[:, :, 0] * h.real + g[:, :, 1] * h.imag).sum()
    expected = (as_packed(h),) + torch.autograd.grad(loss, (lam_re, lam_im, b))
    for name, a, e in zip(NAMES, got, expected):
        assert a.shape == e.shape, name
        assert torch.allclose(a, e, atol=1e-12, rtol=1e-10), name


def test_reference_gradients_match_adjoint_formula():
    """Autograd through the loop gives the adjoint formula that the Triton backward implements:
    C_t = G_t + conj(lambda) C_{t+1}, grad_b = C, grad_lambda = sum conj(h_{t-1}) C_t."""
    lam_re, lam_im, b = (x.detach().double().requires_grad_() for x in random_inputs(2, 9, 3))
    g = non_contiguous_grad(2, 9, 3).double()
    h, *grads = outputs_and_grads(complex_scan_ref, (lam_re, lam_im, b), g)

    lam = torch.complex(lam_re, lam_im).detach()
    hc = as_complex(h.detach())
    G = as_complex(g)
    adjoint = torch.zeros_like(G)
    running = torch.zeros_like(G[:, 0])
    for step in reversed(range(G.shape[1])):
        running = G[:, step] + lam.conj() * running
        adjoint[:, step] = running
    h_prev = torch.cat([torch.zeros_like(hc[:, :1]), hc[:, :-1]], dim=1)
    grad_lam = (h_prev.conj() * adjoint).sum(dim=(0, 1))
    expected = (grad_lam.real, grad_lam.imag, as_packed(adjoint))
    for name, got, want in zip(NAMES[1:], grads, expected):
        assert torch.allclose(got, want, atol=1e-12, rtol=1e-10), name


def test_reference_empty_sequence():
    lam_re, lam_im, b = random_inputs(2, 0, 3)
    h = complex_scan_ref(lam_re, lam_im, b)
    assert h.shape == (2, 0, 2, 3) and h.dtype == b.dtype


# ---- Triton (through the interpreter on CPU) against the reference ----

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("blocks", [None, (16, 16)], ids=["default-blocks", "tiles16"])
def test_triton_matches_reference(shape, blocks):
    from seqicl.ops.complex_scan.triton_complex_scan import complex_scan_triton

    inputs = random_inputs(*shape, device=TRITON_DEVICE)
    grad = non_contiguous_grad(*shape, device=TRITON_DEVICE)
    expected = outputs_and_grads(complex_scan_ref, inputs, grad)
    if blocks is None:
        with force_backend("triton"):
            got = outputs_and_grads(complex_scan, inputs, grad)
        assert "ComplexScanFunction" in type(got[0].grad_fn).__name__
    else:
        # 16-step tiles: several tiles with the carry between them, and partial channel blocks
        got = outputs_and_grads(lambda *x: complex_scan_triton(*x, block_l=blocks[0], block_d=blocks[1]), inputs, grad)
    assert got[0].is_contiguous()
    for name, g, e in zip(NAMES, got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype, name
        assert_rel_close(g, e, 1e-4, name)


def test_triton_strided_inputs():
    """lambda as the strided parts of a complex tensor (as the LRU mixer passes it, read in
    place by the kernel) and a non-contiguous b (copied)."""
    lam_re, lam_im, b = random_inputs(2, 21, 12, device=TRITON_DEVICE)
    lam = torch.complex(lam_re.detach(), lam_im.detach()).requires_grad_()
    lam_parts = torch.view_as_real(lam).unbind(-1)
    assert lam_parts[1].stride() == (2,)
    b_strided = b.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    assert not b_strided.is_contiguous()
    grad = non_contiguous_grad(2, 21, 12, device=TRITON_DEVICE)
    expected = outputs_and_grads(complex_scan_ref, (lam_re, lam_im, b), grad)
    with force_backend("triton"):
        h = complex_scan(*lam_parts, b_strided)
    assert "ComplexScanFunction" in type(h.grad_fn).__name__
    grad_lam, grad_b = torch.autograd.grad(h, (lam, b_strided), grad)
    got = (h, grad_lam.real, grad_lam.imag, grad_b)
    for name, g, e in zip(NAMES, got, expected):
        assert_rel_close(g, e, 1e-4, name)


def test_backward_leaves_saved_tensors_and_grad_output_unchanged():
    inputs = random_inputs(2, 33, 20, device=TRITON_DEVICE)
    grad = non_contiguous_grad(2, 33, 20, device=TRITON_DEVICE)
    with force_backend("triton"):
        h = complex_scan(*inputs)
    saved = h.grad_fn.saved_tensors
    # lambda is saved as the (D,) vector, never expanded over batch and time
    assert [tuple(s.shape) for s in saved] == [(20,), (20,), (2, 33, 2, 20)]
    before = [t.detach().clone() for t in (*inputs, h, grad)]
    torch.autograd.grad(h, inputs, grad)
    after = [t.detach() for t in (*inputs, h, grad)]
    for b, a in zip(before, after):
        assert torch.equal(a, b)


@pytest.mark.parametrize("part", [0, 1], ids=["real-only", "imaginary-only"])
def test_loss_on_one_part_only(part):
    # the gradient reaches the kernel with one half zero: a swap of the halves shows
    inputs = random_inputs(1, 20, 5, device=TRITON_DEVICE)
    with force_backend("triton"):
        got = torch.autograd.grad(complex_scan(*inputs)[:, :, part].sum(), inputs)
    expected = torch.autograd.grad(complex_scan_ref(*inputs)[:, :, part].sum(), inputs)
    for name, g, e in zip(NAMES[1:], got, expected):
        assert_rel_close(g, e, 1e-4, name)


def test_triton_without_lambda_grad():
    lam_re, lam_im, b = random_inputs(2, 19, 9, device=TRITON_DEVICE)
    lam_re, lam_im = lam_re.detach(), lam_im.detach()
    grad = non_contiguous_grad(2, 19, 9, device=TRITON_DEVICE)
    expected = outputs_and_grads(lambda b: complex_scan_ref(lam_re, lam_im, b), (b,), grad)
    with force_backend("triton"):
        got = outputs_and_grads(lambda b: complex_scan(lam_re, lam_im, b), (b,), grad)
    assert "ComplexScanFunction" in type(got[0].grad_fn).__name__
    for name, g, e in zip(("h", "grad_b"), got, expected):
        assert_rel_close(g, e, 1e-4, name)


def test_triton_empty_sequence():
    inputs = random_inputs(2, 0, 3, device=TRITON_DEVICE)
    with force_backend("triton"):
        h = complex_scan(*inputs)
    assert h.shape == (2, 0, 2, 3)
    grads = torch.autograd.grad(h, inputs, torch.zeros_like(h))
    assert [tuple(g.shape) for g in grads] == [(3,), (3,), (2, 0, 2, 3)]
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_cpu_dispatches_to_reference():
    inputs = random_inputs(1, 5, 3)
    h = complex_scan(*inputs)
    assert "ComplexScanFunction" not in type(h.grad_fn).__name__
    assert torch.equal(h, complex_scan_ref(*inputs))


def test_bad_shapes_rejected():
    lam_re, lam_im, b = random_inputs(1, 4, 3)
    with pytest.raises(ValueError, match=r"lam_re and lam_im must be \(3,\)"):
        complex_scan(lam_re[:2], lam_im, b)
    with pytest.raises(ValueError, match=r"\(B, L, 2, D\)"):
        complex_scan(lam_re, lam_im, b[0])  # no batch axis
    with pytest.raises(ValueError, match=r"\(B, L, 2, D\)"):
        complex_scan(lam_re, lam_im, b[:, :, 0])  # the old unpacked (B, L, D) layout
    with pytest.raises(ValueError, match=r"\(B, L, 2, D\)"):
        complex_scan(lam_re, lam_im, torch.cat([b, b], dim=2))  # dim 2 of size 4


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
    grad = non_contiguous_grad(*shape, device="cuda", dtype=dtype)
    got = outputs_and_grads(complex_scan, inputs, grad)
    assert "ComplexScanFunction" in type(got[0].grad_fn).__name__
    # the reference in float64 on the same (rounded) inputs
    inputs64 = [x.detach().double().requires_grad_() for x in inputs]
    expected = outputs_and_grads(complex_scan_ref, inputs64, grad.double())
    for name, g, e, x in zip(NAMES, got, expected, [inputs[2]] + list(inputs)):
        assert g.dtype == x.dtype, name
        assert_rel_close(g, e, rel, name)


@pytest.mark.gpu
def test_lambda_grad_deterministic_cuda():
    inputs = random_inputs(8, 512, 96, device="cuda")
    grad = non_contiguous_grad(8, 512, 96, device="cuda")
    first = outputs_and_grads(complex_scan, inputs, grad)
    second = outputs_and_grads(complex_scan, inputs, grad)
    for name, a, b in zip(NAMES, first, second):
        assert torch.equal(a, b), name
