"""Benchmark: `shakyo prepare` (worker processes) against a plain single-process loop.

    .venv/bin/python benchmarks/prepare.py [--records 96] [--size 256] [--workers N] [--dir DIR]

Synthesizes one dataset (printing synth records/s), converts it into fresh
folders with a plain loop (read bands, ash colour, floor, write tifs) and with
`reference.data.prepare.prepare`, checks that both wrote the same bytes, and
prints the records/s of each and their ratio, from this one run.

The ratio has two sources, printed apart: prepare's per-record work is cheaper
(one fused uint8 pass instead of np.stack + clip + cast; glibc told to keep
freed blocks, see `reference.utils.keep_heap_memory`), measured by
`prepare --workers 1` in this process against the plain loop; and the worker
processes, measured by `--workers N` against `--workers 1`. The data goes to /dev/shm when it exists, so the disk's write speed (a
256² record is 19 MB of float32 bands) does not hide the CPU work; pass --dir
to measure on a disk. Other processes on the machine skew the numbers: quote
the load average printed with them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

from reference.data.ash import get_false_color  # noqa: E402
from reference.data.prepare import prepare  # noqa: E402
from reference.data.synth import synthesize  # noqa: E402
from reference.utils import keep_heap_memory  # noqa: E402


def plain_loop(data: Path, out: Path) -> float:
    """The naive conversion, one record after the other; returns seconds."""
    start = time.perf_counter()
    for split, folder in (("train", "train_adj2"), ("validation", "val_adj2")):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for rec in sorted((data / split).iterdir()):
            record = {f"band_{b}": np.load(rec / f"band_{b}.npy") for b in (11, 14, 15)}
            img = (np.clip(get_false_color(record, full=True) * np.float32(255), 0, 255)).astype(
                np.uint8
            )
            img = img.reshape(img.shape[0], img.shape[1], -1)
            mask = (np.load(rec / "human_pixel_masks.npy") * 255).astype(np.uint8)
            mask = mask[..., 0] if split == "train" else mask
            tifffile.imwrite(
                out / folder / f"{rec.name}_img.tif",
                img,
                photometric="minisblack",
                planarconfig="contig",
            )
            tifffile.imwrite(out / folder / f"{rec.name}_mask.tif", mask, photometric="minisblack")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, default=96, help="train records (validation gets a quarter)"
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="shakyo-bench-", dir=args.dir))
    try:
        n_val = max(1, args.records // 4)
        print(
            f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; data in {root}"
        )
        s = synthesize(
            root / "data",
            args.records,
            n_val,
            0,
            seed=0,
            size=args.size,
            workers=args.workers,
            progress=False,
        )
        print(
            f"synth:    {s['records']} records at {args.size}² in {s['seconds']:.2f} s = {s['records_per_s']:.1f} records/s ({args.workers} workers)"
        )
        n = args.records + n_val
        t_plain = plain_loop(root / "data", root / "plain")  # before keep_heap_memory below
        p = prepare(root / "data", root / "parallel", workers=args.workers, progress=False)
        keep_heap_memory()  # what `shakyo prepare --workers 1` does in its own process
        one = prepare(root / "data", root / "one", workers=1, progress=False)
        for folder in ("train_adj2", "val_adj2"):
            for f in sorted((root / "plain" / folder).iterdir()):
                for other in ("parallel", "one"):
                    assert f.read_bytes() == (root / other / folder / f.name).read_bytes(), f
        print(
            f"plain loop: {n} records in {t_plain:.2f} s = {n / t_plain:.1f} records/s (1 process)"
        )
        print(
            f"prepare:    {n} records in {p['seconds']:.2f} s = {p['records_per_s']:.1f} records/s ({args.workers} workers)"
        )
        print(
            f"prepare --workers 1: {n} records in {one['seconds']:.2f} s = {one['records_per_s']:.1f} records/s"
        )
        print(
            f"per-record work, prepare --workers 1 / plain loop: {t_plain / one['seconds']:.2f}x; "
            f"workers, {args.workers} / 1: {one['seconds'] / p['seconds']:.2f}x"
        )
        print(
            f"ratio prepare / plain loop: {t_plain / p['seconds']:.2f}x  (load average now {os.getloadavg()[0]:.1f})"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
