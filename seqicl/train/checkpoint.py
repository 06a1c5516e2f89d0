"""Self-describing checkpoints: weights, the full config and the vocabulary in one file, so
that loading needs nothing else (as nanoGPT's ``sample.py``). Written atomically; read with
``weights_only=True`` so a checkpoint can never run code."""
from __future__ import annotations

from pathlib import Path

import torch

from ..atomic import atomic_write
from ..models import LanguageModel, build_model

FORMAT = "seqicl.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated or not a seqicl checkpoint (one-line message)."""


def atomic_save(obj, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(path, weights: dict, cfg: dict, vocab: list[str], max_len: int,
                    epoch: int, metrics: dict) -> None:
    """``weights``: the model's state dict (or a copy of it)."""
    state = {k: v.detach().cpu() for k, v in weights.items()}
    atomic_save({"format": FORMAT, "model": state, "config": cfg, "vocab": list(vocab),
                 "max_len": max_len, "epoch": epoch, "metrics": metrics}, path)


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """The checkpoint dict, checked to be a readable seqicl checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seqicl checkpoint")
    return ckpt


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[LanguageModel, dict]:
    """Rebuild the model from a checkpoint; returns (model in eval mode, the checkpoint dict)."""
    ckpt = read_checkpoint(path, device)
    model = build_model(ckpt["config"]["model"], len(ckpt["vocab"]), ckpt["max_len"]).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise CheckpointError(f"{path}: weights do not match the model its config describes") from None
    return model.eval(), ckpt
