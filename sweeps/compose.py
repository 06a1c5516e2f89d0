"""Run configs for the sweep: Hydra's override grammar, seqicl's composer.

Hydra parses the override strings (quoting, lists, dicts, ``int(...)`` casts) and nothing
else; ``seqicl.config.compose_values`` composes and checks them, the very code that
``python -m seqicl.train`` runs, so the two cannot disagree. What Hydra's grammar allows
but one run config cannot use (group choices, deletions, sweeps, packages) is refused here.
"""
from __future__ import annotations

from typing import Any

from seqicl.config import GROUPS, ConfigError, canonical_task, compose_values


def compose(task: str, model: str, overrides: list[str]) -> dict:
    """The full config for one (task, model) with user overrides, as a plain dict."""
    overrides = list(overrides)
    values = [parse_override(text) for text in overrides]
    return compose_values({"task": canonical_task(task), "model": model}, values, texts=overrides)


def parse_override(text: str) -> tuple[str, Any, bool | None]:
    """One override string as (dotted key, value, add) for ``compose_values``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        (o,) = OverridesParser.create().parse_overrides([text])
    except HydraException as e:
        raise ConfigError(f"bad override '{text}': {_reason(e)}") from None

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"bad override '{text}': {why}")

    if o.key_or_group in GROUPS:
        raise refuse(f"choose the {o.key_or_group} with --task/--models, not as an override")
    if o.is_delete():
        raise refuse("a run config cannot delete keys")
    if o.is_sweep_override():
        raise refuse("a sweep is not one value (search ranges belong in search_spaces/)")
    if o.package is not None:
        raise refuse("package overrides (@) are not supported")
    return o.key_or_group, o.value(), None if o.is_force_add() else o.is_add()


def _reason(e: Exception) -> str:
    """Hydra's message without its docs link, caret line and repeated override text."""
    lines = [line.strip() for line in str(e).splitlines()]
    keep = [line for line in lines if line and set(line) != {"^"}
            and not line.startswith(("See https://hydra.cc", "Error parsing override"))]
    return "; ".join(keep) or "not valid override syntax"
