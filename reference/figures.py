"""Result figures: predictions beside the ground truth, training curves, the Dice curve.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot
state, Agg canvas) and writes a PNG atomically: it is saved to a temporary
file beside the target, then renamed, so an interrupted run never leaves a
half-written image. Figure sizes are fixed (no ``bbox_inches='tight'``), so a
figure's pixel size is its size in inches times ``dpi``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from reference.errors import DataError
from reference.utils import atomic_path

# Colours of the error map: true positives green, false positives red, false
# negatives blue, over a dimmed ash image so the context stays visible.
TP_COLOR = (0.2, 0.95, 0.3)
FP_COLOR = (1.0, 0.15, 0.15)
FN_COLOR = (0.25, 0.55, 1.0)
PANEL_INCHES = 2.5  # one image panel of plot_predictions
HEADER_INCHES = 0.6  # the legend strip above the rows


def _save(fig: Figure, out_png: str | os.PathLike, dpi: int) -> Path:
    # format='png' because the temporary name ends in a random suffix, not .png.
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(out_png)


def dice_score(pred: np.ndarray, gt: np.ndarray) -> float | None:
    """2·TP / (2·TP + FP + FN) of two (H, W) binary masks; None when both are empty."""
    tp = int(np.sum(pred & gt))
    denom = int(pred.sum()) + int(gt.sum())
    return None if denom == 0 else 2 * tp / denom


def error_map(ash: np.ndarray, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(H, W, 3) ash, (H, W) bool pred and gt -> (H, W, 3) RGB: TP green, FP red, FN blue."""
    rgb = 0.35 * np.clip(ash, 0, 1)
    rgb[pred & gt] = TP_COLOR
    rgb[pred & ~gt] = FP_COLOR
    rgb[~pred & gt] = FN_COLOR
    return rgb


def plot_predictions(
    records: Sequence[dict], threshold: float, out_png: str | os.PathLike, dpi: int = 100
) -> Path:
    """One row per record: ash frame 4 | ground truth | probability | prediction | TP/FP/FN.

    records: dicts with 'record_id' str, 'ash' (H, W, 3) in [0, 1], 'gt'
    (H, W) 0/1 (or soft, > 0.5 is contrail), 'prob' (H, W) in [0, 1]. The
    prediction is ``prob > threshold``. The figure is 5·2.5 in wide and
    0.6 + 2.5·n in high for n records.
    """
    if not records:
        raise DataError(f"{out_png}: no records to plot")
    n = len(records)
    fig = Figure(figsize=(5 * PANEL_INCHES, HEADER_INCHES + PANEL_INCHES * n), layout="constrained")
    axes = fig.subplots(n, 5, squeeze=False)
    for row, rec in zip(axes, records):
        ash = np.asarray(rec["ash"], dtype=np.float32)
        gt = np.asarray(rec["gt"]) > 0.5
        prob = np.asarray(rec["prob"], dtype=np.float32)
        pred = prob > threshold
        dice = dice_score(pred, gt)
        dice_text = "no contrail in either" if dice is None else f"Dice {dice:.3f}"
        row[0].imshow(np.clip(ash, 0, 1), interpolation="nearest")
        row[0].set_title(f"record {rec['record_id']}\nash colour, frame 4", fontsize=9)
        row[1].imshow(gt, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        row[1].set_title(f"ground truth\n{int(gt.sum())} px", fontsize=9)
        im = row[2].imshow(prob, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        row[2].set_title(f"probability\nmax {prob.max():.2f}", fontsize=9)
        fig.colorbar(im, ax=row[2], fraction=0.046, pad=0.02)
        row[3].imshow(pred, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        row[3].set_title(f"prediction p > {threshold:g}\n{int(pred.sum())} px", fontsize=9)
        row[4].imshow(error_map(ash, pred, gt), interpolation="nearest")
        row[4].set_title(f"TP / FP / FN\n{dice_text}", fontsize=9, fontweight="bold")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.legend(
        handles=[
            Patch(color=TP_COLOR, label="TP (contrail found)"),
            Patch(color=FP_COLOR, label="FP (false alarm)"),
            Patch(color=FN_COLOR, label="FN (contrail missed)"),
        ],
        loc="outside upper center",
        ncols=3,
        fontsize=9,
        title=f"validation predictions, threshold {threshold:g}",
        title_fontsize=10,
    )
    return _save(fig, out_png, dpi)


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: not found; is this a run folder written by `shakyo train`?")
    try:
        return pd.read_csv(path)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from None


def _numeric(df, column: str) -> np.ndarray:
    """A column as float (fastai writes '#na#' or 'nan' for missing values); NaN if absent."""
    import pandas as pd

    if column not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)


def _flag(df, column: str) -> np.ndarray:
    if column not in df:
        return np.zeros(len(df), dtype=bool)
    return df[column].astype(str).str.strip().str.lower().isin(("true", "1", "1.0")).to_numpy()


def _mark_epochs(ax, starts: np.ndarray) -> None:
    for x in starts[1:]:
        ax.axvline(x - 0.5, color="0.6", lw=0.8, ls="--", zorder=0)


def plot_training_curves(
    run_dir: str | os.PathLike, out_png: str | os.PathLike, dpi: int = 100
) -> Path:
    """Training curves of a run folder from its history.csv and batches.csv.

    Panels: loss per training batch (raw thin, smoothed thick, validation loss
    per epoch as dots at the epoch's last batch, dashed epoch boundaries,
    skipped optimizer steps and non-finite losses marked in red); learning
    rate; momentum; f_th per epoch with the best epoch starred; gradient norm
    and loss scale. The figure is 12 × 10 in.
    """
    run_dir = Path(run_dir)
    hist = _read_csv(run_dir / "history.csv")
    batches = _read_csv(run_dir / "batches.csv")
    if batches.empty:
        raise DataError(f"{run_dir / 'batches.csv'}: no rows; train for at least one batch")
    x = np.arange(len(batches))
    epoch_of_batch = _numeric(batches, "epoch")
    starts = np.flatnonzero(np.r_[True, epoch_of_batch[1:] != epoch_of_batch[:-1]])
    raw, smooth = _numeric(batches, "raw_loss"), _numeric(batches, "smooth_loss")
    skipped = _flag(batches, "step_skipped")
    bad = ~np.isfinite(raw)

    fig = Figure(figsize=(12, 10), layout="constrained")
    grid = fig.add_gridspec(3, 2, height_ratios=(1.3, 1, 1))
    ax = fig.add_subplot(grid[0, :])
    ax.plot(x, raw, lw=0.5, alpha=0.45, color="tab:blue", label="raw loss (per batch)")
    ax.plot(x, smooth, lw=2.2, color="tab:blue", label="smoothed loss (EMA 0.98)")
    ends = {e: i for i, e in enumerate(epoch_of_batch)}  # last batch of each epoch
    h_epoch, valid = _numeric(hist, "epoch"), _numeric(hist, "valid_loss")
    vx = [ends[e] for e in h_epoch if e in ends]
    vy = [v for e, v in zip(h_epoch, valid) if e in ends]
    ax.plot(vx, vy, "o-", color="tab:orange", lw=1.5, ms=6, label="validation loss (per epoch)")
    edge = blended_transform_factory(ax.transData, ax.transAxes)
    if bad.any():
        ax.plot(x[bad], np.full(bad.sum(), 0.02), "|", color="red", ms=12, mew=1.5,
                transform=edge, label=f"non-finite loss ({bad.sum()})")  # fmt: skip
    if skipped.any():
        ax.plot(x[skipped], np.full(skipped.sum(), 0.08), "^", color="crimson", ms=5,
                transform=edge, label=f"optimizer step skipped ({skipped.sum()})")  # fmt: skip
    finite = np.concatenate([v[np.isfinite(v)] for v in (raw, smooth, np.asarray(vy, float))])
    if finite.size:
        # A few exploding batches must not flatten the rest of the curve.
        ax.set_ylim(min(0.0, finite.min()), 1.1 * np.percentile(finite, 99.5))
    _mark_epochs(ax, starts)
    ax.set(xlabel="training batch", ylabel="loss", title="loss (dashed lines: epoch boundaries)")
    ax.legend(loc="upper right", fontsize=8, ncols=2)

    for pos, col, label in ((grid[1, 0], "lr", "learning rate"), (grid[1, 1], "mom", "momentum")):
        a = fig.add_subplot(pos)
        a.plot(x, _numeric(batches, col), color="tab:green", lw=1.5)
        _mark_epochs(a, starts)
        a.set(xlabel="training batch", ylabel=col, title=f"{label} (one-cycle)")
        a.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))

    a = fig.add_subplot(grid[2, 0])
    f_th = _numeric(hist, "f_th")
    a.plot(h_epoch, f_th, "o-", color="tab:purple", lw=1.5)
    if np.isfinite(f_th).any():
        best = int(np.nanargmax(f_th))
        a.plot(h_epoch[best], f_th[best], "*", color="gold", mec="k", ms=16, zorder=3)
        a.annotate(f"best {f_th[best]:.4f}\nepoch {h_epoch[best]:g}", (h_epoch[best], f_th[best]),
                   textcoords="offset points", xytext=(8, -28), fontsize=9)  # fmt: skip
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.set(xlabel="epoch", ylabel="f_th", title="validation Dice at the best threshold (f_th)")
    a.grid(alpha=0.3)

    a = fig.add_subplot(grid[2, 1])
    a.plot(x, _numeric(batches, "grad_norm"), lw=0.6, color="tab:gray", label="grad norm")
    a.axhline(3.0, color="tab:red", ls=":", lw=1, label="clip at 3.0")
    a.set_yscale("log")
    a.set(xlabel="training batch", ylabel="gradient L2 norm", title="gradient norm, loss scale")
    scale = _numeric(batches, "loss_scale")
    if np.isfinite(scale).any():
        b = a.twinx()
        b.plot(x, scale, color="tab:brown", lw=1.2, label="AMP loss scale")
        b.set_yscale("log", base=2)
        b.set_ylabel("loss scale")
        b.legend(loc="lower right", fontsize=8)
    _mark_epochs(a, starts)
    a.legend(loc="lower left", fontsize=8)
    fig.suptitle(f"training run {run_dir.name}", fontsize=13)
    return _save(fig, out_png, dpi)


def plot_dice_curve(
    thresholds: Sequence[float],
    dice: Sequence[float],
    best_threshold: float,
    out_png: str | os.PathLike,
    dpi: int = 100,
) -> Path:
    """Global validation Dice against the threshold, the chosen threshold marked. 8 × 4.5 in."""
    t = np.asarray(thresholds, dtype=float)
    d = np.asarray(dice, dtype=float)
    if t.shape != d.shape or t.size == 0:
        raise DataError(f"{out_png}: {t.size} thresholds but {d.size} Dice values")
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, d, color="tab:blue", lw=2)
    i = int(np.argmin(np.abs(t - best_threshold)))
    ax.axvline(best_threshold, color="tab:red", ls="--", lw=1)
    ax.plot(t[i], d[i], "o", color="tab:red", ms=8)
    ax.annotate(f"threshold {best_threshold:.2f}\nDice {d[i]:.4f}", (t[i], d[i]),
                textcoords="offset points", xytext=(8, -80), fontsize=10, color="tab:red",
                bbox=dict(boxstyle="round", fc="white", ec="none", alpha=0.8))  # fmt: skip
    ax.set(
        xlabel="threshold (pixel is contrail when p > threshold)",
        ylabel="global Dice (all validation pixels)",
        title="validation Dice against the threshold",
    )
    ax.grid(alpha=0.3)
    return _save(fig, out_png, dpi)
