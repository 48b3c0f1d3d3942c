"""`shakyo submission check`: a valid file passes with a summary, every defect is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reference.cli import main
from reference.errors import DataError
from reference.submission import check_submission, write_submission

H, W = 3, 3


def _write_record(folder: Path, rid: str, gt: np.ndarray | None) -> None:
    d = folder / rid
    d.mkdir(parents=True)
    np.save(d / "band_11.npy", np.full((H, W, 8), 250.0, dtype=np.float32))
    if gt is not None:
        np.save(d / "human_pixel_masks.npy", gt.reshape(H, W, 1).astype(np.int32))


@pytest.fixture
def val_dir(tmp_path: Path) -> Path:
    """Three validation-like records with hand-made ground truth (see test_dice...)."""
    folder = tmp_path / "validation"
    first_column = np.zeros((H, W))
    first_column[:, 0] = 1  # column-major pixels 1, 2, 3
    corner = np.zeros((H, W))
    corner[2, 2] = 1  # pixel 9
    _write_record(folder, "10", first_column)
    _write_record(folder, "9", np.zeros((H, W)))
    _write_record(folder, "11", corner)
    return folder


@pytest.fixture
def test_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "test"
    for rid in ("10", "9", "11"):
        _write_record(folder, rid, None)
    return folder


GOOD = "record_id,encoded_pixels\n9,-\n10,2 3\n11,5 1\n"


def _check(tmp_path: Path, data: Path, text: str, capsys) -> tuple[int, str, str]:
    f = tmp_path / "sub.csv"
    f.write_text(text)
    rc = main(["submission", "check", str(f), "--data", str(data)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_good_file_passes_with_a_summary(tmp_path, test_dir, capsys):
    rc, out, err = _check(tmp_path, test_dir, GOOD, capsys)
    assert rc == 0, err
    assert out.count("\n") == 1
    assert "3 records, 2 non-empty masks, 4 positive pixels" in out
    assert "Dice" not in out  # test folders have no ground truth


def test_dice_on_validation_folders_equals_hand_computation(tmp_path, val_dir, capsys):
    # Record 10: GT {1,2,3}, predicted {2,3,4} -> TP 2, FP 1 (4), FN 1 (1).
    # Record 9:  GT {},      predicted {}      -> nothing.
    # Record 11: GT {9},     predicted {5}     -> FP 1, FN 1.
    # Global: TP 2, FP 2, FN 2 -> Dice = 2*2 / (2*2 + 2 + 2) = 0.5.
    report = check_submission(_write(tmp_path, GOOD), val_dir)
    assert report.n_records == 3 and report.n_nonempty == 2 and report.n_positive == 4
    assert report.dice == pytest.approx(0.5, abs=1e-6)
    rc, out, _ = _check(tmp_path, val_dir, GOOD, capsys)
    assert rc == 0 and "global Dice 0.5000" in out


def test_a_perfect_submission_has_dice_one(tmp_path, val_dir):
    perfect = "record_id,encoded_pixels\n9,-\n10,1 3\n11,9 1\n"
    assert check_submission(_write(tmp_path, perfect), val_dir).dice == pytest.approx(1.0)


def test_rows_in_any_order_and_a_trailing_blank_line_are_accepted(tmp_path, test_dir):
    text = "record_id,encoded_pixels\n11,5 1\n10,2 3\n9,\n\n"
    assert check_submission(_write(tmp_path, text), test_dir).n_records == 3


def test_write_submission_output_passes_the_checker(tmp_path, test_dir):
    out = write_submission(tmp_path / "w.csv", {"11": "5 1", "9": "", "10": "2 3"})
    assert out.read_text() == GOOD  # sorted numerically, '' -> '-'
    assert check_submission(out, test_dir).n_positive == 4


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "sub.csv"
    f.write_text(text)
    return f


BAD = {
    "wrong header": ("id,rle\n9,-\n10,2 3\n11,5 1\n", ":1:", "header"),
    "missing id": ("record_id,encoded_pixels\n9,-\n10,2 3\n", ":end:", "record 11"),
    "duplicate id": (GOOD + "10,1 1\n", "record 10", "duplicate"),
    "extra id": (GOOD + "12,-\n", "record 12", "no such record folder"),
    "three fields": ("record_id,encoded_pixels\n9,-,x\n10,2 3\n11,5 1\n", ":2:", "3 fields"),
    "odd tokens": ("record_id,encoded_pixels\n9,-\n10,2 3 5\n11,5 1\n", "record 10", "odd number"),
    "zero start": ("record_id,encoded_pixels\n9,-\n10,0 3\n11,5 1\n", "record 10", ">= 1"),
    "negative start": ("record_id,encoded_pixels\n9,-\n10,-2 3\n11,5 1\n", "record 10", "positive"),
    "zero length": ("record_id,encoded_pixels\n9,-\n10,2 0\n11,5 1\n", "record 10", "length 0"),
    "out of range": ("record_id,encoded_pixels\n9,-\n10,2 3\n11,9 2\n", "record 11", "H*W = 9"),
    "overlapping": ("record_id,encoded_pixels\n9,-\n10,1 3 2 1\n11,5 1\n", "record 10", "overlaps"),
    "unsorted": ("record_id,encoded_pixels\n9,-\n10,5 1 2 1\n11,5 1\n", "record 10", "unsorted"),
    "non-integer": ("record_id,encoded_pixels\n9,-\n10,2 3.0\n11,5 1\n", "record 10", "'3.0'"),
    "empty file": ("", ":1:", "empty file"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_file_fails_with_one_line_naming_file_and_problem(name, tmp_path, test_dir, capsys):
    text, where, problem = BAD[name]
    rc, out, err = _check(tmp_path, test_dir, text, capsys)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("shakyo submission: error: ")
    assert str(tmp_path / "sub.csv") in err
    assert where in err and problem in err, err
    with pytest.raises(DataError):
        check_submission(tmp_path / "sub.csv", test_dir)


def test_data_folder_without_records_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, _, err = _check(tmp_path, tmp_path / "empty", GOOD, capsys)
    assert rc == 2 and "no record folders" in err and err.count("\n") == 1


def test_missing_submission_file_is_one_line(tmp_path, test_dir, capsys):
    rc = main(["submission", "check", str(tmp_path / "nope.csv"), "--data", str(test_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and "nope.csv: no such file" in err and err.count("\n") == 1
