import pytest
import torch
from torch import nn

from seqicl.ops import short_conv
from seqicl.ops.short_conv import causal_depthwise_conv, direct_depthwise_conv


@pytest.mark.parametrize("method", short_conv.METHODS)
@pytest.mark.parametrize("B, L, D, K, bias", [(2, 13, 5, 4, True), (1, 2, 3, 4, False), (3, 9, 7, 1, True),
                                              (2, 11, 6, 3, False), (1, 20, 4, 12, True)])
def test_matches_definition_outputs_and_gradients(method, B, L, D, K, bias):
    torch.manual_seed(0)
    x = torch.randn(B, L, D, dtype=torch.float64, requires_grad=True)
    w = torch.randn(D, K, dtype=torch.float64, requires_grad=True)
    b = torch.randn(D, dtype=torch.float64, requires_grad=True) if bias else None
    inputs = [x, w] + ([b] if bias else [])
    g = torch.randn(B, L, D, dtype=torch.float64)
    y = causal_depthwise_conv(x, w, b, method=method)
    y_ref = direct_depthwise_conv(x, w, b)
    # "shift" accumulates in float32 and returns x's dtype
    tol = 1e-12 if method == "conv1d" or K > short_conv.MAX_SHIFT_TAPS else 1e-5
    assert y.dtype == x.dtype and torch.allclose(y, y_ref, atol=tol, rtol=tol)
    grads = torch.autograd.grad((y * g).sum(), inputs)
    grads_ref = torch.autograd.grad((y_ref * g).sum(), inputs)
    for got, want in zip(grads, grads_ref):
        assert torch.allclose(got, want, atol=tol, rtol=tol)


def test_definition_by_hand():
    # one channel, taps (a, b, c): y[t] = a x[t-2] + b x[t-1] + c x[t] + bias
    x = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]])
    w = torch.tensor([[10.0, 100.0, 1000.0]])
    want = torch.tensor([[[1000.0 + 0.5], [2100.0 + 0.5], [3210.0 + 0.5], [4320.0 + 0.5]]])
    for method in short_conv.METHODS:
        assert torch.equal(causal_depthwise_conv(x, w, torch.tensor([0.5]), method=method), want)
    assert torch.equal(direct_depthwise_conv(x, w, torch.tensor([0.5])), want)


@pytest.mark.parametrize("method", short_conv.METHODS)
def test_causal(method):
    torch.manual_seed(1)
    x = torch.randn(2, 16, 6)
    w = torch.randn(6, 4)
    y = causal_depthwise_conv(x, w, method=method)
    x2 = x.clone()
    x2[:, 9:] = torch.randn(2, 7, 6)
    y2 = causal_depthwise_conv(x2, w, method=method)
    assert torch.equal(y[:, :9], y2[:, :9]) and not torch.allclose(y[:, 9:], y2[:, 9:])


def test_same_as_the_models_conv1d_module():
    # Mamba and Hyena keep nn.Conv1d's parameters (checkpoints load as before)
    torch.manual_seed(2)
    conv = nn.Conv1d(6, 6, 4, groups=6, padding=3)
    x = torch.randn(2, 10, 6)
    want = conv(x.transpose(1, 2))[..., :10].transpose(1, 2)
    for method in short_conv.METHODS:
        got = causal_depthwise_conv(x, conv.weight.squeeze(1), conv.bias, method=method)
        assert torch.allclose(got, want, atol=1e-6)


def test_bf16_input_returns_bf16_close_to_float32():
    torch.manual_seed(3)
    x = torch.randn(2, 12, 8)
    w = torch.randn(8, 4)
    want = direct_depthwise_conv(x, w)
    got = causal_depthwise_conv(x.bfloat16(), w, method="shift")
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), want, atol=0.05, rtol=0.02)


def test_bad_arguments_are_one_clear_error():
    x = torch.randn(1, 4, 3)
    with pytest.raises(ValueError, match="method must be one of"):
        causal_depthwise_conv(x, torch.randn(3, 2), method="fft")
    with pytest.raises(ValueError, match=r"weight must be \(D, K\)"):
        causal_depthwise_conv(x, torch.randn(4, 2))


@pytest.mark.parametrize("model", ["mamba", "hyena", "h3"])
def test_models_give_the_same_output_and_gradients_with_either_method(model, monkeypatch):
    from seqicl.models.registry import get_mixer
    torch.manual_seed(4)
    kwargs = {"h3": {"shift_size": 4}}.get(model, {})
    mixer = get_mixer(model)(16, **kwargs)
    x = torch.randn(2, 11, 16, requires_grad=True)
    outs = []
    for method in short_conv.METHODS:
        monkeypatch.setattr(short_conv, "METHOD", method)
        y = mixer(x)
        outs.append([y] + list(torch.autograd.grad(y.square().sum(), [x] + list(mixer.parameters()))))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
