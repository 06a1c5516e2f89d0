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
