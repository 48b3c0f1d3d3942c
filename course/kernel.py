"""What a course notebook runs in its kernel: the learner's cells -> a module -> the runner.

The notebook's first cell calls :func:`start`, which registers two cell magics:

- ``%%given`` marks the code the kit gives (locked cells); the kernel does not run it,
  because a region sits inside a function body and the pieces around it are not
  complete statements.
- ``%%answer ID K`` records the learner's code for the K-th region of the file
  (the body of one function, written without its indent).

:meth:`Notebook.check` and :meth:`Notebook.grade` write the kit's solution file with
every region replaced by the recorded answer (or by the stub's ``raise`` when the
answer is still nbgrader's stub) into a fresh folder laid out like ``solutions/``, and
call the runner on that folder: the learner's code runs only in the runner's
sandboxed child, never in this kernel, and the verdict is the runner's.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from checks.catalog import SOLUTIONS_DIR, get_exercise
from checks.regions import exercise_state, find_regions, stub_line

# The stub nbgrader leaves in a released answer cell (course.build sets ClearSolutions).
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def _is_stub(body: str) -> bool:
    code = [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return not code or code == ["raise NotImplementedError()"]


class Notebook:
    """The kernel's side of one notebook: the answers recorded for the regions of ``file``."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.text = (SOLUTIONS_DIR / file).read_text(encoding="utf-8")
        self.regions = find_regions(self.text, f"solutions/{file}")
        self.answers: dict[int, str] = {}

    def record(self, exercise_id: str, index: int, body: str) -> None:
        r = self.regions[index]
        if r.id != exercise_id:
            raise ValueError(f"%%answer {exercise_id} {index}: region {index} is {r.id}'s")
        self.answers[index] = body

    def module_text(self, only: str | None = None) -> str:
        """The solution file with each region's body replaced by the learner's answer.

        ``only``: an exercise id; the other exercises' regions keep the kit's solution, so
        that a graded cell grades one exercise and a mistake costs only its own points.
        """
        lines = self.text.splitlines(keepends=True)
        out: list[str] = []
        pos = 0
        for k, r in enumerate(self.regions):
            out += lines[pos : r.begin + 1]
            body = self.answers.get(k, "")
            if only is not None and r.id != only:
                out += r.body(lines)
            elif _is_stub(body):
                out.append(f"{r.indent}{stub_line(r.id, r.qualname)}\n")
            else:
                out += [f"{r.indent}{ln}".rstrip() + "\n" for ln in body.splitlines()]
            pos = r.end
        out += lines[pos:]
        return "".join(out)

    def missing(self, exercise_id: str) -> list[int]:
        return [
            k for k, r in enumerate(self.regions) if r.id == exercise_id and k not in self.answers
        ]

    @contextlib.contextmanager
    def impl(self, only: str | None = None) -> Iterator[Path]:
        """A fresh folder laid out like solutions/: the learner's file, the kit's others."""
        folder = Path(tempfile.mkdtemp(prefix="shakyo-course-"))
        try:
            for path in SOLUTIONS_DIR.glob("*.py"):
                if path.name != self.file:
                    shutil.copy(path, folder / path.name)
            (folder / self.file).write_text(self.module_text(only), encoding="utf-8")
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _note_missing(self, exercise_id: str) -> None:
        if gone := self.missing(exercise_id):
            cells = ", ".join(f"%%answer {exercise_id} {k}" for k in gone)
            print(f"note: the cell(s) {cells} have not run in this kernel: counted as stubs")

    def check(self, exercise_id: str) -> None:
        """Print the ladder report of ``shakyo check ID`` for this notebook's code."""
        if os.environ.get("NBGRADER_EXECUTION"):
            print("(check yourself is skipped while nbgrader grades; the graded cell runs it)")
            return
        from shakyo.cli import main

        self._note_missing(exercise_id)
        with self.impl() as folder:
            main(["check", exercise_id, "--impl", str(folder)])

    def require_written(self, exercise_id: str) -> None:
        """Raise when the exercise is still a stub (the visible half of a graded cell)."""
        with self.impl(exercise_id) as folder:
            if exercise_state(folder / self.file, exercise_id) == "todo":
                raise AssertionError(f"{exercise_id}: still a stub; write its answer cell(s)")

    def grade(self, exercise_id: str) -> None:
        """The hidden half of a graded cell: pass, or raise naming the exercise and rung."""
        from checks.runner import run_check

        ex = get_exercise(exercise_id)
        points = ex.difficulty
        self._note_missing(exercise_id)
        noise = io.StringIO()  # nbgrader gives 0 points to a cell that wrote to stderr
        with self.impl(exercise_id) as folder, contextlib.redirect_stderr(noise):
            r = run_check(ex, folder)
        if noise.getvalue().strip():
            print(noise.getvalue().rstrip())
        if r.status != "passed":
            where = f" at the {r.rung} rung" if r.rung else ""
            head = f"{exercise_id}: {r.status}{where} (0 of {points} point(s))"
            body = "\n".join("  " + ln for ln in r.message.splitlines())
            raise AssertionError(f"{head}\n{body}")
        print(f"{exercise_id}: passed, every rung up to {r.rung}: {points} point(s)")


def start(file: str) -> Notebook:
    """The notebook of ``file``; registers ``%%given`` and ``%%answer`` in this IPython."""
    nb = Notebook(file)
    ip = _ipython()
    if ip is not None:

        def given(line: str, cell: str) -> None:
            """The kit's code (not run here: the runner reads it from the kit)."""

        def answer(line: str, cell: str) -> None:
            exercise_id, index = line.split()
            nb.record(exercise_id, int(index), cell)

        ip.register_magic_function(given, magic_kind="cell", magic_name="given")
        ip.register_magic_function(answer, magic_kind="cell", magic_name="answer")
    import checks.runner  # noqa: F401 - torch and the reference load here, not in a graded cell

    return nb


def _ipython():
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()
