"""AdamW with linear warm-up then cosine decay, as the original experiments used. The
learning rate is set on the host before every step (``set_lr``), which works the same for an
eager step and for a step replayed from a CUDA graph (where the rate lives in a tensor)."""
from __future__ import annotations

import math

import torch


def make_optimizer(model: torch.nn.Module, cfg: dict, device: torch.device,
                   capturable: bool = False) -> torch.optim.AdamW:
    """``capturable``: fused AdamW whose step count and learning rate are device tensors, so
    the whole step can be captured in a CUDA graph and replayed without recapture."""
    # weight decay on matrices and embeddings only, not on biases and norm gains (nanoGPT's rule)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    lr = torch.tensor(cfg["lr"], device=device) if capturable else cfg["lr"]
    return torch.optim.AdamW(groups, lr=lr, betas=(cfg["beta1"], cfg["beta2"]),
                             fused=device.type == "cuda", capturable=capturable)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)  # in place: a captured graph reads this very tensor
        else:
            group["lr"] = lr


def lr_factor(step: int, total: int, warmup_frac: float, min_frac: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps."""
    warmup = int(warmup_frac * total)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
