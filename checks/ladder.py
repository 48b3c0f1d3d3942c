"""The ladder a check climbs, and the comparisons that write its failure messages.

Rungs, in order (a check uses those that apply and stops at the first failure)::

    import -> signature -> shapes -> values -> gradients -> state_dict -> training

The runner climbs ``import`` and ``signature`` itself from the catalog; a check
function receives a :class:`Ladder` and climbs the rest::

    def check_layer_norm_2d(c: Ladder) -> None:
        LayerNorm2d = c.module.LayerNorm2d
        with c.rung("shapes"):
            got = c.call("LayerNorm2d(7)(x)", lambda: LayerNorm2d(7)(x))
            c.same_shape(got, expected, "LayerNorm2d(7)(x)")
        with c.rung("values"):
            c.close(got, expected, "forward", "LayerNorm2d(7)(x)", models=(ref, mine), inputs=x)

Every failing comparison raises :class:`CheckFailed` with a message that says
what was called, expected vs got (shape, dtype, max abs diff and where, share
of close values, the tolerance) and, for modules, the first diverging
submodule (``reference.diagnose.first_divergence``).

Every comparison is also recorded as an :class:`Observation` (keyed by rung,
what was called and how often), the failing one with a digest of what the
learner's code gave. :mod:`checks.diagnosis` replays known mistakes in
*recording* mode (comparisons never raise, the ladder stops after the rung
that failed) and names the one that gave the same observations.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from checks.tolerances import Tolerance, tolerance

if TYPE_CHECKING:
    from checks.catalog import Exercise
    from checks.impl import Impl

RUNGS = ("import", "signature", "shapes", "values", "gradients", "state_dict", "training")
# Two seeds for every values rung (ARCHITECTURE: ">= 2 seeds and >= 2 input shapes").
SEEDS = (0, 1)


class CheckFailed(Exception):
    """The learner's code gave a wrong answer at ``rung``."""

    def __init__(self, rung: str, message: str) -> None:
        super().__init__(message)
        self.rung = rung
        self.message = message


class RecordingDone(BaseException):
    """Ends a recording run after its rung (BaseException: learner code cannot catch it)."""


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


def digest(x: Any) -> Any:
    """A comparable, detached copy of ``x``: float64 tensors (a strided sample of
    at most 65,536 elements plus the shape for large ones), plain values as they are."""
    import torch

    if isinstance(x, (torch.Tensor, np.ndarray)):
        t = _as_float64(x).flatten()
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


def _describe(x: Any) -> str:
    """'(2, 7, 5, 3) float32' for arrays and tensors, the type name otherwise."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{tuple(shape)} {str(dtype).replace('torch.', '')}"
    return type(x).__name__


def _as_float64(x: Any):
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64)
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def compare_arrays(got: Any, expected: Any, tol: Tolerance) -> str | None:
    """None when close; else lines: max abs diff with index and values, share of close values."""
    import torch

    g, e = _as_float64(got), _as_float64(expected)
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
    return (
        f"  max |got - expected| = {float(diff.flatten()[flat]):.3g} at index {index}: "
        f"got {gv:.7g}, expected {ev:.7g}\n"
        f"  close values: {n_close} of {n} ({100 * n_close / n:.1f}%), tolerance {tol}"
    )


class Ladder:
    """State of one check: the rung being climbed, the code under test, timings."""

    def __init__(self, exercise: Exercise, impl: Impl, record: str | None = None) -> None:
        """``record``: None to grade (the first wrong answer raises CheckFailed), or a rung:
        record every comparison without raising and stop (RecordingDone) after that rung."""
        self.exercise = exercise
        self.impl = impl
        self.module: ModuleType | None = None  # the learner's module, set by the import rung
        self.current: str | None = None
        self.passed: list[str] = []
        self.timings: dict[str, float] = {}
        self.calling: str | None = None  # the learner call in progress (for error messages)
        self.record = record
        self.notes: list[str] = []  # said with the result, passed or not
        self.observations: list[Observation] = []
        self._counts: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------ observations
    def _key(self, what: str) -> Key:
        rung = self.current or "import"
        n = self._counts.get((rung, what), 0)
        self._counts[(rung, what)] = n + 1
        return (rung, what, n)

    def observe(self, what: str, passed: bool, got: Any = None, tol: str | None = None) -> None:
        """Record one comparison (its digest only when it failed). ``tol`` None: exact."""
        value = None if passed else digest(got)
        kind = "exact" if tol is None else "value"
        self.observations.append(Observation(self._key(what), passed, kind, value, tol or "exact"))

    def _verdict(self, passed: bool, message: Callable[[], str]) -> None:
        """After an observation: raise when grading and it failed (recording goes on)."""
        if not passed and self.record is None:
            self.fail(message())

    # ------------------------------------------------------------------ rungs
    @contextlib.contextmanager
    def rung(self, name: str) -> Iterator[None]:
        if name not in RUNGS:
            raise ValueError(f"unknown rung {name!r}; rungs are {RUNGS}")
        if self.record is not None and RUNGS.index(name) > RUNGS.index(self.record):
            raise RecordingDone()
        last = self.passed[-1] if self.passed else None
        if last is not None and RUNGS.index(name) < RUNGS.index(last) and name != last:
            raise ValueError(f"rung {name!r} after {last!r}: rungs must be climbed in order")
        self.current = name
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        if name not in self.passed:
            self.passed.append(name)

    def note(self, text: str) -> None:
        """Something the learner should know even when the check passes."""
        if text not in self.notes:
            self.notes.append(text)

    def fail(self, message: str) -> None:
        """A wrong answer found by the check itself: recorded by its text, then raised
        (also when recording: the run cannot go on past it)."""
        if not self.observations or self.observations[-1].passed:
            self.observations.append(
                Observation(
                    self._key("fail: " + message.split("\n")[0]),
                    False,
                    "message",
                    ("plain", message),
                )
            )
        raise CheckFailed(self.current or "import", message)

    def call(self, what: str, fn: Callable[[], Any], fails: bool = False) -> Any:
        """Run learner code ``fn``; ``what`` (e.g. 'LayerNorm2d(7)(x)') names it in error reports.

        ``fails``: an exception of ``fn`` is a wrong answer at this rung (a failure with the
        traceback, recorded by its type and text), not an error of the learner's code.
        """
        self.calling = what
        if not fails:
            out = fn()
            self.calling = None
            return out
        try:
            out = fn()
        except Exception as e:
            from checks.runner import learner_traceback

            text = re.sub(r"0x[0-9a-f]+", "0x...", f"{type(e).__name__}: {e}")
            self.observations.append(
                Observation(self._key(f"raised: {what}"), False, "message", ("plain", text))
            )
            self.calling = None
            raise CheckFailed(
                self.current or "import",
                f"called:   {what}\n  it raised:\n{learner_traceback(e, self.impl.path)}",
            ) from None
        self.observe(f"raised: {what}", True)
        self.calling = None
        return out

    def call_on_copies(self, what: str, fn: Callable[..., Any], **inputs: Any) -> Any:
        """``fn(**copies)``: the learner's code on its own copies of ``inputs``, failing
        when it changes one of them in place (see :meth:`unchanged`)."""
        own = {k: _snapshot(v) for k, v in inputs.items()}
        with self.unchanged(what, **own):
            return self.call(what, lambda: fn(**own))

    @contextlib.contextmanager
    def unchanged(self, what: str, **inputs: Any) -> Iterator[None]:
        """Fail when the learner's code changes one of ``inputs`` (tensors, arrays, or
        lists / tuples / dicts of them) in place. Give the learner its own copy: the
        reference never computes on what the learner's code touched."""
        before = {name: _snapshot(x) for name, x in inputs.items()}
        yield
        for name, x in inputs.items():
            changed = _changed(before[name], x)
            self.observe(f"{what}: {name} unchanged", changed is None, changed)
            if changed is not None:
                self.fail(
                    f"called:   {what}\n  your code changed its input `{name}` in place "
                    f"({changed}): compute on a copy (`{name} = {name}.clone()`) or with "
                    "out-of-place operations"
                )

    def module_of(self, file: str) -> ModuleType:
        """Another file of the same implementation (e.g. 'layers.py')."""
        return self.impl.module(file)

    # ------------------------------------------------------------ comparisons
    def is_type(self, got: Any, types: type | tuple[type, ...], what: str) -> None:
        ok = isinstance(got, types)
        self.observe(f"type of {what}", ok, type(got).__name__)
        if not ok:
            names = " or ".join(
                t.__name__ for t in (types if isinstance(types, tuple) else (types,))
            )
            self._verdict(
                ok, lambda: f"called:   {what}\n  expected a {names}\n  got:      {_describe(got)}"
            )
            raise RecordingDone()  # nothing more can be asked of a value of the wrong type

    def same_shape(self, got: Any, expected: Any, what: str, dtype: bool = True) -> None:
        """Same type family (tensor / ndarray), shape and (if ``dtype``) dtype."""
        import torch

        kind = torch.Tensor if isinstance(expected, torch.Tensor) else np.ndarray
        self.is_type(got, kind, what)
        bad_shape = tuple(got.shape) != tuple(expected.shape)
        ok = not (bad_shape or (dtype and got.dtype != expected.dtype))
        self.observe(f"shape of {what}", ok, _describe(got))
        self._verdict(
            ok,
            lambda: (
                f"called:   {what}\n  expected: {_describe(expected)}\n  got:      {_describe(got)}"
            ),
        )
        if not ok and bad_shape:
            raise RecordingDone()  # values of another shape cannot be compared

    def close(
        self,
        got: Any,
        expected: Any,
        tol: str,
        what: str,
        *,
        models: tuple[Any, Any] | None = None,
        inputs: Any = None,
        backward: bool = False,
        loss_fn: Callable | None = None,
    ) -> None:
        """Fail unless ``got`` is elementwise close to ``expected`` under tolerance row ``tol``.

        ``models=(reference_module, learner_module)`` with ``inputs`` adds the
        first diverging submodule to the message.
        """
        self.same_shape(got, expected, what, dtype=False)
        t = tolerance(tol)
        report = compare_arrays(got, expected, t)
        self.observe(what, report is None, got, tol)
        if report is None:
            return

        def message() -> str:
            msg = f"called:   {what}\n  expected: {_describe(expected)}\n  got:      {_describe(got)}\n{report}"
            if models is not None:
                msg += "\n" + self.divergence(models[0], models[1], inputs, t, backward, loss_fn)
            return msg

        self._verdict(False, message)

    def equal(self, got: Any, expected: Any, what: str) -> None:
        """Exact equality of plain values (strings, ints, dicts, lists)."""
        ok = got == expected
        self.observe(what, ok, got)
        self._verdict(
            ok,
            lambda: f"called:   {what}\n  expected: {_short(expected)}\n  got:      {_short(got)}",
        )

    def load_weights(self, mine: Any, ref: Any, what: str) -> None:
        """``mine.load_state_dict(ref.state_dict(), strict=True)``; fail at the current rung
        with the missing / unexpected / mis-shaped keys when it does not fit."""
        self.calling = f"{what}.load_state_dict(reference state dict, strict=True)"
        try:
            mine.load_state_dict(ref.state_dict(), strict=True)
        except RuntimeError as e:
            detail = "\n".join("    " + ln.strip() for ln in str(e).splitlines() if ln.strip())
            self.fail(
                f"called:   {self.calling}\n  the reference's weights do not fit yours "
                f"(attribute names and shapes must follow the original):\n{detail}"
            )
        self.calling = None

    def divergence(
        self,
        model_ref: Any,
        model_mine: Any,
        inputs: Any,
        tol: Tolerance,
        backward: bool = False,
        loss_fn: Callable | None = None,
    ) -> str:
        """The first diverging submodule, as reference.diagnose reports it (indented)."""
        from reference.diagnose import first_divergence

        try:
            report = first_divergence(
                model_ref,
                model_mine,
                inputs,
                atol=tol.atol,
                rtol=tol.rtol,
                backward=backward,
                loss_fn=loss_fn,
                given=self.exercise.given_modules,
            )
        except Exception as e:  # a diagnosis must never hide the failure it explains
            return f"  (could not locate the diverging module: {type(e).__name__}: {e})"
        lines = ["(A = the reference, B = yours)", *str(report).splitlines()]
        return "\n".join("  " + line for line in lines)


def _snapshot(x: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (list, tuple)):
        return [_snapshot(v) for v in x]
    if isinstance(x, dict):
        return {k: _snapshot(v) for k, v in x.items()}
    return x


def _changed(before: Any, after: Any, path: str = "") -> str | None:
    """How ``after`` differs from the snapshot ``before`` (None when it does not)."""
    import torch

    if isinstance(after, (torch.Tensor, np.ndarray)):
        a = _as_float64(before)
        b = _as_float64(after)
        if a.shape != b.shape:
            return f"{path or 'it'} has another shape now"
        same = (a == b) | (torch.isnan(a) & torch.isnan(b))
        if bool(same.all()):
            return None
        n = int((~same).sum())
        return f"{path + ': ' if path else ''}{n} of {same.numel()} values changed"
    if isinstance(after, (list, tuple)):
        for i, (bv, av) in enumerate(zip(before, after)):
            r = _changed(bv, av, f"{path}[{i}]")
            if r:
                return r
    if isinstance(after, dict):
        for k in after:
            if k in before:
                r = _changed(before[k], after[k], f"{path}[{k!r}]")
                if r:
                    return r
    return None


def _short(x: Any, limit: int = 300) -> str:
    s = repr(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."
