"""Training: the loop, optimizer and schedule, metrics, checkpoints, TensorBoard logging.

The names below load on first use, so code that needs only the torch-free run record
(``seqicl.train.record``: analysis, the sweep driver, a CLI refusing a bad config) does not
pay for importing torch."""
from importlib import import_module

_WHERE = {"CheckpointError": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
          "train": "loop", "evaluate": "metrics"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
