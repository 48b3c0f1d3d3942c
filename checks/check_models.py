"""Checks of the model exercises: ``pixel-shuffle-icnr``, ``unet-block``, ``fpn``,
``lstm-block`` (blocks in ``layers.py``) and ``coat-ulstm`` (``coat.py``).

Every module is compared with the reference on the same weights (see
:mod:`checks.modelcheck` for why the weights are copied before the
``state_dict`` rung and loaded strictly only there)::

    shapes      output shapes; the same tensor shapes in the state dict (names aside)
    values      2 seeds x >= 2 non-square inputs, reference weights copied in;
                a failure names the first diverging submodule
    gradients   d/d(inputs) and d/d(parameters) of (out * w).sum()
    state_dict  the reference's state dict loads with strict=True; same outputs

``icnr_init`` draws random numbers: it is compared by seeding the global
generator identically before the reference's and the learner's call, and by
its defining property (the scale^2 sub-pixels of a feature share one kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from checks.ladder import SEEDS, Ladder
from checks.modelcheck import (
    build,
    compare_gradients,
    copy_weights,
    one_thread,
    perturb_constants,
    same_tensors,
    strict_load,
)
from checks.observe import compare_arrays
from checks.tolerances import tolerance
from reference.models import coat as ref_coat
from reference.models import layers as ref_layers


@dataclass
class Case:
    """One module configuration and the inputs it is run on."""

    name: str  # how the learner's module is built, e.g. "UnetBlock(16, 6, 10)"
    make_ref: Callable[[], nn.Module]
    make_mine: Callable[[Any], nn.Module]  # learner's module (file) -> module
    inputs: list[Callable[[int], tuple]]  # seed -> positional arguments
    input_names: tuple[str, ...]


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _shapes(args: tuple) -> str:
    def one(a: Any) -> str:
        if isinstance(a, torch.Tensor):
            return str(tuple(a.shape))
        return "[" + ", ".join(one(x) for x in a) + "]"

    return ", ".join(one(a) for a in args)


def _forward(m: nn.Module, args: tuple) -> torch.Tensor:
    return m(*args)


def _clone(a: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return a.clone()
    return type(a)(_clone(x) for x in a)


def _guarded_forward(c: Ladder, what: str, mine, args: tuple, names) -> Any:
    """The learner's forward (no grad) on its own copy of ``args``; fails if it changes
    them in place."""
    # input_names name every tensor; a list argument (FPN's xs) is one argument here.
    labels = names if len(names) == len(args) else [f"argument {i}" for i in range(len(args))]

    def forward(**own):
        with torch.no_grad():
            return _forward(mine, tuple(own[k] for k in labels))

    return c.call_on_copies(what, forward, **dict(zip(labels, args)))


def check_modules(
    c: Ladder,
    cases: list[Case],
    tol: str = "forward",
    grad_tol: str = "gradient",
    extra_shapes: Callable[[Ladder], None] | None = None,
    extra_values: Callable[[Ladder], None] | None = None,
    grad_seeds: int = len(SEEDS),
) -> None:
    """The module ladder shared by the block exercises and CoaT_ULSTM (one thread: see
    :func:`checks.modelcheck.one_thread`)."""
    with one_thread():
        _check_modules(c, cases, tol, grad_tol, extra_shapes, extra_values, grad_seeds)


def _check_modules(
    c: Ladder,
    cases: list[Case],
    tol: str,
    grad_tol: str,
    extra_shapes: Callable[[Ladder], None] | None,
    extra_values: Callable[[Ladder], None] | None,
    grad_seeds: int,
) -> None:
    refs: dict[tuple[int, int], nn.Module] = {}

    def ref_of(i: int, seed: int) -> nn.Module:
        """The reference module (on the grader's side; nothing on the learner's)."""
        if (i, seed) not in refs:

            def make() -> nn.Module:
                torch.manual_seed(seed)
                return perturb_constants(cases[i].make_ref(), seed)

            refs[i, seed] = c.ref(make)
        return refs[i, seed]

    def expected_of(ref: nn.Module, args: tuple):
        def run():
            with torch.no_grad():
                return _forward(ref, args)

        return c.ref(run)

    mines: list[nn.Module] = []
    with c.rung("shapes"):
        if extra_shapes is not None:
            extra_shapes(c)
        for i, case in enumerate(cases):
            ref = ref_of(i, SEEDS[0])
            mine = build(c, case.name, lambda case=case: case.make_mine(c.module), SEEDS[0])
            mines.append(mine)
            same_tensors(c, ref, mine, case.name)
            copy_weights(c, ref, mine, case.name)
            args = case.inputs[0](SEEDS[0])  # the values rung compares the shapes of the others
            what = f"{case.name}({_shapes(args)})"
            expected = expected_of(ref, args)
            got = _guarded_forward(c, what, mine, args, case.input_names)
            c.same_shape(got, expected, what)

    with c.rung("values"):
        if extra_values is not None:
            extra_values(c)
        for seed in SEEDS:
            for i, case in enumerate(cases):
                ref, mine = ref_of(i, seed), mines[i]
                copy_weights(c, ref, mine, case.name)
                for make in case.inputs:
                    args = make(seed)
                    what = (
                        f"{case.name}({_shapes(args)}), seed {seed}, the reference's weights "
                        "copied into yours"
                    )
                    expected = expected_of(ref, args)
                    got = _guarded_forward(c, what, mine, args, case.input_names)
                    c.close(got, expected, tol, what, models=(ref, mine), inputs=args)

    with c.rung("gradients"):
        for seed in SEEDS[:grad_seeds]:
            i = seed % len(cases)
            case = cases[i]
            ref, mine = ref_of(i, seed), mines[i]
            mapping = copy_weights(c, ref, mine, case.name)
            args = case.inputs[seed % len(case.inputs)](seed)
            what = f"{case.name}({_shapes(args)}) (seed {seed})"
            compare_gradients(
                c, ref, mine, args, mapping, what, seed, grad_tol, input_names=case.input_names
            )

    with c.rung("state_dict"):
        for i, case in enumerate(cases):
            seed = SEEDS[-1]
            ref = ref_of(i, seed)
            # A fresh module: loading must set every tensor by the original's name.
            mine = build(c, case.name, lambda case=case: case.make_mine(c.module), seed + 50)
            strict_load(c, ref, mine, case.name)
            args = case.inputs[0](seed)
            what = f"{case.name}({_shapes(args)}) after load_state_dict(reference, strict=True)"
            expected = expected_of(ref, args)
            got = _guarded_forward(c, what, mine, args, case.input_names)
            c.close(got, expected, tol, what, models=(ref, mine), inputs=args)


# ------------------------------------------------------------------ pixel-shuffle-icnr
# (weight shape, scale): 1x1 convs as in PixelShuffle_ICNR, a 3x3 kernel, scale 3.
_ICNR_SHAPES = (((12, 5, 1, 1), 2), ((8, 3, 3, 3), 2), ((18, 2, 1, 1), 3))


def _fill_arange(t: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for ``init``: kernel j holds distinct, recognisable values."""
    with torch.no_grad():
        return t.copy_(torch.arange(t.numel(), dtype=t.dtype).view(t.shape))


def _icnr_shapes(c: Ladder) -> None:
    for shape, scale in _ICNR_SHAPES:
        w = torch.empty(shape)
        what = f"icnr_init(w, scale={scale}), w: {shape}"
        got = c.call(what, lambda w=w, s=scale: c.module.icnr_init(w, s))
        expected = c.ref(lambda sh=shape, s=scale: ref_layers.icnr_init(torch.empty(sh), s))
        c.same_shape(got, expected, what)


def _shared_subpixels(c: Ladder, w: torch.Tensor, scale: int, what: str) -> None:
    """Output channels j*s^2 .. j*s^2 + s^2 - 1 of ``w`` must be one kernel (kernel j)."""
    k = w.detach().reshape(w.shape[0] // scale**2, scale**2, *w.shape[1:])
    spread = (k - k[:, :1]).abs().amax()
    if float(spread) > 0:
        bad = int((k - k[:, :1]).abs().flatten(1).amax(1).argmax())
        c.fail(
            f"called:   {what}\n  output channels {bad * scale**2}..{bad * scale**2 + scale**2 - 1} "
            f"must all hold kernel {bad} (after PixelShuffle({scale}) the {scale**2} sub-pixels of "
            f"feature {bad} are equal: nearest-neighbour upsampling at init); they differ by up to "
            f"{float(spread):.3g}"
        )


def _icnr_values(c: Ladder) -> None:
    icnr = c.module.icnr_init
    for shape, scale in _ICNR_SHAPES:
        what = f"icnr_init(w, scale={scale}, init=fill_with_arange), w: {shape}"
        got = c.call(what, lambda s=shape, k=scale: icnr(torch.empty(s), k, _fill_arange))
        expected = c.ref(
            lambda s=shape, k=scale: ref_layers.icnr_init(torch.empty(s), k, _fill_arange)
        )
        _shared_subpixels(c, got, scale, what)
        c.close(got, expected, "exact", what)
        for seed in SEEDS:
            what = f"torch.manual_seed({seed}); icnr_init(w, scale={scale}), w: {shape}"
            expected = c.ref(
                lambda s=shape, k=scale, seed=seed: (
                    torch.manual_seed(seed),
                    ref_layers.icnr_init(torch.empty(s), k),
                )[1]
            )
            got = c.call(
                what,
                lambda s=shape, k=scale, seed=seed: (
                    torch.manual_seed(seed),
                    icnr(torch.empty(s), k),
                )[1],
            )
            c.close(got, expected, "data", what)
    # The module's conv right after construction: ICNR weight drawn after the conv's
    # own init (same random stream as the original), PyTorch's default bias.
    for seed in SEEDS:
        for ni, nf, blur in ((6, 3, True), (5, None, False)):
            name = f"PixelShuffle_ICNR({ni}, {nf}, blur={blur})"
            args = (ni, nf, blur)
            ref = c.ref(
                lambda a=args, seed=seed: (
                    torch.manual_seed(seed),
                    ref_layers.PixelShuffle_ICNR(a[0], a[1], blur=a[2]),
                )[1]
            )
            mine = build(
                c, name, lambda a=args: c.module.PixelShuffle_ICNR(*a[:2], blur=a[2]), seed
            )
            conv = c.call(f"{name}[0]", lambda mine=mine: _first_conv(mine))
            if conv is None:
                c.fail(f"{name}[0] must be the 1x1 nn.Conv2d")
            weight, bias = conv
            what = f"torch.manual_seed({seed}); {name}[0].weight"
            c.same_shape(weight, ref[0].weight if c.grader else None, what)
            _shared_subpixels(c, weight, 2, what)
            if c.grader:
                report = compare_arrays(weight, ref[0].weight, tolerance("data"))
                c.observe(what, report is None, weight, "data")
                if report is not None:
                    c.fail(
                        f"called:   {what}\n{report}\n  the kernels are shared as ICNR wants, but "
                        "they are not the original's draw: build the nn.Conv2d first (its own init "
                        "draws from the generator), then overwrite its weight with icnr_init"
                    )
            what = f"torch.manual_seed({seed}); {name}[0].bias"
            c.close(
                bias, ref[0].bias if c.grader else None, "data",
                what + " (PyTorch's default init, untouched)",
            )  # fmt: skip


def _first_conv(mine) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(learner side) weight and bias of mine[0] when it is an nn.Conv2d."""
    conv = mine[0] if isinstance(mine, nn.Sequential) and len(mine) else None
    if not isinstance(conv, nn.Conv2d):
        return None
    return conv.weight.detach().clone(), conv.bias.detach().clone()


def check_pixel_shuffle_icnr(c: Ladder) -> None:
    cases = [
        Case(
            f"PixelShuffle_ICNR({ni}, {nf}, blur={blur})",
            lambda ni=ni, nf=nf, blur=blur: ref_layers.PixelShuffle_ICNR(ni, nf, blur=blur),
            lambda m, ni=ni, nf=nf, blur=blur: m.PixelShuffle_ICNR(ni, nf, blur=blur),
            [lambda s, ni=ni, hw=hw: (_randn(s, 2, ni, *hw),) for hw in shapes],
            ("x",),
        )
        for ni, nf, blur, shapes in (
            (6, 3, True, ((3, 5), (4, 2))),
            (5, None, False, ((2, 3), (5, 4))),
        )
    ]
    check_modules(c, cases, extra_shapes=_icnr_shapes, extra_values=_icnr_values)


# -------------------------------------------------------------------------- unet-block
def check_unet_block(c: Ladder) -> None:
    def unet(up_c, x_c, nf, hw):
        h, w = hw
        return lambda s: (_randn(s, 2, up_c, h, w), _randn(100 + s, 2, x_c, 2 * h, 2 * w))

    cases = [
        Case(
            "UnetBlock(16, 6, 10)",
            lambda: ref_layers.UnetBlock(16, 6, 10),
            lambda m: m.UnetBlock(16, 6, 10),
            [unet(16, 6, 10, (3, 5)), unet(16, 6, 10, (4, 2))],
            ("up_in", "left_in"),
        ),
        Case(
            "UnetBlock(12, 5)",  # nf defaults to max(12 // 2, 32)
            lambda: ref_layers.UnetBlock(12, 5),
            lambda m: m.UnetBlock(12, 5),
            [unet(12, 5, None, (2, 3))],
            ("up_in", "left_in"),
        ),
        Case(
            "UpBlock(24, 3)",  # ni = 6 < 16: no LayerNorm
            lambda: ref_layers.UpBlock(24, 3),
            lambda m: m.UpBlock(24, 3),
            [lambda s: (_randn(s, 2, 24, 3, 5),), lambda s: (_randn(s, 1, 24, 4, 2),)],
            ("up_in",),
        ),
        Case(
            "UpBlock(64, 1, blur=False)",  # ni = 16: LayerNorm2d(16)
            lambda: ref_layers.UpBlock(64, 1, blur=False),
            lambda m: m.UpBlock(64, 1, blur=False),
            [lambda s: (_randn(s, 1, 64, 2, 3),)],
            ("up_in",),
        ),
        Case(
            "UpBlock(40)",  # nf defaults to max(40 // 4, 16) = 16; ni = 10: no LayerNorm
            lambda: ref_layers.UpBlock(40),
            lambda m: m.UpBlock(40),
            [lambda s: (_randn(s, 1, 40, 3, 2),)],
            ("up_in",),
        ),
    ]
    check_modules(c, cases)


# --------------------------------------------------------------------------------- fpn
def check_fpn(c: Ladder) -> None:
    def pyramid(in_chs, last_c, hw):
        def make(s: int) -> tuple:
            n, (h, w) = len(in_chs), hw
            xs = [
                _randn(s + 10 * i, 2, ch, h >> (n - i), w >> (n - i)) for i, ch in enumerate(in_chs)
            ]
            return (xs, _randn(s + 99, 2, last_c, h, w))

        return make

    cases = [
        Case(
            f"FPN({ins}, {outs})",
            lambda ins=ins, outs=outs: ref_layers.FPN(ins, outs),
            lambda m, ins=ins, outs=outs: m.FPN(ins, outs),
            [pyramid(ins, 5, hw) for hw in shapes],
            (*(f"xs[{i}]" for i in range(len(ins))), "last_layer"),
        )
        for ins, outs, shapes in (
            ([12, 8, 6], [4, 4, 4], ((16, 8), (8, 24))),
            ([7, 9], [3, 5], ((8, 12),)),
        )
    ]
    check_modules(c, cases)


# -------------------------------------------------------------------------- lstm-block
def check_lstm_block(c: Ladder) -> None:
    cases = [
        Case(
            f"LSTM_block({n}{extra})",
            lambda n=n, kw=kw: ref_layers.LSTM_block(n, **kw),
            lambda m, n=n, kw=kw: m.LSTM_block(n, **kw),
            [lambda s, n=n, sh=sh: (_randn(s, sh[0], sh[1], n, sh[2], sh[3]),) for sh in shapes],
            ("x",),
        )
        for n, kw, extra, shapes in (
            (6, {}, "", ((2, 5, 3, 4), (1, 3, 2, 5))),
            (8, {"bidirectional": True}, ", bidirectional=True", ((1, 4, 3, 2),)),
            (4, {"num_layers": 2}, ", num_layers=2", ((1, 3, 2, 3),)),
        )
    ]
    check_modules(c, cases)


# -------------------------------------------------------------------------- coat-ulstm
def _frames(seed: int, b: int, t: int, h: int, w: int) -> torch.Tensor:
    """(B, 3, T, H, W) in [0, 1], with hard 0/1 edges where bicubic overshoots."""
    x = torch.rand((b, 3, t, h, w), generator=torch.Generator().manual_seed(seed))
    return torch.where(x > 0.8, 1.0, torch.where(x < 0.2, 0.0, x))


def check_coat_ulstm(c: Ladder) -> None:
    # arch 'mini', the smallest the original knows, on 16- and 32-pixel sides (the
    # encoder sees 32 and 64 after the x2 upsampling); the 8-frame input must use frames 0..4.
    cases = [
        Case(
            "CoaT_ULSTM(arch='mini')",
            lambda: ref_coat.CoaT_ULSTM(arch="mini"),
            lambda m: m.CoaT_ULSTM(arch="mini"),
            [lambda s: (_frames(s, 2, 5, 16, 32),), lambda s: (_frames(s, 1, 8, 32, 16),)],
            ("x",),
        )
    ]
    # One gradient seed: a backward pass through the whole model is the dearest step.
    check_modules(c, cases, tol="model", grad_tol="model", grad_seeds=1)
