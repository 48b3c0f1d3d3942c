"""The validation metric `F_th`: global Dice at the best of 80 thresholds (site: facts/training/#metric).

For every threshold th in np.arange(0.1, 0.9, 0.01) (0.10 … 0.89) and every pixel
(p = sigmoid(logit), t = target > 0.5, P = p > th, strictly):

    tp += Σ P·t,   fp += Σ P·(1 − t),   fn += Σ (1 − P)·t

summed over the **whole validation set** (the competition scores one global Dice,
not a mean of per-image or per-batch Dice). Then

    dice(th) = (1+β²)·tp / ((1+β²)·tp + β²·fn + fp + 1e-6),   F_th = max_th dice(th).

`DiceAccumulator` does the counting without fastai, `dice_curve` is the one-shot
function, `F_th` is the fastai `Metric` (named 'f_th') built on the accumulator.
"""

from __future__ import annotations

import numpy as np
import torch
from fastai.metrics import Metric

__all__ = ["DEFAULT_THRESHOLDS", "DiceAccumulator", "dice_curve", "F_th"]

# (site: facts/training/#metric): 80 values 0.10 … 0.89 (np.arange excludes the stop value 0.9).
DEFAULT_THRESHOLDS = np.arange(0.1, 0.9, 0.01)
EPS = 1e-6


def _as_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))


class DiceAccumulator:
    """Global tp/fp/fn counts at many thresholds, summed over any number of batches.

    Counts are exact integers (int64), so the order of batches does not matter.
    The comparison p > th is made in p's dtype (float32 after the sigmoid), as
    `tensor > python_float` does in torch: the float64 threshold is rounded to float32.
    A NaN probability is never above a threshold, so it counts as predicted negative.
    """

    def __init__(
        self, thresholds: np.ndarray | list[float] = DEFAULT_THRESHOLDS, beta: float = 1.0
    ):
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.beta = beta
        self.reset()

    def reset(self) -> None:
        n = len(self.thresholds)
        self.tp = np.zeros(n, dtype=np.int64)
        self.fp = np.zeros(n, dtype=np.int64)
        self.fn = np.zeros(n, dtype=np.int64)

    @torch.no_grad()
    def update(self, probs: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> None:
        """Add one batch. probs: (...) probabilities; targets: (...) same numel, t = targets > 0.5."""
        p = _as_tensor(probs).reshape(-1)
        if not p.is_floating_point():
            p = p.float()
        t = (_as_tensor(targets).reshape(-1) > 0.5).to(p.device)
        if p.numel() != t.numel():
            raise ValueError(f"probs has {p.numel()} elements but targets has {t.numel()}")
        # Bucket each pixel by how many thresholds lie strictly below it: p > th_j (sorted
        # thresholds) <=> bucket > j. One searchsorted replaces 80 full comparisons.
        order = np.argsort(self.thresholds, kind="stable")
        ths = torch.as_tensor(self.thresholds[order], device=p.device).to(p.dtype)
        n_th = len(ths)
        bucket = torch.searchsorted(ths, p.contiguous(), right=False)
        bucket = torch.where(torch.isnan(p), torch.zeros_like(bucket), bucket)
        pos = torch.bincount(bucket[t], minlength=n_th + 1)
        neg = torch.bincount(bucket[~t], minlength=n_th + 1)
        # count above th_j = Σ_{bucket ≥ j+1}: a reversed cumulative sum.
        pos_above = pos.flip(0).cumsum(0).flip(0)[1:].cpu().numpy()
        neg_above = neg.flip(0).cumsum(0).flip(0)[1:].cpu().numpy()
        n_pos = int(t.sum())
        self.tp[order] += pos_above
        self.fp[order] += neg_above
        self.fn[order] += n_pos - pos_above

    @property
    def dice(self) -> np.ndarray:
        """(n_thresholds,) float64: (1+β²)tp / ((1+β²)tp + β²fn + fp + 1e-6)."""
        b2 = self.beta**2
        tp, fp, fn = (a.astype(np.float64) for a in (self.tp, self.fp, self.fn))
        return (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp + EPS)

    @property
    def best_index(self) -> int:
        # np.argmax keeps the first (lowest-index) maximum on ties.
        return int(np.argmax(self.dice))

    @property
    def best_threshold(self) -> float:
        return float(self.thresholds[self.best_index])

    @property
    def value(self) -> float:
        return float(self.dice[self.best_index])


def dice_curve(
    probs: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    thresholds: np.ndarray | list[float] = DEFAULT_THRESHOLDS,
    beta: float = 1.0,
) -> np.ndarray:
    """Global Dice at each threshold for one set of predictions.

    probs: (...) probabilities in [0, 1] (numpy or torch); targets: (...) same numel,
    t = targets > 0.5 -> (n_thresholds,) float64 numpy array.
    """
    acc = DiceAccumulator(thresholds, beta)
    acc.update(probs, targets)
    return acc.dice


class F_th(Metric):
    """fastai metric 'f_th': the best global Dice over thresholds, on the whole validation set.

    Per batch: p = sigmoid(learn.pred.float()) (learn.pred is fp16 under AMP), t = learn.y > 0.5.
    Besides `value` it exposes `best_threshold` and `curve` = (thresholds, dice) for the
    threshold used at inference (site: facts/inference/#ensemble).
    """

    def __init__(self, ths: np.ndarray | list[float] = DEFAULT_THRESHOLDS, beta: float = 1.0):
        self.ths, self.beta = np.asarray(ths, dtype=np.float64), beta
        self.acc = DiceAccumulator(self.ths, beta)

    def reset(self) -> None:
        self.acc.reset()

    def accumulate(self, learn) -> None:  # learn: fastai Learner
        self.acc.update(torch.sigmoid(learn.pred.detach().float()), learn.y)

    @property
    def value(self) -> float:
        return self.acc.value

    @property
    def best_threshold(self) -> float:
        return self.acc.best_threshold

    @property
    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ths.copy(), self.acc.dice

    @property
    def name(self) -> str:
        return "f_th"
