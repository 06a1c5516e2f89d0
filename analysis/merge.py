"""Merge results made apart (other device sessions, other machines, a re-run of some models) into
one results folder, whose tables `analysis.report` then writes:

    python -m analysis.merge OUT SOURCE [SOURCE ...]

A source is a results folder: trial folders, a compact record (trials.jsonl.gz), or both. Each
sweep experiment (one task's model lane, e.g. ``induction/lstm``, or one model at one training
size) comes whole from the last source that has it, so a re-run of some models replaces their
cells and leaves the others as they were: one experiment's trials are never mixed across runs,
whose searches saw different trials. Re-runs of chosen configurations (``<task>/reseeds``) are
kept trial by trial, a later source winning, and dropped where their model's sweep no longer holds
the configuration they re-ran (a re-run of the search replaced it).

Sources must have run the same settings: the same preset, and where two sources hold the same
experiment, the same composed config and search space (their ``sweep.json``); otherwise the merge
stops with one line and writes nothing. OUT may be one of the sources if it holds no trial
folders (a committed, compact folder); it gets ``trials.jsonl.gz``, ``sweep.json`` (when every
source has one), ``merged.json`` (which experiment came from where), each export's generation
summaries (``exports/<name>/generation*``, the last source's where two have one; no checkpoints)
and the report's tables.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from seqicl.atomic import atomic_write_text
from seqicl.cli import OneLineParser

from .report import sweep_title, write_report
from .results import load_results, rerun_of, write_compact

RESEEDS = "reseeds"


class MergeError(ValueError):
    """Sources that cannot be merged (one line)."""


def is_reseed_experiment(experiment: str) -> bool:
    return Path(experiment).name == RESEEDS


def read_settings(source: Path) -> dict | None:
    try:
        data = json.loads((source / "sweep.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise MergeError(f"{source / 'sweep.json'}: unreadable ({type(e).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("defining"), dict):
        raise MergeError(f"{source / 'sweep.json'}: not a seqicl sweep file")
    return data


def check_settings(settings: list[tuple[Path, dict | None]]) -> None:
    """One preset, and each experiment held by two sources trained the same way."""
    presets = {s["defining"].get("preset") for _, s in settings if s}
    if len(presets) > 1:
        raise MergeError(f"the sources ran different presets ({', '.join(sorted(map(str, presets)))}): "
                         "their cells would not compare")
    seen: dict[tuple, tuple[Path, dict]] = {}
    for source, s in settings:
        if not s:
            continue
        task = s["defining"].get("task")
        for name, exp in (s["defining"].get("experiments") or {}).items():
            key = (task, name)
            if key in seen and seen[key][1] != exp:
                raise MergeError(f"{task}/{name}: {seen[key][0]} and {source} trained other configs or "
                                 "search spaces; merge only re-runs of the same settings")
            seen.setdefault(key, (source, exp))


def merge(out: Path, sources: list[Path], title: str | None = None) -> dict:
    """Write the merged record into ``out``; returns what came from where."""
    for source in sources:
        if not source.is_dir():
            raise MergeError(f"{source}: no such results folder")
    if out.is_dir() and any(out.rglob("run.json")):
        raise MergeError(f"{out}: holds trial folders; merge into a new folder or a compact one")
    settings = [(s, read_settings(s)) for s in sources]
    check_settings(settings)

    sweeps: dict[str, tuple[int, list]] = {}     # experiment -> (source index, its trials)
    reseeds: dict[Path, tuple[int, object]] = {}  # path under the folder -> (source index, trial)
    for i, source in enumerate(sources):
        results = load_results(source)
        if results.skipped:
            raise MergeError(f"{source}: {len(results.skipped)} unreadable trial record(s), e.g. {results.skipped[0]}")
        if not results.trials:
            raise MergeError(f"{source}: no seqicl trials found")
        mine: dict[str, list] = {}
        for t in results.trials:
            rel = t.path.relative_to(source)
            t = dataclasses.replace(t, path=out / rel)
            if is_reseed_experiment(t.experiment):
                reseeds[rel] = (i, t)
            else:
                mine.setdefault(t.experiment, []).append(t)
        for experiment, trials in mine.items():
            sweeps[experiment] = (i, trials)

    # a re-run belongs to the sweep of its task, model and training size, and stays while that sweep
    # still holds the configuration it re-ran (a re-run's work folder carries a copy of its sweep,
    # so the sweep may now come from there and still be the one the earlier re-runs re-ran)
    sweep_trials = {(Path(e).parent.as_posix(), ts[0].model, ts[0].num_train): ts for e, (i, ts) in sweeps.items()}
    kept, dropped = [], []
    for rel, (i, t) in sorted(reseeds.items()):
        owner = sweep_trials.get((Path(t.experiment).parent.as_posix(), t.model, t.num_train))
        (kept if owner is None or any(rerun_of(t, s) for s in owner) else dropped).append(t)
    trials = [t for _, ts in sweeps.values() for t in ts] + kept

    names = [str(s) for s in sources]
    provenance = {
        "sources": names,
        "experiments": {e: {"source": names[i], "trials": len(ts)} for e, (i, ts) in sorted(sweeps.items())},
        "reseeds_kept": len(kept),
        "reseeds_dropped": sorted(t.path.relative_to(out).as_posix() for t in dropped),
    }
    title = title or next((sweep_title(s) for s in sources if sweep_title(s)), None) or out.name
    out.mkdir(parents=True, exist_ok=True)
    write_compact(out, trials, title)
    if all(s for _, s in settings):
        atomic_write_text(out / "sweep.json", json.dumps(merged_settings([s for _, s in settings], title), indent=1))
    else:
        (out / "sweep.json").unlink(missing_ok=True)  # a stale one would name settings not merged
    provenance["generations"] = copy_generations(out, sources)
    atomic_write_text(out / "merged.json", json.dumps(provenance, indent=1) + "\n")
    write_report(out)
    return provenance


def copy_generations(out: Path, sources: list[Path]) -> dict[str, str]:
    """The generation summaries of every export (``exports/<name>/generation*``, no checkpoints),
    a later source's replacing an earlier one's of the same export name; returns name -> source."""
    latest: dict[str, Path] = {}
    for source in sources:
        for folder in sorted(p for p in (source / "exports").glob("*") if p.is_dir()):
            if any(folder.glob("generation*")):
                latest[folder.name] = folder
    for name, folder in latest.items():
        target = out / "exports" / name
        if target.resolve() == folder.resolve():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.glob("generation*"):
            stale.unlink()
        for f in sorted(folder.glob("generation*")):
            atomic_write_text(target / f.name, f.read_text())
    return {name: str(folder.parent.parent) for name, folder in sorted(latest.items())}


def merged_settings(settings: list[dict], title: str) -> dict:
    """One sweep.json: every source's runs, each task's experiments; the first source's other keys."""
    first = settings[0]
    defining = {k: v for k, v in first["defining"].items() if k != "experiments"}
    tasks = sorted({s["defining"].get("task") for s in settings}, key=str)
    experiments: dict = {}
    for s in settings:
        for name, exp in (s["defining"].get("experiments") or {}).items():
            experiments[name if len(tasks) == 1 else f"{s['defining'].get('task')}/{name}"] = exp
    if len(tasks) > 1:
        defining["task"] = tasks
    return {"format": first.get("format"), "title": title, "defining": {**defining, "experiments": experiments},
            "runs": unique([run for s in settings for run in s.get("runs", [])])}


def unique(runs: list) -> list:
    """Each run once: a re-run's work folder starts from a copy of its source's sweep.json."""
    seen, out = set(), []
    for run in runs:
        key = json.dumps(run, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(run)
    return out


def main(argv: list[str]) -> int:
    p = OneLineParser(prog="python -m analysis.merge", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="the merged results folder (new, or a compact one)")
    p.add_argument("sources", type=Path, nargs="+", help="results folders, earliest first: later ones win")
    p.add_argument("--title", default=None, help="the tables' title (default: the first source's)")
    args = p.parse_args(argv)
    try:
        provenance = merge(args.out, args.sources, args.title)
    except MergeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for experiment, where in provenance["experiments"].items():
        print(f"{experiment}: {where['trials']} trials from {where['source']}")
    print(f"re-runs of chosen configurations: {provenance['reseeds_kept']} kept, "
          f"{len(provenance['reseeds_dropped'])} dropped (their model's sweep no longer holds the configuration they re-ran)")
    print(f"tables in {args.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
