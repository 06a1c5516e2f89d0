"""Per-run TensorBoard scalars with readable names (train/loss, val/accuracy, ...)."""
from __future__ import annotations

from torch.utils.tensorboard import SummaryWriter


def flatten(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


class ScalarLog:
    def __init__(self, log_dir, purge_step: int | None = None):
        # purge_step: a resumed run hides the steps it is about to write again, so TensorBoard
        # shows each epoch once
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def epoch(self, epoch: int, metrics: dict) -> None:
        for name, value in metrics.items():
            split, _, metric = name.partition("_")
            if metric and split in ("train", "val", "test", "best") and isinstance(value, float):
                self.writer.add_scalar(f"{split}/{metric}", value, epoch)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, cfg: dict | None = None, summary: dict | None = None) -> None:
        """Write the hparams of a finished run (when given) and end the writer and its thread;
        closing again does nothing."""
        if cfg is not None and summary is not None:
            self.writer.add_hparams(flatten(cfg), {f"hparam/{k}": v for k, v in summary.items()
                                                   if isinstance(v, float)}, run_name=".")
        self.writer.close()
