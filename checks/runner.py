"""Run checks: one exercise or many, each in a child process with a hard budget.

A :class:`Result` has a status:

- ``passed``      every rung of the ladder passed;
- ``failed``      a rung gave a wrong answer (``rung`` names it, ``message`` explains);
- ``todo``        the exercise is still a stub (or needs an earlier one that is);
- ``timeout``     the check ran past its budget (an endless loop?): its process was killed;
- ``error``       the learner's code raised, exited, crashed or ran out of memory; or a
                  file of the project changed during the check;
- ``unavailable`` the exercise is in the catalog but not in this version yet.

The learner's code runs only in a forked child (:mod:`checks.sandbox`); this process,
which never runs it, computes the expected values and makes the verdict, climbing the
same ladder in lockstep (:mod:`checks.ladder`). The reference modules a check compares
against are imported before its clock starts, so the budget measures the check, not the
import of torch.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from checks.catalog import Exercise, get_exercise, load_catalog
from checks.impl import Impl, resolve_impl
from checks.ladder import CheckFailed, Ladder, LearnerRaised, LearnerStop, RecordingDone
from checks.regions import exercise_state
from checks.rungs import climb, display, resolve_check
from checks.sandbox import (
    GARBLED,
    LOST_CHANNEL,
    BudgetExceeded,
    ChildGone,
    ChildRun,
    LearnerChannel,
    Limits,
    confine,
    crash_report,
    start_child,
)

DEFAULT_TIMEOUT = 30.0  # seconds per check; catalog key `timeout` overrides
ORIGINAL_CWD = Path.cwd()  # paths in messages are shown relative to it
REPO = Path(__file__).resolve().parent.parent
WATCHED = ("checks", "reference", "solutions")  # files no check may change


def memory_mb() -> int:
    """Address space a learner's process may add (SHAKYO_CHECK_MEMORY_MB, default 4096)."""
    try:
        return max(256, int(os.environ.get("SHAKYO_CHECK_MEMORY_MB", "4096")))
    except ValueError:
        return 4096


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


def learner_traceback(exc: BaseException, impl_dir: Path) -> str:
    """The traceback of ``exc`` keeping only frames in the learner's files (all if none)."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename).resolve().is_relative_to(impl_dir)]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f'  File "{display(exc.filename)}", line {exc.lineno}\n    {(exc.text or "").strip()}\n{type(exc).__name__}: {exc.msg}'
    lines: list[str] = []
    last, repeated = None, 0
    for f in mine or frames[-3:]:
        here = (f.filename, f.lineno, f.name)
        if here == last:  # endless recursion: one frame, then a count (as Python does)
            repeated += 1
            continue
        if repeated:
            lines.append(f"  [the frame above repeated {repeated} more times]")
        last, repeated = here, 0
        lines.append(f'  File "{display(f.filename)}", line {f.lineno}, in {f.name}')
        if f.line:
            lines.append(f"    {f.line.strip()}")
    if repeated:
        lines.append(f"  [the frame above repeated {repeated} more times]")
    lines.append("".join(traceback.format_exception_only(type(exc), exc)).strip())
    return "\n".join(lines)


def _todo_owner(text: str) -> str | None:
    """The exercise id a stub's NotImplementedError names ('layer-norm-2d: write ...')."""
    ids = {e.id for e in load_catalog()}
    head = text.split(":", 1)[0].strip()
    return head if head in ids else None


def project_digest() -> dict[str, str]:
    """sha1 of every file of checks/, reference/ and solutions/ (code and data)."""
    out = {}
    for top in WATCHED:
        for path in sorted((REPO / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                out[str(path.relative_to(REPO))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def _tampered(before: dict[str, str], after: dict[str, str]) -> str | None:
    """What changed among the project's files during a check (None: nothing)."""
    for name, sha in after.items():
        if name not in before:
            return (
                f"a file appeared in the project during the check: {name} (did your code "
                f"write it?); the verdict is void: delete it (`rm {name}`) and check again"
            )
        if before[name] != sha:
            return (
                f"the project's file {name} changed during the check (did your code write "
                f"to it?); the verdict is void: restore it (`git checkout -- {name}`)"
            )
    for name in before:
        if name not in after:
            return (
                f"the project's file {name} was deleted during the check (by your code?); "
                f"the verdict is void: restore it (`git checkout -- {name}`)"
            )
    return None


# --------------------------------------------------------------------- lockstep
@dataclass
class Outcome:
    """One run of a check's two sides: how it ended, and the grader's ladder."""

    status: str  # passed | failed | todo | timeout | error
    rung: str | None
    message: str
    ladder: Ladder
    output: str = ""  # what the learner's code printed (head and tail)


def _child(ex: Exercise, impl_dir: Path, record, divergence_at):
    def main(sock, workdir: Path, limits: Limits) -> None:
        channel = LearnerChannel(sock)
        try:
            confine(workdir, limits, impl_dir)
            c = Ladder(ex, Impl(impl_dir), record, "learner", channel, divergence_at)
            climb(c)
            channel.send(("end", "done"))
        except (LearnerStop, CheckFailed, RecordingDone):
            channel.send(("end", "stopped"))
        except BaseException as e:  # noqa: BLE001 - reported to the grader, which decides
            channel.send(("crash", crash_report(e)))

    return main


def _gone_message(run: ChildRun, g: Ladder, reason: str) -> str:
    """Why the learner's process ended early, from its exit status."""
    status = run.status
    if reason == GARBLED:
        return reason
    during = f" while running {g.calling}" if g.calling else ""
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGSEGV:
            return f"your process crashed with {name} (a segmentation fault){during}"
        if sig == signal.SIGKILL:
            return f"your process was killed ({name}: out of memory?){during}"
        return f"your process was ended by {name}{during}"
    if status is not None and os.WIFEXITED(status) and reason.startswith("your process"):
        code = os.WEXITSTATUS(status)
        if code == LOST_CHANNEL:
            return (
                f"your process lost its connection to the grader{during} (does your code "
                "close file descriptors or sockets it did not open?)"
            )
        return (
            f"your process exited with status {code}{during} before the check was done "
            "(an os._exit or sys.exit in your code?)"
        )
    return reason + during


def lockstep(
    ex: Exercise,
    impl_dir: Path,
    limits: Limits,
    record: str | None = None,
    divergence_at: tuple[str, int] | None = None,
    expect: list | None = None,
) -> Outcome:
    """Both sides of ``ex``'s check: the learner's in a forked child, the grader's here.
    ``record``, ``divergence_at``, ``expect``: see :class:`checks.ladder.Ladder`."""
    run = start_child(_child(ex, impl_dir, record, divergence_at), limits)
    g = Ladder(
        ex, None, record, "grader", run.channel, divergence_at, impl_dir=impl_dir, expect=expect
    )
    try:
        climb(g)
        out = ("passed", g.passed[-1] if g.passed else None, "")
    except CheckFailed as e:
        out = ("failed", e.rung, e.message)
    except RecordingDone:
        out = ("recorded", g.current, "")
    except LearnerRaised as e:
        out = _raised(ex, g, e, limits)
    except NotImplementedError as e:
        out = _todo(ex, g, str(e))
    except BudgetExceeded as e:
        run.kill()
        where = f" while running {e.what}" if e.what else ""
        out = (
            "timeout",
            g.current,
            f"ran past its budget of {limits.seconds:g} s{where}; its process was killed",
        )
    except ChildGone as e:
        run.reap(2.0)
        out = ("error", g.current, _gone_message(run, g, e.reason))
    finally:
        run.finish()
    output = run.output()
    run.cleanup()
    return Outcome(*out, g, output)


def _todo(ex: Exercise, g: Ladder, text: str) -> tuple[str, str | None, str]:
    owner = _todo_owner(text)
    if owner is None:
        return ("error", g.current, f"NotImplementedError: {text}")
    if owner == ex.id:
        return ("todo", g.current, f"partly written: {text}")
    return ("todo", g.current, f"needs `{owner}` first (still a stub: {text})")


def _raised(ex: Exercise, g: Ladder, e: LearnerRaised, limits: Limits) -> tuple:
    if e.kind == "NotImplementedError":
        return _todo(ex, g, e.text)
    if e.kind == "SystemExit":
        return ("error", g.current, f"your code called sys.exit({e.text}) while running {e.what}")
    if e.kind == "KeyboardInterrupt":
        return ("error", g.current, f"your code raised KeyboardInterrupt while running {e.what}")
    if e.kind == "MemoryError":
        cap = f"{limits.memory_mb} MB above the grader's size (SHAKYO_CHECK_MEMORY_MB)"
        return (
            "error",
            g.current,
            f"your code ran out of memory (the cap: {cap}) while running {e.what}:\n{e.trace}",
        )
    if e.kind == "OSError" and "[Errno 27]" in e.text:  # EFBIG: RLIMIT_FSIZE
        cap = f"{limits.output_bytes >> 20} MB"
        return (
            "error",
            g.current,
            f"your code wrote more than the {cap} a check allows to one file (or printed "
            f"that much) while running {e.what}:\n{e.trace}",
        )
    return ("error", g.current, f"while running {e.what}:\n{e.trace}")


# ----------------------------------------------------------------------- checks
def run_check(
    exercise: Exercise | str, impl: Impl | str | Path = "exercises", timeout: float | None = None
) -> Result:
    """Climb the ladder of one exercise against ``impl`` and return its :class:`Result`."""
    ex = get_exercise(exercise) if isinstance(exercise, str) else exercise
    impl_dir = impl.path if isinstance(impl, Impl) else resolve_impl(impl)
    return _run(ex, impl_dir, DEFAULT_TIMEOUT if timeout is None else timeout)


def _run(ex: Exercise, impl_dir: Path, timeout: float) -> Result:
    if not ex.available:
        return Result(ex.id, "unavailable", None, "not yet available in this version", 0.0)
    path = impl_dir / ex.file
    if exercise_state(path, ex.id) == "todo":
        msg = (
            f"still a stub: write the code between `# BEGIN EXERCISE {ex.id}` and "
            f"`# END EXERCISE {ex.id}` in {display(path)} (stuck? `shakyo hint {ex.id}`)"
        )
        return Result(ex.id, "todo", None, msg, 0.0)
    resolve_check(ex)  # imports the check and the reference modules, outside the clock
    for module in {*ex.reference.values(), "reference.diagnose"} - {""}:
        importlib.import_module(module.partition(":")[0])
    budget = ex.timeout if ex.timeout is not None else timeout
    limits = Limits(seconds=budget, memory_mb=memory_mb())
    before = project_digest()
    start = time.perf_counter()
    o = lockstep(ex, impl_dir, limits)
    message = o.message
    if o.status == "failed":
        message += _diagnosis(ex, o, impl_dir, limits)
    if o.output and o.status in ("failed", "error", "timeout"):
        message += "\n" + o.output
    status, rung = o.status, o.rung
    tampered = _tampered(before, project_digest())
    if tampered:
        status, message = "error", tampered
    notes = "".join(f"\nnote: {n}" for n in o.ladder.notes)
    message = (message + notes).lstrip("\n")
    if status == "passed":
        rung = o.ladder.passed[-1] if o.ladder.passed else None
    return Result(ex.id, status, rung, message, time.perf_counter() - start, dict(o.ladder.timings))


def _diagnosis(ex: Exercise, o: Outcome, impl_dir: Path, limits: Limits) -> str:
    """The first diverging submodule and the known mistakes that explain a failure ('' when
    none, or when diagnosing fails or runs past the budget: a diagnosis never hides the
    failure it explains). The learner's code runs once more, recording the whole rung."""
    from checks.diagnosis import explain, known_mistakes

    text = ""
    try:
        replay = lockstep(
            ex, impl_dir, limits, record=o.rung, divergence_at=o.ladder.failed_model_comparison
        )
        if replay.ladder.divergence_text:
            text += "\n" + replay.ladder.divergence_text
        found = explain(ex, known_mistakes(ex, o.rung, replay.ladder.observations, limits))
        if found:
            text += "\n" + found
    except Exception:  # noqa: BLE001 - SHAKYO_DEBUG=1 shows a bug of the diagnosis
        if os.environ.get("SHAKYO_DEBUG"):
            raise
        return text
    return text


def run_checks(
    ids: Iterable[str] | None = None,
    impl: str | Path = "exercises",
    timeout: float | None = None,
    on_result=None,
) -> list[Result]:
    """Run the checks of ``ids`` (default: every available exercise) in catalog order.
    ``on_result(result)`` is called after each check (for progress output)."""
    wanted = (
        [e for e in load_catalog() if e.available]
        if ids is None
        else [get_exercise(i) for i in ids]
    )
    impl_dir = resolve_impl(impl)
    results = []
    for ex in wanted:
        r = _run(ex, impl_dir, DEFAULT_TIMEOUT if timeout is None else timeout)
        results.append(r)
        if on_result is not None:
            on_result(r)
    return results


if __name__ == "__main__":  # pragma: no cover - a quick manual entry point
    for r in run_checks(sys.argv[1:] or None, impl="solutions"):
        print(r.id, r.status, r.rung, f"{r.seconds:.2f}s")
        if r.message:
            print(r.message)
