"""Data: the ash false-colour image, the uint8 tiles, and the dataset item (site: facts/data/).

Exercises ``ash-false-color`` and ``tile-layout``.
"""

from __future__ import annotations

import os
from pathlib import Path

import albumentations as A
import cv2
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
    return (data - bounds[0]) / (bounds[1] - bounds[0])
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
    band11 = np.asarray(record_data["band_11"], dtype=np.float32)
    band14 = np.asarray(record_data["band_14"], dtype=np.float32)
    band15 = np.asarray(record_data["band_15"], dtype=np.float32)
    r = normalize_range(band15 - band14, _TDIFF_BOUNDS)
    g = normalize_range(band14 - band11, _CLOUD_TOP_TDIFF_BOUNDS)
    b = normalize_range(band14, _T11_BOUNDS)
    false_color = np.clip(np.stack([r, g, b], axis=2), 0, 1)
    if full:
        return false_color
    return false_color[..., N_TIMES_BEFORE]
    # END EXERCISE ash-false-color


def tile_image(record_data: dict[str, np.ndarray]) -> np.ndarray:
    """The multi-frame tile stored on disk.

    record_data: {'band_11', 'band_14', 'band_15'}: (H, W, 8) kelvin
    -> (H, W, 24) uint8, channel = colour*8 + frame, value floor(255 v) of the ash colour
    (a cast truncates; clipped to [0, 255] first).
    """
    # BEGIN EXERCISE tile-layout
    false_color = get_false_color(record_data, full=True)
    h, w = false_color.shape[:2]
    img = np.clip(false_color * 255, 0, 255).astype(np.uint8)
    return img.reshape(h, w, -1)
    # END EXERCISE tile-layout


def get_aug(seed: int | None = None) -> A.Compose:
    """The published training augmentation on albumentations 2.x (given, not an exercise).

    A shift of up to 20 %, a scale of 0.8-1.2 and a rotation of up to 30 degrees (75 % of
    the time), gamma or brightness/contrast (half the time), motion or Gaussian blur (a
    quarter). Borders reflect, as albumentations 1.x did; the mask is resampled with the
    nearest neighbour. No flips: masks and images are offset by half a pixel.
    """
    return A.Compose(
        [
            A.Affine(
                translate_percent={"x": (-0.2, 0.2), "y": (-0.2, 0.2)},
                scale=(0.8, 1.2),
                keep_ratio=True,
                rotate=(-30, 30),
                shear=0,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.75,
            ),
            A.OneOf(
                [
                    A.RandomGamma(gamma_limit=(50, 150)),
                    A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.2),
                ],
                p=0.5,
            ),
            A.OneOf(
                [A.MotionBlur(), A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.8, 1.4))], p=0.25
            ),
        ],
        p=1,
        seed=seed,
    )


def img2tensor(img: np.ndarray, dtype: np.dtype = np.float32) -> torch.Tensor:
    """(H, W) or (H, W, C) -> (1, H, W) or (C, H, W) tensor of ``dtype`` (HWC -> CHW)."""
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)).astype(dtype, copy=False))


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
        self.path = Path(path) / ("train_adj2" if train else "val_adj2")
        self.fnames = sorted(str(p) for p in self.path.glob("*_img.tif"))
        self.train = train
        self.tfms = tfms
        self.repeat = repeat
        # END EXERCISE tile-layout

    def __len__(self) -> int:
        # BEGIN EXERCISE tile-layout
        return len(self.fnames) * self.repeat
        # END EXERCISE tile-layout

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        # BEGIN EXERCISE tile-layout
        fname = self.fnames[idx % len(self.fnames)]
        img = tifffile.imread(fname)
        h, w = img.shape[:2]
        img = img.reshape(h, w, 3, -1)[..., :5].reshape(h, w, -1)
        mask = tifffile.imread(fname.replace("_img.tif", "_mask.tif"))
        mask = mask.reshape(h, w)
        if self.tfms is not None:
            augmented = self.tfms(image=img, mask=mask)
            img, mask = augmented["image"], augmented["mask"]
        img = img2tensor(img / 255.0).reshape(3, 5, h, w)
        return img, img2tensor(mask / 255.0)
        # END EXERCISE tile-layout
