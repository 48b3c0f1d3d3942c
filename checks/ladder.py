"""The ladder a check climbs, and the comparisons that write its failure messages.

Rungs, in order (a check uses those that apply and stops at the first failure)::

    import -> signature -> shapes -> values -> gradients -> state_dict -> training

The runner climbs ``import`` and ``signature`` itself from the catalog; a check
function receives a :class:`Ladder` and climbs the rest.

**Two sides.** A check function runs twice at once, in lockstep: in the learner's
process (side ``learner``: the learner's code runs there, and nothing of the reference
does) and in the grader's (side ``grader``: the reference runs there, the verdict is made
there, and no learner code ever runs there). The same code, the same inputs (made from
the same seeds on both sides); what differs is what each expression does::

    mine = c.call("LayerNorm2d(7)", lambda: m.LayerNorm2d(7))   # learner code
    got = c.call(what, lambda: mine(x))       # learner side runs it, grader receives it
    expected = c.ref(lambda: ref_ln(x))       # grader only; the learner side gets nothing
    sd = c.give(lambda: ref.state_dict())     # grader computes, learner side receives it
    c.close(got, expected, "forward", what)   # grader compares; a no-op on the learner side

``c.grader`` guards code that reads reference values (messages, fixture checks). Values
cross as plain data (:mod:`checks.wire`); an object that cannot (a module) arrives as an
:class:`checks.wire.Opaque` placeholder. Side ``local`` runs both in one process (the
framework's own tests).

Every failing comparison raises :class:`CheckFailed` with a message that says what was
called, expected vs got (shape, dtype, max abs diff and where, share of close values,
the tolerance) and, for modules, the first diverging submodule. Every comparison is
also recorded as an :class:`checks.observe.Observation` for :mod:`checks.diagnosis`,
which replays known mistakes in *recording* mode (comparisons never raise; the ladder
stops after the rung that failed).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from checks.observe import (
    Key,
    Observation,
    changed,
    compare_arrays,
    describe,
    digest,
    same_observation,
    short,
    snapshot,
)
from checks.tolerances import tolerance
from checks.wire import decode, encode

if TYPE_CHECKING:
    from checks.catalog import Exercise
    from checks.impl import Impl

RUNGS = ("import", "signature", "shapes", "values", "gradients", "state_dict", "training")
# Two seeds for every values rung (ARCHITECTURE: ">= 2 seeds and >= 2 input shapes").
SEEDS = (0, 1)
SIDES = ("local", "grader", "learner")


class CheckFailed(Exception):
    """The learner's code gave a wrong answer at ``rung``."""

    def __init__(self, rung: str, message: str) -> None:
        super().__init__(message)
        self.rung = rung
        self.message = message


class RecordingDone(BaseException):
    """Ends a recording run after its rung (BaseException: learner code cannot catch it)."""


class Mismatch(RecordingDone):
    """Ends a recording run at its first observation that differs from ``Ladder.expect``."""


class LearnerStop(BaseException):
    """The learner's side stops: its code raised (the grader is told), or the check found a
    wrong answer there (the grader finds it too and decides)."""


class LearnerRaised(Exception):
    """On the grader's side: the learner's code raised ``kind`` while running ``what``."""

    def __init__(self, what: str, kind: str, text: str, trace: str) -> None:
        super().__init__(f"{kind}: {text}")
        self.what, self.kind, self.text, self.trace = what, kind, text, trace


class _GraderOnly:
    """What :meth:`Ladder.ref` gives on the learner's side: nothing to use. Indexing and
    arithmetic give itself (``expected[0] - bce`` may be handed to a comparison, a no-op
    there); any other use is a bug of the check."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("internal: a reference value was used on the learner's side")

    def __getitem__(self, key: Any) -> _GraderOnly:
        return self

    def _same(self, *args: Any) -> _GraderOnly:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __truediv__ = __rtruediv__ = __neg__ = _same

    def __repr__(self) -> str:
        return "<reference value: grader only>"


GRADER_ONLY = _GraderOnly()
_INTERNAL = (CheckFailed, RecordingDone, LearnerStop)


def exception_info(e: BaseException, impl_dir) -> tuple[str, str, str]:
    """(type name, text, traceback trimmed to the learner's files) of a learner exception."""
    from checks.runner import learner_traceback

    if isinstance(e, SystemExit):
        return "SystemExit", str(e.code), learner_traceback(e, impl_dir)
    return type(e).__name__, str(e), learner_traceback(e, impl_dir)


class Ladder:
    """State of one check: the rung being climbed, the code under test, timings."""

    def __init__(
        self,
        exercise: Exercise,
        impl: Impl | None,
        record: str | None = None,
        side: str = "local",
        channel: Any = None,
        divergence_at: tuple[str, int] | None = None,
        impl_dir: Any = None,
        expect: list[Observation] | None = None,
    ) -> None:
        """``record``: None to grade (the first wrong answer raises CheckFailed), or a rung:
        record every comparison without raising and stop (RecordingDone) after that rung.
        ``side``/``channel``: see the module docstring. ``divergence_at``: in a replay, the
        model comparison (what, occurrence) whose activations both sides record and compare.
        ``expect``: when recording, stop (:class:`Mismatch`) at the first observation that
        differs from these (a known mistake that cannot match need not be replayed further)."""
        if side not in SIDES:
            raise ValueError(f"side {side!r}; one of {SIDES}")
        self.exercise = exercise
        self.impl = impl  # the learner's code: on the learner's side (and local) only
        self.impl_dir = impl_dir if impl_dir is not None else impl.path
        self.module: Any = None  # the learner's module, set by the import rung
        self.symbols: dict[str, Any] = {}  # what the import rung learnt of its symbols
        self.current: str | None = None
        self.passed: list[str] = []
        self.timings: dict[str, float] = {}
        self.calling: str | None = None  # the learner call in progress (for error messages)
        self.record = record
        self.side = side
        self.channel = channel
        self.notes: list[str] = []  # said with the result, passed or not
        self.observations: list[Observation] = []
        self.expect = expect
        self.mismatched = False  # a recording stopped by ``expect``
        self._counts: dict[tuple[str, str], int] = {}
        self._seq = 0
        self._given: dict[Any, Any] = {}  # keyed gives, on both sides
        self._model_counts: dict[str, int] = {}
        self.divergence_at = divergence_at  # (what, occurrence) of a model comparison
        self.failed_model_comparison: tuple[str, int] | None = None  # the failing one, if any
        self.divergence_text: str | None = None  # set by a replay at divergence_at

    @property
    def grader(self) -> bool:
        """True where the reference runs (the grader's side, or both sides in one process)."""
        return self.side != "learner"

    # ------------------------------------------------------------ observations
    def _key(self, what: str) -> Key:
        rung = self.current or "import"
        n = self._counts.get((rung, what), 0)
        self._counts[(rung, what)] = n + 1
        return (rung, what, n)

    def observe(self, what: str, passed: bool, got: Any = None, tol: str | None = None) -> None:
        """Record one comparison (its digest only when it failed). ``tol`` None: exact."""
        if not self.grader:
            return
        value = None if passed else digest(got)
        kind = "exact" if tol is None else "value"
        self._add(Observation(self._key(what), passed, kind, value, tol or "exact"))

    def _add(self, o: Observation) -> None:
        self.observations.append(o)
        if self.expect is None or self.record is None:
            return
        i = len(self.observations) - 1
        if i >= len(self.expect) or not same_observation(self.expect[i], o):
            self.mismatched = True
            raise Mismatch()

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
        if self.grader and text not in self.notes:
            self.notes.append(text)

    def fail(self, message: str) -> None:
        """A wrong answer found by the check itself: recorded by its text, then raised
        (also when recording: the run cannot go on past it). On the learner's side the
        run just stops: the grader reaches the same point and decides."""
        if not self.grader:
            raise LearnerStop()
        if not self.observations or self.observations[-1].passed:
            self._add(
                Observation(
                    self._key("fail: " + message.split("\n")[0]),
                    False,
                    "message",
                    ("plain", message),
                )
            )
        raise CheckFailed(self.current or "import", message)

    # ------------------------------------------------------------------ sides
    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def call(self, what: str, fn: Callable[[], Any], fails: bool = False) -> Any:
        """Learner code ``fn``; ``what`` (e.g. 'LayerNorm2d(7)(x)') names it in reports.

        On the learner's side it runs and its result goes to the grader; on the grader's
        side the result arrives (an exception of the learner's code becomes
        :class:`LearnerRaised`). ``fails``: an exception is a wrong answer at this rung (a
        failure with the traceback, recorded by its type and text), not an error.
        """
        self.calling = what
        if self.side == "local":
            try:
                out = fn()
            except _INTERNAL:
                raise
            except Exception as e:
                if not fails:
                    raise
                self._raised(what, *exception_info(e, self.impl_dir))
            if fails:
                self.observe(f"raised: {what}", True)
            self.calling = None
            return out
        seq = self._next()
        if self.side == "learner":
            try:
                out = fn()
            except _INTERNAL:
                raise
            except BaseException as e:  # sys.exit and KeyboardInterrupt too: all reported
                self.channel.send(("raise", seq, what, exception_info(e, self.impl_dir)))
                raise LearnerStop() from None
            self.channel.send(("ok", seq, encode(out)))
            self.calling = None
            return out
        message = self.channel.receive(seq, what)
        if message[0] == "raise":
            kind, text, trace = message[3]
            if fails and kind not in ("SystemExit", "KeyboardInterrupt"):
                self._raised(what, kind, text, trace)
            raise LearnerRaised(what, kind, text, trace)
        if fails:
            self.observe(f"raised: {what}", True)
        self.calling = None
        return decode(message[2])

    def _raised(self, what: str, kind: str, text: str, trace: str) -> None:
        body = re.sub(r"0x[0-9a-f]+", "0x...", f"{kind}: {text}")
        self._add(Observation(self._key(f"raised: {what}"), False, "message", ("plain", body)))
        self.calling = None
        raise CheckFailed(self.current or "import", f"called:   {what}\n  it raised:\n{trace}")

    def ref(self, fn: Callable[[], Any]) -> Any:
        """A reference value: computed on the grader's side only (the learner's never sees it)."""
        return GRADER_ONLY if self.side == "learner" else fn()

    def give(self, fn: Callable[[], Any], key: Any = None) -> Any:
        """Reference data the learner's side needs as input (weights to load, say): computed
        by the grader and sent over. Never an expected answer. With a ``key``, a value given
        once is not sent again: the learner's side keeps its copy."""
        if self.side == "local":
            return fn()
        seq = self._next()
        if self.side == "grader":
            if key is not None and key in self._given:
                self.channel.send(("give", seq, ("again", key)))
                return self._given[key]
            value = fn()
            if key is not None:
                self._given[key] = value
            self.channel.send(("give", seq, ("value", key, encode(value))))
            return value
        payload = self.channel.receive(seq, "give")[2]
        if payload[0] == "again":
            return self._given[payload[1]]
        value = decode(payload[2])
        if payload[1] is not None:
            self._given[payload[1]] = value
        return value

    def call_on_copies(self, what: str, fn: Callable[..., Any], **inputs: Any) -> Any:
        """``fn(**copies)``: the learner's code on its own copies of ``inputs``, failing
        when it changes one of them in place ("your code changed its input x")."""

        def run() -> tuple[Any, dict[str, str]]:
            own = {k: snapshot(v) for k, v in inputs.items()}
            before = {k: snapshot(v) for k, v in own.items()}
            out = fn(**own)
            diffs = {k: changed(before[k], own[k]) for k in own}
            return out, {k: v for k, v in diffs.items() if v}

        out, diffs = self.call(what, run)
        for name in inputs:
            self.observe(f"{what}: {name} unchanged", name not in diffs, diffs.get(name))
        if diffs:
            name = next(iter(diffs))
            self.fail(
                f"called:   {what}\n  your code changed its input `{name}` in place "
                f"({diffs[name]}): compute on a copy (`{name} = {name}.clone()`) or with "
                "out-of-place operations"
            )
        return out

    def module_of(self, file: str) -> Any:
        """Another file of the same implementation (e.g. 'layers.py'), on the learner's side."""
        return self.call(f"import {file}", lambda: self.impl.module(file))

    # ------------------------------------------------------------ comparisons
    def is_type(self, got: Any, types: type | tuple[type, ...], what: str) -> None:
        if not self.grader:
            return
        ok = isinstance(got, types)
        self.observe(f"type of {what}", ok, type(got).__name__)
        if not ok:
            names = " or ".join(
                t.__name__ for t in (types if isinstance(types, tuple) else (types,))
            )
            self._verdict(
                ok, lambda: f"called:   {what}\n  expected a {names}\n  got:      {describe(got)}"
            )
            raise RecordingDone()  # nothing more can be asked of a value of the wrong type

    def same_shape(self, got: Any, expected: Any, what: str, dtype: bool = True) -> None:
        """Same type family (tensor / ndarray), shape and (if ``dtype``) dtype."""
        if not self.grader:
            return
        import torch

        kind = torch.Tensor if isinstance(expected, torch.Tensor) else np.ndarray
        self.is_type(got, kind, what)
        bad_shape = tuple(got.shape) != tuple(expected.shape)
        ok = not (bad_shape or (dtype and got.dtype != expected.dtype))
        self.observe(f"shape of {what}", ok, describe(got))
        self._verdict(
            ok,
            lambda: (
                f"called:   {what}\n  expected: {describe(expected)}\n  got:      {describe(got)}"
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

        ``models=(reference_module, learner_module)`` with ``inputs`` adds the first
        diverging submodule to the message (both sides record the models' activations in a
        replay of the check, see :mod:`checks.divergence`).
        """
        key = None
        if models is not None:
            n = self._model_counts.get(what, 0)
            self._model_counts[what] = n + 1
            key = (what, n)
            if self.divergence_at is not None and tuple(self.divergence_at) == key:
                from checks.divergence import exchange

                exchange(self, models, inputs, backward, loss_fn, tolerance(tol))
        if not self.grader:
            return
        self.same_shape(got, expected, what, dtype=False)
        t = tolerance(tol)
        report = compare_arrays(got, expected, t)
        self.observe(what, report is None, got, tol)
        if report is None:
            return
        if key is not None and self.failed_model_comparison is None:
            self.failed_model_comparison = key

        def message() -> str:
            msg = f"called:   {what}\n  expected: {describe(expected)}\n  got:      {describe(got)}\n{report}"
            if models is not None and self.side == "local":
                from checks.divergence import local_report

                msg += "\n" + local_report(self, models, inputs, backward, loss_fn, t)
            return msg

        self._verdict(False, message)

    def equal(self, got: Any, expected: Any, what: str) -> None:
        """Exact equality of plain values (strings, ints, dicts, lists)."""
        if not self.grader:
            return
        ok = got == expected
        self.observe(what, ok, got)
        self._verdict(
            ok,
            lambda: f"called:   {what}\n  expected: {short(expected)}\n  got:      {short(got)}",
        )
