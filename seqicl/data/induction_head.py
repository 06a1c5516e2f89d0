"""Induction head (as in the original seq_icl table).

``seq_len`` random ordinary tokens; one position (never one of the last two) is replaced by
the trigger ``=>``; the sequence then ends with ``=>`` and the model must emit the token
that followed the trigger the first time.

Worked example, vocab 20 (ordinary 0-17, trigger ``=>`` = 18), ``seq_len=6``::

    sequence      4 => 11  2  9  0 => 11
    inputs        4 => 11  2  9  0 =>         (the sequence minus its last token)
    train target => 11  2  9  0 => 11         (every next token)
    test target  -100 ...              -100 11 (the answer only)

Chance accuracy: the answer is uniform over the ordinary tokens: 1/18 = 5.6% with vocab 20
(the original table printed 5.0 = 1/20).
"""
from __future__ import annotations

import random

from .associative_recall import to_split
from .dataset import TaskData, draw_unique
from .vocab import Vocab


def sample(rng: random.Random, num_ordinary: int, seq_len: int) -> tuple[int, ...]:
    seq = [rng.randrange(num_ordinary) for _ in range(seq_len)]
    pos = rng.randrange(seq_len - 2)
    seq[pos] = num_ordinary  # the trigger
    return tuple(seq + [num_ordinary, seq[pos + 1]])


def generate(cfg: dict) -> TaskData:
    vocab = Vocab.synthetic(cfg["vocab_size"])
    rng = random.Random(cfg["seed"])
    n = vocab.num_ordinary
    test, val, train = draw_unique(lambda r: sample(r, n, cfg["seq_len"]), rng,
                                   [cfg["num_test"], cfg["num_val"], cfg["num_train"]])
    return TaskData("induction", vocab.tokens, to_split(train, False), to_split(val, True),
                    to_split(test, True), {"metric": "accuracy", "chance": 1.0 / n})
