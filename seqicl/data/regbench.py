"""RegBench: in-context learning of random regular languages.

Each example is one random DFA (see ``automaton.py``) and 10-19 strings sampled from it
by random walks from the start state, each 1-49 letters long, joined with ``|`` and padded
with ``.``. The model reads the strings left to right and must predict, at every letter, a
next letter that the automaton allows. Train, val and test use disjoint automata.

``separator_target`` (task option, default true): the separator is a training target, so a
model learns where strings end and its generations can end. Off, targets at ``|`` are -100
(the original's masking; records made before 2026-12-06 have no such key and trained that way).

Worked example, letters a-r (ids 0-17), ``|`` = 18, ``.`` = 19, a DFA with edges
0 -a-> 1, 1 -b-> 0, 1 -c-> 1::

    sequence   a  b  |  a  c  c  .
    inputs     a  b  |  a  c  c            (the padded sequence minus its last token)
    targets    b  |  a  c  c -100          (separator_target true: -100 at padding only)
    targets    b -100 a  c  c -100         (separator_target false: -100 at `|` and padding)
    dfa_state  1  0  0  1  1  1            (state after each input, reset to 0 at `|`)

``dfa_accuracy``, ``tvd``, the n-gram baselines and chance are scored at the positions whose
target is a letter (``vocab.letter_targets``: here t = 0, 2, 3, 4), the same with the option on
or off; only the training loss (and the ``loss`` and ``accuracy`` of an evaluation) also count
the ``|`` target at t = 1. ``dfa_accuracy`` asks whether the predicted token is an edge out of
``dfa_state`` (see ``seqicl.train.metrics``): a predicted ``|`` is not an edge, so it is wrong.
"""
from __future__ import annotations

import random

import torch

from .automaton import DFA, random_dfa
from .dataset import Split, TaskData, draw_unique
from .ngram import ngram_baselines
from .vocab import IGNORE, Vocab, letter_targets


def sample_strings(rng: random.Random, dfa: DFA, cfg: dict) -> list[list[int]]:
    n = rng.randint(cfg["min_strings"], cfg["max_strings"])
    return [dfa.walk(rng, rng.randint(cfg["min_string_len"], cfg["max_string_len"])) for _ in range(n)]


def join(strings: list[list[int]], sep: int) -> list[int]:
    out: list[int] = []
    for i, s in enumerate(strings):
        if i:
            out.append(sep)
        out += s
    return out


def states_along(dfa: DFA, tokens: list[int], sep: int) -> list[int]:
    """State after each token, restarting at the start state after every separator;
    tokens the automaton cannot read (padding) map to 0."""
    out, state = [], 0
    for tok in tokens:
        if tok == sep:
            state = 0
        else:
            nxt = dfa.next_state(state, tok) if state is not None else None
            state = nxt
        out.append(0 if state is None else state)
    return out


def to_split(examples: list[tuple[DFA, list[int]]], vocab: Vocab, length: int,
             separator_target: bool = False) -> Split:
    sep, pad = vocab.sep, vocab.pad
    n = len(examples)
    seqs = torch.full((n, length + 1), pad, dtype=torch.long)
    states = torch.zeros((n, length), dtype=torch.int8)
    max_states = max(d.num_states for d, _ in examples)
    trans = torch.full((n, max_states, len(vocab)), -1, dtype=torch.int8)
    for i, (dfa, toks) in enumerate(examples):
        seqs[i, : len(toks)] = torch.tensor(toks)
        states[i, : len(toks)] = torch.tensor(states_along(dfa, toks, sep)[:length], dtype=torch.int8)
        trans[i] = torch.tensor(dfa.table(len(vocab), max_states), dtype=torch.int8)
    inputs, targets = seqs[:, :-1].clone(), seqs[:, 1:].clone()
    drop = targets == pad
    if not separator_target:
        drop |= targets == sep
    targets[drop] = IGNORE
    return Split(inputs, targets, trans, states)


def chance_dfa_accuracy(split: Split, vocab_size: int) -> float:
    """Expected dfa_accuracy of a uniformly random token: valid edges / vocabulary size,
    over the positions whose target is a letter."""
    scored = letter_targets(split.targets, vocab_size)
    rows = split.dfa_trans[torch.arange(len(split)).unsqueeze(1), split.dfa_state.long()]  # (N, L, V)
    valid = (rows >= 0).sum(-1).float() / vocab_size
    return float(valid[scored].mean())


def generate(cfg: dict) -> TaskData:
    vocab = Vocab.letters(cfg["vocab_size"])
    rng = random.Random(cfg["seed"])
    dfa_kw = {k: cfg[k] for k in ("min_states", "max_states", "min_alphabet", "max_alphabet",
                                  "min_edges", "max_edges")}

    def sample(r: random.Random) -> DFA:
        return random_dfa(r, vocab.num_ordinary, **dfa_kw)

    # test, val, train: the held-out automata stay the same when only num_train changes
    groups = draw_unique(sample, rng, [cfg["num_test"], cfg["num_val"], cfg["num_train"]])
    # each example's strings come from its own seed, so they too stay fixed across sizes
    examples = [[(d, join(sample_strings(random.Random(f"{cfg['seed']}/{name}/{i}"), d, cfg), vocab.sep))
                 for i, d in enumerate(g)] for name, g in zip(("test", "val", "train"), groups)]
    length = max(len(t) for g in examples for _, t in g)
    # records made before the option existed have no key: they trained without separator targets
    sep_target = cfg.get("separator_target", False)
    test, val, train = (to_split(g, vocab, length, sep_target) for g in examples)
    return TaskData("dfa", vocab.tokens, train, val, test,
                    {"metric": "dfa_accuracy", "chance": chance_dfa_accuracy(test, len(vocab)),
                     "baselines": ngram_baselines(test)})  # in-context 2-/3-gram on the test set
