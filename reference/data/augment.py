"""Training augmentation (site: facts/data/#augmentation), written for albumentations 2.x.

The published pipeline (albumentations 1.x)::

    Compose([
        ShiftScaleRotate(shift_limit=0.2, scale_limit=0.2, rotate_limit=30, p=0.75),
        OneOf([RandomGamma(gamma_limit=(50, 150)),
               RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.2)], p=0.5),
        OneOf([MotionBlur(), GaussianBlur()], p=0.25),
    ], p=1)

No flips and no 90° rotations: masks and images are offset by half a pixel
(site: facts/data/#half-pixel), so mirroring moves the label off the contrail.

Mapping to 2.x (ShiftScaleRotate is deprecated there and its defaults changed):

- ``ShiftScaleRotate`` -> ``Affine(translate_percent={'x': (-0.2, 0.2), 'y': (-0.2, 0.2)},
  scale=(0.8, 1.2), keep_ratio=True, rotate=(-30, 30), shear=0)``: x and y
  shifts drawn independently as fractions of the side, one isotropic scale
  1 + U(-0.2, 0.2) (1.x used one factor for both axes; 2.x's own
  ShiftScaleRotate passes keep_ratio=False and would stretch the axes
  independently), rotation U(-30°, 30°).
- Border: ``border_mode=cv2.BORDER_REFLECT_101``, the 1.x default (2.x defaults
  to a constant 0 border, which would paint black corners into the ash image
  that no test image has).
- Interpolation: bilinear for the image (1.x default), **nearest for the mask**
  (binary/soft labels keep their values; 1.x did the same for masks).
- ``GaussianBlur()`` in 1.x: kernel 3, 5 or 7 with sigma derived from the kernel
  by OpenCV, 0.3·((k-1)/2 - 1) + 0.8 = 0.8, 1.1, 1.4. 2.x draws sigma on its own
  (default 0.5-3.0, far blurrier), so we pass ``blur_limit=(3, 7),
  sigma_limit=(0.8, 1.4)``, the same range of blur.
- ``MotionBlur()``, ``RandomGamma``, ``RandomBrightnessContrast``: 2.x defaults
  match 1.x in range (kernel 3-7; brightness relative to the dtype maximum).

Randomness: ``Compose(seed=seed)`` owns its generator, so two pipelines built
with the same seed produce the same sequence of augmented samples (global
NumPy/torch seeds have no effect on it). With DataLoader workers every worker
holds a copy of the same generator: call :func:`aug_worker_init_fn` as the
``worker_init_fn`` to give each worker its own stream.
"""

from __future__ import annotations

import albumentations as A
import cv2


def get_aug(seed: int | None = None) -> A.Compose:
    """The training augmentation; image (H, W, C) uint8 and mask (H, W[, 1]) uint8, jointly."""
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


def aug_worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed the dataset's augmentation per worker.

    Derives the worker's seed from torch's per-worker seed (itself derived from
    the loader's generator), so runs stay reproducible and workers differ.
    """
    import torch

    info = torch.utils.data.get_worker_info()
    tfms = getattr(info.dataset, "tfms", None) if info is not None else None
    if tfms is not None and hasattr(tfms, "set_random_seed"):
        tfms.set_random_seed(int(info.seed % 2**31))
