"""Run checks: one exercise or many, in one process, each within a time budget.

A :class:`Result` has a status:

- ``passed``      every rung of the ladder passed;
- ``failed``      a rung gave a wrong answer (``rung`` names it, ``message`` explains);
- ``todo``        the exercise is still a stub (or needs an earlier one that is);
- ``timeout``     the check ran past its budget (an endless loop?);
- ``error``       the learner's code raised; the traceback is trimmed to the learner's file;
- ``unavailable`` the exercise is in the catalog but not in this version yet.

The reference modules a check compares against are imported before its
clock starts, so the budget measures the check, not the import of torch.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from checks.catalog import Exercise, get_exercise, load_catalog
from checks.impl import Impl
from checks.ladder import CheckFailed, Ladder, RecordingDone
from checks.regions import exercise_state
from checks.signature import contract_problems, parse_signature, signature_text

DEFAULT_TIMEOUT = 30.0  # seconds per check; catalog key `timeout` overrides


class CheckTimeout(BaseException):
    """Raised by the alarm when a check exceeds its budget (BaseException: learner
    code that catches ``Exception`` cannot swallow it)."""


@dataclass
class Result:
    id: str
    status: str
    rung: str | None
    message: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)  # seconds per rung

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("timings")
        d["seconds"] = round(self.seconds, 3)
        return d


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """SIGALRM after ``seconds`` (main thread on Unix only; elsewhere no budget)."""
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise CheckTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _display(path: str | Path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def learner_traceback(exc: BaseException, impl_dir: Path) -> str:
    """The traceback of ``exc`` keeping only frames in the learner's files (all if none)."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename).resolve().is_relative_to(impl_dir)]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f'  File "{_display(exc.filename)}", line {exc.lineno}\n    {(exc.text or "").strip()}\n{type(exc).__name__}: {exc.msg}'
    lines = []
    for f in mine or frames[-3:]:
        lines.append(f'  File "{_display(f.filename)}", line {f.lineno}, in {f.name}')
        if f.line:
            lines.append(f"    {f.line.strip()}")
    lines.append("".join(traceback.format_exception_only(type(exc), exc)).strip())
    return "\n".join(lines)


def _todo_owner(exc: NotImplementedError) -> str | None:
    """The exercise id a stub's NotImplementedError names ('layer-norm-2d: write ...')."""
    text = str(exc)
    ids = {e.id for e in load_catalog()}
    head = text.split(":", 1)[0].strip()
    return head if head in ids else None


def _symbol(module: Any, dotted: str) -> Any:
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _import_rung(c: Ladder) -> None:
    ex = c.exercise
    with c.rung("import"):
        path = c.impl.file(ex.file)
        if not path.is_file():
            c.fail(f"{_display(path)} does not exist; restore it with `shakyo reset {ex.id}`")
        try:
            c.module = c.impl.module(ex.file)
        except NotImplementedError:
            raise  # a stub raising at import time: reported as todo
        except Exception as e:
            c.fail(f"importing {_display(path)} failed:\n{learner_traceback(e, c.impl.path)}")


_SOURCE_NAMES = {
    "original": "the original",
    "exercise": "this exercise (the original has no such function)",
    "fastai": "fastai",
}


def _signature_rung(c: Ladder) -> None:
    ex = c.exercise
    with c.rung("signature"):
        for name in ex.symbols:
            try:
                mine = _symbol(c.module, name)
            except AttributeError:
                c.fail(
                    f"{_display(c.impl.file(ex.file))} has no `{name}`; the checks look it up by this name"
                )
            try:
                sig = inspect.signature(mine)
            except (TypeError, ValueError):
                continue  # a builtin without a signature: nothing to compare
            contract = parse_signature(ex.signatures[name])
            problems = contract_problems(sig, contract, ex.optional_params.get(name, ()))
            if problems:
                source = ex.source_of(name)
                where = f" ({ex.original.file})" if source == "original" else ""
                c.fail(
                    f"signature of {name}: {_SOURCE_NAMES[source]}{where} has\n"
                    f"    {name}{signature_text(contract)}\n"
                    f"  yours:\n    {name}{signature_text(sig)}\n"
                    + "\n".join(f"  - {p}" for p in problems)
                    + "\n  (extra parameters with defaults, *args and **kwargs are fine)"
                )


def _resolve_check(ex: Exercise):
    module_name, _, func = ex.check.partition(":")
    return getattr(importlib.import_module(module_name), func)


def run_check(
    exercise: Exercise | str, impl: Impl | str | Path = "exercises", timeout: float | None = None
) -> Result:
    """Climb the ladder of one exercise against ``impl`` and return its :class:`Result`."""
    ex = get_exercise(exercise) if isinstance(exercise, str) else exercise
    own_impl = not isinstance(impl, Impl)
    imp = Impl(impl) if own_impl else impl
    try:
        return _run(ex, imp, DEFAULT_TIMEOUT if timeout is None else timeout)
    finally:
        if own_impl:
            imp.close()


def _run(ex: Exercise, imp: Impl, timeout: float) -> Result:
    if not ex.available:
        return Result(ex.id, "unavailable", None, "not yet available in this version", 0.0)
    path = imp.file(ex.file)
    if exercise_state(path, ex.id) == "todo":
        msg = (
            f"still a stub: write the code between `# BEGIN EXERCISE {ex.id}` and "
            f"`# END EXERCISE {ex.id}` in {_display(path)} (stuck? `shakyo hint {ex.id}`)"
        )
        return Result(ex.id, "todo", None, msg, 0.0)
    _resolve_check(ex)  # imports the check and the reference modules, outside the clock
    for module in {*ex.reference.values(), "reference.diagnose"} - {""}:
        importlib.import_module(module.partition(":")[0])
    c = Ladder(ex, imp)
    budget = ex.timeout if ex.timeout is not None else timeout
    start = time.perf_counter()

    def result(status: str, rung: str | None, message: str) -> Result:
        notes = "".join(f"\nnote: {n}" for n in c.notes)
        message = (message + notes).lstrip("\n")
        return Result(ex.id, status, rung, message, time.perf_counter() - start, dict(c.timings))

    try:
        with _deadline(budget):
            climb(c)
    except CheckFailed as e:
        return result("failed", e.rung, e.message + _diagnosis(ex, e.rung, imp, budget))
    except CheckTimeout:
        where = f" while running {c.calling}" if c.calling else ""
        return result("timeout", c.current, f"ran past its budget of {budget:g} s{where}")
    except NotImplementedError as e:
        owner = _todo_owner(e)
        if owner is None:
            return result("error", c.current, _error_message(c, e))
        if owner == ex.id:
            return result("todo", c.current, f"partly written: {e}")
        return result("todo", c.current, f"needs `{owner}` first (still a stub: {e})")
    except Exception as e:
        return result("error", c.current, _error_message(c, e))
    return result("passed", c.passed[-1] if c.passed else None, "")


def climb(c: Ladder) -> None:
    """The whole ladder of ``c.exercise``: the import and signature rungs, then its check."""
    _import_rung(c)
    _signature_rung(c)
    _resolve_check(c.exercise)(c)


def _diagnosis(ex: Exercise, rung: str, imp: Impl, budget: float) -> str:
    """Known mistakes that explain a failure at ``rung`` ('' when none, or when diagnosing
    fails or runs past the budget: a diagnosis never hides the failure it explains).

    The learner's code runs once more, recording the whole rung (see checks.diagnosis)."""
    from checks.diagnosis import explain, known_mistakes

    replay = Ladder(ex, imp, record=rung)
    try:
        with _deadline(budget):
            try:
                climb(replay)
            except (CheckFailed, RecordingDone, Exception):
                pass
            text = explain(ex, known_mistakes(ex, rung, replay.observations))
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        return ""
    return "\n" + text if text else ""


def _error_message(c: Ladder, e: BaseException) -> str:
    where = f"while running {c.calling}:\n" if c.calling else ""
    return f"{where}{learner_traceback(e, c.impl.path)}"


def run_checks(
    ids: Iterable[str] | None = None,
    impl: str | Path = "exercises",
    timeout: float | None = None,
    on_result=None,
) -> list[Result]:
    """Run the checks of ``ids`` (default: every available exercise) in catalog order.

    One fresh import of ``impl`` is shared by all of them. ``on_result(result)``
    is called after each check (for progress output).
    """
    wanted = (
        [e for e in load_catalog() if e.available]
        if ids is None
        else [get_exercise(i) for i in ids]
    )
    imp = Impl(impl)
    results = []
    try:
        for ex in wanted:
            r = run_check(ex, imp, timeout)
            results.append(r)
            if on_result is not None:
                on_result(r)
    finally:
        imp.close()
    return results


if __name__ == "__main__":  # pragma: no cover - a quick manual entry point
    for r in run_checks(sys.argv[1:] or None, impl="solutions"):
        print(r.id, r.status, r.rung, f"{r.seconds:.2f}s")
        if r.message:
            print(r.message)
