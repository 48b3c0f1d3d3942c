"""The training loss: a Lovász hinge with the Dice surrogate, plus BCE (site: facts/training/#loss).

Exercises ``lovasz`` (lovasz_grad, lovasz_hinge_flat, lovasz_hinge) and ``loss-comb``.

    loss_comb(x, y) = mean BCEWithLogits(x, y) + 0.01 · 0.5 · [ L(x, y) + L(−x, 1 − y) ]

L is Berman et al.'s Lovász hinge with the original solution's two changes: the
surrogate is the Dice loss (F1, β = 1) instead of Jaccard, and the hinge ReLU(e)
becomes the smooth ELU(e) + 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flatten_binary_scores(
    scores: torch.Tensor, labels: torch.Tensor, ignore: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, ...) scores and labels -> (P,) and (P,), without the pixels labelled ``ignore``."""
    scores, labels = scores.reshape(-1), labels.reshape(-1)
    if ignore is None:
        return scores, labels
    keep = labels != ignore
    return scores[keep], labels[keep]


def mean(values, empty=0):
    """The mean of an iterable (of tensors or numbers); ``empty`` when there is nothing."""
    total, n = None, 0
    for v in values:
        total = v if total is None else total + v
        n += 1
    return empty if n == 0 else total / n


def lovasz_grad(gt_sorted: torch.Tensor, beta: float = 1) -> torch.Tensor:
    """Weights Δ' of the Lovász extension of the F-beta (Dice for β = 1) loss, for errors
    sorted descending.

    gt_sorted: (P,) labels in [0, 1], in the order of the sorted errors -> (P,) same dtype.

    With Cᵢ = Σ_{j≤i} gⱼ (i from 0) and S = Σ g:
        tpᵢ = S − Cᵢ,  fnᵢ = Cᵢ,  fpᵢ = (i + 1) − Cᵢ
        Δᵢ = 1 − (1 + β²)·tpᵢ / ((1 + β²)·tpᵢ + β²·fnᵢ + fpᵢ)     (Dice: β = 1)
        Δ'₀ = Δ₀,  Δ'ᵢ = Δᵢ − Δᵢ₋₁

    The published lovasz.py defines lovasz_grad twice: Berman's Jaccard version first,
    then this one, which replaces it (Python keeps the last definition).
    """
    # BEGIN EXERCISE lovasz
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    cum = gt_sorted.cumsum(0)
    tp = gts - cum
    fn = cum
    fp = torch.arange(1, p + 1, dtype=gt_sorted.dtype, device=gt_sorted.device) - cum
    # The denominator is ≥ i + 1 for β = 1: never 0, even for an empty mask.
    b2 = beta**2
    dice = 1.0 - (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)
    if p > 1:
        dice[1:] = dice[1:] - dice[:-1].clone()
    return dice
    # END EXERCISE lovasz


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász-Dice hinge of one flat set of pixels.

    logits: (P,) scores; labels: (P,) in [0, 1] -> scalar

        e = 1 − x·(2y − 1);  sort e descending, labels alike;  L = Σ (ELU(e₍ᵢ₎) + 1)·Δ'ᵢ
    """
    # BEGIN EXERCISE lovasz
    if len(labels) == 0:
        # No pixels: a zero that still belongs to the graph.
        return logits.sum() * 0.0
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    grad = lovasz_grad(labels[perm])
    return torch.dot(F.elu(errors_sorted) + 1, grad)
    # END EXERCISE lovasz


def lovasz_hinge(
    logits: torch.Tensor, labels: torch.Tensor, per_image: bool = True, ignore=None
) -> torch.Tensor:
    """Lovász-Dice hinge of a batch.

    logits, labels: (B, 1, H, W) (any (B, ...)) -> scalar.
    per_image=True: the mean of each image's loss; False: one loss over the batch flattened.
    Pixels whose label is ``ignore`` are left out.
    """
    # BEGIN EXERCISE lovasz
    if per_image:
        return mean(
            lovasz_hinge_flat(*flatten_binary_scores(log, lab, ignore))
            for log, lab in zip(logits, labels)
        )
    return lovasz_hinge_flat(*flatten_binary_scores(logits, labels, ignore))
    # END EXERCISE lovasz


def loss_comb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss of the original solution.

    x: (B, 1, H, W) logits; y: (B, 1, H, W) targets in [0, 1] -> scalar

        mean BCEWithLogits(x, y) + 0.01 · 0.5 · [ L(x, y) + L(−x, 1 − y) ]
        L = lovasz_hinge(..., per_image=False)

    Half-precision logits (AMP) are cast to float32 first; the sort and the sums
    of the Lovász term need the range.
    """
    # BEGIN EXERCISE loss-comb
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    y = y.to(x.dtype)
    lovasz = lovasz_hinge(x, y, per_image=False) + lovasz_hinge(-x, 1.0 - y, per_image=False)
    return F.binary_cross_entropy_with_logits(x, y) + 0.01 * 0.5 * lovasz
    # END EXERCISE loss-comb
