"""The Optuna trial source across a driver killed inside ``ask``: the journal then holds the
trial with only some of its values (or none), and a resume must give it the values the
uninterrupted ask drew, never the base config under the trial's name."""
import json

import pytest

from conftest import ROOT  # noqa: F401  (puts the repository on sys.path)

from sweeps import run as sweep_run
from sweeps.study import JOURNAL, OptunaTrials


def lstm_experiment(tmp_path):
    plan, _ = sweep_run.make_plan(sweep_run.parse_args(
        ["--task", "induction", "--models", "lstm", "--preset", "paper", "--storage", str(tmp_path / "s")]))
    return plan.experiments["lstm"]


def asked(exp_dir, e, n):
    source = OptunaTrials(exp_dir, e.cfg, e.space, seed=3, num_samples=n)
    out = [source.next() for _ in range(n)]
    for trial, _, _ in out[:-1]:
        source.tell(trial, "finished", 0.5)
    return out


@pytest.mark.parametrize("kept", [0, 1, 2])
def test_a_trial_cut_inside_ask_resumes_with_the_values_that_ask_drew(tmp_path, kept):
    e = lstm_experiment(tmp_path)
    assert len(e.space) >= 3                                    # several values to lose
    whole = asked(tmp_path / "whole", e, 3)                     # trials 0, 1 told; 2 asked and running

    cut = tmp_path / "cut"
    asked(cut, e, 3)
    lines = (cut / JOURNAL).read_text().splitlines()
    params_of_2 = [i for i, line in enumerate(lines)
                   if "param_name" in json.loads(line) and json.loads(line).get("trial_id") == 2]
    assert len(params_of_2) == len(e.space)
    # the driver died after `kept` of trial 2's values reached the journal
    drop = params_of_2[kept:]
    (cut / JOURNAL).write_text("".join(line + "\n" for i, line in enumerate(lines) if i not in drop))

    resumed = OptunaTrials(cut, e.cfg, e.space, seed=3, num_samples=3)
    trial, cfg, params = resumed.next()
    assert trial == "0002" and params == whole[2][2] and cfg == whole[2][1]
    assert resumed.next() is None                               # nothing asked twice
    again = OptunaTrials(cut, e.cfg, e.space, seed=3, num_samples=3)   # the values were stored
    assert again.next()[2] == whole[2][2]
