"""Search spaces: ``search_spaces/<model>.yaml``, one per model for every task, a mapping from
dotted config keys to distributions. The grammar (one entry per key):

    optim.lr:            {loguniform: [1.0e-4, 1.0e-3]}   # log-uniform float in [lo, hi]
    model.dropout:       {uniform: [0.0, 0.2]}            # uniform float in [lo, hi]
    model.d_model:       {choice: [32, 64, 128, 256]}     # one of the listed scalars
    model.n_layers:      {randint: [2, 8]}                # integer in [lo, hi], both included
    train.batch_size:    32                               # fixed value

A task that needs other ranges overrides entries, in the model's file under ``tasks:``::

    tasks:
      dfa:
        model.n_layers: {choice: [2, 4, 8, 12]}

or in a file ``search_spaces/<task>/<model>.yaml`` laid over the model's file (its entries win).

Every key must exist in the composed config and every value must fit its type; problems
are ``ConfigError``s raised before Ray starts. No Ray import here: the Ray module turns the
parsed entries into Tune domains.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqicl.config import ConfigError, check_type, get_dotted, has_dotted, load_yaml

ROOT = Path(__file__).resolve().parent.parent / "search_spaces"
KINDS = ("loguniform", "uniform", "choice", "randint")
SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Param:
    key: str
    kind: str          # one of KINDS, or "fixed"
    args: tuple

    def describe(self) -> str:
        return f"{self.key}={self.args[0]!r}" if self.kind == "fixed" else f"{self.key}~{self.kind}{list(self.args)}"


TASKS_KEY = "tasks"


def space_path(model: str, root: Path | None = None) -> Path:
    return (root or ROOT) / f"{model}.yaml"


def task_space_path(task: str, model: str, root: Path | None = None) -> Path:
    return (root or ROOT) / task / f"{model}.yaml"


def parse_entry(key: str, spec: Any, default: Any, where: str) -> Param:
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {msg}")

    if not isinstance(spec, dict):
        if isinstance(spec, list):
            raise bad("a list is not a distribution (did you mean {choice: [...]}?)")
        try:
            return Param(key, "fixed", (check_type(key, default, spec),))
        except ConfigError as e:
            raise bad(str(e).split(": ", 1)[-1]) from None
    if len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise bad(f"expected one of {{{', '.join(KINDS)}: ...}}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not args:
        raise bad(f"{kind} needs a non-empty list")
    if kind == "choice":
        if not all(isinstance(a, SCALARS) for a in args):
            raise bad("choice values must be scalars")
        try:
            return Param(key, kind, tuple(check_type(key, default, a) for a in args))
        except ConfigError as e:
            raise bad(str(e).split(": ", 1)[-1]) from None
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise bad(f"{kind} needs [low, high] numbers, got {args!r}")
    lo, hi = args
    if not lo < hi if kind != "randint" else not lo <= hi:
        raise bad(f"{kind} needs low < high, got {args!r}")
    if kind == "loguniform" and lo <= 0:
        raise bad("loguniform needs low > 0")
    is_int = isinstance(default, int) and not isinstance(default, bool)
    if kind == "randint":
        if not (isinstance(lo, int) and isinstance(hi, int)):
            raise bad("randint needs integer bounds")
        if default is not None and not is_int:
            raise bad(f"randint gives integers but the config holds {default!r}")
    elif default is not None and not isinstance(default, float):
        raise bad(f"{kind} gives floats but the config holds {default!r}")
    return Param(key, kind, (float(lo), float(hi)) if kind != "randint" else (lo, hi))


def parse_space(raw: Any, cfg: dict, where: str) -> dict[str, Param]:
    """Check a loaded search-space mapping against ``cfg``; returns key -> Param."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of dotted config keys to distributions")
    params = {}
    for key, spec in raw.items():
        if not isinstance(key, str) or not has_dotted(cfg, key):
            raise ConfigError(f"{where}: '{key}' is not a key of the config")
        if isinstance(get_dotted(cfg, key), dict):
            raise ConfigError(f"{where}: '{key}' is a section; name one of its keys")
        params[key] = parse_entry(key, spec, get_dotted(cfg, key), where)
    return params


def load_space(task: str, model: str, cfg: dict, extra: dict | None = None,
               root: Path | None = None) -> dict[str, Param]:
    """The search space for (task, model): the model's file, its ``tasks.<task>`` entries, a
    task file if there is one, then ``extra`` entries (from a preset), each on top of the last."""
    path, task_path = space_path(model, root), task_space_path(task, model, root)
    if not path.is_file() and not task_path.is_file():
        raise ConfigError(f"no search space for model '{model}' ({path} is missing)")
    space: dict[str, Param] = {}
    if path.is_file():
        raw = load_yaml(path)
        per_task = raw.pop(TASKS_KEY, None) if isinstance(raw, dict) else None
        if per_task is not None and not (isinstance(per_task, dict) and all(isinstance(v, dict) or v is None
                                                                           for v in per_task.values())):
            raise ConfigError(f"{path}: {TASKS_KEY}: expected a mapping of task names to mappings of entries")
        space.update(parse_space(raw, cfg, str(path)))
        space.update(parse_space((per_task or {}).get(task), cfg, f"{path} ({TASKS_KEY}.{task})"))
    if task_path.is_file():
        space.update(parse_space(load_yaml(task_path), cfg, str(task_path)))
    space.update(parse_space(extra or {}, cfg, f"preset space for {model}"))
    return space
