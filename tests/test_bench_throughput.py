"""bench/sweep_throughput.py's comparison table: ratios, and a lower bound when the original
side never reaches the target."""
import importlib.util
import subprocess
import sys

from conftest import ROOT

from seqicl.models import MIXERS

spec = importlib.util.spec_from_file_location("sweep_throughput", ROOT / "bench" / "sweep_throughput.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def side(**kw):
    base = {"trials_per_gpu_hour": 40.0, "steps_per_s": 100.0, "to_target_s": None, "best_test": 10.0,
            "wall_s": 420.0, "trials_started": 3, "trials_ended": 3}
    return {**base, **kw}


def rows(orig, fast):
    return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in bench.comparison(orig, fast)[2:]}


def test_ratios_point_the_right_way():
    table = rows(side(to_target_s=300.0), side(trials_per_gpu_hour=1280.0, steps_per_s=600.0, to_target_s=15.0,
                                               best_test=100.0, wall_s=60.0))
    assert table["trials per GPU-hour"] == ["40.0", "1280.0", "32.0x"]
    assert table["steps/s summed over trials"] == ["100.0", "600.0", "6.0x"]
    assert table["GPU-seconds to first 97% test accuracy"] == ["300.0", "15.0", "20.0x"]   # less time is better
    assert table["best test accuracy, % (best-val trial)"] == ["10.0", "100.0", "10.0x"]
    assert table["trials started / ended"][:2] == ["3 / 3", "3 / 3"]


def test_original_never_reaching_the_target_gives_a_lower_bound():
    table = rows(side(), side(to_target_s=20.0, wall_s=60.0))
    assert table["GPU-seconds to first 97% test accuracy"] == ["not reached in 420", "20.0", "> 21.0x"]
    table = rows(side(), side(wall_s=60.0))                                    # neither side got there
    assert table["GPU-seconds to first 97% test accuracy"] == ["not reached", "not reached", "-"]


def test_steps_only_writes_one_row_per_registered_model(tmp_path):
    """--steps-only --cpu: the plumbing of the step-time table (CPU times, no graphs), atomically
    written to --out."""
    out = tmp_path / "steps.md"
    done = subprocess.run([sys.executable, "bench/sweep_throughput.py", "--steps-only", "--cpu", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "ms/step" not in line]
    assert sorted(r.split("|")[1].strip() for r in rows) == sorted(MIXERS)
    assert all(r.rstrip().endswith("| no (CPU run) |") for r in rows)


def test_the_original_grid_is_every_choice_times_three_points_of_each_range_in_order():
    from sweeps.search_space import Param
    grid = bench.original_grid({"optim.lr": Param("optim.lr", "loguniform", (1e-4, 1e-2)),
                                "model.d_model": Param("model.d_model", "choice", (32, 64))})
    assert len(grid) == 6 and grid[0] == {"model.d_model": 32, "optim.lr": 1e-4}
    assert [g["optim.lr"] for g in grid[:3]] == [1e-4, 1e-3, 1e-2] and grid[3]["model.d_model"] == 64
