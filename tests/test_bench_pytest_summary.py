"""bench/pytest_gpu_summary.py: a parallel GPU-test call's table, and its verdict."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from pytest_gpu_summary import shard_counts, summarize  # noqa: E402


def write(folder, **files):
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_counts_of_pytest_summary_lines():
    assert shard_counts("....s\n6 passed, 1 skipped, 10 deselected in 4.12s\n") == \
        {"passed": 6, "skipped": 1, "failed": 0, "errors": 0, "seconds": 4.12}
    assert shard_counts("==== 1 failed, 2 passed, 1 error in 9.50s ====") == \
        {"passed": 2, "skipped": 0, "failed": 1, "errors": 1, "seconds": 9.5}
    assert shard_counts("....\n(killed)\n") is None


def test_every_collected_test_ran_and_passed(tmp_path):
    d = write(tmp_path / "a", **{"card.txt": "NVIDIA H200, 580\nMon Dec 7\n",
                                 "pytest_gpu_collected.txt": "9/900 tests collected (891 deselected) in 2.0s\n",
                                 "pytest_gpu_p_la.txt": "...\n5 passed, 1 skipped, 3 deselected in 10.0s\n",
                                 "pytest_gpu_p_wkv.txt": "...\n3 passed in 20.5s\n"})
    text, ok = summarize(d)
    assert ok and "| la | 5 | 1 | 0 | 10.0 |" in text and "| all | **8** | **1** | **0** | |" in text
    assert "Collected by `pytest --co -q -m gpu tests/`: 9; ran in the shards: 9." in text


def test_a_failure_a_cut_shard_or_a_missing_test_is_not_ok(tmp_path):
    base = {"pytest_gpu_collected.txt": "9/900 tests collected in 2.0s\n",
            "pytest_gpu_p_la.txt": "5 passed, 1 skipped in 10.0s\n"}
    failed = {**base, "pytest_gpu_p_wkv.txt": "FAILED tests/ops/test_wkv.py::test_x[a] - AssertionError\n"
                                              "1 failed, 2 passed in 20.5s\n"}
    text, ok = summarize(write(tmp_path / "f", **failed))
    assert not ok and "- `FAILED tests/ops/test_wkv.py::test_x[a]`" in text
    text, ok = summarize(write(tmp_path / "c", **{**base, "pytest_gpu_p_wkv.txt": "..."}))
    assert not ok and "Shards without a summary line: wkv." in text
    text, ok = summarize(write(tmp_path / "m", **{**base, "pytest_gpu_p_wkv.txt": "2 passed in 1.0s\n"}))
    assert not ok and "ran in the shards: 8." in text          # one collected test never ran
