"""Associative recall (as in the original seq_icl table).

Keys are the lower half of the ordinary tokens, values the upper half. Each example draws
its own random key -> value map, writes ``num_pairs`` pairs of (random key, its value),
then ``=>`` and a query key drawn uniformly over the DISTINCT keys of the context (as the
original does: a key that occurs three times is no likelier to be asked than one that occurs
once); the model must emit that key's value.

Worked example, vocab 20 (keys 0-8, values 9-17, ``=>`` = 18), ``num_pairs=3``::

    sequence      3 12  7  9  3 12 => 7  9
    inputs        3 12  7  9  3 12 => 7          (the sequence minus its last token)
    train target 12  7  9  3 12 => 7  9          (every next token)
    test target  -100 ...              -100  9    (the answer only)

Chance accuracy: the answer is one of ``num_values`` values, so 1 / num_values
(1/9 = 11.1% with vocab 20; the original table printed 25.0).
"""
from __future__ import annotations

import random

import torch

from .dataset import Split, TaskData, draw_unique
from .vocab import IGNORE, Vocab


def sample(rng: random.Random, num_ordinary: int, num_pairs: int) -> tuple[int, ...]:
    """One full sequence (inputs plus the answer) as a tuple of token ids."""
    num_keys = num_ordinary // 2
    values = range(num_keys, num_ordinary)
    kv = [rng.choice(values) for _ in range(num_keys)]
    seq: list[int] = []
    present: set[int] = set()
    for _ in range(num_pairs):
        k = rng.randrange(num_keys)
        seq += [k, kv[k]]
        present.add(k)
    query = rng.choice(sorted(present))  # uniform over distinct keys, not over occurrences
    return tuple(seq + [num_ordinary, query, kv[query]])


def to_split(seqs: list[tuple[int, ...]], answer_only: bool) -> Split:
    full = torch.tensor(seqs, dtype=torch.long)
    inputs, targets = full[:, :-1].clone(), full[:, 1:].clone()
    if answer_only:
        targets[:, :-1] = IGNORE
    return Split(inputs, targets)


def generate(cfg: dict) -> TaskData:
    vocab = Vocab.synthetic(cfg["vocab_size"])
    rng = random.Random(cfg["seed"])
    n = vocab.num_ordinary
    test, val, train = draw_unique(lambda r: sample(r, n, cfg["num_pairs"]), rng,
                                   [cfg["num_test"], cfg["num_val"], cfg["num_train"]])
    num_values = n - n // 2
    return TaskData("associative_recall", vocab.tokens, to_split(train, False), to_split(val, True),
                    to_split(test, True), {"metric": "accuracy", "chance": 1.0 / num_values})
