"""Models: the language-model backbone and the mixers, registered by name. Every module of this
package is imported here, so a mixer's file with its ``@register`` is all it takes to add one."""
import importlib
import pkgutil

from .lm import LanguageModel, build_model
from .registry import MIXERS, default_models, get_mixer, register

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")  # importing registers the mixers

__all__ = ["LanguageModel", "MIXERS", "build_model", "default_models", "get_mixer", "register"]
