"""Check of ``metrics.py``: ``f-th``."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from checks.ladder import SEEDS, Ladder
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


def _feed_mine(c: Ladder, what: str, metric, batches) -> None:
    """The learner's metric on copies of the batches, failing if it changes learn.pred or
    learn.y in place (fastai hands the same tensors to every metric and the loss)."""
    for pred, y in batches:
        learn = SimpleNamespace(pred=pred.clone(), y=y.clone())
        with c.unchanged(what, **{"learn.pred": learn.pred, "learn.y": learn.y}):
            metric.accumulate(learn)


def _value(metric) -> float:
    v = metric.value
    return float(v.item() if isinstance(v, torch.Tensor) else v)


def check_f_th(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        metric = c.call("F_th()", lambda: m.F_th())
        batches = random_batches(0, _BATCH_SHAPES[0])
        c.call(
            "F_th().reset(); .accumulate(learn) per batch",
            lambda: (metric.reset(), _feed_mine(c, "F_th().accumulate(learn)", metric, batches)),
        )
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
                ref = ref_metrics.F_th(**kw)
                ref.reset()
                _feed(ref, batches)
                args = ", ".join(f"{k}={v}" for k, v in kw.items())
                what = f"F_th({args}): reset(), accumulate() over {desc}, then value"
                mine = c.call(f"F_th({args})", lambda kw=kw: m.F_th(**kw))
                got = c.call(
                    what,
                    lambda mine=mine, b=batches, what=what: (
                        mine.reset(),
                        _feed_mine(c, what, mine, b),
                        _value(mine),
                    )[2],
                )
                c.close(torch.tensor(got), torch.tensor(ref.value), "scalar", what)
        # reset() must forget: the value after reset equals that of a fresh metric.
        first, second = random_batches(0, _BATCH_SHAPES[0]), random_batches(1, _BATCH_SHAPES[1])
        ref = ref_metrics.F_th()
        ref.reset()
        _feed(ref, second)
        what = "F_th(): accumulate() over seed-0 batches, reset(), accumulate() over seed-1 batches, value"
        mine = c.call("F_th()", lambda: m.F_th())

        def again() -> float:
            mine.reset()
            _feed_mine(c, what, mine, first)
            mine.reset()
            _feed_mine(c, what, mine, second)
            return _value(mine)

        c.close(torch.tensor(c.call(what, again)), torch.tensor(ref.value), "scalar", what)
