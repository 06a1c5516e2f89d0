"""The training step: the graph-captured step must train exactly like the eager one."""
import pytest
import torch

from seqicl.models import build_model
from seqicl.train.optim import make_optimizer, set_lr
from seqicl.train.step import EagerStep, GraphStep, make_step

OPTIM = {"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.98}


def trajectory(name, use_graph, device, steps=8, resume_after=None, bf16=False, memorise=False):
    """The losses of ``steps`` training steps; ``memorise``: the same batch every step, so the
    loss comes down far (a step that does not learn shows), else a new random batch each step."""
    torch.manual_seed(0)
    model = build_model({"name": name, "d_model": 32, "n_layers": 2}, 20, 24).to(device)
    opt = make_optimizer(model, OPTIM, torch.device(device), capturable=use_graph)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 20, (8, 24), generator=g).to(device),
                torch.randint(0, 20, (8, 24), generator=g).to(device)) for _ in range(steps)]
    if memorise:
        batches = batches[:1] * steps
    step, why = make_step(model, opt, 1.0, *batches[0], use_graph, bf16=bf16)
    assert why is None, why
    losses = []
    for k, (x, y) in enumerate(batches):
        set_lr(opt, 1e-3 * (k + 1) / steps)   # a changing rate: the graph must read the new value
        losses.append(float(step(x, y)))
    return losses, step


def test_eager_step_on_cpu_memorises_a_batch():
    torch.manual_seed(0)
    model = build_model({"name": "transformer", "d_model": 32, "n_layers": 2}, 20, 24)
    opt = make_optimizer(model, OPTIM, torch.device("cpu"))
    step, why = make_step(model, opt, 1.0, None, None, use_graph=False)
    assert isinstance(step, EagerStep) and why is None
    x, y = torch.randint(0, 20, (8, 24)), torch.randint(0, 20, (8, 24))
    losses = [float(step(x, y)) for _ in range(40)]
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["transformer", "lstm", "gilr", "lru", "rwkv", "s4d", "h3"])
def test_graph_step_matches_eager_trajectory(name):
    eager, _ = trajectory(name, False, "cuda")
    graphed, step = trajectory(name, True, "cuda")
    assert isinstance(step, GraphStep)
    assert graphed == pytest.approx(eager, rel=1e-4, abs=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["transformer", "lstm", "gilr", "lru", "rwkv", "s4d", "h3"])
def test_bf16_graph_step_matches_eager_trajectory(name):
    eager, _ = trajectory(name, False, "cuda", steps=40, bf16=True, memorise=True)
    graphed, step = trajectory(name, True, "cuda", steps=40, bf16=True, memorise=True)
    assert isinstance(step, GraphStep) and step.bf16
    assert eager[-1] < 0.9 * eager[0]  # the loss moves far, so a replay that trains wrongly shows
    # bf16 roundings may differ between replay and eager (e.g. reduction order): loose tolerance
    assert graphed == pytest.approx(eager, rel=1e-2, abs=1e-3)
    fp32, _ = trajectory(name, False, "cuda", steps=40, memorise=True)
    assert eager != fp32 and eager == pytest.approx(fp32, rel=5e-2)  # autocast is on, and close
