"""Evaluation metrics. Everything stays on the device; one host sync per evaluation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import IGNORE, Split
from ..data.vocab import letter_targets

# the highest value each validation metric can take: a run there cannot find a better epoch
BEST_POSSIBLE = {"accuracy": 1.0, "dfa_accuracy": 1.0}


def dfa_correct(pred: torch.Tensor, trans: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Whether each predicted token is an edge out of the current DFA state.

    pred, state: (B, L); trans: (B, S, V) next state or -1. Returns (B, L) bool.
    """
    b = torch.arange(pred.shape[0], device=pred.device).unsqueeze(1)
    return trans[b, state.long(), pred] >= 0


def dfa_distribution(trans: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """The DFA's next-token distribution: uniform over the letters with an edge out of the
    current state (every state accepts, so ending the string is not a letter). (B, L, V)."""
    b = torch.arange(state.shape[0], device=state.device).unsqueeze(1)
    valid = (trans[b, state.long()] >= 0).float()                # (B, L, V)
    return valid / valid.sum(-1, keepdim=True).clamp_min(1)


def tvd(probs: torch.Tensor, trans: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Total variation distance, half the L1 distance between the model's next-token
    distribution ``probs`` (B, L, V) and the DFA's, per position: (B, L)."""
    return 0.5 * (probs - dfa_distribution(trans, state)).abs().sum(-1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, max_tokens: int = 65536, bf16: bool = False) -> dict[str, float]:
    """Mean loss and ``accuracy`` over positions whose target is not -100; for RegBench
    splits also ``dfa_accuracy`` (see ``dfa_correct``) and ``tvd`` over the positions whose
    target is a letter (``letter_targets``: a ``|`` target, trained with
    ``task.separator_target``, counts in the loss and ``accuracy`` only).
    ``bf16``: the forward runs under bfloat16 autocast, as the training step does. Batches of
    up to ``max_tokens`` tokens: one or two forward passes for the short tasks."""
    was_training = model.training
    model.eval()
    dev = split.inputs.device
    batch_size = max(1, max_tokens // split.inputs.shape[1])
    loss = torch.zeros((), device=dev)
    hits = torch.zeros((), device=dev)
    dfa_hits = torch.zeros((), device=dev)
    tvd_sum = torch.zeros((), device=dev)
    count = torch.zeros((), device=dev)
    letter_count = torch.zeros((), device=dev)
    for i in range(0, len(split), batch_size):
        x, y = split.inputs[i: i + batch_size], split.targets[i: i + batch_size]
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        logits = logits.float()  # loss, argmax and softmax in float32
        scored = y != IGNORE
        loss += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum")
        pred = logits.argmax(-1)
        hits += ((pred == y) & scored).sum()
        count += scored.sum()
        if split.dfa_trans is not None:
            trans, state = split.dfa_trans[i: i + batch_size], split.dfa_state[i: i + batch_size]
            letters = letter_targets(y, trans.shape[-1])
            dfa_hits += (dfa_correct(pred, trans, state) & letters).sum()
            tvd_sum += (tvd(logits.softmax(-1), trans, state) * letters).sum()
            letter_count += letters.sum()
    model.train(was_training)
    n, k = count.clamp_min(1), letter_count.clamp_min(1)
    out = torch.stack([loss / n, hits / n, dfa_hits / k, tvd_sum / k]).tolist()  # the one sync
    metrics = {"loss": out[0], "accuracy": out[1]}
    if split.dfa_trans is not None:
        metrics["dfa_accuracy"], metrics["tvd"] = out[2], out[3]
    return metrics
