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
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.get("decay", "matrices") == "all":
        # the original's grouping: every parameter but those a mixer marks (an SSM's dt and A)
        decayed = [not getattr(p, "no_weight_decay", False) for p in params]
    else:  # matrices and embeddings only, not biases and norm gains (nanoGPT's rule)
        decayed = [p.dim() >= 2 for p in params]
    groups = [{"params": [p for p, d in zip(params, decayed) if d], "weight_decay": cfg["weight_decay"]},
              {"params": [p for p, d in zip(params, decayed) if not d], "weight_decay": 0.0}]
    lr = torch.tensor(cfg["lr"], device=device) if capturable else cfg["lr"]
    return torch.optim.AdamW(groups, lr=lr, betas=(cfg["beta1"], cfg["beta2"]),
                             fused=device.type == "cuda", capturable=capturable)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)  # in place: a captured graph reads this very tensor
        else:
            group["lr"] = lr


SCHEDULES = ("cosine", "linear", "timm_cosine")


def lr_factor(step: int, total: int, warmup_frac: float, min_frac: float, schedule: str = "cosine",
              warmup_start_frac: float = 0.0) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps.

    - ``cosine`` (seqicl's): linear warm-up to 1 over ``warmup_frac`` of the steps (the first
      step at 1/warmup), then cosine from 1 to ``min_frac`` over the remaining steps.
    - ``linear`` (the original associative recall's, Hugging Face's linear schedule): warm-up from
      0 (the first step at 0), then linear decay to 0 at ``total``; ``min_frac`` is not used.
    - ``timm_cosine`` (the original induction head's, timm's CosineLRScheduler, warmup_prefix
      False): warm-up from ``warmup_start_frac`` to 1, then the cosine from 1 to ``min_frac``
      counted from step 0 over all ``total`` steps, so it starts just below 1 after the warm-up.

    >>> [round(lr_factor(s, 10, 0.2, 0.0, "linear"), 3) for s in (0, 1, 2, 6, 9)]
    [0.0, 0.5, 1.0, 0.5, 0.125]
    >>> [round(lr_factor(s, 10, 0.2, 0.1, "timm_cosine", 0.5), 3) for s in (0, 1, 2, 5)]
    [0.5, 0.75, 0.914, 0.55]
    """
    warmup = int(warmup_frac * total)
    if schedule == "linear":
        if step < warmup:
            return step / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    if schedule == "timm_cosine":
        if step < warmup:
            return warmup_start_frac + step * (1 - warmup_start_frac) / warmup
        return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))
    if schedule != "cosine":
        raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
