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
        raise NotImplementedError("f-th: write F_th.__init__ (shakyo hint f-th)")
        # END EXERCISE f-th

    def reset(self) -> None:
        # BEGIN EXERCISE f-th
        raise NotImplementedError("f-th: write F_th.reset (shakyo hint f-th)")
        # END EXERCISE f-th

    def accumulate(self, learn) -> None:
        # BEGIN EXERCISE f-th
        raise NotImplementedError("f-th: write F_th.accumulate (shakyo hint f-th)")
        # END EXERCISE f-th

    @property
    def value(self) -> float:
        # BEGIN EXERCISE f-th
        raise NotImplementedError("f-th: write F_th.value (shakyo hint f-th)")
        # END EXERCISE f-th

    @property
    def name(self) -> str:
        return "f_th"
