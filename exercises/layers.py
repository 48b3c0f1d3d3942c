"""Building blocks of the CoaT-ULSTM decoder (site: facts/model/#blocks).

Attribute names are the state_dict keys of the team's checkpoints.
Exercises ``layer-norm-2d``, ``pixel-shuffle-icnr``, ``unet-block``, ``fpn``, ``lstm-block``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of every pixel.

    x: (B, C, H, W) -> (B, C, H, W)

        u = mean_c x,  s = mean_c (x - u)^2  (biased),  y = (x - u) / sqrt(s + eps)
        out = weight_c * y + bias_c,  weight = 1, bias = 0 at init
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        # BEGIN EXERCISE layer-norm-2d
        raise NotImplementedError("layer-norm-2d: write LayerNorm2d.__init__ (shakyo hint layer-norm-2d)")
        # END EXERCISE layer-norm-2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN EXERCISE layer-norm-2d
        raise NotImplementedError("layer-norm-2d: write LayerNorm2d.forward (shakyo hint layer-norm-2d)")
        # END EXERCISE layer-norm-2d


def icnr_init(
    x: torch.Tensor,
    scale: int = 2,
    init: Callable[[torch.Tensor], torch.Tensor] = nn.init.kaiming_normal_,
) -> torch.Tensor:
    """ICNR weights for a conv feeding ``PixelShuffle(scale)``; returns a new tensor.

    x: conv weight (nf * scale^2, ni, kh, kw) -> tensor of the same shape.

    One kernel per output feature j is drawn with ``init`` on a (nf, ni, kh, kw)
    tensor and copied to channels j*scale^2 .. j*scale^2 + scale^2 - 1: those
    are the sub-pixels PixelShuffle puts around feature j, so at init the conv
    + shuffle is a conv followed by nearest-neighbour upsampling.
    """
    # BEGIN EXERCISE pixel-shuffle-icnr
    raise NotImplementedError("pixel-shuffle-icnr: write icnr_init (shakyo hint pixel-shuffle-icnr)")
    # END EXERCISE pixel-shuffle-icnr


class PixelShuffle_ICNR(nn.Sequential):
    """Learned x``scale`` upsampling without checkerboards.

    x: (B, ni, H, W) -> (B, nf, scale*H, scale*W)

    [0] Conv2d 1x1 ni -> nf*scale^2 (ICNR weight, default bias), [1] LayerNorm2d,
    [2] GELU, [3] PixelShuffle(scale); with ``blur``: [4] ReplicationPad2d((1, 0, 1, 0)),
    [5] AvgPool2d(2, stride=1) (pad top/left by one, average 2x2: same size).
    """

    def __init__(self, ni: int, nf: int | None = None, scale: int = 2, blur: bool = True) -> None:
        # BEGIN EXERCISE pixel-shuffle-icnr
        raise NotImplementedError("pixel-shuffle-icnr: write PixelShuffle_ICNR.__init__ (shakyo hint pixel-shuffle-icnr)")
        # END EXERCISE pixel-shuffle-icnr


class UnetBlock(nn.Module):
    """One U-Net decoder step.

    up_in: (B, up_in_c, h, w), left_in: (B, x_in_c, 2h, 2w) -> (B, nf, 2h, 2w)

        out = conv2(conv1(GELU(cat[shuf(up_in), bn(left_in)])))

    shuf = PixelShuffle_ICNR(up_in_c, up_in_c // 2, blur), bn = LayerNorm2d(x_in_c),
    conv1 = [Conv3x3 -> nf, GELU], conv2 = [Conv3x3 nf -> nf, GELU]; nf defaults
    to max(up_in_c // 2, 32). The GELU after the concat is named ``relu``.
    """

    def __init__(self, up_in_c: int, x_in_c: int, nf: int | None = None, blur: bool = False):
        super().__init__()
        # BEGIN EXERCISE unet-block
        raise NotImplementedError("unet-block: write UnetBlock.__init__ (shakyo hint unet-block)")
        # END EXERCISE unet-block

    def forward(self, up_in: torch.Tensor, left_in: torch.Tensor) -> torch.Tensor:
        # BEGIN EXERCISE unet-block
        raise NotImplementedError("unet-block: write UnetBlock.forward (shakyo hint unet-block)")
        # END EXERCISE unet-block


class UpBlock(nn.Module):
    """Final x2 head: PixelShuffle_ICNR to up_in_c // 4 channels, 3x3 conv, 1x1 conv to nf.

    x: (B, up_in_c, H, W) -> (B, nf, 2H, 2W)

    conv = [Conv3x3 ni -> ni, LayerNorm2d(ni) (Identity if ni < 16), GELU, Conv1x1 ni -> nf],
    ni = up_in_c // 4; nf defaults to max(up_in_c // 4, 16).
    """

    def __init__(self, up_in_c: int, nf: int | None = None, blur: bool = True) -> None:
        super().__init__()
        # BEGIN EXERCISE unet-block
        raise NotImplementedError("unet-block: write UpBlock.__init__ (shakyo hint unet-block)")
        # END EXERCISE unet-block

    def forward(self, up_in: torch.Tensor) -> torch.Tensor:
        # BEGIN EXERCISE unet-block
        raise NotImplementedError("unet-block: write UpBlock.forward (shakyo hint unet-block)")
        # END EXERCISE unet-block


class FPN(nn.Module):
    """Feature pyramid: squeeze each deep map, upsample it to the finest size, concatenate.

    xs[i]: (B, input_channels[i], H / 2^(n-i), W / 2^(n-i)), last_layer: (B, C, H, W)
    -> (B, sum(output_channels) + C, H, W), in the order xs[0] .. xs[n-1], last_layer.

    convs[i] = [Conv3x3 in -> 2 out, GELU, LayerNorm2d(2 out), Conv3x3 2 out -> out];
    output i is upsampled bilinearly (align_corners=False) by 2^(n-i).
    """

    def __init__(self, input_channels: list[int], output_channels: list[int]) -> None:
        super().__init__()
        # BEGIN EXERCISE fpn
        raise NotImplementedError("fpn: write FPN.__init__ (shakyo hint fpn)")
        # END EXERCISE fpn

    def forward(self, xs: list[torch.Tensor], last_layer: torch.Tensor) -> torch.Tensor:
        # BEGIN EXERCISE fpn
        raise NotImplementedError("fpn: write FPN.forward (shakyo hint fpn)")
        # END EXERCISE fpn


class LSTM_block(nn.Module):
    """One LSTM over the T frames, run independently at every pixel (shared weights).

    x: (B, T, C, H, W) -> (B, T, C, H, W) (C = n; output step t has seen frames 0..t)

    (B, T, C, H, W) -> (B*H*W, T, C) -> nn.LSTM(batch_first) -> back.
    """

    def __init__(self, n: int, bidirectional: bool = False, num_layers: int = 1) -> None:
        super().__init__()
        # BEGIN EXERCISE lstm-block
        raise NotImplementedError("lstm-block: write LSTM_block.__init__ (shakyo hint lstm-block)")
        # END EXERCISE lstm-block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN EXERCISE lstm-block
        raise NotImplementedError("lstm-block: write LSTM_block.forward (shakyo hint lstm-block)")
        # END EXERCISE lstm-block
