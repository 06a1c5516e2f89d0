"""The vocabulary shared by every task: ``n`` ordinary tokens, then a separator, then a no-op.

Ids are fixed so that checkpoints and generators agree: ordinary tokens are ``0..n-1``,
the separator (``=>`` for the synthetic tasks, ``|`` for RegBench) is ``n`` and the
no-op / pad ``.`` is ``n + 1``.
"""
from __future__ import annotations

import string

IGNORE = -100  # target id that losses and metrics skip


def letter_targets(targets, vocab_size: int):
    """Where a RegBench target is a letter: neither ignored (-100) nor the separator ``|``
    (id ``vocab_size - 2``). The positions ``dfa_accuracy``, ``tvd``, the n-gram baselines and
    chance are scored at, whether or not the separator is trained as a target. Works on torch
    tensors and numpy arrays alike."""
    return (targets != IGNORE) & (targets != vocab_size - 2)


class Vocab:
    def __init__(self, tokens: list[str]):
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be distinct")
        self.tokens = list(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def synthetic(cls, vocab_size: int) -> "Vocab":
        """Tokens ``0 .. vocab_size-3``, then ``=>`` and ``.`` (associative recall, induction)."""
        return cls([str(i) for i in range(vocab_size - 2)] + ["=>", "."])

    @classmethod
    def letters(cls, vocab_size: int) -> "Vocab":
        """Letters ``a, b, ...``, then ``|`` and ``.`` (RegBench)."""
        n = vocab_size - 2
        if not 1 <= n <= 26:
            raise ValueError(f"RegBench needs 3..28 vocabulary entries, got {vocab_size}")
        return cls(list(string.ascii_lowercase[:n]) + ["|", "."])

    @property
    def num_ordinary(self) -> int:
        return len(self.tokens) - 2

    @property
    def sep(self) -> int:
        return len(self.tokens) - 2

    @property
    def pad(self) -> int:
        return len(self.tokens) - 1

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Space-separated tokens to ids; RegBench letters may also be written unspaced."""
        parts = text.split() if " " in text.strip() else list(text.strip())
        return [self.ids[p] for p in parts]

    def decode(self, ids) -> str:
        return " ".join(self.tokens[int(i)] for i in ids)
