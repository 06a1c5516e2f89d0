"""bench/regbench_steps.py on a CPU: one row per registered model and precision, sizes from the
paper's table scaled down, and one clear line for bad input."""
import importlib.util

from conftest import ROOT

from seqicl.models import MIXERS

spec = importlib.util.spec_from_file_location("regbench_steps", ROOT / "bench" / "regbench_steps.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_every_registered_model_has_a_paper_size_and_a_row(tmp_path, capsys):
    assert set(bench.PAPER_SIZES) == set(MIXERS)     # a new model gets its row in the size table too
    out = tmp_path / "steps.md"
    assert bench.main(["--cpu", "--precisions", "fp32", "--out", str(out)]) == 0
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines()[5:]]
    assert sorted(r[0].strip() for r in rows) == sorted(MIXERS)
    for r in rows:
        assert r[1].strip() == "1 x 16" and r[3].strip() == "fp32" and float(r[4]) > 0, r
        assert float(r[5].replace(",", "")) > 0 and r[7].strip() == "eager (CPU)", r


def test_the_paper_sizes_compose():
    cfg = bench.model_config("transformer", cpu=False)["model"]
    assert (cfg["n_layers"], cfg["d_model"], cfg["mixer"]["n_heads"]) == (12, 128, 2)
    assert bench.model_config("mamba", cpu=False)["model"]["d_model"] == 512


def test_bad_input_is_one_line(capsys):
    assert bench.main(["--cpu", "--models", "nope"]) == 2
    assert bench.main(["--cpu", "--precisions", "fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unknown model 'nope'", "error: unknown precision 'fp16'"]


def test_the_default_length_is_regbench_padded_length():
    # the benches time steps at the length the sweep trains at: the 1k set's padded length
    # (the longest example over test, validation and training) is within a few tokens of it
    from seqicl.config import compose
    from seqicl.data.regbench import generate
    data = generate(compose(["task=dfa", "task.num_train=1000"])["task"])
    length = data.train.inputs.shape[1]
    assert bench.REGBENCH_LENGTH - 8 <= length <= bench.REGBENCH_LENGTH
    assert data.val.inputs.shape[1] == data.test.inputs.shape[1] == length


def test_real_examples_padded_against_length_buckets(tmp_path):
    out = tmp_path / "steps.md"
    assert bench.main(["--cpu", "--models", "transformer", "--precisions", "fp32", "--buckets", "4", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line.split("|")[1:-1] for line in text.split("real tokens exclude padding:")[1].strip().splitlines()[2:]]
    assert [r[2].strip() for r in rows] == ["padded", "4 length buckets"]
    padded_width = int(rows[0][3])
    widths = [int(w) for w in rows[1][3].split(",")]
    assert len(widths) >= 2 and widths[-1] == padded_width and widths == sorted(widths)
    padded_ms, bucket_ms = float(rows[0][4]), float(rows[1][4])
    assert rows[0][6].strip() == "1.00" and abs(float(rows[1][6]) - bucket_ms / padded_ms) < 0.011
