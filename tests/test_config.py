import pytest

from seqicl.config import ConfigError, check_value, compose, parse_value, validate
from sweeps.compose import compose as hydra_compose


def test_defaults_compose_task_and_model():
    cfg = compose()
    assert cfg["task"]["name"] == "induction" and cfg["model"]["name"] == "transformer"
    assert cfg["optim"]["lr"] == 5e-4 and isinstance(cfg["optim"]["lr"], float)


def test_group_choice_alias_and_overrides():
    cfg = compose(["task=induction_head", "model=lstm", "model.d_model=128", "optim.lr=3e-4", "+train.note=x"])
    assert cfg["task"]["name"] == "induction" and cfg["model"]["name"] == "lstm"
    assert cfg["model"]["d_model"] == 128 and cfg["optim"]["lr"] == pytest.approx(3e-4)
    assert cfg["train"]["note"] == "x"


def test_int_where_float_expected_becomes_float():
    assert compose(["optim.lr=1"])["optim"]["lr"] == 1.0


@pytest.mark.parametrize("override, message", [
    ("model.d_modl=3", "unknown config key 'model.d_modl'"),
    ("model.d_model=abc", "model.d_model expects int"),
    ("task=nope", "unknown task 'nope'"),
    ("model=nope", "unknown model 'nope'"),
    ("justtext", "expected key=value"),
    ("+model.d_model=3", "already exists"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        compose([override])
    assert "\n" not in str(e.value)


def test_parse_value_reads_scientific_floats_and_lists():
    assert parse_value("3e-4") == pytest.approx(3e-4)
    assert parse_value("[1,2]") == [1, 2]
    assert parse_value("null") is None and parse_value("abc") == "abc"


@pytest.mark.parametrize("overrides", [
    [],
    ["model.d_model=128", "optim.lr=3e-4", "train.epochs=7"],
    ["optim.lr=1", "+train.note=x", "++train.epochs=3", "++train.extra=[1,2]", "model.mixer={}", "train.run_dir=null"],
])
def test_hydra_and_plain_composition_agree(overrides):
    plain = compose(["task=dfa", "model=lstm", *overrides])
    assert hydra_compose("dfa", "lstm", overrides) == plain


@pytest.mark.parametrize("override", ["train.epochs=0", "model.d_model=abc", "model.nope=1", "+train.epochs=3",
                                      "train.batch_size=6000"])
def test_hydra_and_plain_composition_refuse_alike(override):
    """One composer behind both: the sweep's message is the plain one, naming the override."""
    with pytest.raises(ConfigError) as plain:
        compose([override])
    with pytest.raises(ConfigError) as hydra:
        hydra_compose("induction", "transformer", [override])
    assert str(hydra.value) in (str(plain.value), f"bad override '{override}': {plain.value}")


@pytest.mark.parametrize("override, message", [
    ("model.nope=1", "bad override"),
    ("model.d_model=abc", "model.d_model expects int"),
    ("task=dfa", "--task"),
])
def test_hydra_composition_errors(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        hydra_compose("induction", "transformer", [override])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("override, message", [
    ("model=lstm", "choose the model with --task/--models"),
    ("+task=dfa", "--task/--models"),
    ("~train.epochs", "cannot delete keys"),
    ("train.epochs=1,2", "a sweep is not one value"),
    ("optim.lr=range(1,3)", "a sweep is not one value"),
    ("optim.lr=interval(0,1)", "a sweep is not one value"),
    ("train.epochs@pkg=3", "package overrides"),
    ("model.d_model=[1,2", r"bad override 'model.d_model=\[1,2': no viable alternative"),
    ("train.run_dir=runs/${task.name}", "interpolations"),
])
def test_hydra_grammar_refusals_are_one_line(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        hydra_compose("induction", "transformer", [override])
    assert str(e.value).startswith(f"bad override '{override}': ") and "\n" not in str(e.value)


def test_hydra_grammar_values_are_typed_and_force_add_sets_or_adds():
    cfg = hydra_compose("induction", "transformer", ["optim.lr=1e-3", "train.run_dir='a b'", "model.d_model=int(32.0)",
                                                     "++train.epochs=4", "++train.note=x"])
    assert cfg["optim"]["lr"] == pytest.approx(1e-3) and cfg["train"]["run_dir"] == "a b"
    assert cfg["model"]["d_model"] == 32 and cfg["train"]["epochs"] == 4 and cfg["train"]["note"] == "x"


def test_a_key_added_then_set_keeps_its_added_type():
    assert compose(["+train.note=1", "train.note=2"])["train"]["note"] == 2
    with pytest.raises(ConfigError, match="train.note expects int"):
        compose(["+train.note=1", "train.note=x"])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "train.epochs must be an integer >= 1, got 0"),
    ("train.batch_size=0", "train.batch_size must be an integer >= 1, got 0"),
    ("train.eval_every=-1", "train.eval_every must be an integer >= 1, got -1"),
    ("task.num_train=0", "task.num_train must be an integer >= 1, got 0"),
    ("task.num_val=0", "task.num_val must be an integer >= 1, got 0"),
    ("task.num_test=0", "task.num_test must be an integer >= 1, got 0"),
    ("model.d_model=0", "model.d_model must be an integer >= 1, got 0"),
    ("model.d_model=null", "model.d_model must be an integer >= 1, got None"),
    ("model.n_layers=0", "model.n_layers must be an integer >= 1, got 0"),
    ("train.state_every=-1", "train.state_every must be an integer >= 0, got -1"),
    ("train.batch_size=64 task.num_train=10", r"train.batch_size \(64\) must not exceed task.num_train \(10\)"),
    ("optim.lr=0", "optim.lr must be a finite number > 0, got 0.0"),
    ("optim.lr=-1e-3", "optim.lr must be a finite number > 0, got -0.001"),
    ("optim.lr=.nan", "optim.lr must be a finite number > 0, got nan"),
    ("optim.weight_decay=-0.1", "optim.weight_decay must be a finite number >= 0, got -0.1"),
    ("optim.warmup_frac=1.5", r"optim.warmup_frac must be a number in \[0, 1\], got 1.5"),
    ("optim.min_lr_frac=-0.1", r"optim.min_lr_frac must be a number in \[0, 1\], got -0.1"),
    ("model.dropout=1.0", r"model.dropout must be a number in \[0, 1\), got 1.0"),
    ("train.grad_clip=-1", "train.grad_clip must be a finite number >= 0, got -1.0"),
])
def test_values_that_cannot_train_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=f"^{message}$") as e:
        compose(override.split())
    assert "\n" not in str(e.value)


def test_validate_checks_configs_built_in_code_and_skips_absent_keys():
    cfg = compose()
    validate(cfg)
    del cfg["model"]["dropout"]  # a model file without dropout is fine
    validate(cfg)
    cfg["train"]["epochs"] = 2.5
    with pytest.raises(ConfigError, match="train.epochs must be an integer >= 1, got 2.5"):
        validate(cfg)
    cfg["train"]["epochs"] = True  # a bool is not a count
    with pytest.raises(ConfigError, match="got True"):
        validate(cfg)


@pytest.mark.parametrize("key, good, bad", [
    ("train.batch_size", [1, 32], [0, -4, 2.0, "8"]),
    ("optim.lr", [1e-5, 1], [0, -1.0, float("inf")]),
    ("optim.warmup_frac", [0, 0.5, 1.0], [-0.01, 1.01]),
    ("model.dropout", [0.0, 0.99], [1.0, -0.1]),
    ("train.precision", ["fp32", "bf16"], ["fp16"]),
    ("model.mixer.n_heads", [0, "anything"], []),  # no rule: nothing to check
])
def test_check_value_uses_the_same_rules(key, good, bad):
    for value in good:
        check_value(key, value)
    for value in bad:
        with pytest.raises(ConfigError, match=f"^{key} must be .*, got ") as e:
            check_value(key, value)
        assert "\n" not in str(e.value)
