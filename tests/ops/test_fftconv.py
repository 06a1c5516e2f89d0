import pytest
import torch

from seqicl.ops.fftconv import direct_conv, fft_conv


@pytest.mark.parametrize("B, L, H", [(2, 63, 5), (1, 1, 3), (3, 40, 8)])
def test_fft_conv_matches_definition_and_gradients(B, L, H):
    torch.manual_seed(0)
    u = torch.randn(B, L, H, dtype=torch.float64, requires_grad=True)
    k = torch.randn(H, L, dtype=torch.float64, requires_grad=True)
    y, y_ref = fft_conv(u.float(), k.float()).double(), direct_conv(u, k)
    assert torch.allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    g = torch.randn(B, L, H, dtype=torch.float64)
    gu, gk = torch.autograd.grad((fft_conv(u, k) * g).sum(), (u, k))
    gu_ref, gk_ref = torch.autograd.grad((direct_conv(u, k) * g).sum(), (u, k))
    assert torch.allclose(gu, gu_ref, atol=1e-8) and torch.allclose(gk, gk_ref, atol=1e-8)
