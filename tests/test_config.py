import pytest

from seqicl.config import ConfigError, compose, parse_value
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


@pytest.mark.parametrize("overrides", [[], ["model.d_model=128", "optim.lr=3e-4", "train.epochs=7"]])
def test_hydra_and_plain_composition_agree(overrides):
    plain = compose(["task=dfa", "model=lstm", *overrides])
    assert hydra_compose("dfa", "lstm", overrides) == plain


@pytest.mark.parametrize("override, message", [
    ("model.nope=1", "bad override"),
    ("model.d_model=abc", "model.d_model expects int"),
    ("task=dfa", "--task"),
])
def test_hydra_composition_errors(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        hydra_compose("induction", "transformer", [override])
    assert "\n" not in str(e.value)
