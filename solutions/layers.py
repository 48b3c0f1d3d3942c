"""Building blocks of the CoaT-ULSTM decoder (FACTS §3 "Blocks").

Attribute names are the state_dict keys of the team's checkpoints.
Exercises ``layer-norm-2d`` (and, further down the ladder, the other blocks).
"""

from __future__ import annotations

import torch
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
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        # END EXERCISE layer-norm-2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN EXERCISE layer-norm-2d
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        x = self.weight[:, None, None] * x + self.bias[:, None, None]
        return x
        # END EXERCISE layer-norm-2d
