"""The CoaT-ULSTM model family, its blocks, ResNet18 baselines and a registry by name.

from reference.models import get_model, load_checkpoint
model = get_model("CoaT_ULSTM", arch="medium", pre="coat_lite_medium_384x384_f9129688.pth")
logits = model(x)  # x: (B, 3, 5, H, W) in [0, 1] -> (B, 1, H, W)
"""

from __future__ import annotations

import difflib

from torch import nn

from reference.errors import ConfigError
from reference.models.baselines import ResNet18_SimplerFCN, ResNet18_U, ResNet18_ULSTM
from reference.models.checkpoint import (
    EncoderLoadReport,
    load_checkpoint,
    load_encoder_weights,
    read_state_dict,
)
from reference.models.coat import (
    ARCHS,
    CoaT_U,
    CoaT_ULSTM,
    CoaT_UT,
    build_coat_encoder,
    coat_features,
)
from reference.models.layers import (
    FPN,
    Block,
    LayerNorm2d,
    LSTM_block,
    Mlp,
    PixelShuffle_ICNR,
    SinusoidalPosEmb,
    Tmixer,
    UnetBlock,
    UpBlock,
    icnr_init,
)

MODELS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (CoaT_ULSTM, CoaT_U, CoaT_UT, ResNet18_U, ResNet18_ULSTM, ResNet18_SimplerFCN)
}


def list_models() -> list[str]:
    """Names accepted by :func:`get_model` (the class names, as in the original's MODEL key)."""
    return list(MODELS)


def get_model(name: str, **kwargs) -> nn.Module:
    """Build the model called ``name`` (e.g. ``'CoaT_ULSTM'``) with constructor ``kwargs``."""
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), list(MODELS), n=1, cutoff=0.3)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"MODEL '{name}': unknown model; {hint}valid: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


__all__ = [
    "ARCHS",
    "MODELS",
    "list_models",
    "get_model",
    "CoaT_ULSTM",
    "CoaT_U",
    "CoaT_UT",
    "ResNet18_U",
    "ResNet18_ULSTM",
    "ResNet18_SimplerFCN",
    "build_coat_encoder",
    "coat_features",
    "load_checkpoint",
    "load_encoder_weights",
    "read_state_dict",
    "EncoderLoadReport",
    "LayerNorm2d",
    "icnr_init",
    "PixelShuffle_ICNR",
    "UnetBlock",
    "UpBlock",
    "FPN",
    "LSTM_block",
    "SinusoidalPosEmb",
    "Mlp",
    "Block",
    "Tmixer",
]
