import pytest
import torch

from seqicl.config import compose
from seqicl.models import MIXERS, build_model
from conftest import ROOT


# the original's variants, beside every mixer's defaults
VARIANTS = [("s4d", {"init": "inv"}), ("h3", {"shift_size": 64}), ("rwkv", {"variant": "original"}),
            ("lru", {"block": "original"})]


@pytest.mark.parametrize("name, variant", [(m, {}) for m in sorted(MIXERS)] + VARIANTS)
@pytest.mark.parametrize("length", [1, 17])
def test_mixer_shape_and_causality(name, variant, length):
    torch.manual_seed(0)
    kwargs = {**compose([f"model={name}"])["model"]["mixer"], **variant}
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


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_lru_is_the_complex_recurrence(backend):
    """The packed real parametrisation of the LRU mixer against the recurrence written in torch
    complex numbers (float64): B = b[:n] + i b[n:], C = c[:, :n] - i c[:, n:],
    h_t = lambda h_{t-1} + gamma B x_t, y_t = Re(C h_t) + D x_t, then gelu and the out projection."""
    from seqicl.ops.dispatch import force_backend
    torch.manual_seed(0)
    d, n = 6, 5
    mixer = MIXERS["lru"](d, 0, d_state=n)
    x = torch.randn(3, 11, d)
    with force_backend(backend):
        got = mixer(x)

    p = {k: v.detach().double() for k, v in mixer.named_parameters()}
    lam = torch.exp(-p["nu_log"].exp()) * torch.exp(1j * p["theta_log"].exp())
    gamma = p["gamma_log"].exp()
    B = p["b"][:n] + 1j * p["b"][n:]
    C = p["c"][:, :n] - 1j * p["c"][:, n:]
    xd = x.double()
    h = torch.zeros(3, n, dtype=torch.complex128)
    ys = []
    for t in range(x.shape[1]):
        h = lam * h + gamma * (xd[:, t].to(torch.complex128) @ B.T)
        ys.append((h @ C.T).real + p["skip"] * xd[:, t])
    y = torch.stack(ys, dim=1)
    expected = torch.nn.functional.gelu(y) @ p["out.weight"].T + p["out.bias"]
    assert torch.allclose(got.double(), expected, atol=1e-5, rtol=1e-4)


def test_lru_initial_distribution():
    """b and c start i.i.d. normal, every half (real or imaginary part) with the std of the old
    separate matrices: 1/sqrt(2 d_model) for B, 1/sqrt(n) for C."""
    torch.manual_seed(0)
    d, n = 256, 128
    mixer = MIXERS["lru"](d, 0, d_state=n)
    assert mixer.b.shape == (2 * n, d) and mixer.c.shape == (d, 2 * n)
    for half, std in ((mixer.b[:n], (2 * d) ** -0.5), (mixer.b[n:], (2 * d) ** -0.5),
                      (mixer.c[:, :n], n ** -0.5), (mixer.c[:, n:], n ** -0.5)):
        assert half.std().item() == pytest.approx(std, rel=0.03)
        assert abs(half.mean().item()) < 0.05 * std


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_a_tied_head_is_the_embedding_matrix_through_training_and_checkpoints(name, tmp_path):
    from seqicl.train import load_checkpoint, save_checkpoint
    from seqicl.train.optim import make_optimizer
    torch.manual_seed(0)
    cfg = {"name": name, "d_model": 16, "n_layers": 1, "tie_head": True}
    tied, free = build_model(cfg, 20, 12), build_model({**cfg, "tie_head": False}, 20, 12)
    assert tied.head.weight is tied.embed.weight
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(free) - count(tied) == 20 * 16
    opt = make_optimizer(tied, {"lr": 1e-2, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.999}, torch.device("cpu"))
    x = torch.randint(0, 20, (4, 12))
    before = tied.embed.weight.detach().clone()
    torch.nn.functional.cross_entropy(tied(x).flatten(0, 1), x.flatten()).backward()
    opt.step()
    assert tied.head.weight is tied.embed.weight and not torch.equal(tied.embed.weight, before)
    save_checkpoint(tmp_path / "best.pt", tied.state_dict(), {"model": cfg}, [str(i) for i in range(20)], 12, 1, {})
    loaded, _ = load_checkpoint(tmp_path / "best.pt")
    assert loaded.head.weight is loaded.embed.weight and torch.equal(loaded.embed.weight, tied.embed.weight)


def test_decay_all_is_every_parameter_but_an_ssms_dynamics():
    from seqicl.train.optim import make_optimizer
    model = build_model({"name": "s4d", "d_model": 16, "n_layers": 1}, 20, 12)
    names = {id(p): n for n, p in model.named_parameters()}

    def groups(decay):
        opt = make_optimizer(model, {"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.999, "decay": decay},
                             torch.device("cpu"))
        return [sorted(names[id(p)] for p in g["params"]) for g in opt.param_groups]
    decayed, free = groups("all")
    assert sorted(n.rsplit(".", 1)[-1] for n in free) == ["a_imag", "log_a_real", "log_dt"]
    assert any(n.endswith("norm1.weight") for n in decayed) and any(n.endswith("c_re") for n in decayed)
    decayed, free = groups("matrices")                      # the default: unchanged
    assert any(n.endswith("log_a_real") for n in decayed) and any(n.endswith("norm1.weight") for n in free)


def test_embedding_dropout_apart_from_the_blocks_dropout():
    torch.manual_seed(0)
    x = torch.randint(0, 20, (2, 12))
    only_embed = build_model({"name": "lstm", "d_model": 16, "n_layers": 1, "embed_dropout": 0.5}, 20, 12)
    assert only_embed.drop.p == 0.5 and all(b.drop.p == 0.0 for b in only_embed.blocks)
    assert not torch.equal(only_embed(x), only_embed(x))    # training mode: the embedding is dropped
    only_embed.eval()
    assert torch.equal(only_embed(x), only_embed(x))
    same = build_model({"name": "lstm", "d_model": 16, "n_layers": 1, "dropout": 0.3}, 20, 12)
    assert same.drop.p == 0.3                               # null: the blocks' dropout, as before


def test_s4d_inv_starts_from_its_formula_and_lin_stays_the_default():
    """S4D-Inv (Gu et al. 2022): A_n = -1/2 + i (N/pi)(N/(2n+1) - 1), n < N/2; S4D-Lin: -1/2 + i pi n."""
    import math
    from seqicl.models.ssm_kernel import S4DKernel
    inv, lin = S4DKernel(3, d_state=8, init="inv"), S4DKernel(3, d_state=8)
    want = torch.tensor([8 / math.pi * (8 / (2 * n + 1) - 1) for n in range(4)])
    assert torch.allclose(inv.a_imag, want.repeat(3, 1)) and torch.allclose(inv.log_a_real.exp(), torch.full((3, 4), 0.5))
    assert torch.allclose(lin.a_imag, (math.pi * torch.arange(4.0)).repeat(3, 1))
    with pytest.raises(ValueError, match="S4D init must be lin or inv"):
        S4DKernel(3, init="legs")


def test_h3_with_a_shift_filter_longer_than_the_sequence_runs():
    """(Its causality: test_mixer_shape_and_causality, with the variants.)"""
    model = build_model({"name": "h3", "d_model": 8, "n_layers": 1, "mixer": {"shift_size": 64}}, 20, 12)
    x = torch.randint(0, 20, (2, 12))
    y = model(x)
    x2 = x.clone()
    x2[:, 0] = (x2[:, 0] + 1) % 20                       # the first token reaches the last position
    assert y.shape == (2, 12, 20) and not torch.allclose(model(x2)[:, -1], y[:, -1])


def test_the_original_rwkv_grows_its_past_and_starts_from_unit_normals():
    from seqicl.models.rwkv import RWKVTimeMix
    torch.manual_seed(0)
    paper, original = RWKVTimeMix(64), RWKVTimeMix(64, variant="original")
    assert paper.decay_sign == -1.0 and original.decay_sign == 1.0
    assert 0 <= paper.mix_k.min() and paper.mix_k.max() <= 1           # RWKV-4's ramps
    mixes = torch.cat([original.mix_k, original.mix_v, original.mix_r, original.time_decay, original.time_first])
    assert abs(mixes.mean().item()) < 0.2 and 0.8 < mixes.std().item() < 1.2 and (mixes < 0).any()
    with pytest.raises(ValueError, match="RWKV variant must be paper or original"):
        RWKVTimeMix(8, variant="v5")


def test_the_original_lru_block_is_its_definition():
    """h_t = lambda h_{t-1} + gamma (v_re + i v_im), y = out(LayerNorm([Re h; Im h] * silu(o))), written
    as a loop in complex128 from the module's own parameters."""
    from seqicl.models.lru import LRU
    torch.manual_seed(0)
    m = LRU(6, block="original").eval()
    assert not hasattr(m, "c") and m.proj.out_features == 24 and m.out.in_features == 12
    x = torch.randn(2, 9, 6)
    n = 6
    lam = torch.exp(-m.nu_log.double().exp()) * torch.exp(1j * m.theta_log.double().exp())
    v, o = m.proj(x).double().split(2 * n, dim=-1)
    u = (v[..., :n] + 1j * v[..., n:]) * m.gamma_log.double().exp()
    h, hs = torch.zeros(2, n, dtype=torch.complex128), []
    for t in range(9):
        h = lam * h + u[:, t]
        hs.append(h)
    h = torch.stack(hs, 1)
    y = torch.cat([h.real, h.imag], -1) * torch.nn.functional.silu(o)
    want = m.out(m.norm(y.float()))
    torch.testing.assert_close(m(x), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="LRU block must be paper or original"):
        LRU(4, block="v2")


def test_the_original_init_starts_output_projections_at_a_hundredth():
    """The original: every linear and embedding N(0, 0.02), the out_proj of attention, GILR and LRU
    and the MLP's fc2 N(0, 0.01); H3's (and S4D's, RWKV's) output linear keeps 0.02."""
    torch.manual_seed(0)
    std = lambda lin: lin.weight.std().item()  # noqa: E731
    for name, small in [("transformer", True), ("gilr", True), ("lru", True), ("h3", False)]:
        m = build_model({"name": name, "d_model": 64, "n_layers": 1, "init": "original"}, 20, 12)
        block = m.blocks[0]
        assert abs(std(block.mlp.net[2]) - 0.01) < 0.001 and abs(std(block.mlp.net[0]) - 0.02) < 0.002
        assert abs(std(block.mixer.out) - (0.01 if small else 0.02)) < 0.002, name
        plain = build_model({"name": name, "d_model": 64, "n_layers": 1}, 20, 12).blocks[0]
        assert abs(std(plain.mlp.net[2]) - 0.02) < 0.002 and abs(std(plain.mixer.out) - 0.02) < 0.002
    with pytest.raises(ValueError, match="model.init must be seqicl or original"):
        build_model({"name": "lstm", "d_model": 8, "n_layers": 1, "init": "xavier"}, 20, 12)


def test_the_linear_transformer_is_normalised():
    """With every value vector equal to c, a normalised average of values is c at every position."""
    from seqicl.models.linear_transformer import LinearAttention
    torch.manual_seed(0)
    m = LinearAttention(8, n_heads=2)
    with torch.no_grad():       # v = c: zero value weights, bias c; out = identity
        m.qkv.weight[16:].zero_()
        m.qkv.bias[16:] = torch.arange(8.0)
        m.out.weight.copy_(torch.eye(8))
        m.out.bias.zero_()
    y = m(torch.randn(2, 9, 8))
    torch.testing.assert_close(y, torch.arange(8.0).expand(2, 9, 8), rtol=1e-5, atol=1e-5)


def test_retnet_decays_are_the_papers_and_gla_decays_depend_on_the_input():
    from seqicl.models.gla import GatedLinearAttention
    from seqicl.models.retnet import MultiScaleRetention
    r = MultiScaleRetention(16, n_heads=4)
    torch.testing.assert_close(r.log_decay.exp(), 1 - 2.0 ** torch.tensor([-5.0, -6.0, -7.0, -8.0]))
    assert not any(p is r.log_decay for p in r.parameters())          # fixed, not trained
    g = GatedLinearAttention(16, n_heads=2)
    a, b = torch.randn(1, 5, 16), torch.randn(1, 5, 16)
    da, db = (torch.nn.functional.logsigmoid(g.decay(x)) / g.gate_temp for x in (a, b))
    assert (da <= 0).all() and not torch.allclose(da, db)
    with pytest.raises(ValueError, match="must divide into n_heads"):
        GatedLinearAttention(16, n_heads=3)


def test_a_sweep_that_names_no_models_runs_those_with_their_kernels():
    from seqicl.models import default_models
    assert sorted(default_models()) == ["gilr", "h3", "lru", "lstm", "rwkv", "s4d", "transformer"]
    assert {"linear_transformer", "retnet", "gla"} <= set(MIXERS)


def test_mamba_starts_its_steps_in_range_after_the_models_own_init():
    import torch.nn.functional as F
    model = build_model({"name": "mamba", "d_model": 32, "n_layers": 2, "mlp_ratio": 0}, 20, 12)
    for block in model.blocks:
        m = block.mixer
        step = F.softplus(m.dt_proj.bias.detach())
        assert 1e-3 * 0.99 <= step.min() and step.max() <= 0.1 * 1.01 and step.std() > 0   # not zeroed by N(0, 0.02)
        torch.testing.assert_close(-m.A_log.exp()[0], -torch.arange(1.0, 17.0))          # A = -(1..N), S4D-Real
        assert m.A_log.no_weight_decay and block.mlp is None


def test_hyena_filters_follow_the_length_and_decay_along_it():
    from seqicl.models.hyena import Hyena
    torch.manual_seed(0)
    m = Hyena(8, max_len=40)
    h12, h40 = m.filters(12, "cpu"), m.filters(40, "cpu")
    assert h12.shape == (2, 8, 12) and h40.shape == (2, 8, 40)
    torch.testing.assert_close(h12, h40[..., :12])                # a shorter input gets the same first taps
    envelope = h40.abs().mean((0, 1))
    assert envelope[-10:].mean() < envelope[:10].mean()          # the window: late taps are smaller
    with pytest.raises(ValueError, match="exceeds Hyena's max_len 40"):
        m.filters(41, "cpu")


@pytest.mark.parametrize("name, variant", [(m, {}) for m in sorted(MIXERS)] + VARIANTS)
def test_a_prefix_gets_the_outputs_the_whole_sequence_gives_it(name, variant):
    """What generation (growing prefixes) and shorter batches rely on: causality at a fixed length
    is not enough (Hyena once scaled its filter positions by the input's length)."""
    torch.manual_seed(0)
    cfg = compose([f"model={name}", "model.d_model=24"])["model"]
    cfg["mixer"] = {**cfg["mixer"], **variant}
    model = build_model(cfg, vocab_size=20, max_len=33).eval()
    tokens = torch.randint(0, 20, (2, 33))
    whole = model(tokens)
    for length in (1, 7, 20):
        torch.testing.assert_close(model(tokens[:, :length]), whole[:, :length], atol=1e-5, rtol=1e-4)


def test_every_registered_mixer_is_named_in_the_readme_and_the_analysis():
    """The README's model list and the report's display names take the registry as their list:
    a mixer registered without them fails here."""
    from analysis.names import MODEL_NAMES
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Models and kernels"):readme.index("## Layout")]
    assert [m for m in MIXERS if f"`{m}`" not in section] == []
    assert [m for m in MIXERS if m not in MODEL_NAMES] == []


class _OriginalComplexScan(torch.autograd.Function):
    """The original's complex_rnn.py kernel pair, written out in torch: the forward scan, and the
    backward reading grad_output from each tensor's start as if it were contiguous (L * C, C, 1)."""

    @staticmethod
    def forward(ctx, vr, vi, fr, fi):
        h, hs = torch.zeros_like(vr[:, 0], dtype=torch.complex64), []
        for t in range(vr.shape[1]):
            h = torch.complex(fr[:, t], fi[:, t]) * h + torch.complex(vr[:, t], vi[:, t])
            hs.append(h)
        h = torch.stack(hs, 1)
        ctx.save_for_backward(fr, fi, h)
        return h.real.contiguous(), h.imag.contiguous()

    @staticmethod
    def backward(ctx, gr, gi):
        fr, fi, h = ctx.saved_tensors
        B, L, C = fr.shape
        gr = torch.as_strided(gr, (B, L, C), (L * C, C, 1), gr.storage_offset())
        gi = torch.as_strided(gi, (B, L, C), (L * C, C, 1), gi.storage_offset())
        f = torch.complex(fr, fi)
        gh, dv, df = torch.zeros_like(h[:, 0]), torch.zeros_like(h), torch.zeros_like(h)
        for t in range(L - 1, -1, -1):
            gh = gh + torch.complex(gr[:, t], gi[:, t])
            dv[:, t] = gh
            df[:, t] = gh * (h[:, t - 1].conj() if t > 0 else 0)
            gh = gh * f[:, t].conj()
        return dv.real, dv.imag, df.real, df.imag


def test_the_original_lru_gradient_is_its_kernels():
    """grad="original": the same outputs as grad="exact", and the parameter gradients of the
    original's LRULayer (in_proj, chunk, complex_scan on (Re, Im), cat, SiLU gate, LayerNorm,
    out_proj) with its Triton kernel's backward, not the exact ones."""
    from seqicl.models.lru import LRU
    torch.manual_seed(0)
    d, B, L = 8, 3, 7
    m = LRU(d, block="original", grad="original").eval()
    exact = LRU(d, block="original").eval()
    exact.load_state_dict(m.state_dict())
    x, g = torch.randn(B, L, d), torch.randn(B, L, d)

    def original(x):
        v, o = m.proj(x).chunk(2, dim=-1)
        vr, vi = v.chunk(2, dim=-1)
        gamma, mod, theta = m.gamma_log.exp(), torch.exp(-m.nu_log.exp()), m.theta_log.exp()
        fr, fi = (mod * torch.cos(theta)).expand(B, L, d).contiguous(), (mod * torch.sin(theta)).expand(B, L, d).contiguous()
        hr, hi = _OriginalComplexScan.apply(gamma * vr, gamma * vi, fr, fi)
        return m.out(m.norm(torch.cat([hr, hi], dim=-1) * torch.nn.functional.silu(o)))

    names, params = zip(*m.named_parameters())
    want_y = original(x)
    want = dict(zip(names, torch.autograd.grad((want_y * g).sum(), params)))
    y = m(x)
    got = dict(zip(names, torch.autograd.grad((y * g).sum(), params)))
    torch.testing.assert_close(y, want_y, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(exact(x), want_y, rtol=1e-4, atol=1e-5)
    for name in names:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=lambda s: f"{name}: {s}")
    right = dict(zip(names, torch.autograd.grad((exact(x) * g).sum(), list(exact.parameters()))))
    torch.testing.assert_close(right["out.weight"], got["out.weight"])  # after the read-out: exact
    for name in ("nu_log", "theta_log", "gamma_log", "proj.weight"):  # through the scan: not
        assert not torch.allclose(right[name], got[name], rtol=1e-2, atol=1e-4), name
    with pytest.raises(ValueError, match="LRU grad must be exact"):
        LRU(4, grad="original")


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_the_length_limit_is_max_len_where_something_is_laid_out_over_it(name):
    """analysis.generate stops there: learned positions and Hyena's filters end at max_len."""
    model = build_model(compose([f"model={name}", "model.d_model=16"])["model"], vocab_size=20, max_len=12)
    limited = MIXERS[name].needs_positions or name == "hyena"
    assert model.length_limit == (12 if limited else None)
    if limited:
        with pytest.raises(ValueError, match="exceeds"):
            model(torch.zeros(1, 13, dtype=torch.long))
    else:
        assert model(torch.zeros(1, 13, dtype=torch.long)).shape == (1, 13, 20)
