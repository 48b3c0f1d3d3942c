"""Kaggle record folders -> uint8 ash-colour tiles (``shakyo prepare``), (site: facts/data/#tiles).

For every record of ``DATA/train`` and ``DATA/validation``::

    {out}/train_adj2/{record_id}_img.tif    (H, W, 24) uint8, channel = colour·8 + frame
    {out}/train_adj2/{record_id}_mask.tif   (H, W)     uint8 0/255 (hard), or soft
    {out}/val_adj2/{record_id}_img.tif      (H, W, 24) uint8
    {out}/val_adj2/{record_id}_mask.tif     (H, W, 1)  uint8 0/255

and with ``--single-frame`` also ``train_adj2single/`` and ``val_adj2single/``
holding the labelled frame only, (H, W, 3). Image values are floor(255·v) of
the ash colour v in [0, 1] (truncation, as the published code's cast).

Labels: ``--labels hard`` (the published code) stores the majority mask
``human_pixel_masks``. ``--labels soft`` (the write-up, Theo Viel's code) stores
floor(255·mean of the annotators' individual masks) for train. Validation has no
individual masks on Kaggle, so validation always stores the hard mask; the
metric thresholds the target at 0.5 anyway.

Every file is written under a temporary name and renamed, so a tile is either
complete or absent, and the mask before the image, so an image never lacks its
mask. A rerun skips records whose image and mask are both there: after a crash
(even ``kill -9``) it finishes the job without a corrupt tile, and removes the
``.tmp-*`` files the killed run left. A lock (``.prepare.lock`` in the output
folder, ``flock``) keeps a second prepare into the same folder out, so that
sweep never removes a file another run is still writing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from reference.data.ash import false_color_uint8, get_false_color, to_uint8
from reference.data.records import (
    INDIVIDUAL_MASKS,
    N_TIMES_BEFORE,
    PIXEL_MASK,
    list_records,
    read_record,
)
from reference.errors import DataError
from reference.utils import atomic_path, keep_heap_memory

SPLITS = {"train": ("train_adj2", "train_adj2single"), "validation": ("val_adj2", "val_adj2single")}
MANIFEST = ".prepare.json"
LOCK = ".prepare.lock"


# ------------------------------------------------------------------- the conversion


def tile_image(record: dict[str, np.ndarray]) -> np.ndarray:
    """Multi-frame tile: (H, W, 3, 8) ash colour -> (H, W, 24) uint8, C-order reshape,
    so channel index = colour·8 + frame (all 8 frames of R, then G, then B)."""
    false_color = get_false_color(record, full=True)
    h, w = false_color.shape[:2]
    return to_uint8(false_color).reshape(h, w, -1)


def tile_image_single(record: dict[str, np.ndarray]) -> np.ndarray:
    """Single-frame tile: the labelled frame 4, (H, W, 3) uint8."""
    return to_uint8(get_false_color(record, N_TIMES_BEFORE=4, full=False))


def tile_mask(record: dict[str, np.ndarray], split: str, labels: str, path: Path) -> np.ndarray:
    """Mask tile, uint8: train (H, W), validation (H, W, 1), as the published files.

    hard: human_pixel_masks · 255. soft (train only): floor(255 · Σ individual / R),
    computed in integers so that e.g. 2 of 3 annotators give exactly 170.
    """
    if split == "train" and labels == "soft":
        if INDIVIDUAL_MASKS not in record:
            raise DataError(
                f"{path / (INDIVIDUAL_MASKS + '.npy')}: file is missing; --labels soft needs the "
                "annotators' masks (use --labels hard)"
            )
        ind = record[INDIVIDUAL_MASKS].astype(np.int64)[:, :, 0, :]
        return (255 * ind.sum(-1) // ind.shape[-1]).astype(np.uint8)
    if PIXEL_MASK not in record:
        raise DataError(
            f"{path / (PIXEL_MASK + '.npy')}: file is missing; train and validation records need it"
        )
    mask = (record[PIXEL_MASK] * 255).astype(np.uint8)
    return mask[:, :, 0] if split == "train" else mask


# ---------------------------------------------------------------------------- writing


def _write_tif(path: Path, arr: np.ndarray) -> None:
    import tifffile

    # Explicit layout: samples last, one grey page. tifffile would otherwise guess
    # from the shape (a 4-pixel-high tile looks like planar RGBA to it).
    kw = {"planarconfig": "contig"} if arr.ndim == 3 and arr.shape[2] > 1 else {}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            tifffile.imwrite(f, arr, photometric="minisblack", **kw)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; tiles are ordinary shared files


def _outputs(out: Path, split: str, rid: str, single: bool) -> list[Path]:
    dirs = SPLITS[split] if single else SPLITS[split][:1]
    return [out / d / f"{rid}_{kind}.tif" for d in dirs for kind in ("img", "mask")]


def prepare_record(task: tuple[str, str, str, str, bool]) -> bool:
    """Convert one record (runs in a worker). Returns False when its tiles already exist."""
    record_dir, split, out, labels, single = task
    record_dir, out = Path(record_dir), Path(out)
    rid = record_dir.name
    if all(p.exists() for p in _outputs(out, split, rid, single)):
        return False
    # Only the masks this tile needs are read (and validated).
    soft = split == "train" and labels == "soft"
    record = read_record(record_dir, masks=(INDIVIDUAL_MASKS,) if soft else (PIXEL_MASK,))
    mask = tile_mask(record, split, labels, record_dir)
    multi, single_dir = SPLITS[split]
    # The same bytes as tile_image / tile_image_single (the readable versions the
    # exercises follow), from one fused pass; tests pin the equality.
    colour = false_color_uint8(record)  # (H, W, 3, 8)
    h, w = colour.shape[:2]
    # Mask first, image last: the dataset lists *_img.tif, so an image never exists
    # without its mask, even after a kill between the two renames.
    if single:
        _write_tif(out / single_dir / f"{rid}_mask.tif", mask)
        _write_tif(
            out / single_dir / f"{rid}_img.tif",
            np.ascontiguousarray(colour[..., N_TIMES_BEFORE]),
        )
    _write_tif(out / multi / f"{rid}_mask.tif", mask)
    _write_tif(out / multi / f"{rid}_img.tif", colour.reshape(h, w, -1))
    return True


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[int]:
    """Hold ``out/.prepare.lock`` (flock) for the whole run; DataError if another run has it.

    The kernel drops the lock when its holder dies, even by ``kill -9``. Yields the
    lock's file descriptor: forked workers close their copy (:func:`_init_worker`), or a
    worker outliving a killed parent by a moment would still hold the lock.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise DataError(
            f"{out}: cannot write tiles there ({e.strerror or e}); pick a writable --out"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"{out}: another `shakyo prepare` is writing there; wait for it, or pick another --out"
            ) from None
        yield fd
    finally:
        os.close(fd)


def _sweep_temporaries(folder: Path) -> int:
    """Remove the ``.tmp-*`` files a killed run left in ``folder``; their count.

    Safe only under the lock: no other prepare is writing into ``folder``.
    """
    n = 0
    for p in folder.glob(".tmp-*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


def _make_output_dirs(out: Path, splits: list[str], labels: str, single: bool) -> None:
    """Create the output folders, prove they are writable, sweep temporaries, pin the label mode."""
    for split in splits:
        for d in SPLITS[split] if single else SPLITS[split][:1]:
            folder = out / d
            try:
                folder.mkdir(parents=True, exist_ok=True)
                _sweep_temporaries(folder)
                fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=folder)
                os.close(fd)
                os.unlink(probe)
            except OSError as e:
                raise DataError(
                    f"{folder}: cannot write tiles there ({e.strerror or e}); pick a writable --out"
                ) from None
            manifest = folder / MANIFEST
            mode = labels if split == "train" else "hard"
            if manifest.exists():
                try:
                    old = json.loads(manifest.read_text()).get("labels")
                except (OSError, ValueError, AttributeError):
                    old = None
                if old != mode:
                    raise DataError(
                        f"{manifest}: tiles there were made with labels={old}, not {mode}; "
                        "use another --out or delete that folder"
                    )
            else:
                with atomic_path(manifest) as tmp:
                    tmp.write_text(json.dumps({"labels": mode}))


def prepare(
    data: str | os.PathLike,
    out: str | os.PathLike | None = None,
    labels: str = "hard",
    single_frame: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
) -> dict[str, float]:
    """Write the tiles of every train and validation record of ``data`` under ``out``.

    workers: processes (default os.cpu_count(); 1 runs in this process).
    progress: tqdm bar; None shows it only on a terminal.
    Returns {'records', 'written', 'skipped', 'seconds', 'records_per_s'}.
    """
    if labels not in ("hard", "soft"):
        raise DataError(f"--labels {labels}: must be hard or soft")
    data = Path(data)
    out = Path(out) if out is not None else data
    if not data.is_dir():
        raise DataError(
            f"{data}: dataset folder does not exist; expected train/ and validation/ in it"
        )
    splits = [s for s in SPLITS if (data / s).exists()]
    if not splits:
        raise DataError(
            f"{data}: no train/ or validation/ folder; point DATA at the Kaggle dataset root"
        )
    tasks = [
        (str(r), split, str(out), labels, single_frame)
        for split in splits
        for r in list_records(data / split)
    ]
    with _exclusive(out) as lock_fd:
        _make_output_dirs(out, splits, labels, single_frame)
        return _convert(tasks, workers, progress, lock_fd)


def _init_worker(lock_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(lock_fd)  # the parent holds the lock; a worker must not
    keep_heap_memory()


def _convert(
    tasks: list, workers: int | None, progress: bool | None, lock_fd: int
) -> dict[str, float]:
    from tqdm import tqdm

    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    start = time.perf_counter()
    written = 0
    bar = tqdm(
        total=len(tasks),
        desc="prepare",
        unit="rec",
        disable=None if progress is None else not progress,
    )
    try:
        if workers == 1:
            for task in tasks:
                written += prepare_record(task)
                bar.update()
        else:
            import multiprocessing as mp

            # fork is safe here: the workers use only NumPy and tifffile (no thread
            # pools inherited half-alive, unlike OpenCV in synth); it starts fastest.
            ctx = mp.get_context("fork" if os.name != "nt" else "spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(lock_fd,)) as pool:
                for done in pool.imap_unordered(prepare_record, tasks, chunksize=2):
                    written += done
                    bar.update()
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return {
        "records": len(tasks),
        "written": written,
        "skipped": len(tasks) - written,
        "seconds": seconds,
        "records_per_s": len(tasks) / max(seconds, 1e-9),
    }


# -------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="Kaggle dataset root holding train/ and validation/")
    parser.add_argument("--out", default=None, help="where the tile folders go (default: DATA)")
    parser.add_argument(
        "--labels",
        choices=("hard", "soft"),
        default="hard",
        help="train masks: hard majority (published code) or soft annotator mean (write-up); "
        "validation is always hard",
    )
    parser.add_argument(
        "--single-frame", action="store_true", help="also write *_adj2single/ (labelled frame only)"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")


def run(args: argparse.Namespace) -> int:
    keep_heap_memory()  # this process converts records itself with --workers 1
    stats = prepare(args.data, args.out, args.labels, args.single_frame, args.workers)
    print(
        f"prepare: {stats['records']} records ({stats['written']} written, {stats['skipped']} "
        f"already done) in {stats['seconds']:.1f} s ({stats['records_per_s']:.1f} records/s)"
    )
    return 0
