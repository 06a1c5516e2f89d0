"""Compose run configs with Hydra, from the same YAML tree that ``seqicl.config`` reads."""
from __future__ import annotations

from seqicl.config import CONF_DIR, ConfigError, canonical_task, check_type, get_dotted, set_dotted, split_overrides
from seqicl.config import compose as compose_plain


def compose(task: str, model: str, overrides: list[str]) -> dict:
    """The full config for one (task, model) with user overrides, as a plain dict."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    groups, keys = split_overrides(overrides)  # also rejects what is not key=value
    if groups:
        raise ConfigError(f"choose the {' and '.join(groups)} with --task/--models, not as an override")
    base = compose_plain([f"task={canonical_task(task)}", f"model={model}"])
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = hydra_compose("config", overrides=[f"task={canonical_task(task)}", f"model={model}", *overrides])
        cfg = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:
        msg = " ".join(str(e).split())
        raise ConfigError(f"bad override: {msg}") from None
    for key, _, add in keys:  # Hydra does not type-check plain YAML values: do it here
        if not add:
            set_dotted(cfg, key, check_type(key, get_dotted(base, key), get_dotted(cfg, key)))
    return cfg
