"""Generated data cached on disk, keyed by the task section of the config.

Trials of one sweep share one generation: the sweep driver generates once, every trial
loads the file. Files are written atomically (temporary name, then rename), so trials
racing to create the same entry never see half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..atomic import atomic_write
from .dataset import TaskData

# Bump when a generator's output changes for the same config: the version is part of every
# cache key and of each entry's description, so an older entry is never read as new data.
# 3 (2026-12-03): associative recall queries a distinct key uniformly; RegBench edges of one
# state go to distinct targets.
GENERATOR_VERSION = 3


def cache_dir(configured: str | None = None) -> Path:
    return Path(configured or os.environ.get("SEQICL_CACHE") or Path.home() / ".cache" / "seqicl")


def described(task_cfg: dict) -> dict:
    """What an entry is: the task section and the generator version that made it."""
    return {"v": GENERATOR_VERSION, **task_cfg}


def cache_key(task_cfg: dict) -> str:
    blob = json.dumps(described(task_cfg), sort_keys=True)
    return f"{task_cfg['name']}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _read(path: Path) -> TaskData | None:
    try:
        return TaskData.from_state(torch.load(path, weights_only=True))
    except Exception:
        return None  # missing or unreadable entry: generate again


def _from_larger(task_cfg: dict, directory: Path) -> TaskData | None:
    """Cut the data from a cached entry that differs only by a larger ``num_train`` (and was
    made by this generator version: an entry without one is older)."""
    rest = {k: v for k, v in described(task_cfg).items() if k != "num_train"}
    for meta in sorted(directory.glob(f"{task_cfg['name']}-*.json")):
        try:
            other = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if {k: v for k, v in other.items() if k != "num_train"} == rest and other.get("num_train", 0) > task_cfg["num_train"]:
            data = _read(meta.with_suffix(".pt"))
            if data is not None:
                return data.first_train(task_cfg["num_train"])
    return None


def cached(task_cfg: dict, generate, directory: str | Path | None = None) -> TaskData:
    """Load the task's data from the cache; on a miss cut it from a cached larger training
    set of the same task, or generate it, and store it."""
    directory = cache_dir(directory)
    path = directory / f"{cache_key(task_cfg)}.pt"
    data = _read(path) if path.exists() else None
    if data is not None:
        return data
    data = (_from_larger(task_cfg, directory) if directory.is_dir() else None) or generate(task_cfg)
    atomic_write(path, lambda f: torch.save(data.state(), f))
    atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(described(task_cfg), sort_keys=True).encode()))
    return data
