"""Check of ``metrics.py``: ``f-th``."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from checks.ladder import SEEDS, Ladder
from checks.observe import changed
from reference import metrics as ref_metrics

# (B, 1, H, W) of each validation batch; non-square, batches of unequal sizes.
_BATCH_SHAPES = (((2, 1, 6, 5), (3, 1, 6, 5), (1, 1, 6, 5)), ((3, 1, 4, 7), (2, 1, 4, 7)))
_LOGIT_0495 = math.log(0.495 / 0.505)  # sigmoid = 0.495: just under the threshold 0.50


def random_batches(seed: int, shapes) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, soft target) per batch. Logits mix random values with exact zeros
    (p = 0.5, equal to a threshold); targets take 0, 0.3, 0.5, 0.7, 1 (t = y > 0.5,
    so 0.5 is background). Each batch has its own share of positives, so a mean of
    per-batch Dice differs from the global Dice."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, shape in enumerate(shapes):
        logits = torch.randn(shape, generator=g) * 2
        logits[torch.rand(shape, generator=g) < 0.15] = 0.0
        levels = torch.tensor([0.0, 0.3, 0.5, 0.7, 1.0])
        p_pos = 0.15 + 0.3 * i
        y = levels[torch.randint(0, 5, shape, generator=g)]
        y = torch.where(torch.rand(shape, generator=g) < p_pos, y.clamp(min=0.7), y * (y < 0.6))
        logits = logits + 2.0 * (y > 0.5)  # positives score higher: a realistic curve
        out.append((logits, y))
    return out


def tie_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Positives at p = 0.5 exactly, negatives at p = 0.495. With the strict p > th
    no threshold separates them (0.49 takes both, 0.50 neither); p >= 0.50 would
    separate them perfectly."""
    y = torch.zeros(2, 1, 3, 4)
    y[:, :, :, :2] = 1.0
    logits = torch.where(y > 0.5, torch.tensor(0.0), torch.tensor(_LOGIT_0495))
    return [(logits, y)]


def _feed(metric, batches) -> None:
    for pred, y in batches:
        metric.accumulate(SimpleNamespace(pred=pred, y=y))


def _feed_mine(metric, batches) -> str | None:
    """(learner side) accumulate() on copies of the batches; the first in-place change of
    learn.pred or learn.y, if any (fastai hands the same tensors to every metric)."""
    for pred, y in batches:
        learn = SimpleNamespace(pred=pred.clone(), y=y.clone())
        metric.accumulate(learn)
        for name, before, after in (("learn.pred", pred, learn.pred), ("learn.y", y, learn.y)):
            diff = changed(before, after)
            if diff:
                return f"`{name}` in place ({diff})"
    return None


def _unchanged(c: Ladder, what: str, change: str | None) -> None:
    c.observe(f"{what}: learn.pred and learn.y unchanged", change is None, change)
    if change is not None:
        c.fail(
            f"called:   {what}\n  your code changed its input {change}: compute on a copy "
            "or with out-of-place operations"
        )


def _reference_value(batches, **kw) -> torch.Tensor:
    ref = ref_metrics.F_th(**kw)
    ref.reset()
    _feed(ref, batches)
    return torch.tensor(float(ref.value))


def _value(metric) -> float:
    v = metric.value
    return float(v.item() if isinstance(v, torch.Tensor) else v)


def check_f_th(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        metric = c.call("F_th()", lambda: m.F_th())
        batches = random_batches(0, _BATCH_SHAPES[0])
        what = "F_th().reset(); .accumulate(learn) per batch"
        change = c.call(what, lambda: (metric.reset(), _feed_mine(metric, batches))[1])
        _unchanged(c, what, change)
        v = c.call("F_th().value", lambda: metric.value)
        c.is_type(v, (float, int, torch.Tensor), "F_th().value after 3 batches")
        if isinstance(v, torch.Tensor) and v.numel() != 1:
            c.fail(
                f"called:   F_th().value\n  expected a single number\n  got:      tensor of shape {tuple(v.shape)}"
            )
        c.equal(
            c.call("F_th().name", lambda: metric.name),
            "f_th",
            "F_th().name (the column of the training table)",
        )

    with c.rung("values"):
        cases = [
            (f"{len(s)} batches {[tuple(b) for b in s]} (seed {seed})", random_batches(seed, s))
            for seed in SEEDS
            for s in _BATCH_SHAPES
        ]
        cases.append(
            ("one batch where positives have p = 0.5 exactly, negatives p = 0.495", tie_batches())
        )
        for desc, batches in cases:
            for kw in ({}, {"beta": 2}):
                expected = c.ref(lambda kw=kw, b=batches: _reference_value(b, **kw))
                args = ", ".join(f"{k}={v}" for k, v in kw.items())
                what = f"F_th({args}): reset(), accumulate() over {desc}, then value"
                mine = c.call(f"F_th({args})", lambda kw=kw: m.F_th(**kw))
                change, got = c.call(
                    what,
                    lambda mine=mine, b=batches: (mine.reset(), _feed_mine(mine, b), _value(mine))[
                        1:
                    ],
                )
                _unchanged(c, what, change)
                c.close(torch.tensor(got), expected, "scalar", what)
        # reset() must forget: the value after reset equals that of a fresh metric.
        first, second = random_batches(0, _BATCH_SHAPES[0]), random_batches(1, _BATCH_SHAPES[1])
        expected = c.ref(lambda: _reference_value(second))
        what = "F_th(): accumulate() over seed-0 batches, reset(), accumulate() over seed-1 batches, value"
        mine = c.call("F_th()", lambda: m.F_th())

        def again() -> float:
            mine.reset()
            _feed_mine(mine, first)
            mine.reset()
            _feed_mine(mine, second)
            return _value(mine)

        c.close(torch.tensor(c.call(what, again)), expected, "scalar", what)
