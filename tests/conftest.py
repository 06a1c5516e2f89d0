import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test generates into a private data cache, never ~/.cache."""
    monkeypatch.setenv("SEQICL_CACHE", str(tmp_path_factory.getbasetemp() / "data-cache"))


def small_task(name: str, **kw) -> dict:
    from seqicl.config import compose
    cfg = compose([f"task={name}"])["task"]
    cfg.update(num_train=kw.pop("num_train", 200), num_val=kw.pop("num_val", 50), num_test=kw.pop("num_test", 50))
    cfg.update(kw)
    return cfg
