"""`shakyo train CONFIG.json [KEY VALUE ...]`: the fastai training of the original, made safe.

What the published `train.py` does (site: facts/training/#recipe), kept number for number::

    Learner(dls, model, loss_func=loss_comb, metrics=[F_th()], opt_func=Over9000,
            cbs=[GradientClip(3.0), GradientAccumulation(int(32/BS + 0.5)),
                 CSVLogger(), SaveModelCallback(monitor='f_th')]).to_fp16()
    learn.fit_one_cycle(EPOCHS, LR_MAX, pct_start=PCT_START)

What the reference adds or fixes: seeding *before* the model is built, encoder
weights (PRETRAINED), PRECISION fp32/bf16/fp16, a NaN guard, a per-batch log,
atomic files, a checkpoint every epoch and an exact RESUME.

Run directory OUT/FNAME::

    config.json      the resolved config (MODEL, ARCH rebuild the model for predict)
    model.pth        best-f_th state_dict (reference.models.load_checkpoint)
    checkpoint.pth   last finished epoch: everything RESUME needs
    history.csv      epoch,train_loss,valid_loss,f_th,time (fastai's table)
    batches.csv      epoch,iter,raw_loss,smooth_loss,lr,mom,grad_norm,loss_scale,step_skipped
    summary.json     best_f_th, best_epoch, best_threshold, curve, stopped

Several GPUs: start with `torchrun --nproc_per_node N -m reference.cli train CFG`
(or `accelerate launch`). WORLD_SIZE > 1 switches on fastai's distributed context
(reference/distributed.py: DistributedDataParallel, each rank a BS-sized block of every
global batch, gloo on CPUs, nccl on GPUs; needs the `accelerate` package); only rank 0
writes files. BS is the per-rank batch and ACC counts the samples one rank sees, while
DDP averages the ranks' gradients: N ranks with BS b, ACC a/N step like one process with
BS b·N, ACC a (tests/test_ddp.py). The published 2-GPU DataParallel run (BS 8 split
4 + 4, n_acc 4, gradient x2, a step every batch) is `BS 4 ACC 2` on 2 GPUs. There is no
nn.DataParallel path.

Several machines: the same command on every node, with a rendezvous on node 0, e.g. 2
nodes of 4 GPUs::

    torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d \
        --rdzv-endpoint NODE0_HOST:29400 --rdzv-id RUN_NAME -m reference.cli train CFG

OUT must be one shared folder (NFS, a mounted bucket): rank 0 writes there, and every
rank reads checkpoint.pth on RESUME and model.pth at the end of the fit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from reference.config import KEYS, Config, load_config, validate
from reference.errors import ConfigError, DataError, ShakyoError
from reference.outputs import check_output_folder, removed_on_user_error
from reference.utils import atomic_write_text, keep_heap_memory, seed_everything

__all__ = [
    "TrainingStopped",
    "get_components",
    "tile_dirs",
    "build_learner",
    "train",
    "report",
    "add_arguments",
    "run",
]


class TrainingStopped(ShakyoError):
    """The NaN guard stopped the run; `.result` holds what was trained so far."""

    def __init__(self, message: str, result: dict) -> None:
        super().__init__(message)
        self.result = result


def get_components() -> dict[str, Any]:
    """The reference's model factory, checkpoint loader, losses, metrics and optimizer.

    Returns {'get_model', 'load_checkpoint', 'losses': {name: fn}, 'metrics':
    {name: Metric class}, 'opt_func': over9000_opt_func}. Graduation (`shakyo train
    ... IMPL exercises`) replaces entries with the learner's from the checks side
    (`checks.graduation`): the reference never imports the checks.
    """
    from reference import losses, metrics, models, optim

    return {
        "get_model": models.get_model,
        "load_checkpoint": models.load_checkpoint,
        "losses": {"loss_comb": losses.loss_comb},
        "metrics": {"F_th": metrics.F_th},
        "opt_func": optim.over9000_opt_func,
    }


def tile_dirs(cfg: Config) -> tuple[Path, Path]:
    """(train, validation) tile folders under PATH; DataError naming the missing one.

    `shakyo prepare --labels soft` writes the same folder names and records the label
    mode in each folder's .prepare.json; a mismatch with LABELS is an error.
    """
    root = Path(cfg.PATH)
    train_dir, val_dir = root / "train_adj2", root / "val_adj2"
    labels = "" if cfg.LABELS == "hard" else " --labels soft"
    fix = f"run `shakyo prepare DATA_DIR --out {root}{labels}` (DATA_DIR = the Kaggle folder with train/ and validation/)"
    for d in (train_dir, val_dir):
        if not d.is_dir() or not any(d.glob("*_img.tif")):
            what = "is missing" if not d.is_dir() else "has no *_img.tif tiles"
            raise DataError(f"PATH {root}: tile folder {d} {what}; {fix}")
    manifest = train_dir / ".prepare.json"
    if manifest.is_file():
        try:
            made = json.loads(manifest.read_text()).get("labels")
        except (OSError, ValueError, AttributeError):
            made = None
        if made in ("hard", "soft") and made != cfg.LABELS:
            raise DataError(
                f"PATH {root}: {train_dir} holds {made} labels but LABELS is {cfg.LABELS} "
                f"(RECIPE {cfg.RECIPE}); set LABELS {made}, or {fix} into another folder"
            )
    return train_dir, val_dir


def _device(cfg: Config):
    import torch

    if cfg.DEVICE == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"DEVICE {cfg.DEVICE}: no CUDA GPU is visible; use DEVICE cpu or auto")
    return torch.device(cfg.DEVICE)


def _precision(cfg: Config, device) -> str:
    import torch

    if cfg.PRECISION is None:
        # bf16 has fp32's range: no GradScaler, no fp16 overflow (site: nan/#fp16-overflow).
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if cfg.PRECISION != "fp32" and device.type != "cuda":
        raise ConfigError(
            f"PRECISION {cfg.PRECISION} needs a CUDA GPU (fastai's AMP autocasts on cuda); use fp32"
        )
    if cfg.PRECISION == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("PRECISION bf16: this GPU has no bfloat16 support; use fp16 or fp32")
    return cfg.PRECISION


def _dataloaders(cfg: Config, device):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader

    from reference.callbacks import _ReseedAug
    from reference.data import ContrailsDatasetV0, get_aug

    tile_dirs(cfg)  # both folders exist and hold tiles
    aug = get_aug(seed=cfg.SEED)
    # As the published train.py: the data root, augmentation for training only.
    ds_train = ContrailsDatasetV0(cfg.PATH, train=True, tfms=aug)
    ds_val = ContrailsDatasetV0(cfg.PATH, train=False, tfms=None)
    if len(ds_train) < cfg.BS:
        raise DataError(
            f"PATH {cfg.PATH}: {len(ds_train)} training tiles, fewer than BS {cfg.BS}; lower BS"
        )
    pin = device.type == "cuda"
    kw = dict(bs=cfg.BS, num_workers=cfg.NUM_WORKERS, pin_memory=pin, device=device)
    # Train: shuffle + drop_last; validation: same bs, in order (site: facts/training/#recipe).
    dl_train = DataLoader(ds_train, shuffle=True, drop_last=True, wif=_ReseedAug(aug), **kw)
    dl_val = DataLoader(ds_val, shuffle=False, drop_last=False, **kw)
    return DataLoaders(dl_train, dl_val, device=device), aug


def _fastai_learner_class():
    from fastai.callback.core import CancelEpochException
    from fastai.learner import Learner

    class ShakyoLearner(Learner):
        """fastai Learner whose epoch loop can start at `first_epoch`.

        fastai's own `fit(start_epoch=k)` adds SkipToEpoch, which cancels epochs 0..k-1
        one by one and so prints an empty table row (and a CSV row) for each of them.
        Starting the loop at k gives the same schedule position (TrainEvalCallback sets
        pct_train = epoch / n_epoch before every training phase) without those rows.
        """

        first_epoch = 0

        def _do_fit(self) -> None:
            for epoch in range(self.first_epoch, self.n_epoch):
                self.epoch = epoch
                self._with_events(self._do_epoch, "epoch", CancelEpochException)

    return ShakyoLearner


def build_learner(
    cfg: Config, run_dir: Path, resume: dict | None = None, components: dict | None = None
):
    """Seed, build the model (+weights), the DataLoaders and the fastai Learner with all callbacks.

    Returns (learn, info) where info holds device, precision, n_acc and the NaN guard.
    """
    import fastai.callback.progress  # noqa: F401  (the table and progress bars)
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.callback.fp16 import MixedPrecision
    from fastai.callback.training import GradientAccumulation

    from reference.callbacks import (
        BatchLog,
        BestModel,
        ClipAndMeasure,
        EpochSeed,
        FiniteSmoothLoss,
        NanGuard,
        RunState,
    )

    if components is None and cfg.IMPL != "reference":
        raise ConfigError(
            f"IMPL {cfg.IMPL}: your code trains through the `shakyo train` command "
            "(checks.graduation hands your parts to this trainer); or use IMPL reference"
        )
    comps = components or get_components()
    for key, table in (("LOSS_FUNC", "losses"), ("METRIC", "metrics")):
        if cfg[key] not in comps[table]:
            raise ConfigError(
                f"{key} {cfg[key]} is not known; choose one of {', '.join(comps[table])}"
            )
    tile_dirs(cfg)  # a missing dataset fails before minutes of model building
    # Freed activations stay in the process instead of being page-faulted back every batch
    # (site: guide/benchmarks/#step-time). Same numbers, less system time.
    keep_heap_memory()
    device = _device(cfg)
    precision = _precision(cfg, device)
    # Seed before the model exists: the published code built it first (unseeded init, site: facts/training/#recipe).
    seed_everything(cfg.SEED)
    model = comps["get_model"](cfg.MODEL, arch=cfg.ARCH, pre=cfg.PRETRAINED)
    if cfg.WEIGHTS and resume is None:
        comps["load_checkpoint"](model, cfg.WEIGHTS)
    dls, aug = _dataloaders(cfg, device)

    n_acc = cfg.n_acc
    guard = NanGuard(cfg.NAN_PATIENCE, hunt=_nan_hunt(), advice=_nan_advice(cfg, precision))
    cbs = [
        EpochSeed(cfg.SEED, aug),
        ClipAndMeasure(3.0),
        GradientAccumulation(n_acc),
        guard,
        BestModel(run_dir / "model.pth", monitor="f_th"),
        RunState(run_dir, dict(cfg), aug=aug, resume=resume),
        BatchLog(
            run_dir / "batches.csv", keep_before_epoch=resume["epoch"] + 1 if resume else None
        ),
    ]
    from reference.tracking import tracker_callbacks

    cbs += tracker_callbacks(cfg, run_dir)  # TRACKER wandb: fastai's WandbCallback (+ curve)
    opt_func = comps["opt_func"](eps=cfg.eps, weight_decay=cfg.weight_decay)
    metric = comps["metrics"][cfg.METRIC]()
    learn = _fastai_learner_class()(
        dls, model, loss_func=comps["losses"][cfg.LOSS_FUNC], metrics=[metric], opt_func=opt_func, cbs=cbs,
        path=run_dir, model_dir=".",
    )  # fmt: skip
    learn.recorder.smooth_loss = FiniteSmoothLoss(beta=0.98)
    if precision != "fp32":
        learn.add_cb(MixedPrecision(amp_mode=precision))
    if resume is not None:
        model.load_state_dict(resume["model"])
        learn.create_opt()
        learn.opt.load_state_dict(resume["opt"])
        learn.first_epoch = resume["epoch"] + 1
    info = {"device": str(device), "precision": precision, "n_acc": n_acc, "guard": guard,
            "n_train": len(dls.train.dataset), "n_valid": len(dls.valid.dataset)}  # fmt: skip
    return learn, info


def _nan_advice(cfg: Config, precision: str) -> str:
    """What to try after a NaN stop, given this run's settings (site: nan/#what-to-do)."""
    tips = ["PRECISION fp32"] if precision != "fp32" else []
    tips.append(f"a lower LR_MAX (now {cfg.LR_MAX:g})")
    if not cfg.PRETRAINED and cfg.MODEL.startswith("CoaT"):
        tips.append("PRETRAINED encoder weights (`shakyo weights coat_lite_medium --to weights`)")
    return (
        "try "
        + ", ".join(tips[:-1])
        + (" or " if len(tips) > 1 else "")
        + tips[-1]
        + " (site: nan/#what-to-do)"
    )


def _nan_hunt():
    try:
        from reference.diagnose import nan_hunt
    except ImportError:
        return None
    return nan_hunt


# Keys that may change between a run and its resumption: they do not move the schedule.
# (NUM_WORKERS and DEVICE still change float details: with workers, each worker reseeds its
# augmentation from its id, so keep them equal for a bit-exact resume.)
_RESUME_FREE = {"RESUME", "NUM_WORKERS", "DEVICE", "NAN_PATIENCE", "OUT", "TRACKER"}


def _load_resume(cfg: Config, run_dir: Path) -> dict | None:
    import torch

    path = run_dir / "checkpoint.pth"
    if not cfg.RESUME or not path.exists():
        if cfg.RESUME:
            print(f"RESUME: no {path} yet; starting from epoch 0", file=sys.stderr)
        return None
    try:
        # Our own file: it holds RNG states (numpy arrays, tuples) besides tensors.
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ConfigError(
            f"RESUME: cannot read {path} ({type(e).__name__}); delete it to start over"
        ) from None
    old = ck.get("config", {})
    for k in KEYS:
        if k not in _RESUME_FREE and old.get(k) != cfg[k]:
            raise ConfigError(
                f"RESUME: {path} was trained with {k} {json.dumps(old.get(k))}, the config says "
                f"{json.dumps(cfg[k])}; use the same value or another FNAME"
            )
    return ck


def _result(cfg: Config, run_dir: Path, rows: list, best: Any, stopped: str | None) -> dict:
    return {
        "run_dir": str(run_dir),
        "best_f_th": None if best.best_epoch is None else float(best.best),
        "best_epoch": best.best_epoch,
        "best_threshold": best.best_threshold,
        "curve": best.best_curve,
        "history": [
            dict(zip(["epoch", "train_loss", "valid_loss", "f_th", "time"], r)) for r in rows
        ],
        "stopped": stopped,
    }


def _fit(learn, cfg) -> None:
    """fit_one_cycle, inside fastai's distributed context when started by torchrun/accelerate."""
    from fastai.torch_core import num_distrib

    if num_distrib() > 1:
        try:
            import accelerate  # noqa: F401

            from reference.distributed import distrib_ctx
        except ImportError:
            raise ConfigError(
                "WORLD_SIZE > 1: multi-GPU training needs `pip install accelerate`"
            ) from None
        with distrib_ctx(learn):
            learn.fit_one_cycle(cfg.EPOCHS, cfg.LR_MAX, pct_start=cfg.PCT_START)
    else:
        learn.fit_one_cycle(cfg.EPOCHS, cfg.LR_MAX, pct_start=cfg.PCT_START)


@contextlib.contextmanager
def _bars_only_on_a_terminal():
    """Progress bars on a terminal; in a log file only fastai's table.

    fastprogress 1.1.6 tests ``getattr(stdout, 'isatty', False)`` (the method,
    always truthy) instead of calling it, so redirected output got every bar
    update, thousands of carriage-return lines per epoch. The table rows are
    written either way.
    """
    import fastprogress.fastprogress as fp

    old = fp.NO_BAR
    fp.NO_BAR = old or not sys.stdout.isatty()
    try:
        yield
    finally:
        fp.NO_BAR = old


def train(config: dict | Config, components: dict | None = None) -> dict:
    """Train one model as the config says; return its summary.

    config: a dict of config keys (validated here) or a :class:`Config`.
    components: the table of :func:`get_components` with some entries replaced
    (graduation: the learner's model, loss, metric, optimizer); default the reference's.
    Returns {'run_dir', 'best_f_th', 'best_epoch', 'best_threshold', 'curve'
    (threshold, dice) pairs of the best epoch, 'history' (one dict per epoch:
    epoch, train_loss, valid_loss, f_th, time), 'stopped' (None or the NaN guard's
    message)}. Raises ConfigError/DataError for bad input and TrainingStopped
    (with `.result`) when the NaN guard ends the run.
    """
    cfg = config if isinstance(config, Config) else validate(dict(config))
    check_inputs(cfg)
    with removed_on_user_error(cfg.run_dir, keep_if="checkpoint.pth"):
        return _train(cfg, components)


def check_inputs(cfg: Config) -> None:
    """What a run needs, checked before it makes its run folder: whole tiles, a writable OUT."""
    from fastai.torch_core import rank_distrib

    from reference.data.dataset import check_tiles

    for folder in tile_dirs(cfg):
        check_tiles(folder)
    if rank_distrib() == 0:  # only rank 0 writes the run folder (its probe file is a write)
        check_output_folder(cfg.run_dir, f"OUT {cfg.OUT}")


def _train(cfg: Config, components: dict | None) -> dict:
    from fastai.torch_core import rank_distrib

    run_dir = cfg.run_dir
    resume = _load_resume(cfg, run_dir)
    learn, info = build_learner(cfg, run_dir, resume, components)
    resolved = Config(cfg, PRECISION=info["precision"], ACC=info["n_acc"])
    main = rank_distrib() == 0
    if main:
        atomic_write_text(run_dir / "config.json", json.dumps(resolved, indent=2) + "\n")
        start = resume["epoch"] + 1 if resume else 0
        print(
            f"shakyo train: {cfg.MODEL} {cfg.ARCH} on {info['device']} ({info['precision']}), "
            f"{info['n_train']} train / {info['n_valid']} valid tiles, BS {cfg.BS}, n_acc {info['n_acc']}, "
            f"epochs {start}..{cfg.EPOCHS - 1} -> {run_dir}",
            file=sys.stderr,
        )
    if resume is not None and resume["epoch"] + 1 >= cfg.EPOCHS:
        learn.best_model.load_state(resume["best"])
        return _result(cfg, run_dir, resume["history"], learn.best_model, None)

    t0 = time.time()
    with _bars_only_on_a_terminal():
        _fit(learn, cfg)
    guard, best = info["guard"], learn.best_model
    result = _result(cfg, run_dir, learn.run_state.rows, best, guard.stop_message)
    result["seconds"] = time.time() - t0
    if main:
        summary = {k: v for k, v in result.items() if k != "history"}
        summary["nan_events"] = guard.events
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    if guard.stop_message:
        raise TrainingStopped(guard.stop_message, result)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", help="JSON config, e.g. configs/coat_ulstm.json or configs/demo.json"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY VALUE",
        help="override config keys; VALUE is JSON (BS 4, RESUME true)",
    )
    parser.epilog = "keys: " + ", ".join(KEYS)


def report(result: dict) -> None:
    """The last line of `shakyo train`: the best epoch and where its model is."""
    if result["best_epoch"] is not None:
        print(
            f"best f_th {result['best_f_th']:.4f} at epoch {result['best_epoch']} "
            f"(threshold {result['best_threshold']}) -> {result['run_dir']}/model.pth"
        )


def run(args: argparse.Namespace) -> int:
    report(train(load_config(args.config, args.overrides)))
    return 0
