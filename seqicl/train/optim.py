"""AdamW with linear warm-up then cosine decay, as the original experiments used."""
from __future__ import annotations

import math

import torch


def make_optimizer(model: torch.nn.Module, cfg: dict, device: torch.device) -> torch.optim.AdamW:
    # weight decay on matrices and embeddings only, not on biases and norm gains (nanoGPT's rule)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]),
                             fused=device.type == "cuda")


def lr_factor(step: int, total: int, warmup_frac: float, min_frac: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps."""
    warmup = int(warmup_frac * total)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_schedule(opt: torch.optim.Optimizer, cfg: dict, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, cfg["warmup_frac"], cfg["min_lr_frac"]))
