"""fastai callbacks of `shakyo train`: logging, NaN guard, best model, checkpoint/resume.

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
- `BestModel` (a TrackerCallback on f_th) writes model.pth when f_th improves.
- `RunState` (90) writes checkpoint.pth + history.csv every epoch and restores
  them at `before_fit` when resuming.

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
from fastai.callback.tracker import TrackerCallback
from fastai.learner import AvgSmoothLoss
from fastai.torch_core import rank_distrib

from reference.utils import atomic_path, atomic_write_text, seed_everything

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
]

HISTORY_COLUMNS = ["epoch", "train_loss", "valid_loss", "f_th", "time"]
BATCH_COLUMNS = [
    "epoch", "iter", "raw_loss", "smooth_loss", "lr", "mom",
    "grad_norm", "loss_scale", "step_skipped",
]  # fmt: skip


def _main_process() -> bool:
    return rank_distrib() == 0


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a DistributedDataParallel wrapper (fastai wraps it during fit)."""
    return getattr(model, "module", model)


def all_finite(model: torch.nn.Module) -> bool:
    """True when every parameter and buffer of `model` is finite."""
    tensors = list(model.parameters()) + list(model.buffers())
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for one epoch, a function of (SEED, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class FiniteSmoothLoss(AvgSmoothLoss):
    """fastai's smoothed loss (EMA β=0.98, debiased), skipping non-finite losses.

    fastai's own EMA stays NaN for ever after one NaN batch (FACTS §9), hiding
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
        norm = float(torch.nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.max_norm))
        self.learn.grad_norm = norm
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


class BestModel(TrackerCallback):
    """SaveModelCallback(monitor='f_th') that writes atomically and never saves non-finite weights.

    When f_th improves: RUN_DIR/model.pth = the bare model's state_dict (loadable with
    `reference.models.load_checkpoint`). At the end of fit the best weights are
    reloaded into the model, as fastai's SaveModelCallback does (FACTS §7).
    """

    order = TrackerCallback.order + 1

    def __init__(self, path: str | Path, monitor: str = "f_th") -> None:
        super().__init__(monitor=monitor, comp=np.greater, reset_on_fit=False)
        self.path = Path(path)
        self.best_epoch, self.best_threshold, self.best_curve = None, None, None
        self.refused: list[int] = []

    def after_epoch(self) -> None:
        previous = self.best
        super().after_epoch()
        if not self.new_best:
            return
        model = unwrap(self.learn.model)
        if not all_finite(model):
            self.best, self.new_best = previous, False  # a refused epoch is not the best
            self.refused.append(self.epoch)
            print(
                f"best model: epoch {self.epoch} has non-finite weights; model.pth not written",
                file=sys.stderr,
            )
            return
        self.best_epoch = self.epoch
        metric = next(
            (m for m in self.learn.metrics if getattr(m, "name", None) == self.monitor), None
        )
        if metric is not None and hasattr(metric, "best_threshold"):
            self.best_threshold = float(metric.best_threshold)
            ths, dice = metric.curve
            self.best_curve = [[float(t), float(d)] for t, d in zip(ths, dice)]
        if _main_process():
            with atomic_path(self.path) as tmp:
                torch.save(model.state_dict(), tmp)

    def after_fit(self) -> None:
        super().after_fit()
        if self.best_epoch is not None and self.path.exists():
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            unwrap(self.learn.model).load_state_dict(state)

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch,
                "best_threshold": self.best_threshold, "best_curve": self.best_curve}  # fmt: skip

    def load_state(self, s: dict) -> None:
        self.best, self.best_epoch = s["best"], s["best_epoch"]
        self.best_threshold, self.best_curve = s["best_threshold"], s["best_curve"]


def _rng_states(aug: Any, dl: Any) -> dict:
    s = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "dataloader": dl.rng.getstate(),
    }
    if aug is not None and hasattr(aug, "random_generator"):
        s["aug"] = {
            "numpy": aug.random_generator.bit_generator.state,
            "python": aug.py_random.getstate(),
        }
    return s


def _set_rng_states(s: dict, aug: Any, dl: Any) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    dl.rng.setstate(s["dataloader"])
    if aug is not None and "aug" in s:
        aug.random_generator.bit_generator.state = s["aug"]["numpy"]
        aug.py_random.setstate(s["aug"]["python"])


class RunState(Callback):
    """checkpoint.pth + history.csv at the end of every epoch; restore them on resume.

    The checkpoint holds everything the next epoch depends on: model, optimizer
    (incl. Lookahead's slow weights), the schedule position (epochs done, train_iter),
    the GradScaler, the gradient-accumulation count and any accumulated gradients,
    RNG states, the best metric, the Recorder's smoothed loss (count, value) and the
    history rows. The one-cycle position itself follows from the epoch: fastai
    sets pct_train = epoch / n_epoch at every `before_train`.
    """

    order = 90

    def __init__(
        self, run_dir: Path, config: dict, aug: Any = None, resume: dict | None = None
    ) -> None:
        self.run_dir, self.config, self.aug, self.resume = Path(run_dir), config, aug, resume
        self.rows: list[list] = []

    # -- restore -----------------------------------------------------------
    def before_fit(self) -> None:
        ck = self.resume
        if ck is None:
            return
        self.rows = [list(r) for r in ck["history"]]
        rec = self.recorder
        rec.smooth_loss.count = ck["smooth_loss"]["count"]
        rec.smooth_loss.val = ck["smooth_loss"]["val"].clone()
        rec.values = [r[1:-1] for r in self.rows]
        self.learn.train_iter = ck["train_iter"]
        self.learn.best_model.load_state(ck["best"])
        acc = getattr(self.learn, "gradient_accumulation", None)
        if acc is not None:
            acc.count = ck["acc_count"]
        if ck["grads"] is not None:
            for p, g in zip(unwrap(self.learn.model).parameters(), ck["grads"]):
                p.grad = None if g is None else g.to(p.device)
        scaler = getattr(self.learn, "scaler", None)
        if scaler is not None and ck["scaler"] is not None:
            scaler.load_state_dict(ck["scaler"])
        _set_rng_states(ck["rng"], self.aug, self.dls.train)
        mbar = getattr(getattr(self.learn, "progress", None), "mbar", None)
        if mbar is not None:
            mbar.update(0)  # fastprogress needs a first update(0) before update(first_epoch)
        for row in self.rows:  # the table shows the epochs done before the interruption
            self.learn.logger([row[0], *row[1:-1], row[-1]])

    # -- save ----------------------------------------------------------------
    def after_epoch(self) -> None:
        row = list(self.recorder.log)
        row[0] = int(row[0])
        self.rows.append([_plain(v) for v in row])
        if not _main_process():
            return
        model = unwrap(self.learn.model)
        if all_finite(model):
            with atomic_path(self.run_dir / "checkpoint.pth") as tmp:
                torch.save(self.checkpoint(model), tmp)
        else:
            print(
                f"checkpoint: epoch {self.epoch} has non-finite weights; not written",
                file=sys.stderr,
            )
        write_history(self.run_dir / "history.csv", self.rows)

    def checkpoint(self, model: torch.nn.Module) -> dict:
        acc = getattr(self.learn, "gradient_accumulation", None)
        count = acc.count if acc is not None else 0
        grads = None
        if count:
            grads = [
                None if p.grad is None else p.grad.detach().cpu().clone()
                for p in model.parameters()
            ]
        scaler = getattr(self.learn, "scaler", None)
        sl = self.recorder.smooth_loss
        return {
            "format": "shakyo-checkpoint-1",
            "epoch": self.epoch,  # last finished epoch; resume starts at epoch + 1
            "train_iter": self.learn.train_iter,
            "config": dict(self.config),
            "model": model.state_dict(),
            "opt": self.learn.opt.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            "acc_count": count,
            "grads": grads,
            "smooth_loss": {
                "count": sl.count,
                "val": torch.as_tensor(sl.val).detach().cpu().clone(),
            },
            "best": self.learn.best_model.state(),
            "history": self.rows,
            "rng": _rng_states(self.aug, self.dls.train),
        }


def _plain(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_history(path: Path, rows: list[list]) -> None:
    """history.csv: epoch, train_loss, valid_loss, f_th, time; floats at full precision."""
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(repr(v) if isinstance(v, float) else str(v) for v in r) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")
