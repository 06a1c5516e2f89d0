"""Generate strings from an exported RegBench model on held-out DFAs and check each one.

    python -m analysis.generate <export dir> [--num-dfas N] [--samples K]
                                [--greedy | --temperature T] [--seed S] [--max-letters M]

For each of the first N test automata of the export's task (the same held-out DFAs its test
metric used), the model reads that example's in-context strings followed by ``|`` and writes
K strings, each until it emits ``|`` or M letters. A string is accepted when every transition
exists in the automaton (every state accepts). Writes ``generations.jsonl`` (one line per
string), ``generation.json`` and ``generation.md`` (the summary) into the export folder.

The K samples of one automaton share a prompt, so they form one batch. Every step re-runs the
model over the whole sequence rather than stepping a recurrent state: the mixers are written as
sequence-level modules (FFT convolutions, scans, attention without a cache), and at these model
sizes the recomputation costs milliseconds per step.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from seqicl.atomic import atomic_write_text
from seqicl.cli import OneLineParser
from seqicl.data import IGNORE, load_task
from seqicl.data.automaton import DFA
from seqicl.export import ExportError, load_export
from seqicl.train.loop import resolve_device


def dfa_from_table(table: torch.Tensor) -> DFA:
    """The automaton of a (S, V) next-state table (-1 = no edge); state 0 is the start."""
    rows = table.tolist()
    used = [s for s, row in enumerate(rows) if any(t >= 0 for t in row)] or [0]
    return DFA(tuple(tuple((a, t) for a, t in enumerate(rows[s]) if t >= 0) for s in range(max(used) + 1)))


def full_sequence(inputs: torch.Tensor, targets: torch.Tensor, pad: int) -> list[int]:
    """An example's tokens without padding (its inputs plus the final target)."""
    last = int(targets[-1]) if int(targets[-1]) != IGNORE else pad
    return [t for t in inputs.tolist() + [last] if t != pad]


@torch.no_grad()
def sample_strings(model, prompt: list[int], samples: int, letters: int, sep: int, max_letters: int,
                   temperature: float | None, generator: torch.Generator, max_len: int | None,
                   device) -> list[tuple[list[int], bool]]:
    """K continuations of ``prompt``, each cut at the first ``sep``; returns (letters, ended)."""
    tokens = torch.tensor(prompt, device=device).repeat(samples, 1)
    done = torch.zeros(samples, dtype=torch.bool, device=device)
    steps = max_letters + 1
    if max_len is not None:  # a model with learned positions cannot read past its length
        steps = min(steps, max_len - tokens.shape[1] + 1)
    for _ in range(max(0, steps)):
        logits = model(tokens)[:, -1, : letters + 1].float()   # letters and the separator
        if temperature is None:
            nxt = logits.argmax(-1)
        else:
            probs = torch.softmax(logits / temperature, -1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(device)
        nxt = torch.where(done, torch.full_like(nxt, sep), nxt)
        tokens = torch.cat([tokens, nxt.unsqueeze(1)], dim=1)
        done |= nxt == sep
        if bool(done.all()):
            break
    out = []
    for row in tokens[:, len(prompt):].tolist():
        cut = row.index(sep) if sep in row else len(row)
        out.append((row[:cut][:max_letters], sep in row[: max_letters + 1]))
    return out


def summarize(records: list[dict], num_dfas: int, samples: int, decoding: str) -> dict:
    n = max(1, len(records))
    per_dfa = {}
    for r in records:
        per_dfa.setdefault(r["dfa"], []).append(r["string"])
    return {"num_dfas": num_dfas, "samples": samples, "decoding": decoding,
            "acceptance": sum(r["accepted"] for r in records) / n,
            "mean_length": sum(r["length"] for r in records) / n,
            "distinct": sum(len(set(v)) / len(v) for v in per_dfa.values()) / max(1, len(per_dfa)),
            "novel": sum(not r["in_context"] for r in records) / n,
            "empty": sum(r["length"] == 0 for r in records) / n,
            "unterminated": sum(not r["ended"] for r in records) / n}


def generate(folder: Path, num_dfas: int, samples: int, temperature: float | None, seed: int,
             max_letters: int, device_name: str = "auto") -> tuple[dict, list[dict]]:
    device = resolve_device(device_name)
    model, meta = load_export(folder, device)
    cfg = meta["config"]
    if cfg["task"]["name"] != "dfa":
        raise ExportError(f"{folder}: generation needs a RegBench (dfa) model, this one is {cfg['task']['name']}")
    test = load_task(cfg["task"], cfg["data"].get("cache_dir")).test
    vocab = meta["vocab"]
    sep, pad, letters = len(vocab) - 2, len(vocab) - 1, len(vocab) - 2
    max_len = meta["provenance"]["max_len"] if model.pos is not None else None
    gen = torch.Generator().manual_seed(seed)
    records = []
    for i in range(min(num_dfas, len(test))):
        dfa = dfa_from_table(test.dfa_trans[i])
        prompt = full_sequence(test.inputs[i], test.targets[i], pad) + [sep]
        context = {tuple(s) for s in _split(prompt, sep)}
        for j, (word, ended) in enumerate(sample_strings(model, prompt, samples, letters, sep, max_letters,
                                                         temperature, gen, max_len, device)):
            records.append({"dfa": i, "sample": j, "string": "".join(vocab[t] for t in word),
                            "length": len(word), "accepted": dfa.accepts(word), "ended": ended,
                            "in_context": tuple(word) in context})
    decoding = "greedy" if temperature is None else f"T={temperature:g}"
    return summarize(records, min(num_dfas, len(test)), samples, decoding), records


def _split(tokens: list[int], sep: int) -> list[list[int]]:
    out, cur = [], []
    for t in tokens:
        if t == sep:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    return out


def markdown(folder: Path, summary: dict, records: list[dict]) -> str:
    lines = [f"# Generation from {folder.name}", "",
             f"{summary['num_dfas']} held-out DFAs x {summary['samples']} samples, {summary['decoding']}", "",
             "| accepted | mean length | distinct per DFA | not in context | empty | unterminated |",
             "|---:|---:|---:|---:|---:|---:|",
             f"| {100 * summary['acceptance']:.1f}% | {summary['mean_length']:.1f} | {100 * summary['distinct']:.1f}% "
             f"| {100 * summary['novel']:.1f}% | {100 * summary['empty']:.1f}% | {100 * summary['unterminated']:.1f}% |",
             "", "Examples (DFA, string, accepted):", ""]
    lines += [f"- DFA {r['dfa']}: `{r['string'] or '(empty)'}` {'accepted' if r['accepted'] else 'REJECTED'}"
              for r in records[:10]]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = OneLineParser(prog="python -m analysis.generate", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export")
    p.add_argument("--num-dfas", type=int, default=50)
    p.add_argument("--samples", type=int, default=8)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_true")
    mode.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-letters", type=int, default=60)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    folder = Path(args.export)
    positive_t = args.temperature > 0 and math.isfinite(args.temperature)  # rejects nan and inf too
    if args.num_dfas < 1 or args.samples < 1 or args.max_letters < 1 or (not args.greedy and not positive_t):
        p.error("--num-dfas, --samples, --max-letters and --temperature must be positive (and finite)")
    try:
        resolve_device(args.device)
    except RuntimeError:
        p.error(f"--device {args.device}: not a torch device (auto, cpu, cuda, cuda:1, ...)")
    try:
        summary, records = generate(folder, args.num_dfas, args.samples, None if args.greedy else args.temperature,
                                    args.seed, args.max_letters, args.device)
        md = markdown(folder, summary, records)
        atomic_write_text(folder / "generations.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        atomic_write_text(folder / "generation.json", json.dumps(summary, indent=1))
        atomic_write_text(folder / "generation.md", md)
    except (ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
