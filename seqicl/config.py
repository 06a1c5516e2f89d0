"""Configuration: YAML files under ``seqicl/conf`` composed into one plain dict.

The same files are the Hydra config tree that ``sweeps/`` composes with Hydra itself. The
library may not import Hydra, so this module implements the part of Hydra's command-line
grammar that a single run needs:

    task=dfa                 choose a config-group option (``conf/task/dfa.yaml``)
    model.d_model=128        set an existing key
    +train.note=hello        add a key that does not exist yet

Unknown keys, unknown group options and values of the wrong type are ``ConfigError``s.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

CONF_DIR = Path(__file__).parent / "conf"
GROUPS = ("task", "model")
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
CHOICES = {"train.precision": ("fp32", "bf16"), "device": ("auto", "cpu", "cuda")}


def check_type(key: str, default: Any, value: Any) -> Any:
    """Return ``value`` if it may replace ``default``, else raise a one-line ConfigError."""
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
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


def split_overrides(overrides: list[str]) -> tuple[dict[str, str], list[tuple[str, str, bool]]]:
    """Separate group choices (``task=dfa``) from key overrides (``a.b=1``, ``+a.c=2``)."""
    groups: dict[str, str] = {}
    keys: list[tuple[str, str, bool]] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad override '{item}': expected key=value")
        key, text = item.split("=", 1)
        add = key.startswith("+")
        key = key.lstrip("+")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
            raise ConfigError(f"bad override '{item}': '{key}' is not a dotted key")
        if key in GROUPS and not add:
            groups[key] = text
        else:
            keys.append((key, text, add))
    return groups, keys


def compose(overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Compose ``conf/config.yaml`` with its task and model groups, then apply overrides."""
    groups, keys = split_overrides(list(overrides))
    primary = load_yaml(CONF_DIR / "config.yaml")
    defaults = primary.pop("defaults")
    cfg: dict = {}
    for entry in defaults:
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
    for key, text, add in keys:
        value = parse_value(text)
        if add:
            if has_dotted(cfg, key):
                raise ConfigError(f"cannot add '{key}': it already exists (drop the '+')")
            set_dotted(cfg, key, value, create=True)
        else:
            if not has_dotted(cfg, key):
                raise ConfigError(f"unknown config key '{key}' (use +{key}=... to add one)")
            set_dotted(cfg, key, check_type(key, get_dotted(base, key), value))
    return cfg


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
