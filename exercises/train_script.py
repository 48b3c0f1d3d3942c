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
    raise NotImplementedError("train-script: write train (shakyo hint train-script)")
    # END EXERCISE train-script
