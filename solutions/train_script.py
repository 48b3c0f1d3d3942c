"""train.py of the original: datasets, fastai DataLoaders, the Learner, one-cycle (site: facts/training/#recipe).

Exercise ``train-script``. ``train(config)`` receives what the published ``main()``
hands over: the values of the JSON config (PATH, BS, NUM_WORKERS, EPOCHS, LR_MAX,
PCT_START, OUT, FNAME, FOLD, WEIGHTS) and three objects it built from their names:
MODEL (a model), LOSS_FUNC (a loss function) and METRIC (a fastai metric).

Given: the imports and ``WrapperOver9000`` (the published utils.py's fastai opt_func;
note that it drops its keyword arguments, so ``eps=1e-4`` never reaches Over9000).
"""

from __future__ import annotations

import os
from functools import partial

import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
import torch
from fastai.callback.fp16 import MixedPrecision  # noqa: F401  (what Learner.to_fp16 adds)
from fastai.callback.progress import CSVLogger
from fastai.callback.tracker import SaveModelCallback
from fastai.callback.training import GradientAccumulation, GradientClip
from fastai.learner import Learner
from fastai.optimizer import OptimWrapper
from fastai.vision.data import ImageDataLoaders
from torch import nn

from .data import ContrailsDatasetV0, get_aug
from .optim import Over9000


def WrapperOver9000(param_groups, **kwargs):
    """fastai opt_func around Over9000, as published: ``kwargs`` are dropped."""
    return OptimWrapper(param_groups, opt=Over9000)


def train(config: dict) -> None:
    """Train config['MODEL'] as the published script does, on the GPU in mixed precision.

    Writes, under config['OUT']: history.csv (CSVLogger), models/model.pth (the best
    f_th epoch, SaveModelCallback) and {FNAME}_{FOLD}.pth (the weights at the end,
    which are the best epoch's, without nn.DataParallel's `module.` prefix).
    """
    # BEGIN EXERCISE train-script
    ds_train = ContrailsDatasetV0(config["PATH"], train=True, tfms=get_aug())
    ds_val = ContrailsDatasetV0(config["PATH"], train=False, tfms=None)
    # fastai's from_dsets: the training loader shuffles and drops its last partial batch.
    dls = ImageDataLoaders.from_dsets(
        ds_train, ds_val, bs=config["BS"], num_workers=config["NUM_WORKERS"], pin_memory=True
    ).cuda()
    model = config["MODEL"]
    if config["WEIGHTS"]:
        model.load_state_dict(torch.load(config["WEIGHTS"]))
    model = nn.DataParallel(model).cuda()
    n_acc = int(32 / config["BS"] + 0.5)  # counted in samples by fastai, not in batches
    learn = Learner(
        dls,
        model,
        path=config["OUT"],
        loss_func=config["LOSS_FUNC"],
        metrics=[config["METRIC"]],
        cbs=[
            GradientClip(3.0),
            GradientAccumulation(n_acc),
            CSVLogger(),
            SaveModelCallback(monitor="f_th"),
        ],
        opt_func=partial(WrapperOver9000, eps=1e-4),
    ).to_fp16()
    learn.fit_one_cycle(config["EPOCHS"], lr_max=config["LR_MAX"], pct_start=config["PCT_START"])
    out = os.path.join(config["OUT"], f"{config['FNAME']}_{config['FOLD']}.pth")
    torch.save(learn.model.module.state_dict(), out)
    # END EXERCISE train-script
