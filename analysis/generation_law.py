"""What a perfect model would generate: the RegBench generator's own next-token law on each
held-out automaton, decoded exactly as ``analysis.generate`` decodes an exported model.

    python -m analysis.generation_law <export dir> [--num-dfas N] [--samples K]
                                      [--decoding greedy,1.0] [--seed S] [--max-letters M]

The generator (``seqicl/data/regbench.py``) draws each string's length L uniformly from
[min_string_len, max_string_len] and each letter uniformly among the current state's edges. So
after k letters of a string the next token is ``|`` with probability

    h_k = P(L = k | L >= k) = 1 / (max_string_len - k + 1)      (0 below min_string_len)

and each of the d letters leaving the current state with (1 - h_k) / d. Greedy decoding of this
law writes ``|`` only once h_k > (1 - h_k) / d, that is after about max_string_len - d letters:
every string is accepted and ends, but it is nearly twice the context strings' mean length. T=1
sampling of the law gives the context's own length distribution. These rows bound what any
model's greedy and sampled generations can reach on the same automata.

The export folder gives the task (its test automata, the letter cap's vocabulary); its weights
are not read, so a committed export without ``weights.pt`` works. Each decoding writes
``generation-law-<d>.json`` and ``.md`` (and the strings' ``.jsonl``) into the folder, where
``analysis.report`` lists them beside the model's own rows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from analysis.generate import (add_common_args, check_counts, decoding_label, file_stem, generate_on,
                               parse_decodings, write_decoding)
from seqicl.cli import OneLineParser
from seqicl.data import load_task
from seqicl.data.automaton import DFA
from seqicl.export import ExportError, read_json


class GeneratorLaw:
    """A stand-in for a language model on one automaton: called on (K, T) tokens it returns
    (K, T, V) logits whose last position is the log of the generator's next-token law given the
    letters written since the last separator (earlier positions are not used by the decoder)."""

    def __init__(self, dfa: DFA, vocab_size: int, sep: int, min_len: int, max_len: int):
        self.dfa, self.vocab_size, self.sep = dfa, vocab_size, sep
        self.min_len, self.max_len = min_len, max_len

    def next_token_probs(self, letters: list[int]) -> torch.Tensor:
        p = torch.zeros(self.vocab_size, dtype=torch.float64)
        k, state = len(letters), 0
        for a in letters:
            state = self.dfa.next_state(state, a)
            if state is None:   # off the automaton: the law has no mass here; end the string
                p[self.sep] = 1.0
                return p
        end = 0.0 if k < self.min_len else 1.0 if k >= self.max_len else 1.0 / (self.max_len - k + 1)
        edges = self.dfa.transitions[state]
        p[self.sep] = end if edges else 1.0
        for a, _ in edges:
            p[a] = (1.0 - end) / len(edges)
        return p

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        rows = []
        for row in tokens.tolist():
            cut = len(row) - 1 - row[::-1].index(self.sep) if self.sep in row else -1
            rows.append(self.next_token_probs(row[cut + 1:]).log())
        last = torch.stack(rows).float().unsqueeze(1)
        return last.expand(-1, tokens.shape[1], -1)


def law_generation(folder: Path, num_dfas: int, samples: int, decodings: list[float | None], seed: int,
                   max_letters: int) -> list[tuple[dict, list[dict]]]:
    """``generate_on`` the generator's law of each of the export's test automata, once per
    decoding (None: greedy; else a sampling temperature)."""
    for name in ("config.json", "vocab.json"):
        if not (folder / name).is_file():
            raise ExportError(f"{folder}: not a seqicl export ({name} is missing)")
    cfg, vocab = read_json(folder / "config.json"), read_json(folder / "vocab.json")
    try:
        task = cfg["task"]
        if task["name"] != "dfa":
            raise ExportError(f"{folder}: the generator's law is RegBench's (dfa); this export is {task['name']}")
        test = load_task(task, (cfg.get("data") or {}).get("cache_dir")).test
        lengths = task["min_string_len"], task["max_string_len"]
        if not isinstance(vocab, list) or len(vocab) != task["vocab_size"]:
            raise ExportError(f"{folder}: vocab.json is not the task's vocabulary of {task['vocab_size']} tokens")
    except (KeyError, TypeError) as e:
        raise ExportError(f"{folder}: config.json is not a whole task configuration ({type(e).__name__}: {e})") from None
    sep = len(vocab) - 2

    def law_of(dfa: DFA) -> GeneratorLaw:
        return GeneratorLaw(dfa, len(vocab), sep, *lengths)

    out = []
    for t in decodings:
        summary, records = generate_on(None, test, vocab, num_dfas, samples, t, seed, max_letters, model_for=law_of)
        summary["decoding"] = f"{decoding_label(t)}, the generator's law"
        out.append((summary, records))
    return out


def main(argv: list[str]) -> int:
    p = OneLineParser(prog="python -m analysis.generation_law", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--decoding", default="greedy,1.0", help="comma-separated: greedy and/or sampling temperatures")
    args = p.parse_args(argv)
    try:
        decodings = parse_decodings(args.decoding)
    except ValueError:
        p.error("--decoding takes greedy and positive finite temperatures, e.g. greedy,1.0")
    check_counts(p, args)
    folder = Path(args.export)
    try:
        out = []
        for t, (summary, records) in zip(decodings, law_generation(folder, args.num_dfas, args.samples, decodings,
                                                                    args.seed, args.max_letters)):
            out.append(write_decoding(folder, f"law-{file_stem(t)}", summary, records))
    except (ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
