"""Configuration: YAML files under ``seqicl/conf`` composed into one plain dict.

The library may not import Hydra, so this module implements the part of Hydra's command-line
grammar that a single run needs:

    task=dfa                 choose a config-group option (``conf/task/dfa.yaml``)
    model.d_model=128        set an existing key
    +train.note=hello        add a key that does not exist yet
    ++train.note=hello       set the key, adding it if it does not exist

``compose_values`` is the one composer: ``sweeps/`` parses its overrides with Hydra's grammar
and hands the parsed values to it, so both paths share every check. Unknown keys, unknown
group options, values of the wrong type and values that cannot train (``validate``) are
``ConfigError``s.
"""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml

CONF_DIR = Path(__file__).parent / "conf"
GROUPS = ("task", "model")
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")  # a dotted config key
TASK_ALIASES = {"induction_head": "induction", "ar": "associative_recall", "regbench": "dfa"}


class ConfigError(ValueError):
    """A configuration problem that the user can fix; its message is one line."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$|"
               r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely (no code execution); errors become one-line ConfigErrors."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where}: malformed YAML ({problem})") from None


def parse_value(text: str) -> Any:
    """Parse an override value the way Hydra does for plain values."""
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text
    return text if value is None and text not in ("null", "~", "") else value


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def canonical_task(name: str) -> str:
    return TASK_ALIASES.get(name, name)


def get_dotted(cfg: dict, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def has_dotted(cfg: dict, key: str) -> bool:
    try:
        get_dotted(cfg, key)
        return True
    except KeyError:
        return False


def set_dotted(cfg: dict, key: str, value: Any, *, create: bool = False) -> None:
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts[:-1]):
        if part not in node:
            if not create:
                raise ConfigError(f"unknown config key '{key}'")
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"'{'.'.join(parts[: i + 1])}' is a value, not a section, in '{key}'")
    if parts[-1] not in node and not create:
        raise ConfigError(f"unknown config key '{key}'")
    node[parts[-1]] = value


# keys whose string values come from a fixed set: a typo fails at once, not in every trial
CHOICES = {"train.precision": ("fp32", "bf16"), "device": ("auto", "cpu", "cuda"),
           "optim.schedule": ("cosine", "linear", "timm_cosine"), "optim.decay": ("matrices", "all"),
           "model.mixer.init": ("lin", "inv"), "model.init": ("seqicl", "original")}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_POSITIVE_INT = ("an integer >= 1", lambda v: _is_int(v) and v >= 1)
_FRACTION = ("a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1)

# Values that cannot train, one rule per dotted key: (what the value must be, test). compose()
# checks the composed config against it and the sweep checks every value a search space can
# produce, so a bad value fails before any work, with one line naming the key.
RULES: dict[str, tuple[str, Any]] = {
    "train.epochs": _POSITIVE_INT,
    "train.batch_size": _POSITIVE_INT,
    "train.eval_every": _POSITIVE_INT,
    "train.length_buckets": _POSITIVE_INT,
    "train.stop_when_perfect": ("true or false", lambda v: isinstance(v, bool)),
    "task.num_train": _POSITIVE_INT,
    "task.num_val": _POSITIVE_INT,
    "task.num_test": _POSITIVE_INT,
    "model.d_model": _POSITIVE_INT,
    "task.min_states": ("an integer >= 2 (edges go to other states)", lambda v: _is_int(v) and v >= 2),
    "task.min_edges": _POSITIVE_INT,
    "model.n_layers": _POSITIVE_INT,
    "train.state_every": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "train.grad_clip": ("a finite number >= 0", lambda v: _is_num(v) and v >= 0),
    "optim.lr": ("a finite number > 0", lambda v: _is_num(v) and v > 0),
    "optim.weight_decay": ("a finite number >= 0", lambda v: _is_num(v) and v >= 0),
    "optim.warmup_frac": _FRACTION,
    "optim.min_lr_frac": _FRACTION,
    "optim.warmup_start_frac": _FRACTION,
    "train.tf32": ("true or false", lambda v: isinstance(v, bool)),
    "model.tie_head": ("true or false", lambda v: isinstance(v, bool)),
    "model.embed_dropout": ("null or a number in [0, 1)", lambda v: v is None or (_is_num(v) and 0 <= v < 1)),
    "model.dropout": ("a number in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1),
    **{k: (f"one of {', '.join(c)}", lambda v, c=c: v in c) for k, c in CHOICES.items()},
}


def check_value(key: str, value: Any) -> None:
    """Raise a one-line ConfigError if ``value`` cannot train as ``key``; keys without a rule pass."""
    if key in RULES:
        what, ok = RULES[key]
        if not ok(value):
            raise ConfigError(f"{key} must be {what}, got {value!r}")


def validate(cfg: dict) -> None:
    """Check every rule whose key the config has (task and model files differ), then the
    rules that span keys."""
    for key in RULES:
        if has_dotted(cfg, key):
            check_value(key, get_dotted(cfg, key))
    if has_dotted(cfg, "train.batch_size") and has_dotted(cfg, "task.num_train"):
        batch, n = get_dotted(cfg, "train.batch_size"), get_dotted(cfg, "task.num_train")
        if batch > n:  # the loop drops the last partial batch: an epoch would have no step
            raise ConfigError(f"train.batch_size ({batch}) must not exceed task.num_train ({n})")


def check_type(key: str, default: Any, value: Any) -> Any:
    """Return ``value`` if it may replace ``default``, else raise a one-line ConfigError."""
    if key in CHOICES:
        check_value(key, value)
    if default is None or value is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)):
        return float(value)
    elif isinstance(default, int) and isinstance(value, int):
        return value
    elif isinstance(default, str) and isinstance(value, str):
        return value
    elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return list(value)
    elif isinstance(default, dict) and isinstance(value, dict):
        return value
    raise ConfigError(f"{key} expects {type(default).__name__}, got {value!r}")


def split_overrides(overrides: list[str]) -> tuple[dict[str, str], list[tuple[str, Any, bool | None]]]:
    """The light command-line parsing of ``python -m seqicl.train``: group choices
    (``task=dfa``) apart from key values (``a.b=1``, ``+a.c=2``, ``++a.d=3``), values parsed."""
    groups: dict[str, str] = {}
    values: list[tuple[str, Any, bool | None]] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad override '{item}': expected key=value")
        key, text = item.split("=", 1)
        add = None if key.startswith("++") else key.startswith("+")  # None: ++, set or add
        key = key.removeprefix("++") if add is None else key.removeprefix("+")
        if not KEY.fullmatch(key):
            raise ConfigError(f"bad override '{item}': '{key}' is not a dotted key")
        if key in GROUPS and add is False:
            groups[key] = text
        else:
            values.append((key, parse_value(text), add))
    return groups, values


def compose(overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Compose ``conf/config.yaml`` with its task and model groups, then apply overrides."""
    return compose_values(*split_overrides(list(overrides)))


def compose_values(groups: dict[str, str], values: list[tuple[str, Any, bool | None]],
                   texts: list[str] | None = None) -> dict:
    """The one composer. ``groups`` chooses options (``{"model": "lstm"}``; the rest default);
    each value is (dotted key, Python value, add): add False sets an existing key, True adds a
    new one, None sets or adds (Hydra's ``++``). ``texts``, when given, are the override strings
    the values came from, named in their errors. The result is validated."""
    primary = load_yaml(CONF_DIR / "config.yaml")
    cfg: dict = {}
    for entry in primary.pop("defaults"):
        if entry == "_self_":
            _merge(cfg, primary)
            continue
        (group, option), = entry.items()
        option = groups.get(group, option)
        if group == "task":
            option = canonical_task(option)
        if option not in options(group):
            raise ConfigError(f"unknown {group} '{option}' (choose from {', '.join(options(group))})")
        cfg[group] = load_yaml(CONF_DIR / group / f"{option}.yaml")
    base = copy.deepcopy(cfg)
    for i, (key, value, add) in enumerate(values):
        try:
            _apply(cfg, base, key, value, add)
        except ConfigError as e:
            if texts is None:
                raise
            raise ConfigError(f"bad override '{texts[i]}': {e}") from None
    validate(cfg)
    return cfg


def _apply(cfg: dict, base: dict, key: str, value: Any, add: bool | None) -> None:
    if not KEY.fullmatch(key):
        raise ConfigError(f"'{key}' is not a dotted key")
    if isinstance(value, str) and "${" in value:  # nothing resolves it: it would stay literal
        raise ConfigError(f"{key}: interpolations (${{...}}) are not supported, write the value")
    exists = has_dotted(cfg, key)
    if add and exists:
        raise ConfigError(f"cannot add '{key}': it already exists (drop the '+')")
    if add is False and not exists:
        raise ConfigError(f"unknown config key '{key}' (use +{key}=... to add one)")
    if exists:  # a value must fit the file's type (or, for a key added earlier, the added one)
        value = check_type(key, get_dotted(base if has_dotted(base, key) else cfg, key), value)
    set_dotted(cfg, key, value, create=not exists)


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
