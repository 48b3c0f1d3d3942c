"""fastai callbacks of `shakyo train`: epoch seeding, gradient clipping, NaN guard, batch log.

Order of the events that matter here (fastai 2.8.12 runs callbacks sorted by
`order`; the library's own are TrainEvalCallback -10, GradientAccumulation 6,
MixedPrecision 10, GradientClip 11, Recorder 50, ProgressCallback 60,
ParamScheduler 60, TrackerCallback 60):

- `EpochSeed` (-20) reseeds everything at `before_epoch` from (SEED, epoch), so
  an epoch's shuffling and augmentation do not depend on what ran before: a
  resumed run draws the same batches as an uninterrupted one.
- `NanGuard` (96, after MixedPrecision has left autocast and after BatchLog has
  logged the batch) skips a batch whose raw loss is not finite and stops the run
  after NAN_PATIENCE in a row.
- `ClipAndMeasure` replaces GradientClip(3.0): same clipping (global L2 norm,
  after the GradScaler unscaled), and it keeps the norm for batches.csv.
- `BatchLog` (95) appends one row per training batch to batches.csv.
- `BestModel` and `RunState` (model.pth, checkpoint.pth, history.csv, resume)
  live in reference/run_state.py and are re-exported here.

Only rank 0 of a distributed run writes files (`rank_distrib() == 0`).
"""

from __future__ import annotations

import csv
import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.callback.core import (
    Callback,
    CancelBatchException,
    CancelFitException,
    CancelStepException,
)
from fastai.learner import AvgSmoothLoss

from reference.run_state import (
    BATCH_COLUMNS,
    HISTORY_COLUMNS,
    BestModel,
    RunState,
    _main_process,
    all_finite,
    unwrap,
    write_history,
)
from reference.utils import atomic_path, seed_everything

__all__ = [
    "HISTORY_COLUMNS",
    "BATCH_COLUMNS",
    "epoch_seed",
    "FiniteSmoothLoss",
    "EpochSeed",
    "ClipAndMeasure",
    "NanGuard",
    "BatchLog",
    "BestModel",
    "RunState",
    "all_finite",
    "unwrap",
    "write_history",
]


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for one epoch, a function of (SEED, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class FiniteSmoothLoss(AvgSmoothLoss):
    """fastai's smoothed loss (EMA β=0.98, debiased), skipping non-finite losses.

    fastai's own EMA stays NaN for ever after one NaN batch (site: nan/#tables), hiding
    whether the model recovered. With finite losses it is fastai's, number for number.
    """

    def accumulate(self, learn) -> None:
        if bool(torch.isfinite(learn.loss.detach()).all()):
            super().accumulate(learn)


class _ReseedAug:
    """Worker init hook: give each DataLoader worker its own augmentation stream.

    albumentations 2.x Compose keeps its own RNG (global seeds do not reach it),
    and every worker receives a copy of the same state, so without this all
    workers would draw the same augmentations. fastai seeds each worker with
    base_seed + worker_id, base_seed drawn from torch's RNG (reseeded per epoch).
    A class (not a closure) so that it pickles under the spawn start method.
    """

    def __init__(self, aug: Any) -> None:
        self.aug = aug

    def __call__(self) -> None:
        if self.aug is not None:
            self.aug.set_random_seed(torch.initial_seed() % 2**32)


class EpochSeed(Callback):
    """Reseed Python, NumPy, torch, the train DataLoader's shuffle RNG and the augmentation.

    Every epoch's randomness is a function of (SEED, epoch): resuming at epoch k
    draws exactly the batches that an uninterrupted run draws there.
    """

    order = -20

    def __init__(self, seed: int, aug: Any = None) -> None:
        self.seed, self.aug = seed, aug

    def before_epoch(self) -> None:
        s = epoch_seed(self.seed, self.epoch)
        seed_everything(s)
        # fastai's shuffle RNG (DataLoader.shuffle_fn); under DDP the train loader is a
        # DistributedDL whose inner `.dl` shuffles, with the same seed on every rank.
        for dl in (self.dls.train, getattr(self.dls.train, "dl", None)):
            if dl is not None:
                dl.rng = random.Random(s)
        if self.aug is not None:
            self.aug.set_random_seed(s)


class NanGuard(Callback):
    """Skip non-finite steps, name the first non-finite module, stop after `patience` in a row.

    On a training batch whose raw loss is not finite: log it with epoch/iter,
    run `nan_hunt` on that batch (once per streak) and print its one-line
    summary, zero the gradients (also those already accumulated) and skip the
    optimizer step. A non-finite gradient norm without a GradScaler (fp32,
    bf16) is treated the same way (reported by ClipAndMeasure). After
    `patience` consecutive non-finite steps, training stops (CancelFitException at
    the end of that batch) and `self.stop_message` explains what to try.
    """

    # After BatchLog (95), so the batch that exhausts the patience is logged before the stop.
    order = 96

    def __init__(
        self,
        patience: int = 20,
        hunt: Any = None,
        log: Any = None,
        advice: str = "try a lower LR_MAX",
    ) -> None:
        self.patience, self.hunt, self.advice = patience, hunt, advice
        # A leading newline keeps the message off the progress bar's line.
        self.log = log or (lambda s: print("\n" + s, file=sys.stderr))
        self.streak, self.first_module, self.stop_message = 0, None, None
        self.events: list[dict] = []

    def before_fit(self) -> None:
        self.streak, self.stop_message = 0, None

    def before_batch(self) -> None:
        self.learn.step_state = "accumulating"

    def after_loss(self) -> None:
        if not self.training or bool(torch.isfinite(self.learn.loss.detach()).all()):
            return
        self.nonfinite("loss", float(self.learn.loss.detach().float().mean()))
        raise CancelBatchException()

    def nonfinite(self, what: str, value: float) -> None:
        """Record a non-finite `what` ("loss" or "gradient") in the current batch; maybe stop."""
        self.learn.step_state = "skipped"
        self.learn.opt.zero_grad()
        acc = getattr(self.learn, "gradient_accumulation", None)
        if acc is not None:
            acc.count = 0  # the accumulated gradients were just dropped
        self.streak += 1
        where = f"epoch {self.epoch} iter {self.iter}"
        if self.streak == 1:
            self.first_module = self._hunt()
            self.log(f"NaN guard: non-finite {what} ({value}) at {where}; {self.first_module}")
        self.events.append({"epoch": self.epoch, "iter": self.iter, "what": what, "value": value})
        if self.streak >= self.patience:
            self.stop_message = (
                f"training stopped at {where}: {self.streak} consecutive non-finite steps "
                f"(NAN_PATIENCE {self.patience}); first seen: {self.first_module}; {self.advice}"
            )
            self.log(f"NaN guard: {self.stop_message}")

    def after_batch(self) -> None:
        if self.training and self.stop_message:
            raise CancelFitException()

    def after_step(self) -> None:
        if getattr(self.learn, "step_state", None) == "stepped":
            self.streak = 0

    def _hunt(self) -> str:
        if self.hunt is None:
            return "nan_hunt unavailable"
        target = self.yb[0] if len(self.yb) else None
        try:
            with _autocast_like(self.learn):
                report = self.hunt(
                    self.learn.model,
                    self.xb,
                    loss_fn=self.learn.loss_func,
                    target=target,
                    backward=True,
                )
            summary = report.summary()
        except Exception as e:  # diagnosis must never kill the run it diagnoses
            summary = f"nan_hunt failed: {type(e).__name__}: {e}"
        self.learn.opt.zero_grad()
        return summary


def _autocast_like(learn):
    """The autocast context of the learner's MixedPrecision, if any (fp16 overflow needs it)."""
    import contextlib

    from fastai.callback.fp16 import AMPMode, MixedPrecision

    mp = next((cb for cb in learn.cbs if isinstance(cb, MixedPrecision)), None)
    if mp is None:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if mp.amp_mode == AMPMode.BF16 else torch.float16
    return torch.autocast("cuda", dtype=dtype)


class ClipAndMeasure(Callback):
    """GradientClip(max_norm): global L2 norm of all gradients, clipped after unscaling.

    Same order as fastai's GradientClip (MixedPrecision.order + 1), so a GradScaler
    has already unscaled the gradients (and skipped the step on overflow). Keeps
    the pre-clip norm in `learn.grad_norm` for batches.csv; a non-finite norm
    reaching this point (no GradScaler) goes to the NaN guard instead of the optimizer.
    """

    order = 11

    def __init__(self, max_norm: float = 3.0) -> None:
        self.max_norm = max_norm

    def before_batch(self) -> None:
        self.learn.grad_norm = float("nan")

    def before_step(self) -> None:
        params = [p for p in self.learn.model.parameters() if p.grad is not None]
        total = torch.nn.utils.get_total_norm([p.grad for p in params], 2.0)
        norm = float(total)
        self.learn.grad_norm = norm
        # clip_grad_norm_ multiplies every gradient by min(max_norm / (norm + 1e-6), 1);
        # the same coefficient, but no pass over all gradients when it is exactly 1
        # (x * 1.0 == x for every float, so the bits are those of clip_grad_norm_).
        if float(self.max_norm / (total + 1e-6)) < 1.0:
            torch.nn.utils.clip_grads_with_norm_(params, self.max_norm, total)
        if not math.isfinite(norm):
            guard = getattr(self.learn, "nan_guard", None)
            if guard is None:
                self.learn.opt.zero_grad()
                raise CancelStepException()
            guard.nonfinite("gradient", norm)
            raise CancelStepException()
        self.learn.step_state = "stepped"

    def after_cancel_step(self) -> None:
        self.learn.step_state = "skipped"


class BatchLog(Callback):
    """Append one row per training batch to batches.csv (flushed, so a killed run keeps its rows).

    Columns: epoch, iter, raw_loss, smooth_loss, lr, mom, grad_norm (pre-clip, empty
    while accumulating), loss_scale (GradScaler scale, 1.0 without one), step_skipped
    (1 when a due step was skipped: non-finite loss/gradient or GradScaler overflow).
    """

    order, run_valid = 95, False

    def __init__(self, path: str | Path, keep_before_epoch: int | None = None) -> None:
        self.path, self.keep_before_epoch = Path(path), keep_before_epoch
        self.file = None

    def before_fit(self) -> None:
        if not _main_process():
            return
        rows = []
        if self.keep_before_epoch and self.path.exists():
            # A resumed run keeps the rows of finished epochs and drops the killed epoch's.
            with open(self.path, newline="") as f:
                rows = [r for r in csv.reader(f)][1:]
            rows = [r for r in rows if r and int(r[0]) < self.keep_before_epoch]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(BATCH_COLUMNS)
            w.writerows(rows)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)

    def after_batch(self) -> None:
        if self.file is None:
            return
        hyper = self.opt.hypers[-1]
        scaler = getattr(self.learn, "scaler", None)
        scale = float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0
        state = getattr(self.learn, "step_state", "stepped")
        norm = self.learn.grad_norm if state != "accumulating" else None
        loss = self.learn.loss.detach().float().mean().item()
        self.writer.writerow(
            [self.epoch, self.iter, repr(loss), repr(float(self.recorder.smooth_loss.value)),
             repr(float(hyper["lr"])), repr(float(hyper["mom"])),
             "" if norm is None else repr(norm), repr(scale), int(state == "skipped")]
        )  # fmt: skip
        self.file.flush()

    def after_fit(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
