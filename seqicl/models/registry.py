"""Mixers by name. A mixer is an ``nn.Module`` with the one contract

    Mixer(d_model, layer_idx, **kwargs);  forward: (B, L, D) -> (B, L, D), causal

and a class attribute ``needs_positions`` (True when it cannot tell positions apart by
itself, like attention). Every hyperparameter is a keyword argument so sweeps can vary it.
``in_default_sweep = False`` keeps a mixer out of a sweep that names no models: the paper's five
later models, so that the default presets, sized for the original table's seven, keep their
budget; ``--models`` runs them, and ``--preset regbench`` names all twelve.
"""
from __future__ import annotations

MIXERS: dict[str, type] = {}


def register(name: str):
    def wrap(cls):
        MIXERS[name] = cls
        return cls
    return wrap


def default_models() -> list[str]:
    """The registered mixers a sweep runs when it names none."""
    return [name for name, cls in MIXERS.items() if getattr(cls, "in_default_sweep", True)]


def get_mixer(name: str) -> type:
    if name not in MIXERS:
        raise ValueError(f"unknown model '{name}' (choose from {', '.join(sorted(MIXERS))})")
    return MIXERS[name]
