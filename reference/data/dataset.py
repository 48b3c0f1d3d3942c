"""Torch datasets: prepared tiles for training, Kaggle record folders for inference (site: facts/data/#dataset; site: facts/inference/#test-item)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from reference.data.ash import get_false_color, to_uint8
from reference.data.records import list_records, read_record
from reference.errors import DataError

N_FRAMES_USED = 5  # frames 0..4: the labelled frame and the four before it


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's own log lines: a damaged tile is reported in our one line."""
    log = logging.getLogger("tifffile")
    old = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = old


def _imread(path: Path) -> np.ndarray:
    import tifffile

    if not path.is_file():
        raise DataError(f"{path}: file is missing; rerun `shakyo prepare`")
    try:
        with _quiet_tifffile():
            return tifffile.imread(path)
    except Exception as e:  # tifffile raises many types for a damaged file
        raise DataError(
            f"{path}: damaged tif ({type(e).__name__}); delete it and rerun `shakyo prepare`"
        ) from None


def _tile_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a tif from its header; DataError when damaged or truncated."""
    import tifffile

    problem = None
    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tf:
            page = tf.pages.first
            shape, dtype = tuple(page.shape), page.dtype
            ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
            if not ends or max(ends) > path.stat().st_size:
                problem = "truncated: its data runs past the end of the file"
    except Exception as e:  # tifffile raises many types for a damaged file
        problem = type(e).__name__
    if problem is not None:
        raise DataError(f"{path}: damaged tif ({problem}); delete it and rerun `shakyo prepare`")
    return shape, dtype


def check_tiles(folder: str | os.PathLike) -> int:
    """Check every tile pair of ``folder`` from the tif headers (no pixel is read); their count.

    Each ``*_img.tif`` needs its ``*_mask.tif``; both must be whole uint8 tifs of
    the same H, W (image (H, W, 24) or (H, W, 3), mask (H, W) or (H, W, 1)).
    About 0.1 ms per file, so training finds a damaged tile before it makes its
    run folder, not in the middle of an epoch. Raises DataError naming the file.
    """
    folder = Path(folder)
    images = sorted(folder.glob("*_img.tif"))
    for img in images:
        mask = img.with_name(img.name[: -len("_img.tif")] + "_mask.tif")
        if not mask.is_file():
            raise DataError(f"{mask}: file is missing for {img.name}; rerun `shakyo prepare`")
        shape, dtype = _tile_header(img)
        if len(shape) != 3 or shape[2] not in (3, 24) or dtype != np.uint8:
            raise DataError(
                f"{img}: {dtype} {shape}, expected uint8 (H, W, 24) or (H, W, 3); "
                "rerun `shakyo prepare` into an empty folder"
            )
        mshape, mdtype = _tile_header(mask)
        if mshape[:2] != shape[:2] or len(mshape) > 3 or mdtype != np.uint8:
            raise DataError(
                f"{mask}: {mdtype} {mshape}, expected uint8 {shape[:2]} like {img.name}; "
                "rerun `shakyo prepare` into an empty folder"
            )
    return len(images)


class ContrailsDatasetV0(Dataset):
    """Prepared tiles under a data root, as the published dataset reads them.

    ``path`` is the data root: the tiles are read from ``path/train_adj2`` when
    ``train`` and from ``path/val_adj2`` otherwise, as in the original
    (``folder`` names another subfolder, e.g. ``train_adj2single``; ``""`` reads
    ``path`` itself).

    Item: (image (3, 5, H, W) float32 in [0, 1], mask (1, H, W) float32 in [0, 1]).
    The tile (H, W, 24) uint8 is viewed as (H, W, 3, 8) = (colour, frame),
    frames 0..4 are kept and flattened to (H, W, 15) (channel = colour·5 +
    frame), ``tfms`` is applied jointly to image and mask whenever it is given
    (the published train.py passes none for validation), then /255, CHW
    (15, H, W) and a view to (3, 5, H, W). A single-frame tile (H, W, 3) gives
    (3, 1, H, W).

    Files: every ``*_img.tif`` of the folder, sorted, repeated ``repeat`` times;
    len = n_files · repeat.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        train: bool = True,
        tfms=None,
        repeat: int = 1,
        folder: str | None = None,
    ) -> None:
        sub = folder if folder is not None else ("train_adj2" if train else "val_adj2")
        self.path = Path(path) / sub
        if not self.path.is_dir():
            raise DataError(
                f"{self.path}: tile folder does not exist; run `shakyo prepare DATA` first"
            )
        self.fnames = sorted(self.path.glob("*_img.tif"))
        if not self.fnames:
            raise DataError(f"{self.path}: no *_img.tif tiles; run `shakyo prepare DATA` first")
        self.fnames = self.fnames * repeat
        self.train = train
        self.tfms = tfms

    def __len__(self) -> int:
        return len(self.fnames)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        fname = self.fnames[idx]
        img = _imread(fname)
        if img.ndim != 3 or img.shape[2] not in (3, 24):
            raise DataError(f"{fname}: shape {img.shape}, expected (H, W, 24) or (H, W, 3)")
        h, w, c = img.shape
        if c == 24:
            img = img.reshape(h, w, 3, 8)[..., :N_FRAMES_USED].reshape(h, w, 3 * N_FRAMES_USED)
        mask = _imread(fname.with_name(fname.name[: -len("_img.tif")] + "_mask.tif"))
        if self.tfms is not None:
            out = self.tfms(image=img, mask=mask)
            img, mask = out["image"], out["mask"]
        n_frames = img.shape[2] // 3
        image = torch.from_numpy(img / 255.0).float().permute(2, 0, 1).reshape(3, n_frames, h, w)
        mask = torch.from_numpy(np.asarray(mask).reshape(h, w) / 255.0).float().unsqueeze(0)
        return image, mask


class ContrailsDataset(Dataset):
    """Kaggle record folders for inference (``test/`` holding ``{record_id}/band_*.npy``).

    Item: (image (3, 8, H, W) float32, record_id str): the ash colour of all 8
    frames, quantised exactly as the training tiles, floor(255·v)/255; the
    model keeps frames 0..4 itself.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.records = list_records(self.path)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, str]:
        folder = self.records[idx]
        false_color = get_false_color(read_record(folder, masks=False), full=True)  # (H, W, 3, 8)
        quantised = to_uint8(false_color).astype(np.float32) / np.float32(255)
        image = torch.from_numpy(quantised).permute(2, 3, 0, 1).contiguous()
        return image, folder.name
