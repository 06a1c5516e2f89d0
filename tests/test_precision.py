"""train.precision=bf16: the forward runs under bfloat16 autocast, in training and evaluation,
and stays close to float32."""
import pytest
import torch

from seqicl.config import compose
from seqicl.data import Split
from seqicl.models import MIXERS, build_model
from seqicl.train import train
from seqicl.train.__main__ import main as train_cli
from seqicl.train.metrics import evaluate
from seqicl.train.optim import make_optimizer
from seqicl.train.step import EagerStep, loss_of, make_step

OPTIM = {"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.98}


def tiny(name="transformer"):
    torch.manual_seed(0)
    return build_model({"name": name, "d_model": 16, "n_layers": 2}, 20, 12)


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 20, (8, 12), generator=g), torch.randint(0, 20, (8, 12), generator=g)


def head_dtypes(model) -> list[torch.dtype]:
    """Records the dtype of the logits each forward produces (bf16 only under autocast)."""
    seen = []
    model.head.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    return seen


def test_bf16_loss_is_float32_and_close_to_fp32():
    model, (x, y) = tiny(), batch()
    seen = head_dtypes(model)
    with torch.no_grad():
        fp32, bf16 = loss_of(model, x, y), loss_of(model, x, y, bf16=True)
    assert seen == [torch.float32, torch.bfloat16]
    assert bf16.dtype == torch.float32
    assert float(bf16) != float(fp32) and float(bf16) == pytest.approx(float(fp32), rel=1e-2)


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_bf16_eager_step_trains_every_model_on_cpu(name):
    model, (x, y) = tiny(name), batch()
    seen = head_dtypes(model)
    step, why = make_step(model, make_optimizer(model, OPTIM, torch.device("cpu")), 1.0, x, y,
                          use_graph=False, bf16=True)
    assert isinstance(step, EagerStep) and step.bf16 and why is None
    losses = [float(step(x, y)) for _ in range(25)]
    assert set(seen) == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.95 * losses[0]  # a memorised batch: the loss must come down
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_bf16_evaluate_is_close_to_fp32():
    model, (x, y) = tiny(), batch()
    step, _ = make_step(model, make_optimizer(model, OPTIM, torch.device("cpu")), 1.0, x, y, use_graph=False)
    for _ in range(150):  # fp32 training until the predictions are confident, so argmax is stable
        step(x, y)
    seen = head_dtypes(model)
    fp32 = evaluate(model, Split(x, y), max_tokens=3 * x.shape[1])
    bf16 = evaluate(model, Split(x, y), max_tokens=3 * x.shape[1], bf16=True)
    assert set(seen[: len(seen) // 2]) == {torch.float32} and set(seen[len(seen) // 2:]) == {torch.bfloat16}
    assert fp32["accuracy"] > 0.5, fp32
    assert bf16["accuracy"] == pytest.approx(fp32["accuracy"], abs=0.05)
    assert bf16["loss"] != fp32["loss"] and bf16["loss"] == pytest.approx(fp32["loss"], rel=2e-2)


def small_run(precision: str) -> list[str]:
    return ["task.seq_len=12", "task.num_train=64", "task.num_val=16", "task.num_test=16", "model.d_model=16",
            "train.epochs=2", "train.progress=false", "train.checkpoint=false", "device=cpu",
            f"train.precision={precision}"]


def test_train_threads_bf16_through_the_loop(tmp_path, monkeypatch):
    import seqicl.train.loop as loop
    flags = []  # the bf16 flag that the training step and each evaluation got
    for name, what in (("make_step", "step"), ("evaluate", "eval")):
        real = getattr(loop, name)
        monkeypatch.setattr(loop, name, lambda *a, bf16=False, real=real, what=what, **kw:
                            flags.append((what, bf16)) or real(*a, bf16=bf16, **kw))
    losses = {}
    for precision in ("fp32", "bf16"):
        seen = []
        summary = train(compose(small_run(precision)), on_epoch=seen.append,
                        run_dir=tmp_path / precision)
        assert summary["status"] == "finished"
        losses[precision] = [(m["train_loss"], m["val_loss"]) for m in seen]
    assert flags == [("step", False)] + [("eval", False)] * 4 + [("step", True)] + [("eval", True)] * 4
    # same seed and data: only the precision differs, and only a little
    assert losses["bf16"] != losses["fp32"]
    for a, b in zip(losses["fp32"], losses["bf16"]):
        assert b == pytest.approx(a, rel=2e-2)


def test_default_precision_is_fp32_and_old_configs_without_the_key_train(tmp_path):
    cfg = compose(small_run("fp32"))
    assert compose([])["train"]["precision"] == "fp32"
    del cfg["train"]["precision"]
    cfg["train"]["epochs"] = 1
    assert train(cfg, run_dir=tmp_path)["status"] == "finished"


@pytest.mark.parametrize("value", ["fp16", "BF16", "float32"])
def test_unknown_precision_is_rejected_before_any_work(tmp_path, value):
    from seqicl.config import ConfigError
    with pytest.raises(ConfigError, match="train.precision must be one of fp32, bf16"):
        compose(small_run(value))             # an override is checked when composed
    cfg = compose(small_run("fp32"))
    cfg["train"]["precision"] = value         # a config built in code is checked by train()
    with pytest.raises(ValueError, match="train.precision must be one of fp32, bf16"):
        train(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unknown_precision_is_a_cli_error(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # were the check missing, the run would write runs/ here
    assert train_cli(small_run("fp16")) == 2
    assert "train.precision must be one of fp32, bf16, got 'fp16'" in capsys.readouterr().err


def test_precision_is_a_config_key_that_sweeps_can_set():
    from seqicl.config import ConfigError
    from sweeps.compose import compose as hydra_compose
    from sweeps.search_space import parse_space

    assert hydra_compose("induction", "lstm", ["train.precision=bf16"])["train"]["precision"] == "bf16"
    with pytest.raises(ConfigError, match="train.precision must be one of fp32, bf16, got 16"):
        hydra_compose("induction", "lstm", ["train.precision=16"])
    space = parse_space({"train.precision": {"choice": ["fp32", "bf16"]}}, compose(["model=lstm"]), "test")
    assert space["train.precision"].args == ("fp32", "bf16")
