"""Run-length encoding and the Kaggle submission file: write it, check it.

The competition scores a CSV with header ``record_id,encoded_pixels``. Each
mask is run-length encoded in **column-major** order (the mask is transposed,
then flattened), as 1-indexed ``start length`` pairs separated by spaces; an
empty mask is written as ``-``. The score is the global Dice over all pixels
of all test records (site: facts/inference/#rle; site: facts/training/#metric).

This module needs only NumPy, so ``shakyo submission check`` starts quickly
and runs on any machine.

CLI::

    shakyo submission check submission.csv --data DIR
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference.errors import DataError
from reference.utils import atomic_write_text

HEADER = ("record_id", "encoded_pixels")
EMPTY = "-"
# The band file that every record folder has (train, validation and test);
# only its shape is read, to know H and W.
SHAPE_FILE = "band_11.npy"
MASK_FILE = "human_pixel_masks.npy"


# --------------------------------------------------------------------------- RLE


def _runs(pixels: np.ndarray) -> np.ndarray:
    """1-indexed ``start, length, start, length, ...`` of the runs of ones.

    pixels: (N,) of 0/1 -> (2R,) int64 for R runs.
    """
    # Padding with a zero on both sides makes every run have a rising and a
    # falling edge, so a run that touches either end is found too.
    padded = np.concatenate([[0], pixels.astype(np.int8), [0]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1  # 1-indexed
    edges[1::2] -= edges[::2]  # end -> length
    return edges


def _join(runs: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in runs)


def rle_encode_less_memory(img: np.ndarray) -> str:
    """Run-length encode a mask exactly as the published submission code does.

    img: (H, W) of 0/1 (bool or numbers) -> ``"start length ..."`` ('' when empty).

    Pixels are read column by column (``img.T.flatten()``), and the **first and
    last pixels are forced to 0** before encoding: the published encoder looks
    for value changes between neighbours, which only works if both ends are 0.
    So a contrail touching pixel (0, 0) or (H-1, W-1) loses that one pixel.
    Use :func:`rle_encode` for the exact encoding.
    """
    pixels = (np.asarray(img) != 0).T.flatten()  # flatten copies: img is untouched
    pixels[0] = 0
    pixels[-1] = 0
    return _join(_runs(pixels))


def rle_encode(mask: np.ndarray) -> str:
    """Exact column-major run-length encoding, without forced zeros.

    mask: (H, W) of 0/1 -> ``"start length ..."`` ('' when empty).
    """
    return _join(_runs((np.asarray(mask) != 0).T.flatten()))


def parse_rle(rle: str) -> list[tuple[int, int]]:
    """``"start length ..."`` -> [(start, length), ...]; raises ValueError with the reason.

    Checks what a scorer relies on: an even number of tokens, every token a
    positive integer written in plain digits, starts strictly ascending and
    runs that do not overlap. ``'-'`` and ``''`` mean an empty mask.
    """
    rle = rle.strip()
    if rle in ("", EMPTY):
        return []
    tokens = rle.split()
    if len(tokens) % 2:
        raise ValueError(f"odd number of tokens ({len(tokens)}); expected start/length pairs")
    for t in tokens:
        if not t.isdigit():
            raise ValueError(f"token {t!r} is not a positive integer")
    values = [int(t) for t in tokens]
    runs = list(zip(values[::2], values[1::2]))
    previous_end = 0  # 1-indexed last pixel of the previous run
    for start, length in runs:
        if start < 1:
            raise ValueError(f"start {start} must be >= 1 (pixels are 1-indexed)")
        if length < 1:
            raise ValueError(f"run at {start} has length {length}; lengths must be >= 1")
        if start <= previous_end:
            raise ValueError(
                f"run at {start} is unsorted or overlaps the previous run ending at {previous_end}"
            )
        previous_end = start + length - 1
    return runs


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`rle_encode`.

    rle: ``"start length ..."``, ``'-'`` or '' ; shape: (H, W) -> (H, W) uint8 of 0/1.
    Raises ValueError on a malformed string or a run outside the mask.
    """
    h, w = shape
    flat = np.zeros(h * w, dtype=np.uint8)
    for start, length in parse_rle(rle):
        if start + length - 1 > h * w:
            raise ValueError(
                f"run {start} {length} ends at pixel {start + length - 1} > H*W = {h * w}"
            )
        flat[start - 1 : start - 1 + length] = 1
    # Column-major: the flat index walks down a column first.
    return flat.reshape(w, h).T.copy()


# -------------------------------------------------------------- record folders


def record_sort_key(record_id: str) -> tuple:
    """Order record ids numerically when they are numbers (Kaggle's are), else as text."""
    return (0, int(record_id), record_id) if record_id.isdigit() else (1, 0, record_id)


def list_record_dirs(data_dir: str | os.PathLike) -> list[Path]:
    """The record folders of a Kaggle split folder (e.g. ``test/``), sorted by record id."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: not a folder; pass --data the folder of record folders")
    dirs = [p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not dirs:
        raise DataError(
            f"{data_dir}: no record folders inside; pass --data a split folder such as test/"
        )
    return sorted(dirs, key=lambda p: record_sort_key(p.name))


def record_shape(record_dir: Path) -> tuple[int, int]:
    """(H, W) of a record, read from the header of its band file (no pixel is loaded)."""
    for name in (SHAPE_FILE, MASK_FILE):
        f = record_dir / name
        if f.is_file():
            try:
                shape = np.load(f, mmap_mode="r").shape
            except (OSError, ValueError) as e:
                raise DataError(f"{f}: cannot read ({e}); re-copy the record folder") from e
            return int(shape[0]), int(shape[1])
    raise DataError(f"{record_dir}: no {SHAPE_FILE}; is this a Kaggle record folder?")


# ------------------------------------------------------------------- writing


def write_submission(path: str | os.PathLike, rles: dict[str, str]) -> Path:
    """Write ``{record_id: rle}`` as a submission CSV, rows sorted by record id, atomically.

    An empty string becomes ``-``, the competition's empty mask.
    """
    lines = [",".join(HEADER)]
    for rid in sorted(rles, key=record_sort_key):
        lines.append(f"{rid},{rles[rid] or EMPTY}")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


# ------------------------------------------------------------------ checking


@dataclass
class SubmissionReport:
    """What :func:`check_submission` found in a valid submission."""

    path: Path
    n_records: int
    n_nonempty: int
    n_positive: int  # predicted contrail pixels over all records
    n_pixels: int  # all pixels of all records
    dice: float | None  # global Dice against human_pixel_masks.npy, when every record has one

    def summary(self) -> str:
        text = (
            f"{self.path}: OK, {self.n_records} records, {self.n_nonempty} non-empty masks, "
            f"{self.n_positive} positive pixels ({self.n_positive / max(self.n_pixels, 1):.4%})"
        )
        if self.dice is not None:
            text += f", global Dice {self.dice:.4f}"
        return text


def _fail(path: Path, where: str, problem: str) -> DataError:
    return DataError(f"{path}:{where}: {problem}")


def _read_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # tolerate an Excel BOM
            yield from enumerate(csv.reader(f), start=1)
    except FileNotFoundError as e:
        raise DataError(f"{path}: no such file; pass the submission CSV to check") from e
    except IsADirectoryError:
        raise DataError(
            f"{path}: is a folder; pass the submission CSV to check, e.g. {path / 'submission.csv'}"
        ) from None
    except OSError as e:
        raise DataError(
            f"{path}: cannot read it ({e.strerror or e}); pass a readable CSV"
        ) from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e


def check_submission(path: str | os.PathLike, data_dir: str | os.PathLike) -> SubmissionReport:
    """Validate a submission against the record folders of ``data_dir``.

    Raises :class:`DataError` with one line ``FILE:LINE: record ID: problem`` at
    the first problem: wrong header, an id twice, an id that is not a record
    folder, a missing id, a malformed RLE or a run outside [1, H·W]. When every
    record folder has ``human_pixel_masks.npy`` (a validation split), the
    report carries the global Dice 2·TP / (2·TP + FP + FN + 1e-6) over all
    pixels, the competition's score (site: facts/training/#metric).
    """
    path = Path(path)
    records = {p.name: p for p in list_record_dirs(data_dir)}
    seen: dict[str, int] = {}
    n_nonempty = n_positive = n_pixels = 0
    with_masks = all((p / MASK_FILE).is_file() for p in records.values())
    tp = fp = fn = 0
    header_seen = False
    for lineno, row in _read_rows(path):
        if not header_seen:
            if tuple(c.strip() for c in row) != HEADER:
                raise _fail(path, str(lineno), f"header is {row!r}; expected {','.join(HEADER)}")
            header_seen = True
            continue
        if not row:
            continue  # a blank line, e.g. a trailing one
        if len(row) != 2:
            raise _fail(path, str(lineno), f"{len(row)} fields; expected record_id,encoded_pixels")
        rid, rle = row[0].strip(), row[1]
        where = f"{lineno}: record {rid}"
        if rid in seen:
            raise _fail(path, where, f"duplicate record id (first on line {seen[rid]})")
        if rid not in records:
            raise _fail(path, where, f"no such record folder in {data_dir}")
        seen[rid] = lineno
        shape = record_shape(records[rid])
        try:
            mask = rle_decode(rle, shape)
        except ValueError as e:
            raise _fail(path, where, f"bad RLE: {e}") from None
        n_pixels += mask.size
        positive = int(mask.sum())
        n_positive += positive
        n_nonempty += positive > 0
        if with_masks:
            gt = _load_mask(records[rid] / MASK_FILE, shape)
            tp += int(np.sum((mask == 1) & gt))
            fp += int(np.sum((mask == 1) & ~gt))
            fn += int(np.sum((mask == 0) & gt))
    if not header_seen:
        raise _fail(path, "1", f"empty file; expected the header {','.join(HEADER)}")
    missing = [rid for rid in records if rid not in seen]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise _fail(path, "end", f"record {missing[0]}{more} of {data_dir} has no row")
    dice = 2 * tp / (2 * tp + fp + fn + 1e-6) if with_masks else None
    return SubmissionReport(path, len(seen), n_nonempty, n_positive, n_pixels, dice)


def _load_mask(f: Path, shape: tuple[int, int]) -> np.ndarray:
    """human_pixel_masks.npy (H, W, 1) -> (H, W) bool."""
    try:
        m = np.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{f}: cannot read ({e}); re-copy the record folder") from e
    m = m.reshape(m.shape[0], m.shape[1])
    if m.shape != shape:
        raise DataError(f"{f}: mask shape {m.shape} differs from the record's {shape}")
    return m > 0.5


# ----------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="validate a submission CSV against record folders",
        description="Validate a submission CSV against the record folders of --data; "
        "report the global Dice when the folders have human_pixel_masks.npy.",
    )
    check.add_argument("file", type=Path, help="submission CSV")
    check.add_argument(
        "--data", type=Path, required=True, help="folder of record folders (e.g. test/)"
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        print(check_submission(args.file, args.data).summary())
        return 0
    raise AssertionError(args.action)  # argparse only accepts known actions
