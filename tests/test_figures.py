"""Result figures: each writes a non-empty PNG of the documented pixel size, atomically."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reference.errors import DataError
from reference.figures import (
    dice_score,
    error_map,
    plot_dice_curve,
    plot_predictions,
    plot_training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which follows the 8-byte signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE
    return struct.unpack(">II", head[16:24])


def _records(n: int, size: int = 32) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        gt = np.zeros((size, size))
        gt[5 + i, 3:20] = 1
        prob = np.clip(gt * 0.8 + 0.3 * rng.random((size, size)), 0, 1)
        out.append(
            {"record_id": str(100 + i), "ash": rng.random((size, size, 3)), "gt": gt, "prob": prob}
        )
    return out


def _no_temp_files(folder: Path) -> bool:
    return not any(p.name.startswith(".tmp-") for p in folder.iterdir())


@pytest.mark.parametrize("n", [1, 3])
def test_plot_predictions_writes_a_png_of_the_documented_size(tmp_path, n):
    out = plot_predictions(_records(n), 0.5, tmp_path / "pred.png", dpi=40)
    # Documented: 5 * 2.5 in wide, 0.6 + 2.5 n in high.
    assert png_size(out) == (round(12.5 * 40), round((0.6 + 2.5 * n) * 40))
    assert out.stat().st_size > 2000
    assert _no_temp_files(tmp_path)


def test_dice_score_and_error_map_colours_on_a_hand_example():
    pred = np.array([[1, 1, 0, 0]], dtype=bool)
    gt = np.array([[1, 0, 1, 0]], dtype=bool)
    # TP 1, FP 1, FN 1 -> 2 / (2 + 1 + 1)
    assert dice_score(pred, gt) == pytest.approx(0.5)
    assert dice_score(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) is None
    rgb = error_map(np.ones((1, 4, 3)), pred, gt)
    assert rgb[0, 0, 1] > 0.9 and rgb[0, 0, 0] < 0.5  # TP green
    assert rgb[0, 1, 0] > 0.9 and rgb[0, 1, 2] < 0.5  # FP red
    assert rgb[0, 2, 2] > 0.9 and rgb[0, 2, 0] < 0.5  # FN blue
    np.testing.assert_allclose(rgb[0, 3], 0.35)  # dimmed background


def _write_run(run: Path, with_nan: bool) -> None:
    run.mkdir()
    n_epochs, per_epoch = 3, 10
    rows = []
    for i in range(n_epochs * per_epoch):
        raw = float("nan") if with_nan and i in (12, 13) else 0.7 - 0.01 * i
        rows.append({"epoch": i // per_epoch, "iter": i % per_epoch, "raw_loss": raw,
                     "smooth_loss": 0.7 - 0.009 * i, "lr": 1e-4, "mom": 0.9, "grad_norm": 1.0,
                     "loss_scale": 65536.0, "step_skipped": with_nan and i in (12, 13)})  # fmt: skip
    pd.DataFrame(rows).to_csv(run / "batches.csv", index=False)
    pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [0.6, 0.5, 0.4], "valid_loss": [0.55, "#na#", 0.45],
                  "f_th": [0.3, 0.4, 0.35], "time": ["00:01"] * 3}).to_csv(run / "history.csv", index=False)  # fmt: skip


@pytest.mark.parametrize("with_nan", [False, True])
def test_plot_training_curves_writes_a_12_by_10_inch_png(tmp_path, with_nan):
    _write_run(tmp_path / "run", with_nan)
    out = plot_training_curves(tmp_path / "run", tmp_path / "curves.png", dpi=30)
    assert png_size(out) == (12 * 30, 10 * 30)
    assert out.stat().st_size > 2000


def test_plot_training_curves_without_batches_csv_is_a_data_error(tmp_path):
    _write_run(tmp_path / "run", False)
    (tmp_path / "run" / "batches.csv").unlink()
    with pytest.raises(DataError, match="batches.csv"):
        plot_training_curves(tmp_path / "run", tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_plot_dice_curve_writes_an_8_by_4_5_inch_png(tmp_path):
    t = np.arange(0.1, 0.9, 0.01)
    out = plot_dice_curve(t, 0.6 - (t - 0.47) ** 2, 0.47, tmp_path / "dice.png", dpi=50)
    assert png_size(out) == (400, 225)
    assert out.stat().st_size > 2000
    with pytest.raises(DataError):
        plot_dice_curve(t, t[:-1], 0.47, tmp_path / "bad.png")
