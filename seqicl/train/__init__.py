"""Training: the loop, optimizer and schedule, metrics, checkpoints, TensorBoard logging."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .loop import train
from .metrics import evaluate

__all__ = ["CheckpointError", "evaluate", "load_checkpoint", "save_checkpoint", "train"]
