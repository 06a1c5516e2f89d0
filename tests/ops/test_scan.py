"""linear_scan: the reference against a closed form, and the Triton kernels against the reference."""
import os

import pytest
import torch

from seqicl.ops.dispatch import force_backend
from seqicl.ops.scan import linear_scan, linear_scan_ref

SHAPES = [(2, 63, 40), (1, 17, 7), (2, 64, 64)]

# Triton on CPU tensors needs the interpreter, which conftest turns on only without a GPU
interpreter = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                 reason="needs Triton's CPU interpreter (TRITON_INTERPRET=1)")


def random_inputs(shape, dtype=torch.float32, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    # gates in (0, 1) as GILR makes them, some near 1 so the state carries far across tiles
    a = torch.sigmoid(3 * torch.randn(shape, generator=gen) + 1.0)
    b = torch.randn(shape, generator=gen)
    return [x.to(device=device, dtype=dtype).requires_grad_() for x in (a, b)]


def strided_grad(shape, dtype=torch.float32, device="cpu", seed=1):
    """A random upstream gradient that is not contiguous (every other element of a wider tensor)."""
    gen = torch.Generator().manual_seed(seed)
    B, L, D = shape
    g = torch.randn(B, L, 2 * D, generator=gen).to(device=device, dtype=dtype)[..., ::2]
    assert not g.is_contiguous()
    return g


def output_and_grads(fn, a, b, g):
    h = fn(a, b)
    da, db = torch.autograd.grad(h, (a, b), g)
    return h, da, db


def assert_close(actual, expected, rtol, atol, name):
    assert expected.abs().max() > 0.1, f"{name}: the expected values are too small to test anything"
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def test_reference_hand_case():
    a = torch.tensor([[[0.5], [2.0], [-1.0], [0.25]]])
    b = torch.tensor([[[1.0], [1.0], [4.0], [2.0]]])
    # h0 = 1; h1 = 2*1 + 1 = 3; h2 = -3 + 4 = 1; h3 = 0.25 + 2 = 2.25
    expected = torch.tensor([[[1.0], [3.0], [1.0], [2.25]]])
    torch.testing.assert_close(linear_scan_ref(a, b), expected, rtol=0, atol=0)


def test_reference_matches_closed_form():
    # h_t = sum_{s<=t} (prod_{s<r<=t} a_r) b_s, written independently of the loop
    a, b = (x.detach().double() for x in random_inputs((2, 9, 3)))
    L = a.shape[1]
    expected = torch.zeros_like(b)
    for t in range(L):
        for s in range(t + 1):
            expected[:, t] += a[:, s + 1:t + 1].prod(dim=1) * b[:, s]
    torch.testing.assert_close(linear_scan_ref(a, b), expected, rtol=1e-12, atol=1e-12)


def test_hand_backward_formula_matches_autograd_of_reference():
    # the adjoint c_t = g_t + a_{t+1} c_{t+1}; db = c, da_t = c_t h_{t-1}: what the kernel implements
    a, b = (x.detach().double().requires_grad_() for x in random_inputs((2, 11, 5)))
    g = torch.randn(a.shape, dtype=torch.float64)
    h, da, db = output_and_grads(linear_scan_ref, a, b, g)
    c = torch.zeros_like(g)
    c[:, -1] = g[:, -1]
    for t in range(a.shape[1] - 2, -1, -1):
        c[:, t] = g[:, t] + a[:, t + 1].detach() * c[:, t + 1]
    h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1).detach()
    torch.testing.assert_close(db, c, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(da, c * h_prev, rtol=1e-12, atol=1e-12)


def test_cpu_tensors_use_the_reference():
    a, b = random_inputs((1, 5, 3))
    assert linear_scan(a, b).grad_fn.name() != "LinearScanBackward"


@interpreter
@pytest.mark.parametrize("shape", SHAPES)
def test_triton_matches_reference_cpu_interpreter(shape):
    a, b = random_inputs(shape)
    g = strided_grad(shape)
    with force_backend("triton"):
        got = output_and_grads(linear_scan, a, b, g)
    expected = output_and_grads(linear_scan_ref, a, b, g)
    for name, x, y in zip(("h", "da", "db"), got, expected):
        assert_close(x, y, rtol=1e-4, atol=1e-5, name=name)


@interpreter
def test_triton_backward_leaves_saved_tensors_unchanged():
    shape = (2, 40, 24)
    a, b = random_inputs(shape)
    g = strided_grad(shape)
    with force_backend("triton"):
        h = linear_scan(a, b)
        before = [x.detach().clone() for x in (a, b, h, g)]
        torch.autograd.grad(h, (a, b), g)
    for name, x, y in zip(("a", "b", "h", "grad_output"), (a, b, h, g), before):
        assert torch.equal(x.detach(), y), f"backward modified {name}"


@interpreter
@pytest.mark.parametrize("mixed", [False, True])
def test_triton_gradient_reaches_noncontiguous_inputs(mixed):
    # transposed inputs (D, L) -> (L, D) views: the wrapper must make them contiguous
    B, L, D = 2, 20, 9
    a_t, b_t = random_inputs((B, D, L))
    a, b = a_t.transpose(1, 2), b_t.transpose(1, 2)
    if mixed:
        b = b.contiguous()  # one contiguous, one not
    g = strided_grad((B, L, D))
    with force_backend("triton"):
        got = output_and_grads(linear_scan, a_t.transpose(1, 2), b, g)
    expected = output_and_grads(linear_scan_ref, a, b, g)
    for name, x, y in zip(("h", "da", "db"), got, expected):
        assert_close(x, y, rtol=1e-4, atol=1e-5, name=name)


GPU_CASES = [(shape, torch.float32) for shape in SHAPES] + [
    ((2, 63, 40), torch.bfloat16),
    ((4, 2048, 256), torch.float32),
    ((4, 2048, 256), torch.bfloat16),
]


@pytest.mark.gpu
@pytest.mark.parametrize("shape,dtype", GPU_CASES)
def test_triton_matches_reference_cuda(shape, dtype):
    a, b = random_inputs(shape, dtype=dtype, device="cuda")
    g = strided_grad(shape, dtype=dtype, device="cuda")
    before = [x.detach().clone() for x in (a, b, g)]
    got = output_and_grads(linear_scan, a, b, g)  # CUDA tensors dispatch to Triton
    assert all(torch.equal(x.detach(), y) for x, y in zip((a, b, g), before)), "backward modified its inputs"
    assert got[0].grad_fn.name() == "LinearScanBackward"
    assert all(x.dtype == dtype for x in got)
    # the reference in float64 from the same (possibly bf16-rounded) inputs
    a64, b64 = (x.detach().double().requires_grad_() for x in (a, b))
    expected = output_and_grads(linear_scan_ref, a64, b64, g.double())
    rtol, atol = (1e-4, 1e-5) if dtype == torch.float32 else (2e-2, 2e-2)
    for name, x, y in zip(("h", "da", "db"), got, expected):
        assert_close(x.double(), y, rtol=rtol, atol=atol, name=name)
