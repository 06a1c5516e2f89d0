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

GENERATOR_VERSION = 1  # bump when a generator's output changes for the same config


def cache_dir(configured: str | None = None) -> Path:
    return Path(configured or os.environ.get("SEQICL_CACHE") or Path.home() / ".cache" / "seqicl")


def cache_key(task_cfg: dict) -> str:
    blob = json.dumps({"v": GENERATOR_VERSION, **task_cfg}, sort_keys=True)
    return f"{task_cfg['name']}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def cached(task_cfg: dict, generate, directory: str | Path | None = None) -> TaskData:
    """Load the task's data from the cache, generating and storing it on a miss."""
    path = cache_dir(directory) / f"{cache_key(task_cfg)}.pt"
    if path.exists():
        try:
            return TaskData.from_state(torch.load(path, weights_only=True))
        except Exception:
            pass  # unreadable entry: regenerate and replace it
    data = generate(task_cfg)
    atomic_write(path, lambda f: torch.save(data.state(), f))
    return data
