"""``kill -9`` of ``shakyo prepare`` mid-write, then a rerun: no ``.tmp-*`` file, no image
without its mask (issue 11, item 5).

The kill must land while a tile is half-written, on any machine. So the child is a real
prepare whose tifffile writer, at one chosen tile, writes part of the bytes into the
real temporary file, tells the test it is there and blocks; the test waits for that
(no timing guess), proves a second prepare is kept out by the lock (and so cannot sweep
the live temporary), kills the child with SIGKILL and reruns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from reference.data.prepare import prepare
from reference.errors import DataError

REPO = Path(__file__).resolve().parents[1]

# The child: prepare with one worker, blocking inside the 4th tif write (record 2's image,
# after its mask: mask-first order) once part of it is in the temporary file.
CHILD = """
import sys, time
import tifffile
from reference.data import prepare as p

real, calls = tifffile.imwrite, [0]

def imwrite(f, arr, **kw):
    calls[0] += 1
    if calls[0] == 4:
        f.write(b"II*\\x00 half a tile")
        f.flush()
        open(sys.argv[2], "w").close()
        time.sleep(3600)
    return real(f, arr, **kw)

tifffile.imwrite = imwrite
p.prepare(sys.argv[1], workers=1, progress=False)
"""


def _dataset(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        rec = root / "train" / f"{1000 + i}"
        rec.mkdir(parents=True)
        b14 = rng.uniform(240, 300, (32, 32, 8)).astype(np.float32)
        for name, arr in (("11", b14 - 1.5), ("14", b14), ("15", b14 - 0.8)):
            np.save(rec / f"band_{name}.npy", arr)
        np.save(rec / "human_pixel_masks.npy", np.zeros((32, 32, 1), np.int32))


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, "the child prepare ended before the kill point"
        assert time.monotonic() < deadline, "the child prepare never reached the kill point"
        time.sleep(0.05)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_mid_tile_then_rerun_leaves_no_tmp_file_and_no_image_without_mask(tmp_path):
    n = 5
    data = tmp_path / "d"
    _dataset(data, n)
    ready = tmp_path / "ready"
    out = data / "train_adj2"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(ready)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(ready, proc)
        live = list(out.glob(".tmp-*"))
        assert len(live) == 1, live  # the half-written image, under its temporary name
        # A second prepare is refused while the first holds the lock: it must not sweep
        # the temporary file of a run that is still writing.
        with pytest.raises(DataError, match="another `shakyo prepare` is writing there"):
            prepare(data, workers=1, progress=False)
        assert live[0].exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    images = {p.name[: -len("_img.tif")] for p in out.glob("*_img.tif")}
    masks = {p.name[: -len("_mask.tif")] for p in out.glob("*_mask.tif")}
    assert images == {"1000"} and masks == {"1000", "1001"}  # masks before images
    assert list(out.glob(".tmp-*")), "the kill left the temporary file the rerun must sweep"

    stats = prepare(data, workers=1, progress=False)

    assert stats["written"] == n - 1 and stats["skipped"] == 1
    assert not [p for p in data.rglob(".tmp-*")]
    assert sorted(p.name for p in out.glob("*_img.tif")) == [
        f"{1000 + i}_img.tif" for i in range(n)
    ]
    for i in range(n):
        assert tifffile.imread(out / f"{1000 + i}_img.tif").shape == (32, 32, 24)
        assert tifffile.imread(out / f"{1000 + i}_mask.tif").shape == (32, 32)


def test_bands_the_ash_colour_does_not_use_may_be_missing(tmp_path):
    """README: only bands 11, 14 and 15 are read; a record without the other six prepares."""
    data = tmp_path / "d"
    _dataset(data, 1)  # bands 11, 14, 15 and the mask only: no band_08 ... band_16 besides
    assert sorted(p.name for p in (data / "train/1000").iterdir()) == [
        "band_11.npy", "band_14.npy", "band_15.npy", "human_pixel_masks.npy"
    ]  # fmt: skip
    assert prepare(data, workers=1, progress=False)["written"] == 1
    assert tifffile.imread(data / "train_adj2/1000_img.tif").shape == (32, 32, 24)
