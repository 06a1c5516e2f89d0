"""Generate strings from an exported RegBench model on held-out DFAs and check each one.

    python -m analysis.generate <export dir> [--num-dfas N] [--samples K]
                                [--decoding greedy,1.0 | --greedy | --temperature T]
                                [--seed S] [--max-letters M]

For each of the first N test automata of the export's task (the same held-out DFAs its test
metric used), the model reads that example's in-context strings followed by ``|`` and writes
strings, each until it emits ``|`` or M letters: one per DFA with greedy decoding (K would be the
same string), K when sampling. A string is accepted when every transition exists in the
automaton (every state accepts). A model with learned positions (the Transformer) reads at most
its training length: its prompt keeps the last context strings that leave room for M letters.

Each decoding (default: greedy and T=1, both in one call) writes into the export folder
``generations-<d>.jsonl`` (one line per string), ``generation-<d>.json`` (the summary, see
``summarize``: acceptance, share that ends, mean length against the context strings' mean
length, share distinct, share not copied from the context) and ``generation-<d>.md``, where
``<d>`` is ``greedy`` or ``T1``, ``T0.7``...; ``analysis.report`` puts every summary it finds in
its generation table, so decodings run in separate calls land there too.

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
    if max_len is not None:  # a model laid out over max_len (positions, filters) cannot read past it
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


def summarize(records: list[dict], num_dfas: int, samples: int, decoding: str,
              context: list[list[int]] | None = None) -> dict:
    """The statistics of one decoding over its generated strings (``records``, as ``generate_on``
    writes them) and the context strings of the prompts they continued (``context``):

    - ``acceptance``: share of strings whose every transition exists in their DFA (the letters
      written before ``|`` or the letter cap; every state accepts);
    - ``ended``: share that emit ``|`` within the cap (``unterminated`` = 1 - ``ended``);
    - ``mean_length`` (letters) against ``context_length``, the mean length of the context strings;
    - ``distinct``: distinct strings / strings among each DFA's samples, averaged over DFAs
      (None with one sample per DFA, as greedy decoding writes);
    - ``novel``: share of strings not copied from their prompt's strings; ``novel_accepted``:
      share both accepted and not copied; ``empty``: share with no letter."""
    n = max(1, len(records))
    per_dfa = {}
    for r in records:
        per_dfa.setdefault(r["dfa"], []).append(r["string"])
    distinct = (sum(len(set(v)) / len(v) for v in per_dfa.values()) / max(1, len(per_dfa))
                if samples > 1 else None)
    context = context or []
    ended = sum(r["ended"] for r in records) / n
    return {"num_dfas": num_dfas, "samples": samples, "decoding": decoding,
            "acceptance": sum(r["accepted"] for r in records) / n,
            "ended": ended, "unterminated": 1 - ended,
            "mean_length": sum(r["length"] for r in records) / n,
            "context_length": sum(map(len, context)) / len(context) if context else None,
            "distinct": distinct,
            "novel": sum(not r["in_context"] for r in records) / n,
            "novel_accepted": sum(r["accepted"] and not r["in_context"] for r in records) / n,
            "empty": sum(r["length"] == 0 for r in records) / n}


def fit_prompt(strings: list[list[int]], room: int | None) -> list[list[int]]:
    """The context strings a prompt keeps: all of them, or with a model that reads at most
    ``room`` prompt tokens (learned positions), the last ones that fit (at least one), so that a
    generation never runs out of positions before the letter cap."""
    if room is None:
        return strings
    kept, used = [], 0
    for s in reversed(strings):
        if kept and used + len(s) + 1 > room:
            break
        kept.insert(0, s)
        used += len(s) + 1
    return kept


def generate_on(model, test, vocab: list[str], num_dfas: int, samples: int, temperature: float | None,
                seed: int, max_letters: int, max_len: int | None = None, device="cpu",
                model_for=None) -> tuple[dict, list[dict]]:
    """Generate from ``model`` on the first ``num_dfas`` automata of the split ``test`` and check
    every string; returns (summary, records). Greedy decoding writes one string per DFA (its
    samples would all be the same), sampling at ``temperature`` writes ``samples``.
    ``model_for(dfa)``, where given, is the model of each automaton instead (the generator's own
    law: ``analysis.generation_law``)."""
    sep, pad, letters = len(vocab) - 2, len(vocab) - 1, len(vocab) - 2
    k = 1 if temperature is None else samples
    room = None if max_len is None else max_len - max_letters - 1
    gen = torch.Generator().manual_seed(seed)
    records, context_strings = [], []
    n = min(num_dfas, len(test))
    for i in range(n):
        dfa = dfa_from_table(test.dfa_trans[i])
        strings = fit_prompt(_split(full_sequence(test.inputs[i], test.targets[i], pad) + [sep], sep), room)
        prompt = [t for s in strings for t in s + [sep]]
        context_strings += strings
        context = {tuple(s) for s in strings}
        m = model if model_for is None else model_for(dfa)
        for j, (word, ended) in enumerate(sample_strings(m, prompt, k, letters, sep, max_letters,
                                                         temperature, gen, max_len, device)):
            records.append({"dfa": i, "sample": j, "string": "".join(vocab[t] for t in word),
                            "length": len(word), "accepted": dfa.accepts(word), "ended": ended,
                            "in_context": tuple(word) in context})
    return summarize(records, n, k, decoding_label(temperature), context_strings), records


def decoding_label(temperature: float | None) -> str:
    return "greedy" if temperature is None else f"T={temperature:g}"


def generate(folder: Path, num_dfas: int, samples: int, decodings: list[float | None], seed: int,
             max_letters: int, device_name: str = "auto") -> list[tuple[dict, list[dict]]]:
    """``generate_on`` the export's model and its task's test automata, once per decoding
    (None: greedy; else a sampling temperature)."""
    device = resolve_device(device_name)
    model, meta = load_export(folder, device)
    cfg = meta["config"]
    if cfg["task"]["name"] != "dfa":
        raise ExportError(f"{folder}: generation needs a RegBench (dfa) model, this one is {cfg['task']['name']}")
    test = load_task(cfg["task"], cfg["data"].get("cache_dir")).test
    max_len = model.length_limit   # learned positions or Hyena's filters: the export's max_len
    return [generate_on(model, test, meta["vocab"], num_dfas, samples, t, seed, max_letters, max_len, device)
            for t in decodings]


def file_stem(temperature: float | None) -> str:
    """``greedy`` or ``T1``, ``T0.7``: the suffix of one decoding's files in the export folder."""
    return "greedy" if temperature is None else f"T{temperature:g}"


def _split(tokens: list[int], sep: int) -> list[list[int]]:
    out, cur = [], []
    for t in tokens:
        if t == sep:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    return out


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(folder: Path, summary: dict, records: list[dict]) -> str:
    s = summary
    context = "-" if s.get("context_length") is None else f"{s['context_length']:.1f}"
    lines = [f"# Generation from {folder.name}: {s['decoding']}", "",
             f"{s['num_dfas']} held-out DFAs x {s['samples']} sample(s), {s['decoding']}", "",
             "| accepted | ends | mean length | context strings' mean length | distinct per DFA | not in context "
             "| accepted, not in context | empty |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {pct(s['acceptance'])} | {pct(s['ended'])} | {s['mean_length']:.1f} | {context} | {pct(s['distinct'])} "
             f"| {pct(s['novel'])} | {pct(s['novel_accepted'])} | {pct(s['empty'])} |",
             "", "Examples (DFA, string, accepted, ended):", ""]
    lines += [f"- DFA {r['dfa']}: `{r['string'] or '(empty)'}` {'accepted' if r['accepted'] else 'REJECTED'}"
              f"{'' if r['ended'] else ', never ended'}" for r in records[:10]]
    return "\n".join(lines) + "\n"


def write_decoding(folder: Path, stem: str, summary: dict, records: list[dict]) -> str:
    """One decoding's strings, summary and Markdown into ``folder`` as ``generations-<stem>.jsonl``,
    ``generation-<stem>.json`` and ``.md`` (each written atomically); returns the Markdown."""
    md = markdown(folder, summary, records)
    atomic_write_text(folder / f"generations-{stem}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    atomic_write_text(folder / f"generation-{stem}.json", json.dumps(summary, indent=1))
    atomic_write_text(folder / f"generation-{stem}.md", md)
    return md


def parse_decodings(text: str) -> list[float | None]:
    """``greedy,1.0`` -> [None, 1.0]; raises ValueError on anything else or a temperature that is
    not positive and finite."""
    out = []
    for part in (x.strip() for x in text.split(",")):
        t = None if part == "greedy" else float(part)
        if t is not None and not (t > 0 and math.isfinite(t)):
            raise ValueError(part)
        if t not in out:
            out.append(t)
    if not out:
        raise ValueError(text)
    return out


def add_common_args(p: argparse.ArgumentParser) -> None:
    """The export and the draw, shared with analysis.generation_law."""
    p.add_argument("export")
    p.add_argument("--num-dfas", type=int, default=50)
    p.add_argument("--samples", type=int, default=8, help="strings per DFA when sampling (greedy writes one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-letters", type=int, default=60)


def check_counts(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.num_dfas < 1 or args.samples < 1 or args.max_letters < 1:
        p.error("--num-dfas, --samples and --max-letters must be positive")


def main(argv: list[str]) -> int:
    p = OneLineParser(prog="python -m analysis.generate", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--decoding", default="greedy,1.0",
                      help="comma-separated: greedy and/or sampling temperatures (default: greedy,1.0)")
    mode.add_argument("--greedy", action="store_true", help="greedy only: --decoding greedy")
    mode.add_argument("--temperature", type=float, default=None, help="sampling at T only: --decoding T")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    folder = Path(args.export)
    try:
        text = "greedy" if args.greedy else args.decoding if args.temperature is None else repr(args.temperature)
        decodings = parse_decodings(text)
    except ValueError:
        p.error("--decoding takes greedy and positive finite temperatures, e.g. greedy,1.0 "
                "(--temperature must be positive and finite)")
    check_counts(p, args)
    try:
        resolve_device(args.device)
    except RuntimeError:
        p.error(f"--device {args.device}: not a torch device (auto, cpu, cuda, cuda:1, ...)")
    try:
        out = []
        for t, (summary, records) in zip(decodings, generate(folder, args.num_dfas, args.samples, decodings,
                                                               args.seed, args.max_letters, args.device)):
            out.append(write_decoding(folder, file_stem(t), summary, records))
    except (ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
