"""In-context n-gram baselines for RegBench (reference lines for ``dfa_accuracy`` and ``tvd``).

For every example ``n`` and every scored position ``t`` (the target is a letter: neither -100
nor ``|``, ``vocab.letter_targets``; the same positions as the model's metrics in
``seqicl.train.metrics``, whether or not the task trains ``|`` as a target), an n-gram model is fitted on
that example's own context only: the tokens ``inputs[n, 0..t]``, everything read so far
(padding never contributes a count). It gives a next-token distribution over the letters and
``|`` (``0 .. V-2``; the pad ``V-1`` always gets 0), the maximum-likelihood normalised counts
with no smoothing:

* **2-gram**: the successors of earlier occurrences of the current token ``c = inputs[t]``,
  i.e. the pairs ``(inputs[j], inputs[j+1])`` with ``j + 1 <= t`` and ``inputs[j] == c``.
  If ``c`` never occurred before with a successor, back off to the unigram counts of the
  context ``inputs[0..t]`` (current token included); if that were empty (it never is at a
  scored position), uniform over the letters and ``|``.
* **3-gram** (with back-off): the successors of earlier occurrences of the last two tokens
  ``(inputs[t-1], inputs[t])``, i.e. the triples ``(inputs[j-1], inputs[j], inputs[j+1])`` with
  ``1 <= j``, ``j + 1 <= t``. If that pair has no earlier occurrence with a successor (or
  ``t == 0``), back off to the 2-gram above, which itself backs off as described.

The n-gram contexts are plain token windows, so they may contain ``|`` (the 3-gram context
``(|, a)`` means "the string starts with a").

Scores, over the scored positions:

* ``dfa_accuracy``: the argmax token (ties broken toward the smallest token id) is correct
  when the DFA has that transition out of ``dfa_state[n, t]``; predicting ``|`` is never a
  transition, so it is incorrect.
* ``tvd``: half the L1 distance between the n-gram distribution and the DFA's next-token
  distribution, uniform over the letters ``a`` with ``dfa_trans[n, dfa_state[n, t], a] >= 0``
  (zero on ``|`` and pad), averaged over the scored positions. Mass on ``|`` counts against the
  n-gram as it counts against a model (one trained with ``task.separator_target`` puts there the
  chance that the string ends), since the DFA's distribution, over next letters, has none. As in
  ``seqicl.train.metrics.dfa_distribution``, a state without any edge (impossible at a scored
  position of generated data, whose target letter is itself an edge) has an all-zero DFA
  distribution.

Worked example: letters a, b, c (ids 0-2), ``|`` = 3, pad = 4, the DFA 0 -a-> 1, 1 -b-> 0,
1 -c-> 1 and the text ``a b | a c c | a b``::

    t          0  1  2  3  4  5  6  7  8
    inputs     a  b  |  a  c  c  |  a  b
    targets    b  -  a  c  c  -  a  b  -     (- = -100: next token is `|` or padding)
    dfa_state  1  0  0  1  1  1  0  1  0

    t=4, current c: no earlier c -> 2-gram backs off to the unigram of a b | a c:
         a 2/5, b 1/5, c 1/5, | 1/5 -> argmax a, not an edge out of state 1 (incorrect);
         the DFA gives b 1/2, c 1/2, so tvd = (.4 + .3 + .3 + .2) / 2 = 0.6.
         3-gram context (a, c) unseen -> the same 2-gram distribution.
    t=7, current a: 2-gram successors of the earlier a's (t=0, t=3): b 1/2, c 1/2 -> argmax b
         (tie toward the smaller id), correct, tvd 0. 3-gram context (|, a) occurred at
         t=2..3 followed by c: c 1 -> correct, tvd (.5 + .5) / 2 = 0.5.

Over the six scored positions the 2-gram scores dfa_accuracy 4/6 and tvd 83/180, the
3-gram dfa_accuracy 4/6 and tvd 49/90 (worked out in ``tests/test_ngram.py``).

The counts are built for all positions at once, not refitted at every ``t``: each position
``j`` is an event "context key(j) was followed by inputs[j+1]"; sorting positions by
(example, key) and taking an exclusive cumulative sum of the one-hot successors within each
group gives, at every ``t``, the counts over the earlier events ``j < t`` with the same key.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .dataset import Split
from .vocab import letter_targets

ORDERS = (2, 3)


def _grouped_prior_counts(keys: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """For every row i, the sum of ``onehot[j]`` over the rows j < i with ``keys[j] == keys[i]``.

    keys: (P,) int64; onehot: (P, K) int32. Returns (P, K) int32.
    """
    order = np.argsort(keys, kind="stable")              # by key, then by position
    ks = keys[order]
    inc = np.cumsum(onehot[order], axis=0, dtype=np.int32)
    exc = inc - onehot[order]                              # counts strictly before, all keys
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(ks)]))
    out = np.empty_like(exc)
    out[order] = exc - exc[group_start]                    # restrict to the row's own group
    return out


def _chunk_counts(inputs: np.ndarray, targets: np.ndarray, n: int, vocab_size: int):
    """The scored positions of a chunk of examples and their back-off n-gram counts.

    Returns (rows, cols, counts): the (example, position) of every scored position in
    row-major order and (P, V) int32 counts (pad column 0; never all zero).
    """
    b, length = inputs.shape
    v = vocab_size
    pad = v - 1
    x = inputs.astype(np.int64)
    real = x != pad
    # successor of position j (a token of the context when j + 1 <= t): inputs[j+1]
    succ = np.full((b, length), pad, dtype=np.int64)
    succ[:, :-1] = x[:, 1:]
    ex = np.repeat(np.arange(b, dtype=np.int64), length)
    eye = np.eye(v, dtype=np.int32)
    eye[pad] = 0                                           # padding contributes no counts
    succ_hot = eye[succ.ravel()]                           # (B*L, V)

    # unigram of inputs[0..t], current token included
    uni = np.cumsum(eye[x].reshape(b, length, v), axis=1, dtype=np.int32).reshape(-1, v)
    # 2-gram: key = (example, current token)
    big = _grouped_prior_counts(ex * v + x.ravel(), succ_hot)
    counts = [uni, big]
    if n == 3:
        prev = np.full((b, length), v, dtype=np.int64)     # v: "no previous token" at t = 0
        prev[:, 1:] = x[:, :-1]
        key = (ex * (v + 1) + prev.ravel()) * v + x.ravel()
        counts.append(_grouped_prior_counts(key, succ_hot))

    scored = letter_targets(targets, v) & real
    idx = np.flatnonzero(scored.ravel())
    out = counts[-1][idx]
    for lower in reversed(counts[:-1]):                    # back off where the total is zero
        empty = out.sum(1) == 0
        if empty.any():
            out[empty] = lower[idx[empty]]
    empty = out.sum(1) == 0
    if empty.any():                                        # uniform over letters and `|`
        out[empty] = 1
        out[empty, pad] = 0
    rows, cols = np.divmod(idx, length)
    return rows, cols, out


def _check(split: Split, n: int) -> None:
    if n not in ORDERS:
        raise ValueError(f"n-gram order must be one of {ORDERS}, got {n}")
    if split.dfa_trans is None or split.dfa_state is None:
        raise ValueError("n-gram baselines need a RegBench split (dfa_trans, dfa_state)")


def _iter_chunks(split: Split, n: int, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    _check(split, n)
    v = split.dfa_trans.shape[-1]
    inputs = split.inputs.detach().cpu().numpy()
    targets = split.targets.detach().cpu().numpy()
    for start in range(0, len(split), chunk):
        rows, cols, counts = _chunk_counts(inputs[start: start + chunk], targets[start: start + chunk], n, v)
        yield rows + start, cols, counts, v


def ngram_distributions(split: Split, n: int, chunk: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """The n-gram's next-token distribution at every scored position.

    Returns ``(index, probs)``: index (P, 2) int64, the (example, position) of each scored
    position in row-major order; probs (P, V) float64 (the pad column is 0).
    """
    idx, probs = [], []
    for rows, cols, counts, _ in _iter_chunks(split, n, chunk):
        idx.append(np.stack([rows, cols], 1))
        probs.append(counts / counts.sum(1, keepdims=True))
    v = split.dfa_trans.shape[-1]  # (checked by _iter_chunks)
    if not idx:
        return torch.zeros((0, 2), dtype=torch.long), torch.zeros((0, v), dtype=torch.float64)
    return torch.from_numpy(np.concatenate(idx)).long(), torch.from_numpy(np.concatenate(probs))


def dfa_next_token_distribution(edges: np.ndarray) -> np.ndarray:
    """The DFA's next-token distribution from the transition-table row of each position's
    current state, ``edges`` (P, V) next state or -1: uniform over the tokens with an edge
    (only letters have one), all zero for a state without any. Returns (P, V) float64."""
    valid = (np.asarray(edges) >= 0).astype(np.float64)
    return valid / np.maximum(valid.sum(-1, keepdims=True), 1)


def total_variation(p: np.ndarray | torch.Tensor, q: np.ndarray | torch.Tensor):
    """Half the L1 distance between two distributions along the last axis."""
    return 0.5 * abs(p - q).sum(-1)


def ngram_scores(split: Split, n: int, chunk: int = 128) -> dict[str, float]:
    """``dfa_accuracy`` and ``tvd`` of the in-context n-gram (n = 2 or 3) on a RegBench split."""
    _check(split, n)
    trans = split.dfa_trans.detach().cpu().numpy()
    state = split.dfa_state.detach().cpu().numpy().astype(np.int64)
    hits, tvd_sum, total = 0, 0.0, 0
    for rows, cols, counts, v in _iter_chunks(split, n, chunk):
        if len(rows) == 0:
            continue
        sep = v - 2
        edges = trans[rows, state[rows, cols]].astype(np.int64)           # (P, V) next state or -1
        pred = counts.argmax(1)                                            # first max: smallest id
        ok = (edges[np.arange(len(pred)), pred] >= 0) & (pred != sep)
        p = counts / counts.sum(1, keepdims=True)
        q = dfa_next_token_distribution(edges)
        hits += int(ok.sum())
        tvd_sum += float(total_variation(p, q).sum())
        total += len(rows)
    total = max(total, 1)
    return {"dfa_accuracy": hits / total, "tvd": tvd_sum / total}


def ngram_baselines(split: Split) -> dict[str, dict[str, float]]:
    """Both baselines: ``{"2-gram": {"dfa_accuracy", "tvd"}, "3-gram": {...}}``."""
    return {f"{n}-gram": ngram_scores(split, n) for n in ORDERS}
