"""`shakyo synth`: Kaggle layout, mask rules, determinism, a plausible contrail signal."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from reference.data.synth import make_record, record_ids, synthesize
from reference.errors import ConfigError

BANDS = [f"band_{b:02d}.npy" for b in range(8, 17)]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_shapes_dtypes_and_files(data_synth_dir):
    root = data_synth_dir
    assert {p.name for p in root.iterdir()} == {
        "train",
        "validation",
        "test",
        "train_metadata.json",
        "validation_metadata.json",
        "sample_submission.csv",
    }
    counts = {"train": 6, "validation": 3, "test": 2}
    for split, n in counts.items():
        records = sorted((root / split).iterdir())
        assert len(records) == n
        for rec in records:
            assert rec.name.isdigit() and len(rec.name) == 19
            names = {p.name for p in rec.iterdir()}
            masks = {
                "train": {"human_pixel_masks.npy", "human_individual_masks.npy"},
                "validation": {"human_pixel_masks.npy"},
                "test": set(),
            }[split]
            assert names == set(BANDS) | masks
            for band in BANDS:
                arr = np.load(rec / band)
                assert arr.shape == (64, 64, 8) and arr.dtype == np.float32
                assert 180 < arr.min() and arr.max() < 320, (rec, band)
            if split != "test":
                pixel = np.load(rec / "human_pixel_masks.npy")
                assert pixel.shape == (64, 64, 1) and np.issubdtype(pixel.dtype, np.integer)
                assert set(np.unique(pixel)) <= {0, 1}
            if split == "train":
                ind = np.load(rec / "human_individual_masks.npy")
                assert ind.ndim == 4 and ind.shape[:3] == (64, 64, 1) and 3 <= ind.shape[3] <= 6
                assert set(np.unique(ind)) <= {0, 1}
                # Kaggle's rule: a pixel is contrail when more than half of the annotators say so.
                np.testing.assert_array_equal(pixel, (ind.mean(-1) > 0.5).astype(pixel.dtype))

    test_ids = sorted(p.name for p in (root / "test").iterdir())
    lines = (root / "sample_submission.csv").read_text().splitlines()
    assert lines[0] == "record_id,encoded_pixels"
    assert sorted(lines[1:]) == sorted(f"{rid},-" for rid in test_ids)
    for split in ("train", "validation"):
        meta = json.loads((root / f"{split}_metadata.json").read_text())
        assert sorted(m["record_id"] for m in meta) == sorted(
            p.name for p in (root / split).iterdir()
        )


def test_record_ids_are_unique_numeric_and_a_function_of_the_seed():
    a = record_ids(0, "train", 200) + record_ids(0, "validation", 50) + record_ids(0, "test", 5)
    assert len(set(a)) == len(a)
    assert all(r.isdigit() and len(r) == 19 for r in a)
    assert record_ids(0, "train", 3) == a[:3]
    assert record_ids(1, "train", 3) != a[:3]


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path):
    synthesize(tmp_path / "a", 3, 2, 1, seed=5, size=64, workers=1, progress=False)
    synthesize(tmp_path / "b", 3, 2, 1, seed=5, size=64, workers=2, progress=False)
    da, db = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert len(da) == 3 * 11 + 2 * 10 + 9 + 3
    assert da == db
    synthesize(tmp_path / "c", 3, 2, 1, seed=6, size=64, workers=1, progress=False)
    assert set(_tree_digest(tmp_path / "c").values()).isdisjoint(
        v for k, v in da.items() if k.endswith("band_14.npy")
    )


def test_rerun_into_the_same_folder_is_identical_and_other_datasets_are_refused(tmp_path):
    synthesize(tmp_path / "a", 2, 1, 1, seed=1, size=64, workers=1, progress=False)
    before = _tree_digest(tmp_path / "a")
    synthesize(tmp_path / "a", 2, 1, 1, seed=1, size=64, workers=1, progress=False)
    assert _tree_digest(tmp_path / "a") == before
    from reference.errors import DataError

    with pytest.raises(DataError, match="empty folder"):
        synthesize(tmp_path / "a", 2, 1, 1, seed=2, size=64, workers=1, progress=False)


@pytest.mark.parametrize("size", [64, 128])
def test_contrail_fraction_is_plausible_and_many_records_are_empty(size):
    fractions = [make_record(11, "train", i, size)["human_pixel_masks"].mean() for i in range(24)]
    fractions = np.array(fractions)
    assert 0.002 < fractions.mean() < 0.03, fractions.mean()
    assert 0.15 < (fractions == 0).mean() < 0.8


def _ash(rec, t=4):
    r = (rec["band_15"][..., t] - rec["band_14"][..., t] + 4) / 6
    g = (rec["band_14"][..., t] - rec["band_11"][..., t] + 4) / 9
    b = (rec["band_14"][..., t] - 243) / 60
    return np.clip(np.stack([r, g, b], -1), 0, 1)


def _local_background(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of img over non-contrail pixels in a 9×9 window (contrail ± 1 px excluded)."""
    import cv2

    keep = 1 - cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    num = cv2.blur(img.astype(np.float32) * keep, (9, 9))
    den = cv2.blur(keep, (9, 9))
    return num / np.maximum(den, 1e-6)


def test_contrails_are_cold_thin_ice_that_reads_dark_in_ash_colour():
    drops, d14 = [], []
    for i in range(30):
        rec = make_record(3, "train", i, 128)
        mask = rec["human_pixel_masks"][..., 0].astype(bool)
        if mask.sum() < 20:
            continue
        ash = _ash(rec)
        bg = np.stack([_local_background(ash[..., c], mask) for c in range(3)], -1)
        drops.append((bg - ash)[mask].mean(0))
        b14 = rec["band_14"][..., 4]
        d14.append((_local_background(b14, mask) - b14)[mask].mean())
    drops = np.array(drops)
    assert len(drops) >= 8
    # Every ash channel darker on the contrail; red (B15 - B14) by far the most.
    assert np.all(drops.mean(0) > [0.15, 0.05, 0.03]), drops.mean(0)
    assert drops[:, 0].min() > 0.05
    assert np.mean(np.array(d14) > 2.0) > 0.8, d14  # several K colder in band 14


def test_contrails_and_clouds_move_between_frames():
    rec = make_record(0, "train", 1, 128)
    b14 = rec["band_14"]
    # Clouds drift 5-15 px per frame at 128²: consecutive frames differ well above the noise.
    assert np.abs(b14[..., 5] - b14[..., 4]).mean() > 0.3


def test_unknown_knob_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="colour"):
        synthesize(tmp_path / "x", 1, 0, 0, seed=0, size=64, colour=3)
    with pytest.raises(ConfigError, match="size"):
        synthesize(tmp_path / "x", 1, 0, 0, seed=0, size=70)


def test_knobs_change_the_data():
    none = make_record(0, "train", 2, 64, p_empty=1.0)
    assert none["human_pixel_masks"].sum() == 0
    sure = {"p_empty": 0.0, "p_unlabelled_frame": 0.0, "faint_fraction": 0.0}
    many = [make_record(0, "train", i, 64, **sure)["human_pixel_masks"].sum() for i in range(4)]
    assert all(m > 0 for m in many)
