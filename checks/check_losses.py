"""Checks of ``losses.py``: ``lovasz`` and ``loss-comb``."""

from __future__ import annotations

import torch

from checks.ladder import SEEDS, Ladder
from reference import losses as ref_losses

# (B, 1, H, W): non-square, unequal batch sizes.
_SHAPES = ((2, 1, 6, 5), (3, 1, 4, 7))


def loss_inputs(seed: int, shape, soft: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of ``shape``: logits spread over ±6, so that errors 1 − x·s fall on
    both sides of 0 (where ReLU and ELU + 1 differ); about a quarter positives (the classes
    are not symmetric); ``soft`` labels take 0, 0.2, 0.7, 1."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(shape, generator=g) < 0.25
    logits = torch.randn(shape, generator=g) * 3 + 1.5 * pos
    if soft:
        levels = torch.tensor([0.0, 0.2, 0.7, 1.0])
        labels = levels[torch.randint(0, 4, shape, generator=g)]
        labels = torch.where(pos, labels.clamp(min=0.7), labels.clamp(max=0.2))
    else:
        labels = pos.float()
    return logits, labels


def sorted_labels(seed: int, n: int, soft: bool) -> torch.Tensor:
    """(n,) labels as lovasz_grad receives them (in the order of descending errors)."""
    _, labels = loss_inputs(seed, (n,), soft)
    return labels


def _scalar_shape(c: Ladder, got, what: str) -> None:
    c.is_type(got, torch.Tensor, what)
    c.same_shape(got, torch.zeros((), dtype=torch.float32), f"{what} (a 0-dim float32 tensor)")


def _backward(c: Ladder, loss: torch.Tensor, x: torch.Tensor, what: str) -> None:
    """loss.backward(), failing (not erroring) when no gradient can reach x."""
    if not loss.requires_grad:
        c.fail(f"called:   {what}\n  the loss does not depend on x for autograd (a .detach()?)")
    c.call(what, loss.backward)
    if x.grad is None:
        c.fail(f"called:   {what}\n  no gradient reached x (is the loss detached?)")


def check_lovasz(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        gt = sorted_labels(0, 9, soft=False)
        what = "lovasz_grad(gt_sorted), gt_sorted: (9,) float32"
        c.same_shape(c.call(what, lambda: m.lovasz_grad(gt)), ref_losses.lovasz_grad(gt), what)
        x, y = loss_inputs(0, _SHAPES[0])
        what = "lovasz_hinge_flat(x, y), x, y: (30,) float32"
        _scalar_shape(c, c.call(what, lambda: m.lovasz_hinge_flat(x.flatten(), y.flatten())), what)
        for per_image in (True, False):
            what = f"lovasz_hinge(x, y, per_image={per_image}), x, y: {_SHAPES[0]} float32"
            got = c.call(what, lambda p=per_image: m.lovasz_hinge(x, y, per_image=p))
            _scalar_shape(c, got, what)

    with c.rung("values"):
        for seed in SEEDS:
            for n in (9, 16):
                for soft in (False, True):
                    gt = sorted_labels(seed, n, soft)
                    kind = "soft" if soft else "0/1"
                    what = f"lovasz_grad(gt_sorted), gt_sorted: ({n},) {kind} labels (seed {seed})"
                    got = c.call(what, lambda gt=gt: m.lovasz_grad(gt))
                    c.close(got, ref_losses.lovasz_grad(gt), "forward", what)
        for gt, desc in (
            (torch.zeros(7), "(7,) all zero (an empty mask)"),
            (torch.ones(1), "(1,) a single positive pixel"),
        ):
            what = f"lovasz_grad(gt_sorted), gt_sorted: {desc}"
            got = c.call(what, lambda gt=gt: m.lovasz_grad(gt))
            c.close(got, ref_losses.lovasz_grad(gt), "forward", what)
        for seed in SEEDS:
            for shape in _SHAPES:
                for soft in (False, True):
                    x, y = loss_inputs(seed, shape, soft)
                    kind = "soft" if soft else "0/1"
                    what = (
                        f"lovasz_hinge_flat(x, y), {kind} labels, {x.numel()} pixels (seed {seed})"
                    )
                    got = c.call(
                        what, lambda x=x, y=y: m.lovasz_hinge_flat(x.flatten(), y.flatten())
                    )
                    expected = ref_losses.lovasz_hinge_flat(x.flatten(), y.flatten())
                    c.close(got, expected, "scalar", what)
                    for per_image in (True, False):
                        what = f"lovasz_hinge(x, y, per_image={per_image}), x, y: {shape} {kind} (seed {seed})"
                        got = c.call(what, lambda x=x, y=y, p=per_image: m.lovasz_hinge(x, y, p))
                        c.close(got, ref_losses.lovasz_hinge(x, y, per_image), "scalar", what)
        x, y = loss_inputs(0, _SHAPES[1])
        y = torch.zeros_like(y)
        what = f"lovasz_hinge(x, y, per_image=False), y all zero (an empty mask), x: {_SHAPES[1]}"
        got = c.call(what, lambda: m.lovasz_hinge(x, y, per_image=False))
        c.close(got, ref_losses.lovasz_hinge(x, y, per_image=False), "scalar", what)

    with c.rung("gradients"):
        for seed in SEEDS:
            shape = _SHAPES[seed % len(_SHAPES)]
            for per_image in (True, False):
                x, y = loss_inputs(seed, shape, soft=bool(seed))
                xr, xm = x.clone().requires_grad_(), x.clone().requires_grad_()
                ref_losses.lovasz_hinge(xr, y, per_image).backward()
                what = f"lovasz_hinge(x, y, per_image={per_image}).backward(), x: {shape} (seed {seed})"
                loss = c.call(what, lambda xm=xm, y=y, p=per_image: m.lovasz_hinge(xm, y, p))
                _backward(c, loss, xm, what)
                c.close(xm.grad, xr.grad, "gradient", f"d/dx of {what}")


def check_loss_comb(c: Ladder) -> None:
    loss_comb = c.module.loss_comb
    with c.rung("shapes"):
        x, y = loss_inputs(0, _SHAPES[0])
        what = f"loss_comb(x, y), x, y: {_SHAPES[0]} float32"
        _scalar_shape(c, c.call(what, lambda: loss_comb(x, y)), what)
        what = f"loss_comb(x.half(), y), x: {_SHAPES[0]} float16 logits as under AMP"
        _scalar_shape(c, c.call(what, lambda: loss_comb(x.half(), y)), what)

    with c.rung("values"):
        for seed in SEEDS:
            for shape in _SHAPES:
                for soft in (False, True):
                    x, y = loss_inputs(seed, shape, soft)
                    kind = "soft" if soft else "0/1"
                    what = f"loss_comb(x, y), x, y: {shape} {kind} labels (seed {seed})"
                    got = c.call(what, lambda x=x, y=y: loss_comb(x, y))
                    c.close(got, ref_losses.loss_comb(x, y), "scalar", what)
                    # The Lovász term is 0.5 % of the loss: compare it alone as well, or a
                    # wrong weight would hide in the BCE's rounding.
                    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, y)
                    what_l = f"loss_comb(x, y) − BCEWithLogits(x, y) (the Lovász part), {shape} {kind} (seed {seed})"
                    c.close(got - bce, ref_losses.loss_comb(x, y) - bce, "scalar", what_l)
        x, y = loss_inputs(1, _SHAPES[0])
        y = torch.zeros_like(y)
        what = f"loss_comb(x, y), y all zero (an empty mask), x: {_SHAPES[0]}"
        c.close(c.call(what, lambda: loss_comb(x, y)), ref_losses.loss_comb(x, y), "scalar", what)

    with c.rung("gradients"):
        for seed in SEEDS:
            shape = _SHAPES[seed % len(_SHAPES)]
            x, y = loss_inputs(seed, shape, soft=bool(seed))
            xr, xm = x.clone().requires_grad_(), x.clone().requires_grad_()
            ref_losses.loss_comb(xr, y).backward()
            what = f"loss_comb(x, y).backward(), x: {shape} (seed {seed})"
            _backward(c, c.call(what, lambda xm=xm, y=y: loss_comb(xm, y)), xm, what)
            c.close(xm.grad, xr.grad, "gradient", f"d/dx of {what}")
