import os
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels run on the CPU through the interpreter; it must be on before triton loads
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test generates into a private data cache, never ~/.cache."""
    monkeypatch.setenv("SEQICL_CACHE", str(tmp_path_factory.getbasetemp() / "data-cache"))
    # sweeps without --preset run the small smoke preset in tests, not the 5-minute cpu default
    monkeypatch.setenv("SEQICL_PRESET", "smoke")


def small_task(name: str, **kw) -> dict:
    from seqicl.config import compose
    cfg = compose([f"task={name}"])["task"]
    cfg.update(num_train=kw.pop("num_train", 200), num_val=kw.pop("num_val", 50), num_test=kw.pop("num_test", 50))
    cfg.update(kw)
    return cfg


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def sessions():
    """Driver sessions a test started (subprocess.Popen, each in its own session); every process
    left in them is killed at the end, also when the test fails."""
    from procs import kill_session
    started = []
    yield started
    for p in started:
        kill_session(p.pid)
