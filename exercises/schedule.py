"""The one-cycle schedule of fastai's fit_one_cycle, per training batch (site: facts/training/#one-cycle).

Exercise ``one-cycle``.

pos = i / (epochs · batches_per_epoch) for training batch i of the whole run (batches
skipped by gradient accumulation count too). With pct = pct_start:

    pos < pct:   p = pos / pct                 lr: lr_max/div → lr_max       mom: 0.95 → 0.85
    otherwise:   p = (pos − pct) / (1 − pct)   lr: lr_max → lr_max/div_final  mom: 0.85 → 0.95

each leg along half a cosine (``sched_cos``). fastai's ``combined_cos``.
"""

from __future__ import annotations

import math


def sched_cos(start, end, pos):
    """start at pos 0 → end at pos 1 along half a cosine: start + (1 + cos π(1 − pos))·(end − start)/2."""
    # BEGIN EXERCISE one-cycle
    raise NotImplementedError("one-cycle: write sched_cos (shakyo hint one-cycle)")
    # END EXERCISE one-cycle


def one_cycle(
    epochs: int,
    batches_per_epoch: int,
    lr_max: float,
    pct_start: float = 0.25,
    div: float = 25.0,
    div_final: float = 1e5,
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
) -> tuple[list[float], list[float]]:
    """lr and momentum (Adam's β₁) of every training batch of a one-cycle run.

    -> (lrs, moms), two lists of epochs · batches_per_epoch Python floats, in batch order.
    pct_start is a share of the whole run: with 4 epochs and 0.1 the peak is 40 % into epoch 0.
    """
    # BEGIN EXERCISE one-cycle
    raise NotImplementedError("one-cycle: write one_cycle (shakyo hint one-cycle)")
    # END EXERCISE one-cycle
