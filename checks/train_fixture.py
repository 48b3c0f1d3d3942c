"""The run the ``train-loop`` check trains twice: fastai's Learner (as the original trained)
and the learner's plain-PyTorch loop, on the same tiny model and data, with spies.

BS 2, n_acc 6 (a step every 3 batches, so one accumulation straddles each epoch
boundary), 8 batches per epoch, 3 epochs, pct_start 0.3 (not the schedule's default),
clip 0.4 (it binds on some steps, and on some partial sums of an accumulation), lr_max 3 (Ralamb's first 5 steps are
un-normalised: the weights move visibly in 5 steps).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import fastai.callback.schedule  # noqa: F401  (patches Learner.fit_one_cycle in)
import torch
import torch._dynamo  # noqa: F401  (torch.optim imports it at its first step)
from fastai.callback.core import Callback
from fastai.callback.tracker import SaveModelCallback
from fastai.callback.training import GradientAccumulation, GradientClip
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from torch import nn

from reference import losses as ref_losses
from reference import metrics as ref_metrics
from reference import optim as ref_optim

# fastai and torch._dynamo (which torch.optim imports lazily) are imported with this module,
# before the runner starts a check's clock: the budget measures the check, not imports.

LOOP = {"epochs": 3, "lr_max": 3.0, "pct_start": 0.3, "n_acc": 6, "clip": 0.4}
BS, N_TRAIN, N_VALID, SIZE = 2, 16, 5, 16  # 5 validation samples: batches of 2, 2, 1
N_TRAIN_BATCHES = N_TRAIN // BS
N_VALID_BATCHES = -(-N_VALID // BS)


class TinyNet(nn.Module):
    """(B, 3, 5, H, W) -> (B, 1, H, W) logits: frames as channels, conv-BN-ReLU-conv.
    BatchNorm makes train and eval mode differ."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(15, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        return self.conv2(torch.relu(self.bn(self.conv1(x.reshape(b, c * t, h, w)))))


def loop_data() -> tuple[torch.Tensor, ...]:
    """Training masks: channel 0 of frame 4 + channel 1 of frame 3 > 1. Validation masks
    are mostly the complement of that rule: the better the model learns, the worse it
    scores. f_th stays at the Dice of 'all positive' (every p > 0.1) in epochs 0 and 1
    (a tie: fastai keeps epoch 0, strictly better only) and drops in epoch 2, so the
    best weights are neither the last nor the last of the tied."""
    g = torch.Generator().manual_seed(0)
    xt = torch.rand(N_TRAIN, 3, 5, SIZE, SIZE, generator=g)
    xv = torch.rand(N_VALID, 3, 5, SIZE, SIZE, generator=g)
    yt = (xt[:, 0, 4] + xt[:, 1, 3] > 1.0).float()[:, None]
    yv = (xv[:, 0, 4] + xv[:, 1, 3] <= 1.0).float()[:, None]
    # The last validation sample (alone in its batch) follows the training rule: its loss
    # is far from the others', so a mean over batches differs from the mean over samples.
    yv[-1] = 1.0 - yv[-1]
    return xt, yt, xv, yv


def batches(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(a.clone(), b.clone()) for a, b in zip(x.split(BS), y.split(BS))]


def fastai_run(model: nn.Module, xt, yt, xv, yv) -> tuple[list[dict], list[dict]]:
    """The reference: fastai's Learner as the original trained, on CPU in float32, without
    shuffling or augmentation. Returns (table, log) as fit_one_cycle's docstring defines
    them; ``model`` ends with the best epoch's weights (SaveModelCallback)."""

    class BatchRecord(Callback):
        order = 70  # after ParamScheduler (60) has written this batch's lr and mom

        def before_fit(self) -> None:
            self.batch_log: list[dict] = []

        def before_batch(self) -> None:
            self.did_step = False

        def after_step(self) -> None:  # skipped when GradientAccumulation cancels the batch
            self.did_step = True

        def after_batch(self) -> None:
            if self.learn.training:
                h = self.learn.opt.hypers[-1]
                self.batch_log.append(
                    {"epoch": self.learn.epoch, "batch": self.learn.iter, "lr": float(h["lr"]),
                     "mom": float(h["mom"]), "loss": self.learn.loss.detach().item(),
                     "step": self.did_step}
                )  # fmt: skip

    dl_t = DataLoader(list(zip(xt, yt)), bs=BS, shuffle=False, drop_last=True, num_workers=0)
    dl_v = DataLoader(list(zip(xv, yv)), bs=BS, shuffle=False, num_workers=0)
    record = BatchRecord()
    with tempfile.TemporaryDirectory(prefix="shakyo-train-loop-") as tmp:
        learn = Learner(
            DataLoaders(dl_t, dl_v, device=torch.device("cpu")),
            model,
            loss_func=ref_losses.loss_comb,
            metrics=[ref_metrics.F_th()],
            opt_func=ref_optim.over9000_opt_func(),
            cbs=[
                GradientClip(LOOP["clip"]),
                GradientAccumulation(LOOP["n_acc"]),
                SaveModelCallback(monitor="f_th"),
                record,
            ],
            path=tmp,
        )
        with learn.no_logging(), learn.no_bar(), contextlib.redirect_stdout(io.StringIO()):
            learn.fit_one_cycle(LOOP["epochs"], LOOP["lr_max"], pct_start=LOOP["pct_start"])
    table = [
        {"epoch": e, "train_loss": float(v[0]), "valid_loss": float(v[1]), "f_th": float(v[2])}
        for e, v in enumerate(learn.recorder.values)
    ]
    return table, record.batch_log


def expected_modes() -> list[tuple[bool, bool]]:
    """(train mode, gradients on) of every forward call fastai makes: per epoch, the
    training batches in train mode with gradients, then validation in eval mode without."""
    epoch = [(True, True)] * N_TRAIN_BATCHES + [(False, False)] * N_VALID_BATCHES
    return epoch * LOOP["epochs"]


def spy_on_modes(model: nn.Module) -> list[tuple[bool, bool]]:
    """[(model.training, torch.is_grad_enabled())] of every forward call of ``model``."""
    modes: list[tuple[bool, bool]] = []
    model.register_forward_pre_hook(
        lambda module, inputs: modes.append((module.training, torch.is_grad_enabled()))
    )
    return modes


def spy_on_steps(opt) -> list[tuple[float, float]]:
    """[(lr, betas[0])] read from opt.param_groups[0] at every opt.step(), in order."""
    applied: list[tuple[float, float]] = []
    step = opt.step

    def recording_step(*args, **kwargs):
        group = opt.param_groups[0]
        applied.append((float(group["lr"]), float(group["betas"][0])))
        return step(*args, **kwargs)

    opt.step = recording_step
    return applied


class MetricSpy:
    """An F_th (of ``factory``), recording the calls the loop makes ('reset', 'accumulate')."""

    def __init__(self, factory) -> None:
        self.metric = factory()
        self.metric.reset()  # so that a loop that never resets still gets numbers
        self.calls: list[str] = []

    def reset(self) -> None:
        self.calls.append("reset")
        self.metric.reset()

    def accumulate(self, learn: Any) -> None:
        self.calls.append("accumulate")
        self.metric.accumulate(learn)

    @property
    def value(self) -> float:
        return self.metric.value

    @property
    def name(self) -> str:
        return self.metric.name


def unreset_epochs(calls: list[str]) -> list[int]:
    """Epochs (0-based, counting validations) whose accumulate() calls came without a
    reset() since the previous validation."""
    bad, epoch, fresh, accumulating = [], -1, False, False
    for call in calls:
        if call == "reset":
            fresh, accumulating = True, False
            continue
        if not accumulating:
            epoch += 1
            accumulating = True
            if not fresh:
                bad.append(epoch)
        fresh = False
    return bad


@contextlib.contextmanager
def tiny_cpu_run() -> Iterator[None]:
    """One thread and no oneDNN while both sides train. For tensors this small, a second
    thread only waits on the other (3.3 s instead of 0.4 s for this check on a busy 2-core
    machine), and oneDNN builds kernels for every new shape on first use. Both sides run
    inside, so they compute alike; the previous settings come back afterwards."""
    threads = torch.get_num_threads()
    flags = torch.backends.mkldnn.flags(enabled=False)
    with warnings.catch_warnings():  # setting the flags warns about TF32 on Intel GPUs
        warnings.simplefilter("ignore", UserWarning)
        flags.__enter__()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            flags.__exit__(None, None, None)
