"""`shakyo demo [--out DIR] [--seed S]`: the whole system on a laptop CPU in a few minutes.

`make demo` runs it. Stages, each timed and logged on one line:

1. synth     a synthetic ICRGW dataset in the Kaggle layout (DIR/data)
2. prepare   ash-colour tiles (DIR/tiles/train_adj2, val_adj2)
3. viz       one training record with contrails: its 8 frames and masks (DIR/record.png)
4. train     a small CoaT_ULSTM with the reference `train()` (configs/demo.json)
5. evaluate  the validation Dice curve and the best threshold
6. predict   the test record folders with that threshold (DIR/submission.csv)
7. check     the submission's format against the test folders
8. figures   training curves, Dice curve, validation predictions

and DIR/summary.json with the numbers (f_th, threshold, seconds per stage ...).

The setting (64 x 64 records with denser, wider contrails than the default
synth, the tiny CoaT of configs/demo.json, 16 epochs at a high LR) is sized for
about five minutes on two CPU cores and a validation F_th above 0.8. The real
data needs the medium CoaT, 256 x 256 tiles and a GPU (configs/coat_ulstm.json).

A rerun into the same DIR reuses the dataset and the tiles when they were made
with the same seed and setting, and trains a fresh run (the old run folder is
replaced).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from reference.errors import ConfigError
from reference.utils import atomic_write_text

__all__ = ["DEMO_DATA", "QUICK_DATA", "demo_config", "run_demo", "add_arguments", "run"]

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "configs" / "demo.json"

# The synthetic dataset of the demo: record counts, side in px, synth knobs.
# Denser and wider contrails than the default synth (3-5 px instead of 1-3 px,
# ~12 % of the pixels instead of ~1 %): a CoaT_ULSTM from random weights first
# sits on a plateau where it predicts only the background, and how long it sits
# there shrinks with the contrail signal per step. On the default data it is
# still there after the demo's 384 steps (README, "Why the demo's contrails are
# wider").
DEMO_DATA: dict = {
    "n_train": 96,
    "n_val": 32,
    "n_test": 4,
    "size": 64,
    "knobs": {"width": (3.0, 5.0), "contrails_per_256": 20.0, "p_empty": 0.05},
}
# `--quick`: a smoke test of every stage in seconds (no quality target).
QUICK_DATA: dict = {"n_train": 8, "n_val": 4, "n_test": 2, "size": 64, "knobs": {}}
QUICK_OVERRIDES: dict = {"EPOCHS": 1, "BS": 4, "ACC": 4}


def demo_config(out: Path, seed: int, overrides: dict | None = None) -> dict:
    """configs/demo.json with PATH/OUT/FNAME/SEED pointing into ``out``."""
    if not DEMO_CONFIG.is_file():
        raise ConfigError(
            f"{DEMO_CONFIG}: not found; run `shakyo demo` from a shakyo checkout (pip install -e .)"
        )
    try:
        cfg = json.loads(DEMO_CONFIG.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{DEMO_CONFIG}: not valid JSON ({e})") from None
    cfg.update(PATH=str(out / "tiles"), OUT=str(out / "runs"), FNAME=f"demo_s{seed}", SEED=seed)
    cfg.update(overrides or {})
    return cfg


class _Stages:
    """Times the stages and prints one line per stage: `[i/n] name  seconds  what`."""

    def __init__(self, names: list[str], log=print) -> None:
        self.names, self.log, self.seconds = names, log, {}
        self.t0 = time.perf_counter()

    def done(self, name: str, start: float, what: str) -> None:
        self.seconds[name] = round(time.perf_counter() - start, 2)
        i = self.names.index(name) + 1
        self.log(f"[{i}/{len(self.names)}] {name:<9} {self.seconds[name]:6.1f} s  {what}")

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 2)


def _synth(data_dir: Path, seed: int, setting: dict) -> str:
    """Synthesize unless DIR/data already holds this exact dataset (stamp file)."""
    from reference.data.synth import synthesize

    stamp_path = data_dir / ".demo.json"
    stamp = {"seed": seed, **{k: setting[k] for k in ("n_train", "n_val", "n_test", "size")}}
    stamp["knobs"] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in setting["knobs"].items()
    }
    if stamp_path.is_file():
        try:
            same = json.loads(stamp_path.read_text()) == stamp
        except ValueError:
            same = False
        if same:
            return f"reused {data_dir} (same seed and setting)"
    # Another seed or setting: the old dataset and its tiles are stale.
    for stale in (data_dir, data_dir.parent / "tiles"):
        if stale.exists():
            shutil.rmtree(stale)
    stats = synthesize(
        data_dir, setting["n_train"], setting["n_val"], setting["n_test"], seed,
        size=setting["size"], workers=1, progress=False, **setting["knobs"],
    )  # fmt: skip
    atomic_write_text(stamp_path, json.dumps(stamp) + "\n")
    return (
        f"{stats['records']} records {setting['size']}x{setting['size']} "
        f"({setting['n_train']} train / {setting['n_val']} validation / {setting['n_test']} test), "
        f"{100 * stats['contrail_fraction']:.2f}% contrail pixels -> {data_dir}"
    )


def _record_with_contrails(train_dir: Path) -> Path:
    """The training record with the most contrail pixels (the first one on ties)."""
    import numpy as np

    from reference.data.records import list_records

    best, best_n = None, -1
    for rec in list_records(train_dir):
        n = int(np.load(rec / "human_pixel_masks.npy").sum())
        if n > best_n:
            best, best_n = rec, n
    return best


def run_demo(
    out: str | os.PathLike = "demo_out",
    seed: int = 2023,
    quick: bool = False,
    data: dict | None = None,
    overrides: dict | None = None,
    log=print,
) -> dict:
    """Run every stage into ``out``; return the summary (also written to out/summary.json).

    quick: tiny dataset and one epoch (a smoke test, no quality target).
    data: replaces DEMO_DATA keys (n_train, n_val, n_test, size, knobs);
    overrides: config keys on top of configs/demo.json.
    """
    from reference.data.prepare import prepare
    from reference.evaluate import evaluate
    from reference.figures import plot_training_curves
    from reference.infer import predict
    from reference.submission import check_submission
    from reference.train import train
    from reference.viz import plot_record

    out = Path(out)
    setting = {**(QUICK_DATA if quick else DEMO_DATA), **(data or {})}
    cfg = demo_config(out, seed, {**(QUICK_OVERRIDES if quick else {}), **(overrides or {})})
    names = ["synth", "prepare", "viz", "train", "evaluate", "predict", "check", "figures"]
    st = _Stages(names, log)
    data_dir, tiles = out / "data", out / "tiles"

    t = time.perf_counter()
    st.done("synth", t, _synth(data_dir, seed, setting))

    t = time.perf_counter()
    p = prepare(data_dir, tiles, workers=1, progress=False)
    st.done("prepare", t, f"{p['written']} tiles written, {p['skipped']} already there -> {tiles}")

    t = time.perf_counter()
    record = _record_with_contrails(data_dir / "train")
    plot_record(record, out / "record.png")
    st.done("viz", t, f"record {record.name} -> {out / 'record.png'}")

    t = time.perf_counter()
    run_dir = Path(cfg["OUT"]) / cfg["FNAME"]
    if run_dir.exists():  # a rerun trains from scratch, not from the old checkpoint
        shutil.rmtree(run_dir)
    result = train(cfg)
    st.done(
        "train",
        t,
        f"{cfg['MODEL']} {cfg['ARCH']}, {cfg['EPOCHS']} epochs: best f_th {result['best_f_th']:.4f} "
        f"at epoch {result['best_epoch']} -> {run_dir}",
    )

    t = time.perf_counter()
    ev = evaluate(run_dir, progress=False)
    st.done(
        "evaluate", t, f"best threshold {ev['threshold']:.2f}, validation Dice {ev['dice']:.4f}"
    )

    t = time.perf_counter()
    submission = predict(
        data_dir / "test", [run_dir / "model.pth"], threshold=ev["threshold"],
        out=out / "submission.csv", batch_size=cfg["BS"], device=cfg.get("DEVICE", "cpu"),
    )  # fmt: skip
    st.done("predict", t, f"{setting['n_test']} test records -> {submission}")

    t = time.perf_counter()
    report = check_submission(submission, data_dir / "test")
    st.done("check", t, report.summary())

    t = time.perf_counter()
    figures = {"training_curves.png": plot_training_curves(run_dir, out / "training_curves.png")}
    for name in ("dice_curve.png", "predictions.png"):
        figures[name] = Path(shutil.copyfile(ev["files"][name], out / name))
    st.done("figures", t, ", ".join(str(f) for f in figures.values()))

    summary = {
        "f_th": result["best_f_th"],
        "best_epoch": result["best_epoch"],
        "threshold": ev["threshold"],
        "dice": ev["dice"],
        "seconds": st.total,
        "stages": st.seconds,
        "submission": str(submission),
        "submission_check": report.summary(),
        "run_dir": str(run_dir),
        "record_png": str(out / "record.png"),
        "figures": {k: str(v) for k, v in figures.items()},
        "data": {**{k: setting[k] for k in ("n_train", "n_val", "n_test", "size")},
                 "knobs": setting["knobs"], "seed": seed},
        "config": {k: cfg[k] for k in ("MODEL", "ARCH", "EPOCHS", "BS", "LR_MAX", "PCT_START")},
        "quick": quick,
    }  # fmt: skip
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=list) + "\n")
    log(
        f"demo: f_th {summary['f_th']:.4f}, threshold {summary['threshold']:.2f}, "
        f"{summary['seconds']:.0f} s in all -> {out / 'summary.json'}"
    )
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--seed", type=int, default=2023, help="seed of data, weights, batches")
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise ConfigError(f"--seed {args.seed}: must be >= 0")
    run_demo(args.out, seed=args.seed, quick=args.quick, log=lambda s: print(s, flush=True))
    sys.stdout.flush()
    return 0
