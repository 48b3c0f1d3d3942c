"""Kaggle ICRGW record folders: reading and validation.

A record folder ``train/{record_id}/`` holds ``band_08.npy … band_16.npy``, each
(H, W, 8) brightness temperatures in kelvin (8 frames 10 min apart, the labelled
frame is index 4), and, in train and validation, ``human_pixel_masks.npy``
(H, W, 1) and, in train only, ``human_individual_masks.npy`` (H, W, 1, R).

Everything a user can get wrong here (a missing or truncated file, a wrong
shape, NaN values) raises :class:`reference.errors.DataError` with one line that
names the file and the problem, so the CLI can print it and exit with code 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from reference.errors import DataError

ALL_BANDS = ("08", "09", "10", "11", "12", "13", "14", "15", "16")
# The ash false colour needs only these three (site: facts/data/#ash-colour).
ASH_BANDS = ("11", "14", "15")
N_TIMES = 8
N_TIMES_BEFORE = 4
PIXEL_MASK = "human_pixel_masks"
INDIVIDUAL_MASKS = "human_individual_masks"


def _load_npy(path: Path) -> np.ndarray:
    """np.load with every failure turned into a one-line DataError naming ``path``."""
    if not path.is_file():
        raise DataError(f"{path}: file is missing; every record folder needs it")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            f"{path}: not a readable .npy file (truncated or corrupt: {reason}); "
            "re-download or regenerate the record"
        ) from None
    return arr


# Brightness temperatures of the Earth seen at 6-13 µm: about 180-330 K. A median
# outside this range is not kelvin (°C is 273 K lower) or not a brightness temperature.
KELVIN_RANGE = (150.0, 350.0)


def _check_band(path: Path, arr: np.ndarray) -> None:
    if arr.ndim != 3 or arr.shape[2] != N_TIMES:
        raise DataError(f"{path}: shape {arr.shape}, expected (H, W, {N_TIMES})")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{path}: dtype {arr.dtype}, expected floating point kelvin")
    if not np.isfinite(arr).all():
        n = int((~np.isfinite(arr)).sum())
        raise DataError(
            f"{path}: {n} NaN or infinite values; brightness temperatures must be finite"
        )
    median = float(np.median(arr)) if arr.size else KELVIN_RANGE[0]
    lo, hi = KELVIN_RANGE
    if not lo <= median <= hi:
        hint = "; in °C? add 273.15" if -130 <= median <= 80 else ""
        raise DataError(
            f"{path}: median {median:.1f}, not a brightness temperature in kelvin "
            f"(expected about {lo:.0f}-{hi:.0f} K){hint}"
        )


def _check_same_shape(paths: list[Path], arrays: list[np.ndarray]) -> None:
    """All bands (H, W, 8) alike; else name the odd one (the shape most bands have wins)."""
    shapes = [a.shape for a in arrays]
    if len(set(shapes)) <= 1:
        return
    counts = {s: shapes.count(s) for s in shapes}
    # Ties go to the first band read: with two bands there is no majority to trust.
    common = max(counts, key=lambda s: (counts[s], -shapes.index(s)))
    odd = next(i for i, s in enumerate(shapes) if s != common)
    others = ", ".join(p.name for p, s in zip(paths, shapes) if s == common)
    raise DataError(
        f"{paths[odd]}: shape {shapes[odd]}, but {others} {'is' if counts[common] == 1 else 'are'} "
        f"{common}; every band of a record must have the same shape (re-copy this file)"
    )


def _check_mask(path: Path, arr: np.ndarray, hw: tuple[int, int], individual: bool) -> None:
    want = "(H, W, 1, R)" if individual else "(H, W, 1)"
    ndim = 4 if individual else 3
    if arr.ndim != ndim or arr.shape[:2] != hw or arr.shape[2] != 1:
        raise DataError(f"{path}: shape {arr.shape}, expected {want} with H, W = {hw}")
    if individual and arr.shape[3] < 1:
        raise DataError(f"{path}: shape {arr.shape} has no annotators")
    if not ((arr == 0) | (arr == 1)).all():
        raise DataError(f"{path}: mask values must be 0 or 1")


def read_record(
    directory: str | os.PathLike,
    bands: tuple[str, ...] = ASH_BANDS,
    masks: bool | tuple[str, ...] = True,
) -> dict[str, np.ndarray]:
    """Read and validate one Kaggle record folder.

    Returns a dict ``{'band_11': (H, W, 8) float, ..., 'human_pixel_masks':
    (H, W, 1), 'human_individual_masks': (H, W, 1, R)}``; a mask key is present
    when that mask is asked for (``masks`` True = both, or a tuple of names)
    and its file exists (test records have none). Only ``bands`` are read: a
    missing band_08.npy is no error for the ash colour. Raises DataError naming
    the file for a missing band, a wrong shape (the odd band when the bands
    differ), a non-float dtype, NaN/inf values, values that are not kelvin
    (e.g. °C), a truncated file or non-binary masks.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: record folder does not exist")
    record: dict[str, np.ndarray] = {}
    paths = [directory / f"band_{band}.npy" for band in bands]
    arrays = [_load_npy(path) for path in paths]
    for path, arr in zip(paths, arrays):
        if arr.ndim != 3 or arr.shape[2] != N_TIMES:
            raise DataError(f"{path}: shape {arr.shape}, expected (H, W, {N_TIMES})")
    _check_same_shape(paths, arrays)
    hw: tuple[int, int] | None = None
    for band, path, arr in zip(bands, paths, arrays):
        _check_band(path, arr)
        hw = arr.shape[:2]
        record[f"band_{band}"] = arr
    wanted = (PIXEL_MASK, INDIVIDUAL_MASKS) if masks is True else masks or ()
    if hw is not None:
        for name, individual in ((PIXEL_MASK, False), (INDIVIDUAL_MASKS, True)):
            path = directory / f"{name}.npy"
            if name in wanted and path.exists():
                arr = _load_npy(path)
                _check_mask(path, arr, hw, individual)
                record[name] = arr
    return record


def list_records(folder: str | os.PathLike) -> list[Path]:
    """Record folders directly under ``folder`` (e.g. ``train/``), sorted by name.

    Hidden entries (``.tmp-*`` left by an interrupted writer) are ignored.
    Raises DataError when ``folder`` is missing or holds no record folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder does not exist; expected Kaggle record folders in it")
    records = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not records:
        raise DataError(
            f"{folder}: no record folders found; expected {folder}/RECORD_ID/band_*.npy"
        )
    return records
