"""Building blocks of the CoaT-ULSTM decoder and temporal modules (site: facts/model/#blocks).

Attribute names are the state_dict prefixes of the team's checkpoints
(``shuf``, ``bn``, ``conv1`` ...), so a checkpoint of the original loads as is.
Modules are created in the original order, so a seeded build draws the same
random numbers as the original code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
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


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of every pixel of a feature map.

    u = mean_c x, s = mean_c (x - u)^2 (biased), y = w_c (x - u) / sqrt(s + eps) + b_c.

    x: (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def icnr_init(
    x: torch.Tensor,
    scale: int = 2,
    init: Callable[[torch.Tensor], torch.Tensor] = nn.init.kaiming_normal_,
) -> torch.Tensor:
    """ICNR weights for a conv that feeds ``PixelShuffle(scale)``; returns a new tensor.

    x: conv weight (nf * scale^2, ni, kh, kw). One kernel per output feature
    j is drawn with ``init`` on a (nf, ni, kh, kw) tensor and copied to output
    channels j*s^2 .. j*s^2 + s^2 - 1: PixelShuffle puts exactly those channels
    on the s x s sub-pixels of feature j, so at init the layer behaves like a
    conv followed by nearest-neighbour upsampling (no checkerboard artefacts).
    """
    out_c, in_c, kh, kw = x.shape
    base = init(x.new_zeros(out_c // scale**2, in_c, kh, kw))
    return base.repeat_interleave(scale**2, dim=0)


class PixelShuffle_ICNR(nn.Sequential):
    """Learned x``scale`` upsampling: 1x1 conv, LayerNorm2d, GELU, PixelShuffle [, blur].

    x: (B, ni, H, W) -> (B, nf, scale*H, scale*W)

    The blur (replication pad on top/left, then a 2x2 stride-1 average) smooths
    the remaining checkerboard of the pixel shuffle and keeps the size.
    """

    def __init__(self, ni: int, nf: int | None = None, scale: int = 2, blur: bool = True) -> None:
        nf = ni if nf is None else nf
        layers: list[nn.Module] = [
            nn.Conv2d(ni, nf * scale**2, 1),
            LayerNorm2d(nf * scale**2),
            nn.GELU(),
            nn.PixelShuffle(scale),
        ]
        # ICNR is drawn after the conv's own init, as in the original (same RNG stream).
        with torch.no_grad():
            layers[0].weight.copy_(icnr_init(layers[0].weight, scale))
        if blur:
            layers += [nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1)]
        super().__init__(*layers)


class UnetBlock(nn.Module):
    """U-Net decoder step: upsample the deeper map, join the skip, two 3x3 convs.

    up_in: (B, up_in_c, h, w), left_in: (B, x_in_c, 2h, 2w) -> (B, nf, 2h, 2w)

    out = conv2(conv1(GELU(cat[shuf(up_in), bn(left_in)])))
    """

    def __init__(self, up_in_c: int, x_in_c: int, nf: int | None = None, blur: bool = False):
        super().__init__()
        self.shuf = PixelShuffle_ICNR(up_in_c, up_in_c // 2, blur=blur)
        self.bn = LayerNorm2d(x_in_c)
        ni = up_in_c // 2 + x_in_c
        nf = nf if nf is not None else max(up_in_c // 2, 32)
        self.conv1 = nn.Sequential(nn.Conv2d(ni, nf, 3, padding=1), nn.GELU())
        self.conv2 = nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1), nn.GELU())
        # Named `relu` in the original although it is a GELU; it has no parameters.
        self.relu = nn.GELU()

    def forward(self, up_in: torch.Tensor, left_in: torch.Tensor) -> torch.Tensor:
        up_out = self.shuf(up_in)
        cat_x = self.relu(torch.cat([up_out, self.bn(left_in)], dim=1))
        return self.conv2(self.conv1(cat_x))


class UpBlock(nn.Module):
    """Final x2 upsampling head: PixelShuffle_ICNR to up_in_c//4 channels, conv, 1x1 to nf.

    x: (B, up_in_c, H, W) -> (B, nf, 2H, 2W)
    """

    def __init__(self, up_in_c: int, nf: int | None = None, blur: bool = True) -> None:
        super().__init__()
        ni = up_in_c // 4
        self.shuf = PixelShuffle_ICNR(up_in_c, ni, blur=blur)
        nf = nf if nf is not None else max(up_in_c // 4, 16)
        self.conv = nn.Sequential(
            nn.Conv2d(ni, ni, 3, padding=1),
            # A LayerNorm over fewer than 16 channels is too noisy; the original skips it.
            LayerNorm2d(ni) if ni >= 16 else nn.Identity(),
            nn.GELU(),
            nn.Conv2d(ni, nf, 1),
        )

    def forward(self, up_in: torch.Tensor) -> torch.Tensor:
        return self.conv(self.shuf(up_in))


class FPN(nn.Module):
    """Feature pyramid: squeeze each deep map, upsample it to the finest size, concatenate.

    xs[i]: (B, in_chs[i], H / 2^(n-i), W / 2^(n-i)), last_layer: (B, C, H, W)
    -> (B, sum(out_chs) + C, H, W), outputs in order xs[0] .. xs[n-1], last_layer.
    """

    def __init__(self, input_channels: list[int], output_channels: list[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(in_ch, out_ch * 2, kernel_size=3, padding=1),
                    nn.GELU(),
                    LayerNorm2d(out_ch * 2),
                    nn.Conv2d(out_ch * 2, out_ch, kernel_size=3, padding=1),
                )
                for in_ch, out_ch in zip(input_channels, output_channels)
            ]
        )

    def forward(self, xs: list[torch.Tensor], last_layer: torch.Tensor) -> torch.Tensor:
        n = len(self.convs)
        hcs = [
            F.interpolate(conv(x), scale_factor=2 ** (n - i), mode="bilinear", align_corners=False)
            for i, (conv, x) in enumerate(zip(self.convs, xs))
        ]
        hcs.append(last_layer)
        return torch.cat(hcs, dim=1)


class LSTM_block(nn.Module):
    """One LSTM run over the frames independently at every pixel (shared weights).

    x: (B, T, C, H, W) -> (B, T, C, H, W); step t has seen frames 0..t.
    """

    def __init__(self, n: int, bidirectional: bool = False, num_layers: int = 1) -> None:
        super().__init__()
        hidden = n // 2 if bidirectional else n
        self.lstm = nn.LSTM(
            n, hidden, batch_first=True, bidirectional=bidirectional, num_layers=num_layers
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C, H, W = x.shape
        # (B, T, C, H, W) -> (B*H*W, T, C): every pixel is one sequence of T frames.
        seq = x.flatten(-2, -1).permute(0, 3, 1, 2).flatten(0, 1)
        out = self.lstm(seq)[0]
        return out.reshape(B, H, W, T, -1).permute(0, 3, 4, 1, 2)


class SinusoidalPosEmb(nn.Module):
    """Sinusoidal encoding of positions (here: frame indices).

    f_k = exp(-k * ln(M) / (dim/2)), k = 0 .. dim/2 - 1; emb = [sin(p f), cos(p f)].
    p: (...,) -> (..., dim)
    """

    def __init__(self, dim: int = 16, M: int = 10000) -> None:
        super().__init__()
        self.dim = dim
        self.M = M

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half_dim = self.dim // 2
        # ln(M)/half_dim, not /(half_dim - 1) as in some diffusion code: the original's choice.
        freq = torch.exp(torch.arange(half_dim, device=x.device) * (-math.log(self.M) / half_dim))
        emb = x[..., None] * freq[None, ...]
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class Mlp(nn.Module):
    """Two-layer perceptron with GELU. x: (..., dim) -> (..., dim)"""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm cross-attention block of Tmixer (a BEiT-v2 style block).

    xq: (B, Nq, C), xk: (B, Nk, C), xv: (B, Nk, C) -> (B, Nq, C)

    x = xq + MHA(norm1(xq), norm1(xk), norm1(xv)); x = x + Mlp(norm2(x)).
    One LayerNorm (norm1) is shared by queries, keys and values.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, xq: torch.Tensor, xk: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
        q, k, v = self.norm1(xq), self.norm1(xk), self.norm1(xv)
        x = xq + self.attn(q, k, v, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class Tmixer(nn.Module):
    """Temporal mixer of CoaT_UT: last-frame tokens attend to all tokens of all frames.

    x: (B, T, C, H, W) -> (B, C, H, W), C = n.

    Queries: last-frame tokens + enc[T-1]; keys: all T*H*W tokens + their frame
    encoding; values: all tokens without encoding. Keys and values stay fixed
    through the ``num_layers`` blocks; only the queries are updated.
    """

    def __init__(self, n: int, num_layers: int = 2) -> None:
        super().__init__()
        self.seq_enc = SinusoidalPosEmb(n)
        # n // 64 heads as in the original: n must be at least 64 and divisible by n // 64.
        self.blocks = nn.ModuleList([Block(n, n // 64) for _ in range(num_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C, H, W = x.shape
        x = x.flatten(-2, -1).permute(0, 1, 3, 2)  # (B, T, H*W, C)
        enc = self.seq_enc(torch.arange(T, device=x.device)).view(1, T, 1, C)
        xq = x[:, -1] + enc[:, -1]  # (B, H*W, C)
        xk = (x + enc).flatten(1, 2)  # (B, T*H*W, C)
        xv = x.flatten(1, 2)
        for blk in self.blocks:
            xq = blk(xq, xk, xv)
        return xq.reshape(B, H, W, C).permute(0, 3, 1, 2)
