"""The validation metric F_th: global Dice at the best of 80 thresholds (site: facts/training/#metric).

Exercise ``f-th``.
"""

from __future__ import annotations

import numpy as np
import torch
from fastai.metrics import Metric


class F_th(Metric):
    """fastai metric 'f_th'.

    Per batch (learn.pred: (B, 1, H, W) logits, learn.y: (B, 1, H, W) in [0, 1]):
    p = sigmoid(pred), t = y > 0.5, and for every threshold th, P = p > th:

        tp += sum P t,   fp += sum P (1 - t),   fn += sum (1 - P) t

    over the whole validation set. value = max_th (1+b^2) tp / ((1+b^2) tp + b^2 fn + fp + 1e-6).
    """

    def __init__(self, ths=np.arange(0.1, 0.9, 0.01), beta=1):  # noqa: B008 - the original's default
        # BEGIN EXERCISE f-th
        self.ths = ths
        self.beta = beta
        self.reset()
        # END EXERCISE f-th

    def reset(self) -> None:
        # BEGIN EXERCISE f-th
        self.tp = torch.zeros(len(self.ths), dtype=torch.float64)
        self.fp = torch.zeros(len(self.ths), dtype=torch.float64)
        self.fn = torch.zeros(len(self.ths), dtype=torch.float64)
        # END EXERCISE f-th

    def accumulate(self, learn) -> None:
        # BEGIN EXERCISE f-th
        pred = torch.sigmoid(learn.pred.detach().float()).cpu()
        target = (learn.y.detach() > 0.5).float().cpu()
        for i, th in enumerate(self.ths):
            p = (pred > th).float()
            self.tp[i] += (p * target).sum()
            self.fp[i] += (p * (1 - target)).sum()
            self.fn[i] += ((1 - p) * target).sum()
        # END EXERCISE f-th

    @property
    def value(self) -> float:
        # BEGIN EXERCISE f-th
        b2 = self.beta**2
        dices = (1 + b2) * self.tp / ((1 + b2) * self.tp + b2 * self.fn + self.fp + 1e-6)
        return float(dices.max())
        # END EXERCISE f-th

    @property
    def name(self) -> str:
        return "f_th"
