import pytest

from seqicl.config import ConfigError, compose, load_yaml
from sweeps.search_space import ROOT, load_space, parse_space


@pytest.fixture
def cfg():
    return compose(["model=transformer"])


def test_grammar(cfg):
    space = parse_space({
        "optim.lr": {"loguniform": [1e-4, 1e-3]},
        "model.dropout": {"uniform": [0.0, 0.2]},
        "model.d_model": {"choice": [32, 64]},
        "model.n_layers": {"randint": [2, 8]},
        "train.batch_size": 16,
        "optim.weight_decay": {"choice": [0, 0.1]},
    }, cfg, "test")
    assert space["optim.lr"].kind == "loguniform" and space["optim.lr"].args == (1e-4, 1e-3)
    assert space["model.n_layers"].args == (2, 8)
    assert space["train.batch_size"].kind == "fixed" and space["train.batch_size"].args == (16,)
    assert space["optim.weight_decay"].args == (0.0, 0.1)  # ints where floats live become floats


@pytest.mark.parametrize("raw, message", [
    ({"model.d_modl": {"choice": [1]}}, "'model.d_modl' is not a key of the config"),
    ({"model": {"choice": [1]}}, "is a section"),
    ({"optim.lr": {"normal": [0, 1]}}, "expected one of"),
    ({"optim.lr": {"loguniform": [1e-3, 1e-4]}}, "low < high"),
    ({"optim.lr": {"loguniform": [0, 1e-4]}}, "loguniform needs low > 0"),
    ({"optim.lr": {"uniform": [0.1]}}, r"needs \[low, high\]"),
    ({"model.d_model": {"choice": ["big"]}}, "expects int"),
    ({"model.d_model": {"uniform": [32, 64]}}, "gives floats"),
    ({"model.n_layers": {"randint": [2.5, 8]}}, "integer bounds"),
    ({"model.d_model": [32, 64]}, "did you mean"),
    ({"model.d_model": {"choice": []}}, "non-empty"),
    ({"model.d_model": "wide"}, "expects int"),
    ({"train.precision": {"choice": ["fp32", "bf61"]}}, "train.precision must be one of fp32, bf16"),
    (["optim.lr"], "expected a mapping"),
])
def test_malformed_entries_are_clear_errors(cfg, raw, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_space(raw, cfg, "space.yaml")
    assert "\n" not in str(e.value) and str(e.value).startswith("space.yaml")


def test_malformed_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim.lr: {loguniform: [1e-4, 1e-3]\n")
    with pytest.raises(ConfigError, match="malformed YAML") as e:
        load_yaml(bad)
    assert "\n" not in str(e.value)


def test_one_space_per_model():
    from seqicl.models import MIXERS
    assert sorted(f.stem for f in ROOT.glob("*.yaml")) == sorted(MIXERS)


@pytest.mark.parametrize("task", ["associative_recall", "induction", "dfa"])
def test_every_shipped_space_parses_and_covers_the_original_grid(task):
    files = sorted(ROOT.glob("*.yaml"))
    assert files
    for f in files:
        model = f.stem
        text = f.read_text()
        assert "1e-4, 2.5e-4 and 5e-4" in text.replace("\n#", " ").replace("\n", " ")  # the comment states the grid
        space = load_space(task, model, compose([f"task={task}", f"model={model}"]))
        assert set(space["model.d_model"].args) >= {32, 64, 128, 256}
        assert set(space["model.n_layers"].args) >= {2, 4, 8}
        lo, hi = space["optim.lr"].args
        assert lo <= 1e-4 and hi >= 1e-3
        assert set(space["optim.weight_decay"].args) >= {0.01, 0.1}
        if model == "transformer":
            assert set(space["model.mixer.n_heads"].args) >= {1, 2}


def test_per_task_entries_and_task_files_lie_over_the_model_space(cfg, tmp_path):
    (tmp_path / "transformer.yaml").write_text(
        "model.d_model: {choice: [32, 64]}\noptim.lr: {loguniform: [1.0e-4, 1.0e-3]}\n"
        "tasks:\n  dfa:\n    model.d_model: {choice: [128, 256]}\n")
    (tmp_path / "induction").mkdir()
    (tmp_path / "induction" / "transformer.yaml").write_text("optim.lr: {loguniform: [1.0e-5, 1.0e-4]}\n")
    ar = load_space("associative_recall", "transformer", cfg, root=tmp_path)
    dfa = load_space("dfa", "transformer", cfg, root=tmp_path)
    ih = load_space("induction", "transformer", cfg, {"model.n_layers": 2}, root=tmp_path)
    assert ar["model.d_model"].args == (32, 64) and ar["optim.lr"].args == (1e-4, 1e-3)
    assert dfa["model.d_model"].args == (128, 256) and dfa["optim.lr"].args == (1e-4, 1e-3)
    assert ih["model.d_model"].args == (32, 64) and ih["optim.lr"].args == (1e-5, 1e-4)
    assert ih["model.n_layers"].kind == "fixed"
    (tmp_path / "transformer.yaml").write_text("tasks: [dfa]\n")
    with pytest.raises(ConfigError, match="tasks: expected a mapping"):
        load_space("dfa", "transformer", cfg, root=tmp_path)
    (tmp_path / "transformer.yaml").write_text("tasks:\n  dfa:\n    model.d_modl: 3\n")
    with pytest.raises(ConfigError, match=r"tasks\.dfa.*'model.d_modl' is not a key"):
        load_space("dfa", "transformer", cfg, root=tmp_path)


def test_missing_space_file(cfg):
    with pytest.raises(ConfigError, match="no search space"):
        load_space("induction", "nope", cfg)
