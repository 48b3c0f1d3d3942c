"""Data: the ash false-colour image, the uint8 tiles, and the dataset item (site: facts/data/).

Exercises ``ash-false-color`` and ``tile-layout``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch.utils.data import Dataset

_T11_BOUNDS = (243, 303)
_CLOUD_TOP_TDIFF_BOUNDS = (-4, 5)
_TDIFF_BOUNDS = (-4, 2)


def normalize_range(data: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """(data - lo) / (hi - lo): maps the interval ``bounds`` to [0, 1]. Same shape as ``data``."""
    # BEGIN EXERCISE ash-false-color
    raise NotImplementedError("ash-false-color: write normalize_range (shakyo hint ash-false-color)")
    # END EXERCISE ash-false-color


def get_false_color(
    record_data: dict[str, np.ndarray], N_TIMES_BEFORE: int = 4, full: bool = False
) -> np.ndarray:
    """Ash false colour of a record.

    record_data: {'band_11', 'band_14', 'band_15'}: (H, W, T) float32 kelvin.
    -> (H, W, 3, T) float32 in [0, 1] when ``full``, else (H, W, 3): frame ``N_TIMES_BEFORE``.

        R = (B15 - B14 + 4) / 6,  G = (B14 - B11 + 4) / 9,  B = (B14 - 243) / 60
    """
    # BEGIN EXERCISE ash-false-color
    raise NotImplementedError("ash-false-color: write get_false_color (shakyo hint ash-false-color)")
    # END EXERCISE ash-false-color


def tile_image(record_data: dict[str, np.ndarray]) -> np.ndarray:
    """The multi-frame tile stored on disk.

    record_data: {'band_11', 'band_14', 'band_15'}: (H, W, 8) kelvin
    -> (H, W, 24) uint8, channel = colour*8 + frame, value floor(255 v) of the ash colour
    (a cast truncates; clipped to [0, 255] first).
    """
    # BEGIN EXERCISE tile-layout
    raise NotImplementedError("tile-layout: write tile_image (shakyo hint tile-layout)")
    # END EXERCISE tile-layout


class ContrailsDatasetV0(Dataset):
    """Prepared tiles under the data root ``path``: ``path/train_adj2`` when ``train``,
    else ``path/val_adj2``; every ``*_img.tif`` there (sorted) with its ``*_mask.tif``.

    Item: image (3, 5, H, W) float32 in [0, 1] (colour, frames 0..4) and
    mask (1, H, W) float32 in [0, 1]. ``tfms(image=(H, W, 15) uint8, mask=(H, W) uint8)``
    (albumentations) is applied to both before the scaling whenever it is given
    (the training script passes none for validation). ``repeat`` repeats the list of files.
    """

    def __init__(self, path: str | os.PathLike, train: bool = True, tfms=None, repeat: int = 1):
        # BEGIN EXERCISE tile-layout
        raise NotImplementedError("tile-layout: write ContrailsDatasetV0.__init__ (shakyo hint tile-layout)")
        # END EXERCISE tile-layout

    def __len__(self) -> int:
        # BEGIN EXERCISE tile-layout
        raise NotImplementedError("tile-layout: write ContrailsDatasetV0.__len__ (shakyo hint tile-layout)")
        # END EXERCISE tile-layout

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        # BEGIN EXERCISE tile-layout
        raise NotImplementedError("tile-layout: write ContrailsDatasetV0.__getitem__ (shakyo hint tile-layout)")
        # END EXERCISE tile-layout
