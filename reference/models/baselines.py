"""ResNet18 baselines to isolate problems (site: facts/model/#baselines).

When CoaT-ULSTM misbehaves (NaN, no learning), swapping the encoder for a
plain torchvision ResNet18 tells whether the data/loss/optimizer pipeline or
the CoaT encoder is at fault. Same input contract as the CoaT models: tiles
are upsampled x2 (bicubic, clipped) so that ResNet's stages land on the same
grids as CoaT's (2H/4 .. 2H/32), and the same decoder family follows.
No ImageNet normalisation, as for CoaT: inputs stay in [0, 1].
Random init unless ``pre`` names a torchvision ResNet18 state dict.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from reference.errors import ConfigError
from reference.models.checkpoint import load_encoder_weights
from reference.models.coat import N_FRAMES, UNetHead, _split_frames, check_input, upsample_input
from reference.models.layers import LSTM_block

__all__ = [
    "build_resnet18_encoder",
    "resnet18_features",
    "ResNet18_U",
    "ResNet18_ULSTM",
    "ResNet18_SimplerFCN",
]

RESNET18_CHANNELS = [64, 128, 256, 512]


def build_resnet18_encoder(
    pre: str | os.PathLike | None = None, arch: str = "resnet18"
) -> nn.Module:
    """torchvision ResNet18 without its classifier (``fc``/``avgpool`` are unused and dropped).

    ``arch`` exists so that every registered model takes (pre, arch, num_classes, ps).
    """
    if arch != "resnet18":
        raise ConfigError(f"arch '{arch}': the ResNet18 baselines only have arch 'resnet18'")
    enc = resnet18(weights=None)
    del enc.fc, enc.avgpool
    if pre is not None:
        load_encoder_weights(enc, pre)
    return enc


def resnet18_features(enc: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """x: (N, 3, H, W), H, W divisible by 32 -> maps at H/4, H/8, H/16, H/32 with 64..512 channels."""
    x = enc.maxpool(enc.relu(enc.bn1(enc.conv1(x))))
    feats = []
    for layer in (enc.layer1, enc.layer2, enc.layer3, enc.layer4):
        x = layer(x)
        feats.append(x)
    return feats


class ResNet18_U(UNetHead):
    """Single-frame U-Net on ResNet18 with the CoaT_U decoder.

    x: (B, 3, T >= 5, H, W) (frame 4 used) or (B, 3, H, W) -> (B, num_classes, H, W) logits.
    """

    def __init__(
        self,
        pre: str | os.PathLike | None = None,
        arch: str = "resnet18",
        num_classes: int = 1,
        ps: float = 0,
    ) -> None:
        super().__init__()
        self.enc = build_resnet18_encoder(pre, arch)
        self.build_decoder(RESNET18_CHANNELS, num_classes, ps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, type(self).__name__, min_frames=None)
        if x.dim() == 5:
            x = x[:, :, N_FRAMES - 1]
        return self.decode(*resnet18_features(self.enc, upsample_input(x)))


class ResNet18_ULSTM(UNetHead):
    """CoaT_ULSTM with a ResNet18 encoder: per-frame encoding, LSTMs on the two deepest maps.

    x: (B, 3, T >= 5, H, W) -> (B, num_classes, H, W) logits for frame 4.
    """

    def __init__(
        self,
        pre: str | os.PathLike | None = None,
        arch: str = "resnet18",
        num_classes: int = 1,
        ps: float = 0,
    ) -> None:
        super().__init__()
        nc = RESNET18_CHANNELS
        self.enc = build_resnet18_encoder(pre, arch)
        self.lstm = nn.ModuleList([LSTM_block(nc[-2]), LSTM_block(nc[-1])])
        self.build_decoder(nc, num_classes, ps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, type(self).__name__)
        x = x[:, :, :N_FRAMES].contiguous()
        nt = x.shape[2]
        x = x.permute(0, 2, 1, 3, 4).flatten(0, 1)  # (B*T, 3, H, W)
        x1, x2, x3, x4 = (
            _split_frames(f, nt) for f in resnet18_features(self.enc, upsample_input(x))
        )
        return self.decode(x1[:, -1], x2[:, -1], self.lstm[-2](x3)[:, -1], self.lstm[-1](x4)[:, -1])


class ResNet18_SimplerFCN(nn.Module):
    """The simplest segmentation net: ResNet18 on frame 4, a small conv head, bilinear upsampling.

    x: (B, 3, T >= 5, H, W) (frame 4 used) or (B, 3, H, W) -> (B, num_classes, H, W) logits.
    No skips and no decoder: if this one learns and CoaT does not, look at the model.
    """

    def __init__(
        self,
        pre: str | os.PathLike | None = None,
        arch: str = "resnet18",
        num_classes: int = 1,
        ps: float = 0,
    ) -> None:
        super().__init__()
        self.enc = build_resnet18_encoder(pre, arch)
        self.head = nn.Sequential(
            nn.Conv2d(512, 128, 3, padding=1),
            nn.GELU(),
            nn.Dropout2d(ps),
            nn.Conv2d(128, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, type(self).__name__, min_frames=None)
        if x.dim() == 5:
            x = x[:, :, N_FRAMES - 1]
        x4 = resnet18_features(self.enc, upsample_input(x))[-1]  # (B, 512, H/16, W/16)
        return F.interpolate(self.head(x4), size=x.shape[-2:], mode="bilinear", align_corners=False)
