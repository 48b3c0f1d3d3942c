"""Schedule questions: what fastai itself does, read off a tiny Learner.

``fit_one_cycle`` and ``GradientAccumulation`` are fastai's, so the answers are
fastai's too: a Learner on a one-weight model runs the real schedule and a
probe callback reads the optimizer's hyper-parameters as each training batch
starts (after ``ParamScheduler`` has set them). For the schedule the probe then
cancels the batch (no forward pass: the values do not depend on it), and a run
asked about batch k starts at k's epoch (``start_epoch``), as fastai's
``pct_train`` restarts each epoch at epoch / n_epoch. Accumulation questions
run real batches, since the callback acts on the loss and the step.

``LR_MAX`` and ``PCT_START`` come from the config file named by the question
(the team's ``configs/coat_ulstm.json``), read by the reference's config loader;
the published accumulation target int(32 / BS + 0.5) from the reference's
``Config.n_acc``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from quiz.compute import Result

CONFIG = "configs/coat_ulstm.json"


def _config(path: str, **overrides: Any):
    from quiz.catalog import REPO
    from reference.config import load_config

    return load_config(REPO / path, list(overrides.items()))


def _learner(n_batches: int, bs: int, cbs: list):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner

    g = torch.Generator().manual_seed(0)
    items = [
        (torch.rand(1, generator=g), torch.rand(1, generator=g)) for _ in range(n_batches * bs)
    ]
    train = DataLoader(items, bs=bs, shuffle=False, drop_last=True)
    valid = DataLoader(items[:bs], bs=bs)
    dls = DataLoaders(train, valid, device=torch.device("cpu"))
    torch.manual_seed(0)
    return Learner(dls, nn.Linear(1, 1), loss_func=nn.MSELoss(), cbs=cbs)


def _fit(learn, *args, one_cycle: bool = True, **kwargs) -> None:
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.callback.core import CancelFitException

    with learn.no_bar(), learn.no_logging():
        try:
            (learn.fit_one_cycle if one_cycle else learn.fit)(*args, **kwargs)
        except CancelFitException:
            pass


def _probe(stop_at: int | None):
    """A callback recording (lr, mom) at the start of every training batch."""
    from fastai.callback.core import Callback, CancelBatchException, CancelFitException

    class Probe(Callback):
        order = 70  # after ParamScheduler (60): the values this batch trains with

        def __init__(self) -> None:
            self.seen: list[tuple[int, float, float]] = []

        def before_batch(self) -> None:
            if not self.training:
                return
            k = self.epoch * self.n_iter + self.iter
            h = self.opt.hypers[-1]
            self.seen.append((k, float(h["lr"]), float(h["mom"])))
            if stop_at is not None and k >= stop_at:
                raise CancelFitException()
            raise CancelBatchException()

    return Probe()


def lr_mom_at(params: dict, what: str, config: str = CONFIG) -> Result:
    """lr or mom (Adam's β₁) at training batch k (from 0) of a run of E epochs of N batches.

    params: E, N, k; optional LR_MAX and PCT_START override the config's.
    """
    cfg = _config(config)
    lr_max = float(params.get("LR_MAX", cfg.LR_MAX))
    pct = float(params.get("PCT_START", cfg.PCT_START))
    E, N, k = int(params["E"]), int(params["N"]), int(params["k"])
    probe = _probe(stop_at=k)
    _fit(_learner(N, 1, [probe]), E, lr_max, pct_start=pct, start_epoch=k // N)
    (kk, lr, mom), = (s for s in probe.seen if s[0] == k)  # fmt: skip
    pos = k / (E * N)
    facts = {
        "lr_max": f"{lr_max:g}",
        "lr_start": f"{lr_max / 25:.4g}",
        "lr_end": f"{lr_max / 1e5:.4g}",
        "pct": f"{pct:g}",
        "pos": f"{pos:.4f}",
        "total": E * N,
        "epoch": k // N,
        "phase": {"en": "warm-up", "ja": "ウォームアップ"}
        if pos < pct
        else {"en": "annealing", "ja": "アニーリング (減衰)"},
        "p": f"{(pos / pct if pos < pct else (pos - pct) / (1 - pct)):.4f}",
        "lr": f"{lr:.4g}",
        "mom": f"{mom:.4f}",
        "config": config,
    }
    return Result(lr if what == "lr" else mom, facts)


def lr_peak(params: dict, what: str, config: str = CONFIG) -> Result:
    """The first batch (from 0) with the run's highest lr, or that batch in epochs (k / N)."""
    cfg = _config(config)
    lr_max = float(params.get("LR_MAX", cfg.LR_MAX))
    pct = float(params.get("PCT_START", cfg.PCT_START))
    E, N = int(params["E"]), int(params["N"])
    probe = _probe(stop_at=None)
    _fit(_learner(N, 1, [probe]), E, lr_max, pct_start=pct)
    lrs = [lr for _, lr, _ in probe.seen]
    k = max(range(len(lrs)), key=lambda i: (lrs[i], -i))
    facts = {
        "lr_max": f"{lr_max:g}",
        "pct": f"{pct:g}",
        "total": E * N,
        "k_peak": k,
        "epochs": f"{k / N:.2f}",
        "epoch": k // N,
        "share": f"{100 * (k % N) / N:.0f}",
        "config": config,
    }
    return Result(k if what == "batch" else k / N, facts)


def accumulation(params: dict, what: str, batches: int = 12) -> Result:
    """What fastai's GradientAccumulation does with batches of BS samples.

    params: BS, optional ACC (default: the published int(32 / BS + 0.5)).
    what: "first" (the batch, from 1, after which the optimizer first steps),
    "steps" (optimizer steps in the first ``batches`` batches), "scale" (the
    factor on the gradient of the batch's mean loss).
    """
    from fastai.callback.core import Callback
    from fastai.callback.training import GradientAccumulation

    bs = int(params["BS"])
    n_acc = int(params["ACC"]) if "ACC" in params else _config(CONFIG, BS=bs).n_acc

    class Watch(Callback):
        order = GradientAccumulation.order + 1  # sees the loss gradient after its rescaling

        def __init__(self) -> None:
            self.steps: list[int] = []
            self.scales: list[float] = []

        def after_loss(self) -> None:
            if self.training:
                self.scales.append(float(self.learn.loss_grad.detach() / self.learn.loss.detach()))

        def after_step(self) -> None:  # fastai skips it when accumulation cancels the step
            self.steps.append(self.iter + 1)

    watch = Watch()
    learn = _learner(batches, bs, [GradientAccumulation(n_acc), watch])
    _fit(learn, 1, 1e-3, one_cycle=False)
    facts = {
        "n_acc": n_acc,
        "steps_at": ", ".join(map(str, watch.steps)) or "none",
        "n_steps": len(watch.steps),
        "batches": batches,
        "scale": f"{watch.scales[0]:g}",
        "ratio": f"{n_acc / bs:g}",
    }
    answer = {
        "first": watch.steps[0] if watch.steps else 0,
        "steps": len(watch.steps),
        "scale": watch.scales[0],
    }[what]
    return Result(answer, facts)
