"""Models: the language-model backbone and the mixers, registered by name."""
from . import attention, gilr, h3, lru, lstm, rwkv, s4d  # noqa: F401  (importing registers the mixers)
from .lm import LanguageModel, build_model
from .registry import MIXERS, get_mixer, register

__all__ = ["LanguageModel", "MIXERS", "build_model", "get_mixer", "register"]
