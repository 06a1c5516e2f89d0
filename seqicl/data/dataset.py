"""Containers for generated task data, saved and loaded as plain tensors."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Split:
    """One split of a task: model inputs, next-token targets (-100 = ignore) and, for
    RegBench, each example's automaton in a form the metric can use on the GPU.

    inputs, targets: (N, L) int64.
    dfa_trans: (N, S, V) int8, next state or -1 (RegBench only).
    dfa_state: (N, L) int8, state after reading inputs[:, t] within the current string.
    """
    inputs: torch.Tensor
    targets: torch.Tensor
    dfa_trans: torch.Tensor | None = None
    dfa_state: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device) -> "Split":
        return Split(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                        for f in fields(self)})

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass
class TaskData:
    """Everything a run needs from a task: the vocabulary, three disjoint splits, and the
    task's facts (metric name, chance level of that metric)."""
    name: str
    vocab: list[str]
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)

    def to(self, device) -> "TaskData":
        return TaskData(self.name, self.vocab, self.train.to(device), self.val.to(device),
                        self.test.to(device), self.info)

    def state(self) -> dict:
        return {"name": self.name, "vocab": self.vocab, "info": self.info,
                "train": self.train.as_dict(), "val": self.val.as_dict(), "test": self.test.as_dict()}

    def first_train(self, n: int) -> "TaskData":
        """The same task with only the first ``n`` training examples, padding trimmed as a fresh
        generation would trim it. Generators draw test, val, then train from one stream, so
        this equals generating with ``num_train=n``: learning curves share one generation."""
        train = Split(**{k: v[:n] for k, v in self.train.as_dict().items()})
        splits = [train, self.val, self.test]
        pad = len(self.vocab) - 1
        if self.train.dfa_trans is not None:  # padded task: cut to the longest remaining example
            length = 1 + max(int((s.inputs != pad).any(0).nonzero().max()) for s in splits)
            states = 1 + int((train.dfa_trans >= 0).any(-1).any(0).nonzero().max())
            splits = [Split(s.inputs[:, :length], s.targets[:, :length],
                            s.dfa_trans[:, :states] if s is train else s.dfa_trans, s.dfa_state[:, :length])
                      for s in splits]
        return TaskData(self.name, self.vocab, *splits, self.info)

    @classmethod
    def from_state(cls, state: dict) -> "TaskData":
        return cls(state["name"], list(state["vocab"]), Split(**state["train"]), Split(**state["val"]),
                   Split(**state["test"]), dict(state["info"]))


def pad_rows(rows: list[list[int]], pad: int, length: int | None = None) -> torch.Tensor:
    length = length or max(len(r) for r in rows)
    out = torch.full((len(rows), length), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def draw_unique(sample, rng, counts: list[int], max_tries_factor: int = 50) -> list[list]:
    """Draw ``sum(counts)`` distinct items from ``sample(rng)`` and cut them into groups of
    ``counts`` in order. Callers pass (test, val, train) so that the held-out groups do not
    change when only the training size changes."""
    seen: set = set()
    items: list = []
    need, tries = sum(counts), 0
    while len(items) < need:
        tries += 1
        if tries > max_tries_factor * need:
            raise ValueError(f"could only draw {len(items)} distinct examples of {need}: "
                             "the task's configuration admits too few")
        item = sample(rng)
        key = item if isinstance(item, tuple) else item.key()
        if key in seen:
            continue
        seen.add(key)
        items.append(item)
    groups, start = [], 0
    for c in counts:
        groups.append(items[start: start + c])
        start += c
    return groups
