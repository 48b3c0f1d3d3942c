"""Checks of the decoder blocks in ``layers.py``: ``layer-norm-2d``."""

from __future__ import annotations

import torch

from checks.ladder import SEEDS, Ladder
from reference.models import layers as ref_layers

# Non-square maps, channel counts where C and C - 1 differ clearly (biased variance).
_LN_SHAPES = ((2, 7, 5, 3), (1, 4, 3, 6))


def ln_input(seed: int, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """(B, C, H, W) float32 whose per-pixel channel spread runs from 1e-4 to 1e2.

    Pixels with a tiny spread are where eps matters (s + eps vs s): a LayerNorm
    that puts eps in the wrong place is right everywhere else.
    """
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = shape
    scale = 10 ** (torch.rand(b, 1, h, w, generator=g) * 6 - 4)
    offset = torch.randn(b, 1, h, w, generator=g) * scale
    return torch.randn(shape, generator=g) * scale + offset


def _pair(c: Ladder, channels: int, **kw):
    args = ", ".join([str(channels)] + [f"{k}={v}" for k, v in kw.items()])
    mine = c.call(f"LayerNorm2d({args})", lambda: c.module.LayerNorm2d(channels, **kw))
    return ref_layers.LayerNorm2d(channels, **kw), mine, f"LayerNorm2d({args})"


def _mine(c: Ladder, what: str, mine, x: torch.Tensor) -> torch.Tensor:
    """The learner's module on its own copy of ``x`` (failing if it changes it in place)."""
    own = x.clone()
    with c.unchanged(what, x=own):
        return c.call(what, lambda: mine(own))


def check_layer_norm_2d(c: Ladder) -> None:
    with c.rung("shapes"):
        for shape in _LN_SHAPES:
            x = ln_input(0, shape)
            ref, mine, name = _pair(c, shape[1])
            what = f"{name}(x), x: {tuple(shape)} float32"
            expected = ref(x)
            c.same_shape(_mine(c, what, mine, x), expected, what)

    with c.rung("values"):
        for seed in SEEDS:
            for shape in _LN_SHAPES:
                for kw in ({}, {"eps": 0.1}):
                    x = ln_input(seed, shape)
                    ref, mine, name = _pair(c, shape[1], **kw)
                    what = f"{name}(x), x: {tuple(shape)} float32 (seed {seed}), weight 1, bias 0"
                    expected = ref(x)
                    got = _mine(c, what, mine, x)
                    c.close(got, expected, "forward", what, models=(ref, mine), inputs=x)

    with c.rung("gradients"):
        for seed in SEEDS:
            shape = _LN_SHAPES[seed % len(_LN_SHAPES)]
            ref, mine, name = _pair(c, shape[1])
            x = ln_input(seed, shape)
            w = torch.randn(shape, generator=torch.Generator().manual_seed(100 + seed))
            xr, xm = x.clone().requires_grad_(), x.clone().requires_grad_()
            (ref(xr) * w).sum().backward()
            what = f"gradients of ({name}(x) * w).sum(), x: {tuple(shape)} (seed {seed})"
            c.call(what, lambda m=mine, xm=xm, w=w: (m(xm) * w).sum().backward())
            c.close(xm.grad, xr.grad, "gradient", f"d/dx of {what}")
            ref_params = dict(ref.named_parameters())
            mine_params = list(mine.parameters())
            if len(mine_params) != len(ref_params):
                c.fail(
                    f"{name} has {len(mine_params)} parameters; expected 2: weight ({shape[1]},) "
                    f"and bias ({shape[1]},), in this order"
                )
            for (pname, pr), pm in zip(ref_params.items(), mine_params):
                if pm.grad is None:
                    c.fail(
                        f"{what}: no gradient reached your parameter in the place of `{pname}` (is it an nn.Parameter?)"
                    )
                c.close(pm.grad, pr.grad, "gradient", f"d/d{pname} of {what}")

    with c.rung("state_dict"):
        for seed in SEEDS:
            shape = _LN_SHAPES[seed % len(_LN_SHAPES)]
            ref, mine, name = _pair(c, shape[1])
            g = torch.Generator().manual_seed(200 + seed)
            with torch.no_grad():
                ref.weight.copy_(torch.randn(shape[1], generator=g))
                ref.bias.copy_(torch.randn(shape[1], generator=g))
            c.load_weights(mine, ref, name)
            x = ln_input(seed, shape)
            what = f"{name}(x) with random weight and bias loaded, x: {tuple(shape)} (seed {seed})"
            expected = ref(x)
            got = _mine(c, what, mine, x)
            c.close(got, expected, "forward", what, models=(ref, mine), inputs=x)
