"""Files of a run that survive it: the best model and the per-epoch checkpoint.

- `BestModel` (a TrackerCallback on f_th, order 61) writes model.pth when f_th
  improves, never with non-finite weights, and reloads the best weights at the end.
- `RunState` (order 90) writes checkpoint.pth + history.csv at the end of every
  epoch and, on RESUME, restores at `before_fit` what fastai resets there.

Only rank 0 of a distributed run writes files (`rank_distrib() == 0`).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.callback.tracker import TrackerCallback
from fastai.torch_core import rank_distrib

from reference.utils import atomic_path, atomic_write_text

__all__ = [
    "HISTORY_COLUMNS",
    "BATCH_COLUMNS",
    "BestModel",
    "RunState",
    "write_history",
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
    tensors = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
    if not tensors:
        return True
    # max |t| per tensor in one call (NaN propagates through the max), one bool at the end
    # instead of one device sync per tensor.
    peaks = torch._foreach_norm([t.detach() for t in tensors], float("inf"))
    return bool(torch.isfinite(torch.stack([p.float().to(peaks[0].device) for p in peaks])).all())


class BestModel(TrackerCallback):
    """SaveModelCallback(monitor='f_th') that writes atomically and never saves non-finite weights.

    When f_th improves: RUN_DIR/model.pth = the bare model's state_dict (loadable with
    `reference.models.load_checkpoint`). At the end of fit the best weights are
    reloaded into the model, as fastai's SaveModelCallback does (site: facts/training/#mixed-precision).
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
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # rank 0 may still be writing the last epoch's model.pth
        if self.best_epoch is not None and self.path.exists():
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            unwrap(self.learn.model).load_state_dict(state)

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch,
                "best_threshold": self.best_threshold, "best_curve": self.best_curve}  # fmt: skip

    def load_state(self, s: dict) -> None:
        self.best, self.best_epoch = s["best"], s["best_epoch"]
        self.best_threshold, self.best_curve = s["best_threshold"], s["best_curve"]


def _shuffling_dl(dl: Any) -> Any:
    """The loader that owns the shuffle RNG: under DDP the inner `.dl` of the ShardedDL."""
    return getattr(dl, "dl", dl)


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
        _set_rng_states(ck["rng"], self.aug, _shuffling_dl(self.dls.train))
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
            "rng": _rng_states(self.aug, _shuffling_dl(self.dls.train)),
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
