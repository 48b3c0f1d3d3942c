"""Checks of ``losses.py``: ``lovasz`` and ``loss-comb``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


def _grad_of(loss_of, x: torch.Tensor) -> tuple[bool, torch.Tensor | None]:
    """(the loss needs autograd, d loss / d x) for ``loss_of(x')`` on a copy x' of x."""
    xg = x.clone().requires_grad_()
    loss = loss_of(xg)
    if not getattr(loss, "requires_grad", False):
        return False, None
    loss.backward()
    return True, xg.grad


def _check_grad(c: Ladder, got, expected, what: str) -> None:
    """Fail (not error) when no gradient can reach x; else compare d/dx."""
    needs_grad, grad = got
    if not needs_grad:
        c.fail(f"called:   {what}\n  the loss does not depend on x for autograd (a .detach()?)")
    if grad is None:
        c.fail(f"called:   {what}\n  no gradient reached x (is the loss detached?)")
    c.close(grad, expected[1], "gradient", f"d/dx of {what}")


def check_lovasz(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        gt = sorted_labels(0, 9, soft=False)
        what = "lovasz_grad(gt_sorted), gt_sorted: (9,) float32"
        expected = c.ref(lambda: ref_losses.lovasz_grad(gt))
        c.same_shape(c.call_on_copies(what, m.lovasz_grad, gt_sorted=gt), expected, what)
        x, y = loss_inputs(0, _SHAPES[0])
        what = "lovasz_hinge_flat(x, y), x, y: (30,) float32"
        _scalar_shape(
            c,
            c.call_on_copies(what, m.lovasz_hinge_flat, logits=x.flatten(), labels=y.flatten()),
            what,
        )
        for per_image in (True, False):
            what = f"lovasz_hinge(x, y, per_image={per_image}), x, y: {_SHAPES[0]} float32"
            got = c.call_on_copies(
                what, lambda p=per_image, **a: m.lovasz_hinge(a["logits"], a["labels"], per_image=p),
                logits=x, labels=y,
            )  # fmt: skip
            _scalar_shape(c, got, what)

    with c.rung("values"):
        for seed in SEEDS:
            for n in (9, 16):
                for soft in (False, True):
                    gt = sorted_labels(seed, n, soft)
                    kind = "soft" if soft else "0/1"
                    what = f"lovasz_grad(gt_sorted), gt_sorted: ({n},) {kind} labels (seed {seed})"
                    expected = c.ref(lambda gt=gt: ref_losses.lovasz_grad(gt))
                    got = c.call_on_copies(what, m.lovasz_grad, gt_sorted=gt)
                    c.close(got, expected, "forward", what)
        for gt, desc in (
            (torch.zeros(7), "(7,) all zero (an empty mask)"),
            (torch.ones(1), "(1,) a single positive pixel"),
        ):
            what = f"lovasz_grad(gt_sorted), gt_sorted: {desc}"
            expected = c.ref(lambda gt=gt: ref_losses.lovasz_grad(gt))
            got = c.call_on_copies(what, m.lovasz_grad, gt_sorted=gt)
            c.close(got, expected, "forward", what)
        for seed in SEEDS:
            for shape in _SHAPES:
                for soft in (False, True):
                    x, y = loss_inputs(seed, shape, soft)
                    kind = "soft" if soft else "0/1"
                    what = (
                        f"lovasz_hinge_flat(x, y), {kind} labels, {x.numel()} pixels (seed {seed})"
                    )
                    expected = c.ref(
                        lambda x=x, y=y: ref_losses.lovasz_hinge_flat(x.flatten(), y.flatten())
                    )
                    got = c.call_on_copies(
                        what, m.lovasz_hinge_flat, logits=x.flatten(), labels=y.flatten()
                    )
                    c.close(got, expected, "scalar", what)
                    for per_image in (True, False):
                        what = f"lovasz_hinge(x, y, per_image={per_image}), x, y: {shape} {kind} (seed {seed})"
                        expected = c.ref(
                            lambda x=x, y=y, p=per_image: ref_losses.lovasz_hinge(x, y, p)
                        )
                        got = c.call_on_copies(
                            what, lambda p=per_image, **a: m.lovasz_hinge(a["logits"], a["labels"], p),
                            logits=x, labels=y,
                        )  # fmt: skip
                        c.close(got, expected, "scalar", what)
        x, y = loss_inputs(0, _SHAPES[1])
        y = torch.zeros_like(y)
        what = f"lovasz_hinge(x, y, per_image=False), y all zero (an empty mask), x: {_SHAPES[1]}"
        expected = c.ref(lambda: ref_losses.lovasz_hinge(x, y, per_image=False))
        got = c.call_on_copies(
            what, lambda **a: m.lovasz_hinge(a["logits"], a["labels"], per_image=False),
            logits=x, labels=y,
        )  # fmt: skip
        c.close(got, expected, "scalar", what)

    with c.rung("gradients"):
        for seed in SEEDS:
            shape = _SHAPES[seed % len(_SHAPES)]
            for per_image in (True, False):
                x, y = loss_inputs(seed, shape, soft=bool(seed))
                what = f"lovasz_hinge(x, y, per_image={per_image}).backward(), x: {shape} (seed {seed})"
                expected = c.ref(
                    lambda x=x, y=y, p=per_image: _grad_of(
                        lambda xr: ref_losses.lovasz_hinge(xr, y, p), x
                    )
                )
                got = c.call(
                    what,
                    lambda x=x, y=y, p=per_image: _grad_of(
                        lambda xm: m.lovasz_hinge(xm, y.clone(), p), x
                    ),
                )
                _check_grad(c, got, expected, what)


class _NoLovasz:
    """Stands in for the learner's ``lovasz_hinge`` while loss_comb runs: 0 · the logits'
    sum, so that what is left of their loss_comb is their BCE term alone."""

    def __call__(self, logits, labels, per_image=True, ignore=None):
        self.calls = getattr(self, "calls", 0) + 1
        return logits.sum() * 0.0


def _bce_term(module, x: torch.Tensor, y: torch.Tensor):
    """(learner side) Their loss_comb with their lovasz_hinge replaced by zero; None when
    their loss_comb does not call the module's lovasz_hinge (the terms cannot be parted)."""
    stub, real = _NoLovasz(), module.lovasz_hinge
    module.lovasz_hinge = stub
    try:
        bce = module.loss_comb(x.clone(), y.clone())
    finally:
        module.lovasz_hinge = real
    return bce if getattr(stub, "calls", 0) else None


def _terms(c: Ladder, module, x: torch.Tensor, y: torch.Tensor, what: str):
    """(their loss_comb, their BCE term or None) on copies of x and y."""
    total = c.call_on_copies(what, lambda **a: module.loss_comb(a["x"], a["y"]), x=x, y=y)
    bce = c.call(what + " with lovasz_hinge -> 0", lambda: _bce_term(module, x, y))
    return total, bce


def check_loss_comb(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        x, y = loss_inputs(0, _SHAPES[0])
        what = f"loss_comb(x, y), x, y: {_SHAPES[0]} float32"
        _scalar_shape(
            c, c.call_on_copies(what, lambda **a: m.loss_comb(a["x"], a["y"]), x=x, y=y), what
        )
        what = f"loss_comb(x.half(), y), x: {_SHAPES[0]} float16 logits as under AMP"
        _scalar_shape(
            c,
            c.call_on_copies(what, lambda **a: m.loss_comb(a["x"], a["y"]), x=x.half(), y=y),
            what,
        )

    with c.rung("values"):
        cases = [
            (seed, shape, soft, *loss_inputs(seed, shape, soft))
            for seed in SEEDS
            for shape in _SHAPES
            for soft in (False, True)
        ]
        empty = loss_inputs(1, _SHAPES[0])
        cases.append(("empty", _SHAPES[0], False, empty[0], torch.zeros_like(empty[1])))
        # Each term apart first (the Lovász term is 0.5 % of the loss: a wrong weight would
        # hide in the BCE's rounding), then the sum.
        for seed, shape, soft, x, y in cases:
            kind = (
                "y all zero (an empty mask)"
                if seed == "empty"
                else ("soft" if soft else "0/1") + " labels"
            )
            tag = f"x, y: {shape} {kind}" + ("" if seed == "empty" else f" (seed {seed})")
            bce = F.binary_cross_entropy_with_logits(x, y)
            expected = c.ref(lambda x=x, y=y: ref_losses.loss_comb(x, y))
            what = f"loss_comb(x, y), {tag}"
            total, their_bce = _terms(c, m, x, y, what)
            if their_bce is not None:
                c.close(
                    their_bce,
                    bce,
                    "scalar",
                    f"the BCE term of {what} (your lovasz_hinge replaced by 0)",
                )
                c.close(
                    total - their_bce, expected - bce, "scalar",
                    f"the Lovász term 0.01 * 0.5 * (L(x, y) + L(-x, 1 - y)) of {what}",
                )  # fmt: skip
            else:
                c.close(
                    total - bce,
                    expected - bce,
                    "scalar",
                    f"loss_comb(x, y) - BCEWithLogits(x, y), {tag}",
                )
            c.close(total, expected, "scalar", what)

    with c.rung("gradients"):
        for seed in SEEDS:
            shape = _SHAPES[seed % len(_SHAPES)]
            x, y = loss_inputs(seed, shape, soft=bool(seed))
            what = f"loss_comb(x, y).backward(), x: {shape} (seed {seed})"
            expected = c.ref(lambda x=x, y=y: _grad_of(lambda xr: ref_losses.loss_comb(xr, y), x))
            got = c.call(what, lambda x=x, y=y: _grad_of(lambda xm: m.loss_comb(xm, y.clone()), x))
            _check_grad(c, got, expected, what)
