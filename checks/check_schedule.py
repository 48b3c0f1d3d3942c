"""Check of ``schedule.py``: ``one-cycle``."""

from __future__ import annotations

import numpy as np
import torch
from fastai.callback.schedule import combined_cos
from fastai.callback.schedule import sched_cos as fastai_sched_cos

from checks.ladder import Ladder

# (epochs, batches_per_epoch, lr_max, kwargs): the final recipe's pct_start 0.1 on a run
# where the peak falls inside epoch 0, fastai's default 0.25, custom div / moms.
_CYCLES = (
    (4, 10, 3.5e-4, {"pct_start": 0.1}),
    (3, 7, 1e-2, {}),
    (2, 9, 2e-3, {"pct_start": 0.3, "div": 10.0, "div_final": 1e3, "moms": (0.9, 0.8, 0.99)}),
)


def one_cycle_formula(
    epochs, batches, lr_max, pct_start=0.25, div=25.0, div_final=1e5, moms=(0.95, 0.85, 0.95)
) -> tuple[np.ndarray, np.ndarray]:
    """The one-cycle formula (site: facts/training/#one-cycle) in float64, vectorised (written apart from the solution)."""
    pos = np.arange(epochs * batches, dtype=np.float64) / (epochs * batches)
    warm = pos < pct_start
    p = np.where(warm, pos / pct_start, (pos - pct_start) / (1 - pct_start))
    rise = (1 - np.cos(np.pi * p)) / 2  # 0 -> 1 along half a cosine
    lr = np.where(
        warm,
        lr_max / div + (lr_max - lr_max / div) * rise,
        lr_max + (lr_max / div_final - lr_max) * rise,
    )
    mom = np.where(warm, moms[0] + (moms[1] - moms[0]) * rise, moms[1] + (moms[2] - moms[1]) * rise)
    return lr, mom


def fastai_one_cycle(
    epochs, batches, lr_max, pct_start=0.25, div=25.0, div_final=1e5, moms=(0.95, 0.85, 0.95)
) -> tuple[np.ndarray, np.ndarray]:
    """What fastai's fit_one_cycle writes before each training batch: combined_cos at
    TrainEvalCallback's pct_train (reset to epoch / epochs, then += 1 / (batches · epochs))."""
    f_lr = combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final)
    f_mom = combined_cos(pct_start, *moms)
    lrs, mom = [], []
    for e in range(epochs):
        pos = e / epochs
        for _ in range(batches):
            lrs.append(float(f_lr(pos)))
            mom.append(float(f_mom(pos)))
            pos += 1.0 / (batches * epochs)
    return np.array(lrs), np.array(mom)


def _describe_cycle(epochs, batches, lr_max, kw) -> str:
    args = ", ".join(
        [str(epochs), str(batches), f"{lr_max:g}"] + [f"{k}={v}" for k, v in kw.items()]
    )
    return f"one_cycle({args})"


def check_one_cycle(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        for epochs, batches, lr_max, kw in _CYCLES[:2]:
            what = _describe_cycle(epochs, batches, lr_max, kw)
            out = c.call(
                what, lambda e=epochs, b=batches, lr=lr_max, kw=kw: m.one_cycle(e, b, lr, **kw)
            )
            c.is_type(out, tuple, what)
            if len(out) != 2:
                c.fail(
                    f"called:   {what}\n  expected a pair (lrs, moms)\n  got:      {len(out)} items"
                )
            for name, seq in zip(("lrs", "moms"), out):
                n = len(seq)
                if n != epochs * batches:
                    c.fail(
                        f"called:   {what}\n  expected {name} for every training batch of the "
                        f"run: {epochs} x {batches} = {epochs * batches} values\n  got:      {n}"
                    )
                bad = [v for v in seq if not isinstance(v, (float, np.floating))]
                if bad:
                    c.fail(
                        f"called:   {what}\n  {name} must be floats; got a {type(bad[0]).__name__}"
                    )

    with c.rung("values"):
        for start, end, pos in ((1e-3, 4e-5, 0.0), (0.85, 0.95, 0.3), (3.5e-4, 3.5e-9, 0.77)):
            what = f"sched_cos({start:g}, {end:g}, {pos:g})"
            got = c.call(what, lambda s=start, e=end, p=pos: m.sched_cos(s, e, p))
            expected = c.ref(
                lambda s=start, e=end, p=pos: torch.tensor(
                    fastai_sched_cos(s, e, p), dtype=torch.float64
                )
            )
            c.close(torch.tensor(float(got), dtype=torch.float64), expected, "schedule", what)
        for epochs, batches, lr_max, kw in _CYCLES:
            what = _describe_cycle(epochs, batches, lr_max, kw)
            lrs, moms = c.call(
                what, lambda e=epochs, b=batches, lr=lr_max, kw=kw: m.one_cycle(e, b, lr, **kw)
            )
            got_lr, got_mom = np.asarray(lrs, dtype=np.float64), np.asarray(moms, dtype=np.float64)
            formula = c.ref(
                lambda e=epochs, b=batches, lr=lr_max, kw=kw: one_cycle_formula(e, b, lr, **kw)
            )
            f_lr, f_mom = formula[0], formula[1]
            c.close(
                got_lr,
                f_lr,
                "schedule",
                f"{what}[0] (lr per batch) vs the formula of (site: facts/training/#one-cycle) in float64",
            )
            c.close(
                got_mom, f_mom, "schedule", f"{what}[1] (mom per batch) vs the formula in float64"
            )
            # fastai itself, whose float32 leg boundaries shift positions by ~1e-8.
            fastai = c.ref(
                lambda e=epochs, b=batches, lr=lr_max, kw=kw: fastai_one_cycle(e, b, lr, **kw)
            )
            a_lr, a_mom = fastai[0], fastai[1]
            c.close(
                got_lr / lr_max,
                a_lr / lr_max,
                "fastai_schedule",
                f"{what}[0] / lr_max vs fastai's fit_one_cycle",
            )
            c.close(got_mom, a_mom, "fastai_schedule", f"{what}[1] vs fastai's fit_one_cycle")
