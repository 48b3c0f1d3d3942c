"""`shakyo prepare`: tile layout, quantisation, labels, bad input, crash safety.

Expected tiles are computed here from the formulas of FACTS §1 in float64,
without calling the reference's ash colour.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from reference.cli import main
from reference.data.prepare import prepare

REPO = Path(__file__).resolve().parents[1]


def expected_255v(b11, b14, b15) -> np.ndarray:
    """255 · ash colour in float64, (H, W, 24) with channel = colour·8 + frame (FACTS §1)."""
    b11, b14, b15 = (np.asarray(b, np.float64) for b in (b11, b14, b15))
    r = (b15 - b14 + 4) / 6
    g = (b14 - b11 + 4) / 9
    b = (b14 - 243) / 60
    v = np.clip(np.stack([r, g, b], axis=2), 0, 1)  # (H, W, 3, 8)
    h, w = v.shape[:2]
    out = np.empty((h, w, 24))
    for c in range(3):
        for t in range(8):
            out[:, :, c * 8 + t] = 255 * v[:, :, c, t]
    return out


def assert_tile_matches(tile: np.ndarray, x255: np.ndarray) -> None:
    """tile == floor(x255), except that pixels within 1e-4 of an integer may differ by one
    (the reference computes in float32 like the original; the expectation is float64)."""
    assert tile.dtype == np.uint8 and tile.shape == x255.shape
    want = np.floor(x255)
    ambiguous = (np.abs(x255 - np.round(x255)) < 1e-4) & (x255 > 0) & (x255 < 255)
    diff = tile.astype(np.int64) - want
    assert np.all(diff[~ambiguous] == 0), f"{int((diff[~ambiguous] != 0).sum())} pixels differ"
    assert np.all(np.abs(x255[ambiguous] - tile[ambiguous]) <= 1 + 1e-4)
    assert ambiguous.mean() < 1e-3


def _labelled_bands(h=4, w=5):
    """Bands whose ash colour is a distinct constant per (colour, frame): code k = 80c + 10t + 3,
    value (k + 0.5) / 255, so floor(255 v) = k exactly and every channel is recognisable."""
    k = np.array([[80 * c + 10 * t + 3 for t in range(8)] for c in range(3)], np.float64)
    v = (k + 0.5) / 255  # (3, 8)
    b14 = 243 + 60 * v[2]
    b15 = b14 + 6 * v[0] - 4
    b11 = b14 - 9 * v[1] + 4
    bands = [np.broadcast_to(b, (h, w, 8)).copy() for b in (b11, b14, b15)]
    return bands, k.astype(np.uint8)


def test_tile_channel_layout_is_colour_times_8_plus_frame(tmp_path, data_record_writer):
    (b11, b14, b15), codes = _labelled_bands()
    pixel = np.zeros((4, 5, 1))
    pixel[1, 2] = 1
    data_record_writer(tmp_path / "d/train/111", b11, b14, b15, pixel=pixel)
    data_record_writer(tmp_path / "d/validation/222", b11, b14, b15, pixel=pixel)
    prepare(tmp_path / "d", single_frame=True, workers=1, progress=False)

    img = tifffile.imread(tmp_path / "d/train_adj2/111_img.tif")
    assert img.shape == (4, 5, 24) and img.dtype == np.uint8
    for c in range(3):
        for t in range(8):
            assert np.all(img[:, :, c * 8 + t] == codes[c, t]), (c, t)
    single = tifffile.imread(tmp_path / "d/train_adj2single/111_img.tif")
    assert single.shape == (4, 5, 3)
    assert list(single[0, 0]) == [codes[0, 4], codes[1, 4], codes[2, 4]]

    mask_train = tifffile.imread(tmp_path / "d/train_adj2/111_mask.tif")
    mask_val = tifffile.imread(tmp_path / "d/val_adj2/222_mask.tif")
    assert mask_train.shape == (4, 5) and mask_val.shape == (4, 5, 1)
    assert mask_train.dtype == np.uint8
    assert mask_train[1, 2] == 255 and mask_train.sum() == 255
    np.testing.assert_array_equal(mask_val[..., 0], mask_train)
    assert tifffile.imread(tmp_path / "d/val_adj2single/222_mask.tif").shape == (4, 5, 1)


def test_quantisation_floors_random_temperatures(tmp_path, data_record_writer):
    rng = np.random.default_rng(3)
    b14 = rng.uniform(235, 310, (16, 16, 8))
    b15 = b14 + rng.uniform(-5, 3, b14.shape)
    b11 = b14 - rng.uniform(-5, 6, b14.shape)
    data_record_writer(tmp_path / "d/train/1", b11, b14, b15, pixel=np.zeros((16, 16, 1)))
    prepare(tmp_path / "d", workers=1, progress=False)
    tile = tifffile.imread(tmp_path / "d/train_adj2/1_img.tif")
    # The expectation starts from the float32 values actually stored on disk.
    f32 = [np.asarray(b, np.float32) for b in (b11, b14, b15)]
    assert_tile_matches(tile, expected_255v(*f32))


@pytest.mark.parametrize(
    ("votes", "n_annotators", "expected"),
    [([0, 1, 2, 3], 3, [0, 85, 170, 255]), ([0, 1, 2, 3, 4], 4, [0, 63, 127, 191, 255])],
)
def test_soft_labels_are_floor_of_255_times_annotator_mean(
    tmp_path, data_record_writer, votes, n_annotators, expected
):
    n = len(votes)
    individual = np.zeros((1, n, 1, n_annotators))
    for j, k in enumerate(votes):
        individual[0, j, 0, :k] = 1
    pixel = (individual.mean(-1) > 0.5).astype(int)
    bands = [np.full((1, n, 8), 280.0)] * 3
    data_record_writer(tmp_path / "d/train/5", *bands, pixel=pixel, individual=individual)
    data_record_writer(tmp_path / "d/validation/6", *bands, pixel=pixel)
    prepare(tmp_path / "d", labels="soft", workers=1, progress=False)
    assert list(tifffile.imread(tmp_path / "d/train_adj2/5_mask.tif")[0]) == expected
    # Validation has no individual masks: always the hard majority mask.
    val = tifffile.imread(tmp_path / "d/val_adj2/6_mask.tif")
    np.testing.assert_array_equal(val[0, :, 0], pixel[0, :, 0] * 255)


def test_synth_then_prepare_matches_the_formulas(tmp_path):
    data = tmp_path / "D"
    # The command, at 64² (COMMON: tests use 64² tiles); the layout is size-independent.
    synth = ["synth", str(data), "--train", "6", "--val", "3", "--test", "2", "--seed", "0"]
    assert main([*synth, "--size", "64"]) == 0
    assert main(["prepare", str(data)]) == 0
    for split, folder in (("train", "train_adj2"), ("validation", "val_adj2")):
        records = sorted((data / split).iterdir())
        assert len(records) == {"train": 6, "validation": 3}[split]
        assert len(list((data / folder).glob("*_img.tif"))) == len(records)
        for rec in records:
            bands = [np.load(rec / f"band_{b}.npy") for b in (11, 14, 15)]
            tile = tifffile.imread(data / folder / f"{rec.name}_img.tif")
            assert tile.shape == (64, 64, 24)
            assert_tile_matches(tile, expected_255v(*bands))
            mask = tifffile.imread(data / folder / f"{rec.name}_mask.tif")
            pixel = np.load(rec / "human_pixel_masks.npy")
            want = (pixel * 255).astype(np.uint8)
            np.testing.assert_array_equal(mask, want[..., 0] if split == "train" else want)
    assert not list(data.glob("test_adj2*")), "test records are never tiled"


def test_rerun_skips_complete_records(tmp_path, data_record_writer):
    bands = [np.full((8, 8, 8), 280.0)] * 3
    for rid in ("1", "2"):
        data_record_writer(tmp_path / f"d/train/{rid}", *bands, pixel=np.zeros((8, 8, 1)))
    assert prepare(tmp_path / "d", workers=1, progress=False)["written"] == 2
    (tmp_path / "d/train_adj2/2_mask.tif").unlink()  # as if killed between image and mask
    stats = prepare(tmp_path / "d", workers=1, progress=False)
    assert (stats["written"], stats["skipped"]) == (1, 1)


# ------------------------------------------------------------------------ bad input


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "reference.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def _good(writer, folder: Path, shape=(8, 8, 8)):
    bands = [np.full(shape, 280.0)] * 3
    return writer(folder, *bands, pixel=np.zeros(shape[:2] + (1,)))


def _break_missing(rec):
    (rec / "band_14.npy").unlink()
    return rec / "band_14.npy"


def _break_shape(rec):
    np.save(rec / "band_15.npy", np.full((8, 8, 7), 280.0, np.float32))
    return rec / "band_15.npy"


def _break_nan(rec):
    arr = np.full((8, 8, 8), 280.0, np.float32)
    arr[3, 3, 3] = np.nan
    np.save(rec / "band_11.npy", arr)
    return rec / "band_11.npy"


def _break_truncated(rec):
    path = rec / "band_14.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    "breaker",
    [_break_missing, _break_shape, _break_nan, _break_truncated],
    ids=["missing-band", "wrong-shape", "nan", "truncated-npy"],
)
def test_bad_record_gives_exit_2_and_one_line_naming_the_file(
    tmp_path, data_record_writer, breaker
):
    _good(data_record_writer, tmp_path / "d/train/1")
    bad_file = breaker(_good(data_record_writer, tmp_path / "d/train/2"))
    result = _run_cli("prepare", str(tmp_path / "d"), "--workers", "1")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shakyo prepare: error: ")
    assert str(bad_file) in lines[0]


def test_empty_split_folder_gives_exit_2(tmp_path):
    (tmp_path / "d/train").mkdir(parents=True)
    result = _run_cli("prepare", str(tmp_path / "d"))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(tmp_path / "d/train") in lines[0]


def test_folder_without_kaggle_layout_gives_exit_2(tmp_path):
    (tmp_path / "d").mkdir()
    result = _run_cli("prepare", str(tmp_path / "d"))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and str(tmp_path / "d") in result.stderr


def test_unwritable_output_gives_exit_2(tmp_path, data_record_writer):
    _good(data_record_writer, tmp_path / "d/train/1")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should go")
    # A path below a regular file cannot be created, even by root (chmod would not stop root).
    result = _run_cli("prepare", str(tmp_path / "d"), "--out", str(blocker / "tiles"))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(blocker / "tiles") in lines[0], result.stderr


# ----------------------------------------------------------------------- kill -9


def test_kill_9_then_rerun_leaves_only_valid_tiles(tmp_path, data_record_writer):
    rng = np.random.default_rng(0)
    n = 24
    base = rng.uniform(240, 300, (256, 256, 8)).astype(np.float32)
    for i in range(n):
        b14 = base + np.float32(i * 0.37)
        data_record_writer(
            tmp_path / f"d/train/{1000 + i}",
            b14 - 1.5,
            b14,
            b14 - 0.8,
            pixel=np.zeros((256, 256, 1)),
        )
    out = tmp_path / "d/train_adj2"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference.cli", "prepare", str(tmp_path / "d"), "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the pool workers too
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(list(out.glob("*_img.tif"))) < 3:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("*_mask.tif")))
    assert 0 < len(list(out.glob("*_img.tif"))) and done < n, "the kill must land mid-run"

    stats = prepare(tmp_path / "d", workers=2, progress=False)
    assert stats["skipped"] >= done - 1 and stats["written"] >= n - done
    assert sorted(p.name for p in out.glob("*_img.tif")) == [
        f"{1000 + i}_img.tif" for i in range(n)
    ]
    for i in range(n):
        tile = tifffile.imread(out / f"{1000 + i}_img.tif")
        b14 = base + np.float32(i * 0.37)
        assert_tile_matches(tile, expected_255v(b14 - np.float32(1.5), b14, b14 - np.float32(0.8)))
        assert tifffile.imread(out / f"{1000 + i}_mask.tif").shape == (256, 256)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_keep_heap_memory_is_accepted_by_glibc_and_stops_page_faults():
    """synth and prepare workers call keep_heap_memory(); glibc must accept the
    settings (mallopt returns 1), and then freeing and re-allocating a 4 MB array
    several 2 MB temporaries, as a record's arithmetic does, must stop
    page-faulting their memory in again (the cost it exists to remove)."""
    code = (
        "import resource, numpy as np\n"
        "from reference.utils import keep_heap_memory\n"
        "def faults():\n"
        "    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(20):\n"
        "        a = [np.ones(1 << 19, np.float32) for _ in range(8)]; del a\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0\n"
        "faults(); before = faults()\n"
        "ok = keep_heap_memory(); faults(); after = faults()\n"
        "print(ok, before, after)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    ok, before, after = out[0], int(out[1]), int(out[2])
    assert ok == "True"
    # By default glibc trims the freed 16 MB each round: 20 * 4096 pages faulted
    # again (at least half of them); kept in the heap: about none.
    assert before > 20 * 4096 // 2, before
    assert after < 200, after
