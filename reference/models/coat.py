"""CoaT_ULSTM, CoaT_U and CoaT_UT on timm's CoaT encoder (site: facts/model/#coat-ulstm).

All three share one decoder (dec4 -> dec3 -> dec2 -> FPN -> final_conv) and
differ only in how the 5 frames meet:

- CoaT_ULSTM: every frame is encoded; the two deepest maps go through an
  LSTM over time at every pixel (last step kept); the two shallow maps keep
  the last frame.
- CoaT_U: the single frame 4, no temporal module.
- CoaT_UT: like CoaT_ULSTM with a temporal attention (Tmixer) instead of LSTMs.

The encoder is timm's ``CoaT`` itself (state_dict prefix ``enc.``). timm's
``forward_features`` uses the grid size fixed at build time, so
:func:`coat_features` runs the same timm modules with the grid size of the
actual input: any tile whose side is divisible by 16 works.
"""

from __future__ import annotations

import difflib
import os

import torch
import torch.nn.functional as F
from timm.models.coat import CoaT, insert_cls, remove_cls
from torch import nn

from reference.errors import ConfigError
from reference.models.checkpoint import load_encoder_weights
from reference.models.layers import FPN, LSTM_block, Tmixer, UnetBlock, UpBlock

__all__ = ["ARCHS", "build_coat_encoder", "coat_features", "CoaT_ULSTM", "CoaT_U", "CoaT_UT"]

N_FRAMES = 5  # frames 0..4 of a record; the labelled frame is the last one (index 4)

# timm coat_lite_* configurations (patch 4, 8 heads, qkv bias). `tiny` is ours,
# for fast tests only: dims divisible by the 8 CoaT heads, and the last two
# >= 64 so that Tmixer gets n // 64 >= 1 heads.
ARCHS: dict[str, dict[str, tuple[int, ...]]] = {
    "mini": dict(
        embed_dims=(64, 128, 320, 512), serial_depths=(2, 2, 2, 2), mlp_ratios=(8, 8, 4, 4)
    ),
    "small": dict(
        embed_dims=(64, 128, 320, 512), serial_depths=(3, 4, 6, 3), mlp_ratios=(8, 8, 4, 4)
    ),
    "medium": dict(
        embed_dims=(128, 256, 320, 512), serial_depths=(3, 6, 10, 8), mlp_ratios=(4, 4, 4, 4)
    ),
    "tiny": dict(embed_dims=(16, 32, 64, 128), serial_depths=(1, 1, 1, 1), mlp_ratios=(2, 2, 2, 2)),
}
OUT_FEATURES = ["x1_nocls", "x2_nocls", "x3_nocls", "x4_nocls"]


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        close = difflib.get_close_matches(str(arch), list(ARCHS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"arch '{arch}': unknown CoaT arch; {hint}choose one of {', '.join(ARCHS)}"
        )


def build_coat_encoder(arch: str = "medium", img_size: int = 512) -> CoaT:
    """timm's CoaT-Lite ``arch`` returning the four stage maps (no classifier head).

    ``img_size`` only sets timm's static grid (used by timm's own
    forward_features); :func:`coat_features` accepts any size divisible by 32.
    Default 512: a 256 x 256 tile after the x2 upsampling.
    """
    _check_arch(arch)
    enc = CoaT(
        img_size=img_size,
        patch_size=4,
        return_interm_layers=True,
        out_features=OUT_FEATURES,
        **ARCHS[arch],
    )
    for i in range(1, 5):
        # Only divisibility by the patch is checked then; coat_features passes the real grid.
        getattr(enc, f"patch_embed{i}").strict_img_size = False
    return enc


def coat_features(enc: CoaT, x: torch.Tensor) -> list[torch.Tensor]:
    """Run timm's serial CoaT stages with the grid size of ``x`` itself.

    x: (N, 3, H, W), H and W divisible by 32 ->
    [(N, d1, H/4, W/4), (N, d2, H/8, W/8), (N, d3, H/16, W/16), (N, d4, H/32, W/32)]

    Same modules and order as ``CoaT.forward_features``; only the (H, W)
    handed to the blocks comes from the input instead of the build size.
    """
    B = x.shape[0]
    feats = []
    for i in range(1, 5):
        patch_embed = getattr(enc, f"patch_embed{i}")
        H = x.shape[-2] // patch_embed.patch_size[0]
        W = x.shape[-1] // patch_embed.patch_size[1]
        t = insert_cls(patch_embed(x), getattr(enc, f"cls_token{i}"))  # (B, 1 + H*W, C)
        for blk in getattr(enc, f"serial_blocks{i}"):
            t = blk(t, size=(H, W))
        x = remove_cls(t).reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
        feats.append(x)
    return feats


def upsample_input(x: torch.Tensor) -> torch.Tensor:
    """Bicubic x2 then clip to [0, 1] (bicubic overshoots). (N, 3, H, W) -> (N, 3, 2H, 2W)"""
    return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False).clip(0, 1)


def check_input(x: torch.Tensor, model: str, min_frames: int | None = N_FRAMES) -> None:
    """Raise ValueError unless x is (B, 3, T >= min_frames, H, W) with H, W divisible by 16."""
    ok_dims = x.dim() == 5 or (min_frames is None and x.dim() == 4)
    if not ok_dims or x.shape[1] != 3:
        want = "(B, 3, T, H, W)" + (" or (B, 3, H, W)" if min_frames is None else "")
        raise ValueError(f"{model}: input must be {want}, got {tuple(x.shape)}")
    if x.dim() == 5 and x.shape[2] < (min_frames or N_FRAMES):
        raise ValueError(f"{model}: needs at least {N_FRAMES} frames, got T={x.shape[2]}")
    if x.shape[-2] % 16 or x.shape[-1] % 16:
        raise ValueError(f"{model}: H and W must be divisible by 16, got {tuple(x.shape[-2:])}")


class UNetHead(nn.Module):
    """Shared decoder of the CoaT family, as methods of the model (state_dict keys stay flat).

    Subclasses build ``enc`` (and a temporal module) first, then call
    :meth:`build_decoder`: the creation order is the original's, so a seeded
    build draws the same random numbers.
    """

    def build_decoder(self, nc: list[int], num_classes: int, ps: float) -> None:
        self.dec4 = UnetBlock(nc[-1], nc[-2], 384)
        self.dec3 = UnetBlock(384, nc[-3], 192)
        self.dec2 = UnetBlock(192, nc[-4], 96)
        self.fpn = FPN([nc[-1], 384, 192], [32] * 3)
        self.drop = nn.Dropout2d(ps)
        self.final_conv = nn.Sequential(UpBlock(96 + 32 * 3, num_classes, blur=True))
        self.up_result = 1

    def decode(self, x1, x2, x3, x4: torch.Tensor) -> torch.Tensor:
        """Four maps at H, H/2, H/4, H/8 (H = tile side / 2) -> (B, num_classes, 2H, 2W) logits.

        x1: (B, nc0, H, W), x2: (B, nc1, H/2, W/2), x3: (B, nc2, H/4, W/4), x4: (B, nc3, H/8, W/8)
        """
        dec3 = self.dec4(x4, x3)  # (B, 384, H/4, W/4)
        dec2 = self.dec3(dec3, x2)  # (B, 192, H/2, W/2)
        dec1 = self.dec2(dec2, x1)  # (B, 96, H, W)
        x = self.fpn([x4, dec3, dec2], dec1)  # (B, 192, H, W)
        x = self.final_conv(self.drop(x))  # (B, num_classes, 2H, 2W)
        # The original always calls a bilinear interpolation by `up_result`; with
        # scale 1 (align_corners=False) it maps every pixel onto itself, so skip it.
        if self.up_result not in (0, 1):
            x = F.interpolate(x, scale_factor=self.up_result, mode="bilinear", align_corners=False)
        return x


def _split_frames(feat: torch.Tensor, nt: int) -> torch.Tensor:
    """(B*T, C, h, w), b-major -> (B, T, C, h, w)"""
    return feat.view(-1, nt, *feat.shape[1:])


class _CoaTBase(UNetHead):
    def __init__(self, pre: str | os.PathLike | None, arch: str) -> None:
        super().__init__()
        self.arch = arch
        self.enc = build_coat_encoder(arch)
        self.pre_report = None  # what `pre` loaded, ignored and missed (EncoderLoadReport)
        if pre is not None:
            self.pre_report = load_encoder_weights(self.enc, pre)
        self.nc = list(ARCHS[arch]["embed_dims"])

    def encode_frames(self, x: torch.Tensor) -> tuple[list[torch.Tensor], int]:
        """x: (B, 3, T>=5, H, W) -> 4 maps of shape (B, 5, d_i, H/2^i, W/2^i), i = 1..4."""
        check_input(x, type(self).__name__)
        x = x[:, :, :N_FRAMES].contiguous()  # 8-frame test records: keep frames 0..4
        nt = x.shape[2]
        x = x.permute(0, 2, 1, 3, 4).flatten(0, 1)  # (B*T, 3, H, W), b-major then t
        feats = coat_features(self.enc, upsample_input(x))
        return [_split_frames(f, nt) for f in feats], nt


class CoaT_ULSTM(_CoaTBase):
    """CoaT encoder per frame + pixel-wise LSTMs on the two deepest maps + U-Net/FPN decoder.

    x: (B, 3, T >= 5, H, W) float in [0, 1], H, W divisible by 16
    -> (B, num_classes, H, W) raw logits for frame 4 (frames after 4 are ignored).
    """

    def __init__(
        self,
        pre: str | os.PathLike | None = None,
        arch: str = "medium",
        num_classes: int = 1,
        ps: float = 0,
    ) -> None:
        super().__init__(pre, arch)
        nc = self.nc
        self.lstm = nn.ModuleList([LSTM_block(nc[-2]), LSTM_block(nc[-1])])
        self.build_decoder(nc, num_classes, ps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (x1, x2, x3, x4), _ = self.encode_frames(x)
        return self.decode(
            x1[:, -1],  # shallow maps: last frame only
            x2[:, -1],
            self.lstm[-2](x3)[:, -1],  # deep maps: LSTM over the frames, last step
            self.lstm[-1](x4)[:, -1],
        )


class CoaT_UT(_CoaTBase):
    """CoaT_ULSTM with temporal attention (Tmixer) instead of the LSTMs.

    x: (B, 3, T >= 5, H, W) float in [0, 1] -> (B, num_classes, H, W) logits for frame 4.
    """

    def __init__(
        self,
        pre: str | os.PathLike | None = None,
        arch: str = "medium",
        num_classes: int = 1,
        ps: float = 0,
        num_layers: int = 2,
    ) -> None:
        super().__init__(pre, arch)
        nc = self.nc
        self.mixer = nn.ModuleList(
            [Tmixer(nc[-2], num_layers=num_layers), Tmixer(nc[-1], num_layers=num_layers)]
        )
        self.build_decoder(nc, num_classes, ps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (x1, x2, x3, x4), _ = self.encode_frames(x)
        return self.decode(x1[:, -1], x2[:, -1], self.mixer[-2](x3), self.mixer[-1](x4))


class CoaT_U(_CoaTBase):
    """Single-frame CoaT U-Net: frame 4 only, no temporal module.

    x: (B, 3, T >= 5, H, W) (frame 4 is used) or (B, 3, H, W), float in [0, 1]
    -> (B, num_classes, H, W) logits.
    """

    def __init__(
        self,
        pre: str | os.PathLike | None = None,
        arch: str = "medium",
        num_classes: int = 1,
        ps: float = 0,
    ) -> None:
        super().__init__(pre, arch)
        self.build_decoder(self.nc, num_classes, ps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, type(self).__name__, min_frames=None)
        if x.dim() == 5:
            x = x[:, :, N_FRAMES - 1]
        x1, x2, x3, x4 = coat_features(self.enc, upsample_input(x))
        return self.decode(x1, x2, x3, x4)
