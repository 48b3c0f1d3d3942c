"""Models by name: the MODEL config key holds a class name such as ``'CoaT_ULSTM'``."""

from __future__ import annotations

import difflib

from torch import nn

from reference.errors import ConfigError
from reference.models.baselines import ResNet18_SimplerFCN, ResNet18_U, ResNet18_ULSTM
from reference.models.coat import CoaT_U, CoaT_ULSTM, CoaT_UT

__all__ = ["MODELS", "list_models", "get_model"]

MODELS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (CoaT_ULSTM, CoaT_U, CoaT_UT, ResNet18_U, ResNet18_ULSTM, ResNet18_SimplerFCN)
}


def list_models() -> list[str]:
    """Names accepted by :func:`get_model` (the class names, as in the original's MODEL key)."""
    return list(MODELS)


def get_model(name: str, **kwargs) -> nn.Module:
    """Build the model called ``name`` (e.g. ``'CoaT_ULSTM'``) with constructor ``kwargs``.

    Unknown names raise :class:`ConfigError` naming the closest valid one.
    """
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), list(MODELS), n=1, cutoff=0.3)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"MODEL '{name}': unknown model; {hint}valid: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
