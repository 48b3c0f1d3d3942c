"""The training loss `loss_comb`: BCE plus a small symmetric Lovász hinge (site: facts/training/#loss).

    loss_comb(x, y) = BCEWithLogits(x, y) + 0.01 · lovasz_sym(x, y)
    lovasz_sym(x, y) = 0.5 · [ L(x, y) + L(−x, 1 − y) ]

L is the Lovász hinge of Berman et al. with two changes made by the original
solution: the surrogate is the **Dice** (F1, β = 1) loss instead of Jaccard, and
the hinge ReLU(e) is replaced by the smooth ELU(e) + 1. The symmetric form
scores the contrail class and the background class alike.

Shapes everywhere: logits x (B, 1, H, W), targets y of the same shape with values
in [0, 1] (soft labels allowed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["lovasz_grad", "lovasz_hinge_flat", "lovasz_hinge", "lovasz_sym", "loss_comb"]

# Dice is F_β with β = 1; kept as a name so the formula in lovasz_grad reads as in (site: facts/training/#lovasz).
BETA = 1.0


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Dice loss w.r.t. sorted errors.

    gt_sorted: (P,) labels in [0, 1], permuted so that the errors are in descending order
    -> (P,) weights Δ' of the same dtype.

    With Cᵢ = Σ_{j≤i} gⱼ and S = Σ g (i counted from 0):
        tpᵢ = S − Cᵢ,  fnᵢ = Cᵢ,  fpᵢ = (i + 1) − Cᵢ
        Δᵢ = 1 − (1+β²)·tpᵢ / ((1+β²)·tpᵢ + β²·fnᵢ + fpᵢ)
        Δ'₀ = Δ₀,  Δ'ᵢ = Δᵢ − Δᵢ₋₁
    The denominator equals 2S − 2Cᵢ + (i + 1) ≥ i + 1 ≥ 1 for labels in [0, 1], so there
    is no 0/0, not even for an empty or soft mask.
    """
    p = gt_sorted.numel()
    gts = gt_sorted.sum()
    cum = gt_sorted.cumsum(0)
    tp = gts - cum
    fn = cum
    fp = torch.arange(1, p + 1, device=gt_sorted.device, dtype=gt_sorted.dtype) - cum
    b2 = BETA * BETA
    dice = 1.0 - (1.0 + b2) * tp / ((1.0 + b2) * tp + b2 * fn + fp)
    # Differencing turns the cumulative Δ into per-position weights; one pixel keeps Δ₀.
    return torch.cat((dice[:1], dice[1:] - dice[:-1]))


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász-Dice hinge of one flat set of pixels.

    logits: (P,) real scores; labels: (P,) in [0, 1] -> scalar.

        signs = 2y − 1,  e = 1 − x·signs
        sort e descending (labels permuted alike) -> e₍ᵢ₎, g
        L = Σᵢ (ELU(e₍ᵢ₎) + 1) · Δ'ᵢ(g)

    No pixels at all -> 0·Σx, a zero that keeps the autograd graph. The gradient flows
    through the sorted errors only; the weights Δ' are constants of the permutation.
    Ties in e are ordered by torch.sort as in the original; the loss value does not
    depend on the order within a tie (Δ'ᵢ + Δ'ᵢ₊₁ = Δᵢ₊₁ − Δᵢ₋₁).
    """
    if labels.numel() == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    gt_sorted = labels[perm]
    grad = lovasz_grad(gt_sorted)
    return torch.dot(F.elu(errors_sorted) + 1.0, grad)


def lovasz_hinge(
    logits: torch.Tensor, labels: torch.Tensor, per_image: bool = True
) -> torch.Tensor:
    """Lovász-Dice hinge of a batch.

    logits, labels: (B, ...) e.g. (B, 1, H, W) -> scalar.
    per_image=True: mean over images of each image's loss;
    per_image=False: one loss over the whole batch flattened (what loss_comb uses).
    """
    if per_image:
        losses = [lovasz_hinge_flat(x.reshape(-1), y.reshape(-1)) for x, y in zip(logits, labels)]
        return torch.stack(losses).mean()
    return lovasz_hinge_flat(logits.reshape(-1), labels.reshape(-1))


def lovasz_sym(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Symmetric Lovász-Dice hinge over the whole batch.

    x: (B, 1, H, W) logits; y: (B, 1, H, W) in [0, 1] -> scalar
        0.5 · [ L(x, y) + L(−x, 1 − y) ],  L = lovasz_hinge(..., per_image=False)
    """
    return 0.5 * (lovasz_hinge(x, y, per_image=False) + lovasz_hinge(-x, 1.0 - y, per_image=False))


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    # Under AMP the model returns fp16/bf16 logits; the loss must run in float32
    # (site: facts/training/#loss). `t.float()` would also *down*-cast float64, which breaks gradcheck, so
    # only half precision is promoted.
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.float()
    return t


def loss_comb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss of the original solution.

    x: (B, 1, H, W) logits (any float dtype); y: (B, 1, H, W) targets in [0, 1]
    -> scalar (float32, or float64 when both inputs are float64)

        loss = mean BCEWithLogits(x, y) + 0.01 · 0.5 · [ L(x, y) + L(−x, 1 − y) ]

    Half-precision logits are cast to float32 first (AMP); float32 and float64 are kept.
    Targets are cast to the logits' resulting dtype.
    """
    x = _at_least_float32(x)
    y = y.to(x.dtype)
    return F.binary_cross_entropy_with_logits(x, y) + 0.01 * lovasz_sym(x, y)
