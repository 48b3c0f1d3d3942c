"""What the ``train-script`` check runs twice: the published train.py assembly (here, with the
reference's dataset, optimizer, loss and metric) and the learner's ``train(config)``, on the
same tiny tiles from the same seeds, augmentation included.

Both sides see the same RNG: :func:`reference.utils.seed_everything` before each run, the
augmentation a freshly built ``reference.data.get_aug(seed)`` on each side (the learner's
``get_aug`` is replaced by it for the run), and the same model weights. On the CPU, the
published script's ``.cuda()`` calls become no-ops and ``to_fp16()`` leaves the Learner in
float32 (noted in the report). A recording callback, added to every Learner built during
a run through ``fastai.learner.defaults.callbacks``, writes down each training batch and
the Learner's set-up.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
import fastai.learner
import numpy as np
import tifffile
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import CSVLogger
from fastai.callback.tracker import SaveModelCallback
from fastai.callback.training import GradientAccumulation, GradientClip
from fastai.learner import Learner
from fastai.optimizer import OptimWrapper
from fastai.vision.data import ImageDataLoaders
from torch import nn

from reference import losses as ref_losses
from reference import metrics as ref_metrics
from reference import optim as ref_optim
from reference.data import ContrailsDatasetV0, get_aug
from reference.utils import seed_everything

SEED = 7
SETTINGS = {"BS": 4, "NUM_WORKERS": 0, "EPOCHS": 2, "LR_MAX": 3e-2, "PCT_START": 0.3, "FOLD": 0}
N_TRAIN, N_VALID, SIZE = 18, 6, 32  # 18 tiles at BS 4: 4 batches, the last 2 tiles dropped


class ScriptNet(nn.Module):
    """(B, 3, 5, H, W) -> (B, 1, H, W) logits: frames as channels, conv-BN-ReLU-conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(15, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        return self.conv2(torch.relu(self.bn(self.conv1(x.reshape(b, c * t, h, w)))))


def write_tiles(root: Path) -> Path:
    """A data root with train_adj2/ and val_adj2/ tiles as `shakyo prepare` writes them:
    random ash images with bright diagonal streaks, masks on the streaks."""
    rng = np.random.default_rng(0)
    for split, n in (("train_adj2", N_TRAIN), ("val_adj2", N_VALID)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(40, 120, (SIZE, SIZE, 24), dtype=np.uint8)
            mask = np.zeros((SIZE, SIZE), np.uint8)
            offset = int(rng.integers(-SIZE // 2, SIZE // 2))
            for r in range(SIZE):
                cols = [r + offset + k for k in (0, 1) if 0 <= r + offset + k < SIZE]
                mask[r, cols] = 255
                img[r, cols, 16:] = 20  # dark in B, as a contrail in the ash colour
            tifffile.imwrite(
                folder / f"{1000 + i}_img.tif", img, photometric="minisblack", planarconfig="contig"
            )
            out = mask if split == "train_adj2" else mask[..., None]
            tifffile.imwrite(folder / f"{1000 + i}_mask.tif", out, photometric="minisblack")
    return root


def make_config(
    root: Path, out: Path, model: nn.Module, loss_func=None, metric=None
) -> dict[str, Any]:
    """What the published main() hands to train(): the values and the three built objects
    (main() also creates OUT first). Loss and metric default to the reference's."""
    out.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": str(root), **SETTINGS, "OUT": str(out), "FNAME": "script", "WEIGHTS": None,
        "MODEL": model, "LOSS_FUNC": loss_func or ref_losses.loss_comb,
        "METRIC": metric if metric is not None else ref_metrics.F_th(),
    }  # fmt: skip


def published_train(config: dict[str, Any]) -> None:
    """The published train.py's train(), with the reference's parts (site: facts/training/#recipe)."""
    ds_train = ContrailsDatasetV0(config["PATH"], train=True, tfms=get_aug(seed=SEED))
    ds_val = ContrailsDatasetV0(config["PATH"], train=False, tfms=None)
    dls = ImageDataLoaders.from_dsets(
        ds_train, ds_val, bs=config["BS"], num_workers=config["NUM_WORKERS"]
    )
    model = nn.DataParallel(config["MODEL"])
    learn = Learner(
        dls,
        model,
        path=config["OUT"],
        loss_func=config["LOSS_FUNC"],
        metrics=[config["METRIC"]],
        cbs=[
            GradientClip(3.0),
            GradientAccumulation(int(32 / config["BS"] + 0.5)),
            CSVLogger(),
            SaveModelCallback(monitor="f_th"),
        ],
        opt_func=partial(lambda ps, **kw: OptimWrapper(ps, opt=ref_optim.Over9000), eps=1e-4),
    )
    learn.fit_one_cycle(config["EPOCHS"], lr_max=config["LR_MAX"], pct_start=config["PCT_START"])
    out = os.path.join(config["OUT"], f"{config['FNAME']}_{config['FOLD']}.pth")
    torch.save(learn.model.module.state_dict(), out)


class Record(Callback):
    """Writes down every training batch and, at the end, the Learner's set-up."""

    order = 70  # after ParamScheduler (60) wrote this batch's lr and mom
    runs: list[dict[str, Any]] = []  # one entry per fit, filled while a run is recorded

    def before_fit(self) -> None:
        self.batches: list[dict[str, Any]] = []
        Record.runs.append({"batches": self.batches, "setup": describe(self.learn)})

    def before_batch(self) -> None:
        self.did_step = False

    def after_step(self) -> None:  # skipped when GradientAccumulation cancels the step
        self.did_step = True

    def after_batch(self) -> None:
        if self.learn.training:
            h = self.learn.opt.hypers[-1]
            self.batches.append(
                {"epoch": self.learn.epoch, "batch": self.learn.iter, "lr": float(h["lr"]),
                 "mom": float(h["mom"]), "loss": float(self.learn.loss.detach()),
                 "step": self.did_step}
            )  # fmt: skip

    def after_fit(self) -> None:
        Record.runs[-1]["table"] = [
            {"epoch": e, "train_loss": float(v[0]), "valid_loss": float(v[1]), "f_th": float(v[2])}
            for e, v in enumerate(self.learn.recorder.values)
        ]


def describe(learn: Learner) -> dict[str, Any]:
    """The set-up a difference in the run most likely comes from."""
    cbs = {type(cb).__name__: cb for cb in learn.cbs}
    dl_t, dl_v = learn.dls.train, learn.dls.valid
    return {
        "callbacks": sorted(cbs),
        "clip": getattr(cbs.get("GradientClip"), "max_norm", None),
        "n_acc": getattr(cbs.get("GradientAccumulation"), "n_acc", None),
        "monitor": getattr(cbs.get("SaveModelCallback"), "monitor", None),
        "bs": dl_t.bs,
        "train_shuffle": bool(dl_t.shuffle),
        "train_drop_last": bool(dl_t.drop_last),
        "valid_shuffle": bool(dl_v.shuffle),
        "valid_tfms": getattr(dl_v.dataset, "tfms", None) is not None,
        "n_train": len(dl_t.dataset),
        "path": str(learn.path),
    }


@contextlib.contextmanager
def recorded_cpu_run(learner_modules: tuple = (), aug_factory=None) -> Iterator[dict[str, Any]]:
    """Seeds, the recording callback, the CPU stand-ins for .cuda() and to_fp16(), and the
    seeded augmentation (``aug_factory(seed=SEED)``) in place of ``get_aug`` in
    ``learner_modules``. Yields a dict that holds, afterwards, 'runs' (the Record entries)
    and 'fp16' (whether to_fp16 was called)."""
    state: dict[str, Any] = {"fp16": False}
    saved_cuda, saved_fp16 = nn.Module.cuda, Learner.to_fp16
    saved_defaults = list(fastai.learner.defaults.callbacks)
    saved_aug = [(m, m.__dict__.get("get_aug")) for m in learner_modules]

    def to_fp16(self, *args, **kwargs):
        state["fp16"] = True
        return self

    Record.runs = []
    nn.Module.cuda = lambda self, *a, **k: self
    Learner.to_fp16 = to_fp16
    fastai.learner.defaults.callbacks = [*saved_defaults, Record]
    for m, _ in saved_aug:
        m.get_aug = lambda *a, **k: aug_factory(seed=SEED)
    seed_everything(SEED)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # pin_memory=True on a machine without a GPU: torch warns and goes on
            warnings.filterwarnings("ignore", message=".*pin_memory.*")
            yield state
    finally:
        nn.Module.cuda, Learner.to_fp16 = saved_cuda, saved_fp16
        fastai.learner.defaults.callbacks = saved_defaults
        for m, old in saved_aug:
            if old is None:
                m.__dict__.pop("get_aug", None)
            else:
                m.get_aug = old
        state["runs"] = list(Record.runs)
        Record.runs = []
