"""Length buckets: batches of examples of about the same length, each cut to its bucket's length.

A task's examples are padded to its longest one: RegBench's sets are 720 tokens wide, their
examples 376 on average. A causal model's loss at a position does not depend on the positions
after it (every mixer is tested for it: tests/test_models.py, the prefix test), so a batch cut
after its rows' last target has the same loss and gradients as the padded one, at less compute.
What changes is which examples share a batch: rows are split into ``n`` buckets of about equal
count by length; each epoch shuffles the rows within each bucket, cuts full batches from each,
and shuffles the batches of all buckets together.

    lengths 5 9 3 8 7 2, n = 2, batch 1  ->  buckets (rows 0 2 5: length 5) (rows 1 3 4: length 9)

(lengths rounded up to ``multiple``, here 1). Tasks whose examples all have one length (associative
recall, induction head) get one bucket: the same batches as without buckets.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import IGNORE


@dataclass
class Bucket:
    length: int              # the batch's width: its longest row's last target, rounded up
    rows: torch.Tensor       # training-set rows (int64, ascending, on the CPU)


def supervised_lengths(targets: torch.Tensor) -> torch.Tensor:
    """Per row, 1 + the last position with a target (0 for a row without any)."""
    positions = torch.arange(1, targets.shape[1] + 1, device=targets.device)
    return torch.where(targets != IGNORE, positions, 0).amax(1).cpu()


def make_buckets(lengths: torch.Tensor, n: int, batch_size: int, width: int, multiple: int = 8) -> list[Bucket]:
    """At most ``n`` buckets of about equal count, each at least ``batch_size`` rows (a smaller one
    would never fill a batch), by ascending length; buckets that round to one length are merged."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"train.length_buckets must be a whole number of at least 1, got {n!r}")
    n = max(1, min(n, len(lengths) // batch_size))
    order = torch.argsort(lengths, stable=True)
    buckets: list[Bucket] = []
    for rows in torch.tensor_split(order, n):
        longest = int(lengths[rows].max())
        length = min(width, max(multiple, -(-longest // multiple) * multiple))
        if buckets and buckets[-1].length == length:
            buckets[-1].rows = torch.cat([buckets[-1].rows, rows])
        else:
            buckets.append(Bucket(length, rows))
    for b in buckets:
        b.rows = b.rows.sort().values
    return buckets


def steps_per_epoch(buckets: list[Bucket], batch_size: int) -> int:
    return sum(len(b.rows) // batch_size for b in buckets)


def epoch_batches(buckets: list[Bucket], batch_size: int, gen: torch.Generator) -> list[tuple[int, torch.Tensor]]:
    """One epoch's batches as (bucket index, rows): full batches of each bucket's shuffled rows,
    in a shuffled order across buckets."""
    batches = []
    for i, bucket in enumerate(buckets):
        rows = bucket.rows[torch.randperm(len(bucket.rows), generator=gen)]
        batches += [(i, rows[k * batch_size:(k + 1) * batch_size]) for k in range(len(rows) // batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]
