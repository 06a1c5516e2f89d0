"""Evaluation metrics. Everything stays on the device; one host sync per evaluation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import IGNORE, Split


def dfa_correct(pred: torch.Tensor, trans: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Whether each predicted token is an edge out of the current DFA state.

    pred, state: (B, L); trans: (B, S, V) next state or -1. Returns (B, L) bool.
    """
    b = torch.arange(pred.shape[0], device=pred.device).unsqueeze(1)
    return trans[b, state.long(), pred] >= 0


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, batch_size: int = 256) -> dict[str, float]:
    """Mean loss and ``accuracy`` over positions whose target is not -100; for RegBench
    splits also ``dfa_accuracy`` over the same positions (see ``dfa_correct``)."""
    was_training = model.training
    model.eval()
    dev = split.inputs.device
    loss = torch.zeros((), device=dev)
    hits = torch.zeros((), device=dev)
    dfa_hits = torch.zeros((), device=dev)
    count = torch.zeros((), device=dev)
    for i in range(0, len(split), batch_size):
        x, y = split.inputs[i: i + batch_size], split.targets[i: i + batch_size]
        logits = model(x).float()
        scored = y != IGNORE
        loss += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum")
        pred = logits.argmax(-1)
        hits += ((pred == y) & scored).sum()
        count += scored.sum()
        if split.dfa_trans is not None:
            ok = dfa_correct(pred, split.dfa_trans[i: i + batch_size], split.dfa_state[i: i + batch_size])
            dfa_hits += (ok & scored).sum()
    model.train(was_training)
    n = count.clamp_min(1)
    out = torch.stack([loss / n, hits / n, dfa_hits / n]).tolist()  # the one sync
    metrics = {"loss": out[0], "accuracy": out[1]}
    if split.dfa_trans is not None:
        metrics["dfa_accuracy"] = out[2]
    return metrics
