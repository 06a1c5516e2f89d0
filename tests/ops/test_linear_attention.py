"""Causal linear attention with a decay: the loop reference against the closed form
o_t = sum_{j<=t} (q_t * exp(G_t - G_j)) . k_j v_j, outputs and every gradient, on odd sizes."""
import pytest
import torch

from seqicl.ops.linear_attention import linear_attention, linear_attention_ref


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
