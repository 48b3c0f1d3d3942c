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


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Weights Δ' of the Lovász extension of the Dice loss, for errors sorted descending.

    gt_sorted: (P,) labels in [0, 1], in the order of the sorted errors -> (P,) same dtype.

    With Cᵢ = Σ_{j≤i} gⱼ (i from 0) and S = Σ g:
        tpᵢ = S − Cᵢ,  fnᵢ = Cᵢ,  fpᵢ = (i + 1) − Cᵢ
        Δᵢ = 1 − 2·tpᵢ / (2·tpᵢ + fnᵢ + fpᵢ)          (Dice: β = 1)
        Δ'₀ = Δ₀,  Δ'ᵢ = Δᵢ − Δᵢ₋₁
    """
    # BEGIN EXERCISE lovasz
    raise NotImplementedError("lovasz: write lovasz_grad (shakyo hint lovasz)")
    # END EXERCISE lovasz


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász-Dice hinge of one flat set of pixels.

    logits: (P,) scores; labels: (P,) in [0, 1] -> scalar

        e = 1 − x·(2y − 1);  sort e descending, labels alike;  L = Σ (ELU(e₍ᵢ₎) + 1)·Δ'ᵢ
    """
    # BEGIN EXERCISE lovasz
    raise NotImplementedError("lovasz: write lovasz_hinge_flat (shakyo hint lovasz)")
    # END EXERCISE lovasz


def lovasz_hinge(
    logits: torch.Tensor, labels: torch.Tensor, per_image: bool = True
) -> torch.Tensor:
    """Lovász-Dice hinge of a batch.

    logits, labels: (B, 1, H, W) (any (B, ...)) -> scalar.
    per_image=True: the mean of each image's loss; False: one loss over the batch flattened.
    """
    # BEGIN EXERCISE lovasz
    raise NotImplementedError("lovasz: write lovasz_hinge (shakyo hint lovasz)")
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
    raise NotImplementedError("loss-comb: write loss_comb (shakyo hint loss-comb)")
    # END EXERCISE loss-comb
