"""Predict Kaggle test record folders and write ``submission.csv`` (site: facts/inference/).

For each record: the ash colour of all 8 frames, quantised as in training
(floor(255·v)/255), as a (3, 8, H, W) tensor; every model slices the frames it
needs itself. The sigmoid probabilities of the models are averaged with
weights, thresholded strictly (``p > threshold``, the same comparison as
``F_th``), run-length encoded and written one row per record. No TTA, as in
the original.

CLI::

    shakyo predict --data test/ --weights runs/a/model.pth runs/b/model.pth \\
        --threshold 0.47 --out submission.csv

Each weights file is built into a model from the ``config.json`` of its run
folder (keys ``MODEL``, ``ARCH``), or from ``--model``/``--arch``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from reference.errors import ConfigError, DataError, WeightsError
from reference.outputs import check_output_file
from reference.submission import (
    list_record_dirs,
    record_shape,
    rle_decode,
    rle_encode,
    rle_encode_less_memory,
    write_submission,
)

__all__ = [
    "build_model",
    "normalise_weights",
    "predict",
    "predict_probs",
    "rle_decode",
    "rle_encode",
    "rle_encode_less_memory",
]


def normalise_weights(model_weights: Sequence[float] | None, n_models: int) -> list[float]:
    """Blend weights of ``n_models`` models, scaled to sum to 1 (equal when None)."""
    if model_weights is None:
        return [1.0 / n_models] * n_models
    if len(model_weights) != n_models:
        raise ConfigError(
            f"--model-weights has {len(model_weights)} values for {n_models} weights files; "
            "give one weight per file"
        )
    if any(not np.isfinite(w) or w < 0 for w in model_weights) or sum(model_weights) <= 0:
        raise ConfigError(
            f"--model-weights {list(model_weights)}: weights must be >= 0 with a positive sum"
        )
    total = float(sum(model_weights))
    return [float(w) / total for w in model_weights]


def read_run_config(run_dir: str | os.PathLike, missing: str) -> dict:
    """The ``config.json`` that ``shakyo train`` wrote into ``run_dir``, as a dict.

    A missing, unreadable or non-object file is a one-line ConfigError; ``missing``
    says what to do when the file is not there.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path}: not found; {missing}")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e}); rerun `shakyo train`") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: must hold a JSON object of config keys")
    return cfg


def build_model(weights_path: str | os.PathLike, model: str | None = None, arch: str | None = None):
    """A model in eval mode with the state_dict of ``weights_path`` loaded (strict).

    The architecture comes from ``model``/``arch`` when given, else from the
    ``config.json`` written by ``shakyo train`` beside the weights file.
    """
    from reference.models import get_model, load_checkpoint

    weights_path = Path(weights_path)
    if weights_path.is_dir() and (weights_path / "model.pth").is_file():
        raise WeightsError(
            f"{weights_path}: is a run folder, not a weights file; pass {weights_path / 'model.pth'}"
        )
    if not weights_path.is_file():
        raise WeightsError(f"{weights_path}: weights file not found; pass the model.pth of a run")
    if model is None:
        cfg_path = weights_path.parent / "config.json"
        cfg = read_run_config(
            weights_path.parent,
            missing=f"it names the model of {weights_path.name}. Pass --model NAME [--arch ARCH] instead",
        )
        if "MODEL" not in cfg:
            raise ConfigError(f"{cfg_path}: no key MODEL; pass --model NAME instead")
        model, arch = cfg["MODEL"], arch or cfg.get("ARCH")
    net = get_model(model, **({"arch": arch} if arch else {}))
    load_checkpoint(net, weights_path)
    return net.eval()


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Turn TF32 off for convolutions and matmuls inside the block, then restore.

    The original predicted on GPUs without TF32, i.e. in true float32. PyTorch
    enables TF32 for cuDNN convolutions by default on Ampere and newer GPUs;
    measured on an H100 with a random-init CoaT_ULSTM medium, that moved
    probabilities by up to 6e-3 against the CPU and flipped 0.25% of the
    thresholded pixels; without TF32: 9e-6 and 2e-6. Inference is cheap, so
    exactness wins.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@torch.no_grad()
def predict_probs(
    models: Sequence[nn.Module],
    weights: Sequence[float],
    loader: Iterable,
    device: str | torch.device,
) -> dict[str, np.ndarray]:
    """Weighted mean of the models' sigmoid probabilities, per record.

    loader yields (x, record_ids) with x: (B, 3, T, H, W) float in [0, 1];
    every model maps it to logits (B, 1, H, W). ``weights`` must already sum
    to 1. Returns {record_id: (H, W) float32 in [0, 1]}. Runs in true float32
    (no TF32, see :func:`full_fp32`).
    """
    for m in models:
        m.eval()
    out: dict[str, np.ndarray] = {}
    with full_fp32():
        for x, ids in tqdm(loader, desc="predict", unit="batch", leave=False, disable=None):
            x = x.to(device, non_blocking=True)
            prob = sum(w * torch.sigmoid(m(x).float()) for m, w in zip(models, weights))
            for rid, p in zip(ids, prob[:, 0].cpu().numpy()):
                out[str(rid)] = p.astype(np.float32)
    return out


def masks_to_rles(probs: dict[str, np.ndarray], threshold: float) -> dict[str, str]:
    """{record_id: (H, W) probability} -> {record_id: RLE} with the published encoder.

    ``p > threshold`` strictly; ``rle_encode_less_memory`` (first and last
    pixel forced to 0) as in the published submission code.
    """
    return {rid: rle_encode_less_memory(p > threshold) for rid, p in probs.items()}


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise ConfigError(
            f"--threshold {threshold}: must be in (0, 1); use the validation search's"
        )


def check_record_sides(records: Sequence[Path], batch_size: int) -> None:
    """Every record's H and W divisible by 16 (the encoder's stride), read from the headers;
    with batch_size > 1 also all alike (records of a batch are stacked). DataError naming it."""
    first: tuple[Path, tuple[int, int]] | None = None
    for rec in records:
        hw = record_shape(rec)
        if hw[0] % 16 or hw[1] % 16:
            raise DataError(
                f"{rec}: record is {hw[0]}x{hw[1]} px; the models need sides divisible by 16 "
                "(crop or pad the bands, or leave this record out)"
            )
        if first is None:
            first = (rec, hw)
        elif batch_size > 1 and hw != first[1]:
            raise DataError(
                f"{rec}: record is {hw[0]}x{hw[1]} px but {first[0].name} is "
                f"{first[1][0]}x{first[1][1]}; a batch needs one size: pass --batch-size 1"
            )


def predict(
    data_dir: str | os.PathLike,
    weights: Sequence[str | os.PathLike],
    model_weights: Sequence[float] | None = None,
    threshold: float = 0.5,
    out: str | os.PathLike = "submission.csv",
    batch_size: int = 8,
    device: str | None = None,
    model: str | None = None,
    arch: str | None = None,
    num_workers: int = 0,
) -> Path:
    """Predict every record folder of ``data_dir`` and write the submission CSV atomically.

    Returns the path written. Raises DataError/ConfigError/WeightsError with
    one line for bad input (no record folders, a missing weights file, a
    weights/model-weights count mismatch, a threshold outside (0, 1)).
    """
    from reference.data import ContrailsDataset

    _check_threshold(threshold)
    if not weights:
        raise ConfigError("--weights: give at least one model.pth")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be >= 1")
    if num_workers < 0:
        raise ConfigError(f"--num-workers {num_workers}: must be >= 0 (0 = load in this process)")
    blend = normalise_weights(model_weights, len(weights))
    check_output_file(out, "--out")  # before minutes of prediction, not after
    check_record_sides(list_record_dirs(data_dir), batch_size)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available; use --device cpu")
    models = [build_model(w, model, arch).to(device) for w in weights]
    loader = torch.utils.data.DataLoader(
        ContrailsDataset(data_dir),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    probs = predict_probs(models, blend, loader, device)
    if not probs:
        raise DataError(f"{data_dir}: the dataset yielded no records")
    return write_submission(out, masks_to_rles(probs, threshold))


# ----------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder of test record folders")
    parser.add_argument(
        "--weights", nargs="+", required=True, metavar="W", help="model.pth of one or more runs"
    )
    parser.add_argument(
        "--model-weights",
        nargs="+",
        type=float,
        metavar="w",
        help="blend weight of each weights file (normalised; default equal)",
    )
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="p > T is contrail (default 0.5)"
    )
    parser.add_argument("--out", type=Path, default=Path("submission.csv"), help="CSV to write")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--model", help="model name; overrides MODEL of config.json")
    parser.add_argument("--arch", help="encoder size, e.g. tiny; overrides ARCH of config.json")


def run(args: argparse.Namespace) -> int:
    out = predict(
        args.data,
        args.weights,
        model_weights=args.model_weights,
        threshold=args.threshold,
        out=args.out,
        batch_size=args.batch_size,
        device=args.device,
        model=args.model,
        arch=args.arch,
        num_workers=args.num_workers,
    )
    rows = out.read_text().splitlines()[1:]
    nonempty = sum(not row.endswith(",-") for row in rows)
    print(f"wrote {out}: {len(rows)} records, {nonempty} non-empty masks (p > {args.threshold:g})")
    return 0
