"""``sweep.json``: the settings that define a sweep, stored at its first run, so that
``--resume`` continues the same sweep or says what differs.

Defining (a resume must match): task, experiments (models and training sizes), preset, seed,
every experiment's composed config and search space, ASHA's rungs. May change on resume:
time budget, concurrency, packing, retries, cluster address, MPS, and the number of samples
(more runs the extra trials). Paths are never stored: the folder can move.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from seqicl.atomic import atomic_write_text
from seqicl.config import ConfigError

FORMAT = "seqicl.sweep/1"
FILE = "sweep.json"


def read_sweep(storage: Path) -> dict | None:
    path = storage / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable ({type(e).__name__}); cannot resume from it") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a seqicl sweep file")
    return data


def write_sweep(storage: Path, defining: dict, args: dict, title: str, previous: dict | None) -> None:
    runs = list((previous or {}).get("runs", [])) + [{"started": time.strftime("%Y-%m-%dT%H:%M:%S"), **args}]
    atomic_write_text(storage / FILE, json.dumps({"format": FORMAT, "title": (previous or {}).get("title", title),
                                                  "defining": defining, "runs": runs}, indent=1))


def _flatten(value: Any, prefix: str, out: dict) -> dict:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value
    return out


# experiment keys added to the composed config after sweeps were stored, with the value their
# absence meant: a sweep stored before the key existed resumes when given that value
ADDED_KEYS = {"config.task.separator_target": False}   # 2026-12-06; RegBench's default is true


def differences(stored: dict, now: dict) -> list[str]:
    """``key: stored -> now`` for every setting that differs; a config key that differs in
    some experiments only names them."""
    out = [f"{k}: {stored.get(k)!r} -> {now.get(k)!r}" for k in sorted((set(stored) | set(now)) - {"experiments"})
           if stored.get(k) != now.get(k)]
    old, new = stored.get("experiments", {}), now.get("experiments", {})
    if sorted(old) != sorted(new):
        out.append(f"experiments: {', '.join(sorted(old))} -> {', '.join(sorted(new))}")
    common = sorted(set(old) & set(new))
    where: dict[tuple, list[str]] = {}
    for name in common:
        a, b = _flatten(old[name], "", {}), _flatten(new[name], "", {})
        for key in sorted(set(a) | set(b)):
            was, is_ = (x.get(key, ADDED_KEYS.get(key, "(unset)")) for x in (a, b))
            if was != is_:
                label = key.removeprefix("config.").replace("space.", "search space ", 1)
                where.setdefault((label, repr(was), repr(is_)), []).append(name)
    for (label, was, now_), names in where.items():
        out.append(f"{label}{'' if names == common else ' (' + ', '.join(names) + ')'}: {was} -> {now_}")
    return out


def check_resume(stored: dict, defining: dict) -> None:
    diffs = differences(stored["defining"], defining)
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise ConfigError(f"--resume: these settings differ from the stored sweep: {shown} "
                          "(start a new sweep with another --storage to change them)")
