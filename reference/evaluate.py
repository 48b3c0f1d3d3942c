"""`shakyo evaluate RUN_DIR`: the validation Dice curve of a trained run and its best threshold.

The threshold search of the original (site: facts/training/#metric; site: facts/inference/#ensemble): predict every validation
tile with the best checkpoint, count tp/fp/fn over the **whole** validation set
at each threshold of np.arange(0.1, 0.9, 0.01), and keep the threshold of the
highest global Dice. The counting is :class:`reference.metrics.DiceAccumulator`,
the same code the training metric `F_th` runs, on p = sigmoid(logits.float()),
so the numbers are those F_th reports on the same predictions.

Writes into RUN_DIR::

    dice_curve.csv    threshold,dice (80 rows)
    threshold.json    {"threshold": best, "dice": its Dice, ...}
    dice_curve.png    the curve with the best threshold marked
    predictions.png   a few validation tiles (those with the most contrail pixels):
                      ash | ground truth | probability | prediction | TP/FP/FN
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from reference.errors import ConfigError, DataError
from reference.utils import atomic_write_text

__all__ = ["resolve_val_dir", "predict_tiles", "evaluate", "add_arguments", "run"]

N_FIGURE_RECORDS = 4  # rows of predictions.png


def _read_config(run_dir: Path) -> dict:
    from reference.infer import read_run_config

    return read_run_config(
        run_dir,
        missing="RUN_DIR must be a folder written by `shakyo train` (config.json + model.pth)",
    )


def resolve_val_dir(cfg: dict, data: str | os.PathLike | None) -> Path:
    """The validation tile folder: DATA/val_adj2, DATA itself if it holds tiles, else PATH/val_adj2."""
    if data is None:
        if "PATH" not in cfg:
            raise ConfigError("config.json has no key PATH; pass --data TILE_DIR")
        folder = Path(cfg["PATH"]) / "val_adj2"
    else:
        data = Path(data)
        folder = data / "val_adj2" if (data / "val_adj2").is_dir() else data
    if not folder.is_dir() or not any(folder.glob("*_img.tif")):
        what = "does not exist" if not folder.is_dir() else "has no *_img.tif tiles"
        raise DataError(
            f"{folder}: validation tile folder {what}; run `shakyo prepare DATA_DIR --out DIR` "
            "and pass --data DIR (or DIR/val_adj2)"
        )
    return folder


@torch.no_grad()
def predict_tiles(model: torch.nn.Module, loader, device: torch.device):
    """Yield (probs (B, H, W) float32, targets (B, H, W) float32, images (B, 3, T, H, W)) per batch.

    probs = sigmoid(model(x).float()), exactly what F_th thresholds (site: facts/training/#metric).
    """
    from reference.infer import full_fp32

    model.eval()
    with full_fp32():
        for x, y in loader:
            logits = model(x.to(device))
            yield torch.sigmoid(logits.float())[:, 0].cpu(), y[:, 0], x


def evaluate(
    run_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> dict:
    """Dice curve and best threshold of RUN_DIR's model.pth on the validation tiles.

    data: a prepared folder holding val_adj2/, or a tile folder itself (default: the
    run config's PATH/val_adj2). batch_size: default the run's BS.
    Returns {'threshold', 'dice', 'thresholds' (80,), 'curve' (80,), 'n_tiles',
    'val_dir', 'files': {name: path}} and writes the files listed in the module doc.
    """
    from tqdm.auto import tqdm

    from reference.data import ContrailsDatasetV0
    from reference.figures import plot_dice_curve, plot_predictions
    from reference.infer import build_model
    from reference.metrics import DEFAULT_THRESHOLDS, DiceAccumulator

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(
            f"{run_dir}: run folder does not exist; pass the OUT/FNAME of a training run"
        )
    cfg = _read_config(run_dir)
    val_dir = resolve_val_dir(cfg, data)
    bs = batch_size if batch_size is not None else int(cfg.get("BS", 8))
    if bs < 1:
        raise ConfigError(f"--batch-size {bs}: must be >= 1")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available; use --device cpu")

    model = build_model(run_dir / "model.pth").to(dev)
    dataset = ContrailsDatasetV0(val_dir, train=False, folder="")
    loader = torch.utils.data.DataLoader(dataset, batch_size=bs, shuffle=False, num_workers=0)
    acc = DiceAccumulator(DEFAULT_THRESHOLDS)
    # The figure shows the tiles with the most contrail pixels (ties: the first in order).
    keep: list[tuple[int, int, dict]] = []
    index = 0
    batches = predict_tiles(model, loader, dev)
    for probs, targets, images in tqdm(
        batches,
        total=len(loader),
        desc="evaluate",
        unit="batch",
        leave=False,
        disable=None if progress is None else not progress,
    ):
        acc.update(probs, targets)
        for p, t, img in zip(probs.numpy(), targets.numpy(), images):
            rid = dataset.fnames[index].name[: -len("_img.tif")]
            record = {
                "record_id": rid,
                "ash": img[:, -1].permute(1, 2, 0).numpy(),
                "gt": t,
                "prob": p,
            }
            keep.append((int((t > 0.5).sum()), -index, record))
            keep = sorted(keep, key=lambda k: k[:2], reverse=True)[:N_FIGURE_RECORDS]
            index += 1

    thresholds, curve = acc.thresholds, acc.dice
    best_th, best_dice = acc.best_threshold, acc.value
    files = {
        "dice_curve.csv": run_dir / "dice_curve.csv",
        "threshold.json": run_dir / "threshold.json",
        "dice_curve.png": run_dir / "dice_curve.png",
        "predictions.png": run_dir / "predictions.png",
    }
    # Thresholds print with 2 decimals (np.arange gives 0.30000000000000004); Dice in full.
    rows = "".join(f"{t:.2f},{float(d)!r}\n" for t, d in zip(thresholds, curve))
    atomic_write_text(files["dice_curve.csv"], "threshold,dice\n" + rows)
    summary = {
        "threshold": round(best_th, 2),
        "dice": float(best_dice),
        "n_tiles": index,
        "val_dir": str(val_dir),
        "weights": str(run_dir / "model.pth"),
    }
    atomic_write_text(files["threshold.json"], json.dumps(summary, indent=2) + "\n")
    plot_dice_curve(thresholds, curve, best_th, files["dice_curve.png"])
    plot_predictions([k[2] for k in keep], best_th, files["predictions.png"])
    return {
        "threshold": round(best_th, 2),
        "dice": float(best_dice),
        "thresholds": thresholds,
        "curve": curve,
        "n_tiles": index,
        "val_dir": str(val_dir),
        "files": {k: str(v) for k, v in files.items()},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", help="a training run folder (OUT/FNAME with config.json, model.pth)"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="prepared folder with val_adj2/ (or the tile folder itself); default: PATH of the run",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's BS")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")


def run(args: argparse.Namespace) -> int:
    result = evaluate(args.run_dir, data=args.data, batch_size=args.batch_size, device=args.device)
    print(
        f"best threshold {result['threshold']:.2f}: global Dice {result['dice']:.4f} on "
        f"{result['n_tiles']} validation tiles ({result['val_dir']})"
    )
    print(f"wrote {', '.join(result['files'].values())}")
    return 0
