import pytest
import torch

from seqicl.config import compose
from seqicl.models import MIXERS, build_model


@pytest.mark.parametrize("name", sorted(MIXERS))
@pytest.mark.parametrize("length", [1, 17])
def test_mixer_shape_and_causality(name, length):
    torch.manual_seed(0)
    kwargs = compose([f"model={name}"])["model"]["mixer"]
    mixer = MIXERS[name](24, 0, **kwargs).eval()
    x = torch.randn(2, length, 24)
    y = mixer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    for t in range(length - 1):  # changing input t+1 never changes outputs 0..t
        x2 = x.clone()
        x2[:, t + 1:] = torch.randn_like(x2[:, t + 1:])
        assert torch.allclose(mixer(x2)[:, : t + 1], y[:, : t + 1], atol=1e-5)
        assert not torch.allclose(mixer(x2)[:, t + 1:], y[:, t + 1:])


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_language_model_shapes_causality_and_gradients(name):
    torch.manual_seed(0)
    cfg = compose([f"model={name}", "model.d_model=32"])["model"]
    model = build_model(cfg, vocab_size=20, max_len=40).eval()
    tokens = torch.randint(0, 20, (3, 40))
    logits = model(tokens)
    assert logits.shape == (3, 40, 20)
    changed = tokens.clone()
    changed[:, 25] = (changed[:, 25] + 1) % 20
    assert torch.allclose(model(changed)[:, :25], logits[:, :25], atol=1e-5)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert (model.pos is not None) == MIXERS[name].needs_positions


def test_unknown_model_and_bad_heads():
    with pytest.raises(ValueError, match="unknown model"):
        build_model({"name": "nope"}, 20, 8)
    with pytest.raises(ValueError, match="divisible"):
        build_model({"name": "transformer", "d_model": 30, "mixer": {"n_heads": 4}}, 20, 8)


KERNEL_MIXERS = ["gilr", "lru", "rwkv"]


@pytest.mark.parametrize("name", KERNEL_MIXERS)
def test_kernel_mixers_same_with_triton_and_torch(name):
    """The mixer gives the same outputs and parameter gradients whichever backend runs its
    recurrence (on CPU the Triton path runs under the interpreter)."""
    from seqicl.ops.dispatch import force_backend
    if name not in MIXERS:
        pytest.skip(f"{name} not registered")
    torch.manual_seed(0)
    mixer = MIXERS[name](16, 0)
    x = torch.randn(2, 13, 16)
    results = []
    for backend in ("torch", "triton"):
        mixer.zero_grad()
        with force_backend(backend):
            y = mixer(x)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results.append((y.detach(), {n: p.grad.clone() for n, p in mixer.named_parameters()}))
    (y0, g0), (y1, g1) = results
    assert torch.allclose(y0, y1, rtol=1e-4, atol=1e-5)
    for n in g0:
        assert torch.allclose(g0[n], g1[n], rtol=1e-3, atol=1e-5), n
