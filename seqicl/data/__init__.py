"""Task generators. ``load_task(cfg["task"])`` returns a ``TaskData`` (cached on disk)."""
from __future__ import annotations

from . import associative_recall, induction_head, regbench
from .cache import GENERATOR_VERSION, cached
from .dataset import Split, TaskData
from .vocab import IGNORE, Vocab

GENERATORS = {
    "associative_recall": associative_recall.generate,
    "induction": induction_head.generate,
    "dfa": regbench.generate,
}


def generate(task_cfg: dict) -> TaskData:
    """Generate a task's data from its config section, without the cache."""
    if task_cfg["name"] not in GENERATORS:
        raise ValueError(f"unknown task '{task_cfg['name']}' (choose from {', '.join(GENERATORS)})")
    data = GENERATORS[task_cfg["name"]](task_cfg)
    data.info["generator_version"] = GENERATOR_VERSION  # run records say which data they trained on
    return data


def load_task(task_cfg: dict, cache_dir: str | None = None) -> TaskData:
    return cached(task_cfg, generate, cache_dir)


__all__ = ["GENERATORS", "IGNORE", "Split", "TaskData", "Vocab", "generate", "load_task"]
