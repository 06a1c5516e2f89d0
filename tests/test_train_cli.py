"""`python -m seqicl.train` refuses a config that cannot train: one line, status 2, nothing written."""
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "error: train.epochs must be an integer >= 1, got 0"),
    ("train.batch_size=0", "error: train.batch_size must be an integer >= 1, got 0"),
    ("model.d_model=0", "error: model.d_model must be an integer >= 1, got 0"),
    ("task.num_train=0", "error: task.num_train must be an integer >= 1, got 0"),
    ("train.eval_every=0", "error: train.eval_every must be an integer >= 1, got 0"),
    ("train.length_buckets=0", "error: train.length_buckets must be an integer >= 1, got 0"),
    ("train.nope=1", "error: unknown config key 'train.nope' (use +train.nope=... to add one)"),
    ("--nope", "error: unrecognized arguments: --nope (see --help)"),
])
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, override, message):
    run_dir = tmp_path / "r"
    res = subprocess.run([sys.executable, "-m", "seqicl.train", override, f"train.run_dir={run_dir}", "device=cpu"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [message]
    assert res.stdout == ""
    assert not run_dir.exists()
