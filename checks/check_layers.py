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
    ref = c.ref(lambda: ref_layers.LayerNorm2d(channels, **kw))
    return ref, mine, f"LayerNorm2d({args})"


def _mine(c: Ladder, what: str, mine, x: torch.Tensor) -> torch.Tensor:
    """The learner's module on its own copy of ``x`` (failing if it changes it in place)."""
    return c.call_on_copies(what, lambda x: mine(x), x=x)


def check_layer_norm_2d(c: Ladder) -> None:
    with c.rung("shapes"):
        for shape in _LN_SHAPES:
            x = ln_input(0, shape)
            ref, mine, name = _pair(c, shape[1])
            what = f"{name}(x), x: {tuple(shape)} float32"
            expected = c.ref(lambda ref=ref, x=x: ref(x))
            c.same_shape(_mine(c, what, mine, x), expected, what)

    with c.rung("values"):
        for seed in SEEDS:
            for shape in _LN_SHAPES:
                for kw in ({}, {"eps": 0.1}):
                    x = ln_input(seed, shape)
                    ref, mine, name = _pair(c, shape[1], **kw)
                    what = f"{name}(x), x: {tuple(shape)} float32 (seed {seed}), weight 1, bias 0"
                    expected = c.ref(lambda ref=ref, x=x: ref(x))
                    got = _mine(c, what, mine, x)
                    c.close(got, expected, "forward", what, models=(ref, mine), inputs=x)

    with c.rung("gradients"):
        for seed in SEEDS:
            shape = _LN_SHAPES[seed % len(_LN_SHAPES)]
            ref, mine, name = _pair(c, shape[1])
            x = ln_input(seed, shape)
            w = torch.randn(shape, generator=torch.Generator().manual_seed(100 + seed))
            what = f"gradients of ({name}(x) * w).sum(), x: {tuple(shape)} (seed {seed})"

            def ref_grads(ref=ref, x=x, w=w):
                xr = x.clone().requires_grad_()
                (ref(xr) * w).sum().backward()
                return xr.grad, [p.grad for p in ref.parameters()]

            def mine_grads(mine=mine, x=x, w=w):
                xm = x.clone().requires_grad_()
                (mine(xm) * w).sum().backward()
                return xm.grad, [p.grad for p in mine.parameters()]

            expected = c.ref(ref_grads)
            got_x, got_params = c.call(what, mine_grads)
            if got_x is None:
                c.fail(
                    f"{what}: no gradient reached x (a .detach() or torch.no_grad() in forward?)"
                )
            c.close(got_x, expected[0], "gradient", f"d/dx of {what}")
            c.equal(
                len(got_params),
                2,
                f"number of parameters of {name}: weight ({shape[1]},) and bias ({shape[1]},), in this order",
            )
            # (recording goes on past a wrong count: compare the parameters there are)
            for i, pname in enumerate(("weight", "bias")[: len(got_params)]):
                if got_params[i] is None:
                    c.fail(
                        f"{what}: no gradient reached your parameter in the place of `{pname}` (is it an nn.Parameter?)"
                    )
                c.close(got_params[i], expected[1][i], "gradient", f"d/d{pname} of {what}")

    with c.rung("state_dict"):
        for seed in SEEDS:
            shape = _LN_SHAPES[seed % len(_LN_SHAPES)]
            ref, mine, name = _pair(c, shape[1])

            def randomised(ref=ref, seed=seed, n=shape[1]):
                g = torch.Generator().manual_seed(200 + seed)
                with torch.no_grad():
                    ref.weight.copy_(torch.randn(n, generator=g))
                    ref.bias.copy_(torch.randn(n, generator=g))
                return ref.state_dict()

            state = c.give(randomised)
            load_strict(c, mine, state, name)
            x = ln_input(seed, shape)
            what = f"{name}(x) with random weight and bias loaded, x: {tuple(shape)} (seed {seed})"
            expected = c.ref(lambda ref=ref, x=x: ref(x))
            got = _mine(c, what, mine, x)
            c.close(got, expected, "forward", what, models=(ref, mine), inputs=x)


def load_strict(c: Ladder, mine, state: dict, name: str) -> None:
    """``mine.load_state_dict(state, strict=True)`` on the learner's side; fail at the current
    rung with the missing / unexpected / mis-shaped keys when it does not fit."""
    what = f"{name}.load_state_dict(reference state dict, strict=True)"

    def load(mine=mine):
        try:
            mine.load_state_dict(state, strict=True)
        except RuntimeError as e:
            return str(e)
        return None

    error = c.call(what, load)
    c.observe(what, error is None, error)
    if error is not None:
        detail = "\n".join("    " + ln.strip() for ln in error.splitlines() if ln.strip())
        c.fail(
            f"called:   {what}\n  the reference's weights do not fit yours "
            f"(attribute names and shapes must follow the original):\n{detail}"
        )
