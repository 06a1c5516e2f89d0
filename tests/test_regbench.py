"""RegBench at the paper's scale (issue 29): the sweep-side pieces. The data, metric and
generation pieces are tested beside their modules (test_data, test_metrics, test_export_generate)."""
from sweeps.compose import compose
from sweeps.sweep_state import differences


def defining(cfg: dict) -> dict:
    return {"task": "dfa", "experiments": {"transformer": {"config": cfg, "space": {}}}}


def test_a_sweep_stored_before_separator_target_existed_resumes_with_it_false():
    now = compose("dfa", "transformer", [])
    assert now["task"]["separator_target"] is True                 # RegBench's default from now on
    old = compose("dfa", "transformer", ["task.separator_target=false"])
    del old["task"]["separator_target"]                            # what such a sweep.json holds
    assert differences(defining(old), defining(now)) == ["task.separator_target: False -> True"]
    off = compose("dfa", "transformer", ["task.separator_target=false"])
    assert differences(defining(old), defining(off)) == []
