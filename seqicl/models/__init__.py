"""Models: the language-model backbone and the mixers, registered by name."""
from . import attention, gilr, gla, h3, hyena, linear_transformer, lru, lstm, mamba, retnet, rwkv, s4d  # noqa: F401  (importing registers the mixers)
from .lm import LanguageModel, build_model
from .registry import MIXERS, default_models, get_mixer, register

__all__ = ["LanguageModel", "MIXERS", "build_model", "default_models", "get_mixer", "register"]
