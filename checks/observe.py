"""Observations of a check (what each comparison saw) and the array helpers behind them.

Every comparison of a check is recorded as an :class:`Observation` keyed by rung, what
was called and how often; a failing one keeps a digest of what the learner's code gave.
:mod:`checks.diagnosis` compares the observations of the learner's run with those of
known mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from checks.tolerances import Tolerance

Key = tuple[str, str, int]  # (rung, what was called, occurrence)
_SAMPLE = 65536  # elements kept of a large tensor in a digest


@dataclass
class Observation:
    """One comparison of a check: its key, whether it passed, and (failures only) a digest
    of what the code under test gave, compared under tolerance row ``tol``."""

    key: Key
    passed: bool
    kind: str = "value"  # value | exact | message
    value: Any = None
    tol: str = "exact"


def as_float64(x: Any):
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64)
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def digest(x: Any) -> Any:
    """A comparable, detached copy of ``x``: float64 tensors (a strided sample of
    at most 65,536 elements plus the shape for large ones), plain values as they are."""
    import torch

    if isinstance(x, (torch.Tensor, np.ndarray)):
        t = as_float64(x).flatten()
        shape = tuple(x.shape)
        if t.numel() > _SAMPLE:
            t = t[:: -(-t.numel() // _SAMPLE)]
        return ("array", shape, t.clone())
    return ("plain", repr(x))


def same_digest(a: Any, b: Any, tol: Tolerance | None) -> bool:
    """Do two digests agree (within ``tol`` for arrays, exactly otherwise)?"""
    import torch

    if a[0] != b[0] or a[1] != b[1]:
        return False
    if a[0] != "array":
        return True
    if tol is None:
        return bool(torch.equal(a[2], b[2]))
    return bool(torch.isclose(a[2], b[2], rtol=tol.rtol, atol=tol.atol, equal_nan=True).all())


def same_observation(a: Observation, b: Observation) -> bool:
    """The same comparison with the same outcome (and, failed, the same answer within its
    tolerance row; exactly for shapes, types, texts and exceptions)."""
    from checks.tolerances import tolerance

    if a.key != b.key or a.passed != b.passed or a.kind != b.kind:
        return False
    if a.passed:
        return True
    tol = tolerance(a.tol) if a.kind == "value" else None
    return same_digest(a.value, b.value, tol)


def compare_arrays(got: Any, expected: Any, tol: Tolerance) -> str | None:
    """None when close; else lines: max abs diff with index and values, share of close values."""
    import torch

    g, e = as_float64(got), as_float64(expected)
    close = torch.isclose(g, e, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
    if bool(close.all()):
        return None
    diff = (g - e).abs()
    both_nan = torch.isnan(g) & torch.isnan(e)
    diff = torch.where(both_nan, 0.0, torch.nan_to_num(diff, nan=float("inf")))
    flat = int(diff.argmax())
    index = tuple(int(i) for i in np.unravel_index(flat, tuple(g.shape))) if g.dim() else ()
    gv, ev = float(g.flatten()[flat]), float(e.flatten()[flat])
    n_close, n = int(close.sum()), close.numel()
    text = (
        f"  max |got - expected| = {float(diff.flatten()[flat]):.3g} at index {index}: "
        f"got {gv:.7g}, expected {ev:.7g}\n"
    )
    allowed = tol.atol + tol.rtol * e.abs()
    excess = torch.where(close, -float("inf"), diff - allowed).flatten()
    worst = int(excess.argmax())
    if bool(close.flatten()[flat]) and worst != flat:
        # the largest difference is within tolerance (at a large value): show the worst miss
        wi = tuple(int(i) for i in np.unravel_index(worst, tuple(g.shape))) if g.dim() else ()
        text += (
            f"  furthest out of tolerance: index {wi}: got {float(g.flatten()[worst]):.7g}, "
            f"expected {float(e.flatten()[worst]):.7g} (|got - expected| "
            f"{float(diff.flatten()[worst]):.3g}, allowed {float(allowed.flatten()[worst]):.3g})\n"
        )
    return text + f"  close values: {n_close} of {n} ({100 * n_close / n:.1f}%), tolerance {tol}"


def snapshot(x: Any) -> Any:
    """A deep copy of tensors and arrays (and lists / tuples / dicts of them)."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (list, tuple)):
        return type(x)(snapshot(v) for v in x)
    if isinstance(x, dict):
        return {k: snapshot(v) for k, v in x.items()}
    return x


def changed(before: Any, after: Any, path: str = "") -> str | None:
    """How ``after`` differs from the snapshot ``before`` (None when it does not)."""
    import torch

    if isinstance(after, (torch.Tensor, np.ndarray)):
        a, b = as_float64(before), as_float64(after)
        if a.shape != b.shape:
            return f"{path or 'it'} has another shape now"
        same = (a == b) | (torch.isnan(a) & torch.isnan(b))
        if bool(same.all()):
            return None
        n = int((~same).sum())
        return f"{path + ': ' if path else ''}{n} of {same.numel()} values changed"
    if isinstance(after, (list, tuple)):
        for i, (bv, av) in enumerate(zip(before, after)):
            r = changed(bv, av, f"{path}[{i}]")
            if r:
                return r
    if isinstance(after, dict):
        for k in after:
            if k in before:
                r = changed(before[k], after[k], f"{path}[{k!r}]")
                if r:
                    return r
    return None


def describe(x: Any) -> str:
    """'(2, 7, 5, 3) float32' for arrays and tensors, the type name otherwise."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{tuple(shape)} {str(dtype).replace('torch.', '')}"
    return type(x).__name__


def short(x: Any, limit: int = 300) -> str:
    s = repr(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."
