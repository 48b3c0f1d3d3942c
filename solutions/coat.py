"""CoaT_ULSTM: timm's CoaT encoder per frame, LSTMs over time, U-Net + FPN decoder (site: facts/model/#coat-ulstm).

Exercise ``coat-ulstm``. The attribute names are the state_dict prefixes of the
team's checkpoints (``enc``, ``lstm``, ``dec4`` ... ``final_conv``): the
reference's state dict must load into your model with ``strict=True``.

Given (not part of the exercise): ``coat_lite_mini``, ``coat_lite_small`` and
``coat_lite_medium``, the encoders the original builds. They are timm's
CoaT-Lite (the same keys and outputs as the copy the team vendored), and
``enc(x)`` returns the dict of the four stage maps as the original's does, at
the grid size of the actual input (timm's own forward only accepts the size it
was built for).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from timm.models.coat import CoaT, insert_cls, remove_cls
from torch import nn

from .layers import FPN, LSTM_block, UnetBlock, UpBlock

N_FRAMES = 5  # frames 0..4 of a record; the labelled frame is the last one (index 4)

# timm coat_lite_* configurations.
_CONFIGS: dict[str, dict[str, tuple[int, ...]]] = {
    "mini": dict(
        embed_dims=(64, 128, 320, 512), serial_depths=(2, 2, 2, 2), mlp_ratios=(8, 8, 4, 4)
    ),
    "small": dict(
        embed_dims=(64, 128, 320, 512), serial_depths=(3, 4, 6, 3), mlp_ratios=(8, 8, 4, 4)
    ),
    "medium": dict(
        embed_dims=(128, 256, 320, 512), serial_depths=(3, 6, 10, 8), mlp_ratios=(4, 4, 4, 4)
    ),
}
_OUT_FEATURES = ["x1_nocls", "x2_nocls", "x3_nocls", "x4_nocls"]


class CoaTLite(CoaT):
    """timm's CoaT-Lite whose forward returns the four stage maps at the input's grid size.

    x: (N, 3, H, W), H and W divisible by 32 -> {'x1_nocls': (N, d1, H/4, W/4),
    'x2_nocls': (N, d2, H/8, W/8), 'x3_nocls': (N, d3, H/16, W/16), 'x4_nocls': (N, d4, H/32, W/32)}
    """

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = {}
        for i, name in enumerate(_OUT_FEATURES, 1):
            patch_embed = getattr(self, f"patch_embed{i}")
            h = x.shape[-2] // patch_embed.patch_size[0]
            w = x.shape[-1] // patch_embed.patch_size[1]
            t = insert_cls(patch_embed(x), getattr(self, f"cls_token{i}"))
            for blk in getattr(self, f"serial_blocks{i}"):
                t = blk(t, size=(h, w))
            x = remove_cls(t).reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
            feats[name] = x
        return feats


def _coat_lite(arch: str, return_interm_layers: bool = True, **kwargs) -> CoaTLite:
    enc = CoaTLite(
        img_size=512,
        patch_size=4,
        return_interm_layers=return_interm_layers,
        out_features=_OUT_FEATURES,
        **_CONFIGS[arch],
        **kwargs,
    )
    for i in range(1, 5):
        getattr(enc, f"patch_embed{i}").strict_img_size = False
    return enc


def coat_lite_mini(return_interm_layers: bool = True, **kwargs) -> CoaTLite:
    """CoaT-Lite mini: dims 64, 128, 320, 512."""
    return _coat_lite("mini", return_interm_layers, **kwargs)


def coat_lite_small(return_interm_layers: bool = True, **kwargs) -> CoaTLite:
    """CoaT-Lite small: dims 64, 128, 320, 512 (deeper than mini)."""
    return _coat_lite("small", return_interm_layers, **kwargs)


def coat_lite_medium(return_interm_layers: bool = True, **kwargs) -> CoaTLite:
    """CoaT-Lite medium: dims 128, 256, 320, 512."""
    return _coat_lite("medium", return_interm_layers, **kwargs)


class CoaT_ULSTM(nn.Module):
    """CoaT per frame + pixel-wise LSTMs on the two deepest maps + U-Net/FPN decoder.

    x: (B, 3, T >= 5, H, W) float in [0, 1], H and W divisible by 16
    -> (B, num_classes, H, W) raw logits for frame 4 (frames after 4 are ignored).

    arch: 'mini', 'small' or 'medium' (anything else raises Exception('Unknown model'),
    as in the original); pre: an ImageNet CoaT checkpoint for the encoder.

    Modules (nc = the encoder's embed dims): enc; lstm = [LSTM_block(nc[-2]),
    LSTM_block(nc[-1])]; dec4 = UnetBlock(nc[-1], nc[-2], 384); dec3 =
    UnetBlock(384, nc[-3], 192); dec2 = UnetBlock(192, nc[-4], 96); fpn =
    FPN([nc[-1], 384, 192], [32, 32, 32]); drop = Dropout2d(ps); final_conv =
    Sequential[UpBlock(96 + 96, num_classes, blur=True)]; up_result = 1.

    Forward: frames 0..4 -> (B*5, 3, H, W) (b-major, then t) -> bicubic x2,
    clip(0, 1) -> encoder -> x1, x2: last frame; x3, x4: LSTM over the frames,
    last step -> dec4(x4, x3) -> dec3(., x2) -> dec2(., x1) -> fpn([x4, dec3, dec2], dec1)
    -> final_conv(drop(.)).
    """

    def __init__(
        self,
        pre: str | os.PathLike | None = None,
        arch: str = "medium",
        num_classes: int = 1,
        ps: float = 0,
        **kwargs,
    ) -> None:
        super().__init__()
        # BEGIN EXERCISE coat-ulstm
        if arch == "mini":
            self.enc = coat_lite_mini(return_interm_layers=True)
            nc = [64, 128, 320, 512]
        elif arch == "small":
            self.enc = coat_lite_small(return_interm_layers=True)
            nc = [64, 128, 320, 512]
        elif arch == "medium":
            self.enc = coat_lite_medium(return_interm_layers=True)
            nc = [128, 256, 320, 512]
        else:
            raise Exception("Unknown model")
        if pre is not None:
            sd = torch.load(pre, map_location="cpu", weights_only=True)
            sd = sd.get("model", sd)
            self.enc.load_state_dict(sd, strict=False)  # the classifier keys are not ours
        self.lstm = nn.ModuleList([LSTM_block(nc[-2]), LSTM_block(nc[-1])])
        self.dec4 = UnetBlock(nc[-1], nc[-2], 384)
        self.dec3 = UnetBlock(384, nc[-3], 192)
        self.dec2 = UnetBlock(192, nc[-4], 96)
        self.fpn = FPN([nc[-1], 384, 192], [32, 32, 32])
        self.drop = nn.Dropout2d(ps)
        self.final_conv = nn.Sequential(UpBlock(96 + 32 * 3, num_classes, blur=True))
        self.up_result = 1
        # END EXERCISE coat-ulstm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN EXERCISE coat-ulstm
        x = x[:, :, :N_FRAMES]
        B, C, T, H, W = x.shape
        x = x.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W)
        # Bicubic overshoots [0, 1]: clip, as the original does.
        x = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False).clip(0, 1)
        x1, x2, x3, x4 = self.enc(x).values()

        x1 = x1.view(B, T, *x1.shape[1:])[:, -1]
        x2 = x2.view(B, T, *x2.shape[1:])[:, -1]
        x3 = self.lstm[0](x3.view(B, T, *x3.shape[1:]))[:, -1]
        x4 = self.lstm[1](x4.view(B, T, *x4.shape[1:]))[:, -1]

        dec3 = self.dec4(x4, x3)
        dec2 = self.dec3(dec3, x2)
        dec1 = self.dec2(dec2, x1)
        x = self.fpn([x4, dec3, dec2], dec1)
        x = self.final_conv(self.drop(x))
        if self.up_result != 1:
            x = F.interpolate(x, scale_factor=self.up_result, mode="bilinear", align_corners=False)
        return x
        # END EXERCISE coat-ulstm
