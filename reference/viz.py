"""Figures (``shakyo viz FIGURE ...``).

``shakyo viz record RECORD_DIR --out FILE.png`` draws one Kaggle record: the ash
colour of its 8 frames, each annotator's mask, the majority (pixel) mask, and
the mask's outline over the labelled frame 4.

Each figure is one subcommand: a function ``_add_<name>(subparsers)`` that
declares its arguments and a runner in ``FIGURES``. Figures of training runs
(predictions, curves) live in ``reference/figures.py`` and are wired in below.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from reference.data.records import INDIVIDUAL_MASKS, N_TIMES_BEFORE, PIXEL_MASK, read_record
from reference.errors import DataError
from reference.utils import atomic_path

PANEL_IN = 2.6  # inches per panel; at DPI 100 a 256² record is drawn about 1:1
DPI = 100


def _save(fig, out: str | os.PathLike) -> Path:
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    except OSError as e:
        raise DataError(
            f"{out}: cannot write the figure ({e.strerror or e}); pick another --out"
        ) from None
    return out


def plot_record(record_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Draw a record folder to a PNG: frames (row 1); annotators, pixel mask, outline (row 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reference.data.ash import get_false_color

    record_dir = Path(record_dir)
    record = read_record(record_dir)
    ash = get_false_color(record, full=True)  # (H, W, 3, 8)
    n_frames = ash.shape[-1]
    individual = record.get(INDIVIDUAL_MASKS)  # (H, W, 1, R) or None
    pixel = record.get(PIXEL_MASK)  # (H, W, 1) or None
    n_ann = 0 if individual is None else individual.shape[-1]
    has_masks = pixel is not None or individual is not None
    ncols = max(n_frames, n_ann + 2)
    nrows = 2 if has_masks else 1
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(PANEL_IN * ncols, PANEL_IN * 1.25 * nrows), squeeze=False
    )
    for ax in axes.flat:
        ax.set_axis_off()

    def show(ax, img, title, **kw):
        ax.imshow(img, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=9)

    for t in range(n_frames):
        label = " (labelled)" if t == N_TIMES_BEFORE else ""
        show(axes[0, t], ash[..., t], f"frame {t}{label}")
    if has_masks:
        row = axes[1]
        for i in range(n_ann):
            share = individual[..., 0, i].mean()
            show(
                row[i],
                individual[..., 0, i],
                f"annotator {i + 1} ({100 * share:.2f}%)",
                cmap="gray",
                vmin=0,
                vmax=1,
            )
        if pixel is not None:
            share = pixel[..., 0].mean()
            show(
                row[n_ann],
                pixel[..., 0],
                f"pixel mask, > half ({100 * share:.2f}%)",
                cmap="gray",
                vmin=0,
                vmax=1,
            )
            ax = row[n_ann + 1]
            show(ax, ash[..., N_TIMES_BEFORE], f"frame {N_TIMES_BEFORE} + mask outline")
            if pixel.any():
                ax.contour(pixel[..., 0], levels=[0.5], colors="yellow", linewidths=0.6)
    fig.suptitle(f"record {record_dir.name}: ash colour, annotators and majority mask", fontsize=11)
    fig.tight_layout()
    path = _save(fig, out)
    plt.close(fig)
    return path


def _add_record(sub) -> None:
    p = sub.add_parser("record", help="ash colour of the 8 frames, annotator masks, pixel mask")
    p.add_argument("record_dir", help="a Kaggle record folder, e.g. DATA/train/RECORD_ID")
    p.add_argument("--out", required=True, help="PNG file to write")


def _run_record(args: argparse.Namespace) -> int:
    path = plot_record(args.record_dir, args.out)
    print(f"viz: wrote {path}")
    return 0


def _add_curves(sub) -> None:
    p = sub.add_parser("curves", help="training curves of a run: loss, lr, mom, grad norm, f_th")
    p.add_argument("run_dir", help="a training run folder (OUT/FNAME) with history.csv")
    p.add_argument("--out", help="PNG file to write (default RUN_DIR/curves.png)")


def _run_curves(args: argparse.Namespace) -> int:
    from reference.figures import plot_training_curves

    run_dir = Path(args.run_dir)
    for name in ("history.csv", "batches.csv"):
        if not (run_dir / name).is_file():
            raise DataError(
                f"{run_dir / name}: not found; is {run_dir} a `shakyo train` run folder?"
            )
    path = plot_training_curves(run_dir, args.out or run_dir / "curves.png")
    print(f"viz: wrote {path}")
    return 0


def _add_predictions(sub) -> None:
    p = sub.add_parser(
        "predictions", help="validation records: ash | truth | probability | prediction | errors"
    )
    p.add_argument("run_dir", help="a training run folder (OUT/FNAME) with model.pth")
    p.add_argument("--data", help="validation tile folder (default: PATH/val_adj2 of the run)")
    p.add_argument("--out", help="PNG file to write (default RUN_DIR/predictions.png)")


def _run_predictions(args: argparse.Namespace) -> int:
    # `shakyo evaluate` draws the predictions figure with the threshold it finds.
    from reference.evaluate import evaluate

    result = evaluate(args.run_dir, data=args.data)
    src = Path(args.run_dir) / "predictions.png"
    if args.out and Path(args.out) != src:
        with atomic_path(args.out) as tmp:
            tmp.write_bytes(src.read_bytes())
    print(f"viz: wrote {args.out or src} (threshold {result['threshold']:.2f})")
    return 0


# Subcommand name -> (adds its arguments, runs it). Figures of training runs are
# drawn by reference/figures.py, imported lazily.
FIGURES: dict[str, tuple[Callable, Callable[[argparse.Namespace], int]]] = {
    "record": (_add_record, _run_record),
    "curves": (_add_curves, _run_curves),
    "predictions": (_add_predictions, _run_predictions),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    for add, _ in FIGURES.values():
        add(sub)


def run(args: argparse.Namespace) -> int:
    if args.out:
        from reference.outputs import check_output_file

        # Before the figure is drawn; every figure is written as PNG.
        check_output_file(args.out, "--out", suffix=".png")
    return FIGURES[args.figure][1](args)
