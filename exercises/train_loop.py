"""fastai's fit_one_cycle, as the original trained, in plain PyTorch (site: facts/training/#recipe).

Exercise ``train-loop``. It needs ``one-cycle`` (schedule.py) first.

What fastai's Learner does with the original's callbacks, step by step:

- one-cycle: lr and mom of every training batch from ``one_cycle`` (also for the
  batches that accumulation does not step on); mom is Adam's β₁, ``betas[0]``.
- GradientAccumulation(n_acc) counts **samples**: every loss is backpropagated as
  loss / (n_acc / bs); once the running count reaches n_acc the optimizer steps and
  the count restarts. The count lives across epochs (fastai resets it once per fit).
- GradientClip(clip): the global L2 norm of the accumulated gradient, just before a step.
- Recorder: train_loss is the smoothed loss, an EMA (β = 0.98) of the raw batch losses,
  debiased by 1 − βⁿ, with n counting every training batch of the run (never reset);
  valid_loss is the mean over the validation set weighted by batch size.
- SaveModelCallback(monitor=metric): keeps the weights of the best epoch (strictly
  better only) and loads them back at the end.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from .schedule import one_cycle


def fit_one_cycle(
    model: nn.Module,
    train_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    valid_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    epochs: int,
    lr_max: float,
    opt: torch.optim.Optimizer,
    loss_func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    metric: Any,
    pct_start: float = 0.25,
    n_acc: int = 32,
    clip: float | None = None,
    beta: float = 0.98,
) -> tuple[list[dict[str, float]], list[dict[str, Any]]]:
    """Train ``model`` like ``Learner.fit_one_cycle`` with GradientAccumulation(n_acc),
    GradientClip(clip) and SaveModelCallback(monitor=metric.name).

    model: (B, ...) -> (B, 1, H, W) logits; train_batches / valid_batches: lists of
    (x, y) batches, iterated in this order in every epoch (no shuffling here);
    opt: an optimizer already built on ``model.parameters()`` whose param groups hold
    'lr' and 'betas' (e.g. Over9000); loss_func(pred, y) -> scalar; metric: a fastai-style
    metric (reset(), accumulate(learn) reading learn.pred and learn.y, value, name), e.g. F_th.

    Before every training batch, lr and mom of ``one_cycle(epochs, len(train_batches),
    lr_max, pct_start)`` go into every param group: group['lr'] and group['betas'][0] (the
    check reads them from opt.param_groups[0] at each opt.step()). Validation runs in eval
    mode under torch.no_grad() after every epoch.

    Returns (table, log) and leaves the best epoch's weights in ``model``:
    table: one dict per epoch {"epoch", "train_loss", "valid_loss", metric.name: value};
    log: one dict per training batch {"epoch", "batch", "lr", "mom", "loss" (the raw loss
    of the batch, a float), "step" (True when the optimizer stepped after it)}.
    """
    # BEGIN EXERCISE train-loop
    raise NotImplementedError("train-loop: write fit_one_cycle (shakyo hint train-loop)")
    # END EXERCISE train-loop
