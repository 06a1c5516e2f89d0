"""Random deterministic finite automata for RegBench.

Every state accepts, so a string is in the language exactly when each of its transitions
exists. States are ``0..n-1`` with ``0`` the start; letters are token ids ``0..k-1``.

A random DFA is drawn as the RegBench paper describes (4-12 states, an alphabet of 4-18
letters, 1-3 outgoing edges per state, to DISTINCT other states: targets drawn without
replacement, no self-loops), then trimmed to the states
reachable from the start, minimised (Moore's partition refinement, with a missing edge
meaning "go to a rejecting dead state") and renumbered in breadth-first order, so that two
automata of the same language have the same ``key()``.
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class DFA:
    # transitions[s] = ((letter, next_state), ...) sorted by letter
    transitions: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def num_states(self) -> int:
        return len(self.transitions)

    def key(self) -> tuple:
        return self.transitions

    def next_state(self, state: int, letter: int) -> int | None:
        for a, t in self.transitions[state]:
            if a == letter:
                return t
        return None

    def accepts(self, word) -> bool:
        state = 0
        for letter in word:
            state = self.next_state(state, int(letter))
            if state is None:
                return False
        return True

    def walk(self, rng: random.Random, length: int) -> list[int]:
        """A random string of ``length`` letters: a uniform choice of edge at every step."""
        out, state = [], 0
        for _ in range(length):
            letter, state = rng.choice(self.transitions[state])
            out.append(letter)
        return out

    def table(self, num_tokens: int, num_states: int | None = None) -> list[list[int]]:
        """(num_states, num_tokens) next-state table, -1 where there is no edge."""
        rows = [[-1] * num_tokens for _ in range(num_states or self.num_states)]
        for s, edges in enumerate(self.transitions):
            for a, t in edges:
                rows[s][a] = t
        return rows


def sample_raw(rng: random.Random, num_letters: int, num_states: int, alphabet_size: int,
               min_edges: int, max_edges: int) -> list[dict[int, int]]:
    """Unminimised random automaton as a list of {letter: next_state} dicts."""
    alphabet = rng.sample(range(num_letters), alphabet_size)
    delta = []
    for s in range(num_states):
        others = [t for t in range(num_states) if t != s]  # no self-loops
        m = rng.randint(min_edges, min(max_edges, alphabet_size, len(others)))
        # distinct targets: with replacement, two edges often share one and minimisation
        # then shrinks the automaton (6.6 states on average instead of the original's 6.9)
        delta.append(dict(zip(rng.sample(alphabet, m), rng.sample(others, m))))
    return delta


def minimize(delta: list[dict[int, int]]) -> DFA:
    """Trim unreachable states, merge equivalent ones, renumber breadth-first from 0."""
    reach, queue = {0}, deque([0])
    while queue:
        for t in delta[queue.popleft()].values():
            if t not in reach:
                reach.add(t)
                queue.append(t)
    states = sorted(reach)
    letters = sorted({a for s in states for a in delta[s]})
    block = {s: 0 for s in states}  # all live states accept: one block; the dead state is -1
    while True:
        sigs = {s: (block[s],) + tuple(block.get(delta[s].get(a), -1) for a in letters) for s in states}
        ids: dict[tuple, int] = {}
        new = {s: ids.setdefault(sigs[s], len(ids)) for s in states}
        if len(ids) == len(set(block.values())):
            break
        block = new
    # breadth-first renumbering from the start block, letters ascending: a canonical form
    order = {block[0]: 0}
    rep = {}
    for s in states:
        rep.setdefault(block[s], s)
    queue = deque([block[0]])
    edges: dict[int, list[tuple[int, int]]] = {}
    while queue:
        b = queue.popleft()
        out = []
        for a in sorted(delta[rep[b]]):
            tb = block[delta[rep[b]][a]]
            if tb not in order:
                order[tb] = len(order)
                queue.append(tb)
            out.append((a, order[tb]))
        edges[order[b]] = out
    return DFA(tuple(tuple(edges[i]) for i in range(len(order))))


def random_dfa(rng: random.Random, num_letters: int, min_states: int = 4, max_states: int = 12,
               min_alphabet: int = 4, max_alphabet: int = 18, min_edges: int = 1,
               max_edges: int = 3) -> DFA:
    num_states = rng.randint(min_states, max_states)
    alphabet_size = rng.randint(min_alphabet, min(max_alphabet, num_letters))
    return minimize(sample_raw(rng, num_letters, num_states, alphabet_size, min_edges, max_edges))
