"""The CoaT-ULSTM model family, its blocks, ResNet18 baselines and a registry by name.

    from reference.models import get_model, load_checkpoint
    model = get_model("CoaT_ULSTM", arch="medium", pre="coat_lite_medium_384x384_f9129688.pth")
    logits = model(x)  # x: (B, 3, 5, H, W) in [0, 1] -> (B, 1, H, W)

Names are resolved lazily (PEP 562): ``import reference.models.weights`` (the
download command) does not pay for importing torch, timm and torchvision.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["MODELS", "list_models", "get_model"], "registry"),
    **dict.fromkeys(
        ["ARCHS", "CoaT_ULSTM", "CoaT_U", "CoaT_UT", "build_coat_encoder", "coat_features"], "coat"
    ),
    **dict.fromkeys(["ResNet18_U", "ResNet18_ULSTM", "ResNet18_SimplerFCN"], "baselines"),
    **dict.fromkeys(
        ["load_checkpoint", "load_encoder_weights", "read_state_dict", "EncoderLoadReport"],
        "checkpoint",
    ),
    **dict.fromkeys(
        [
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
        ],
        "layers",
    ),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
