"""``shakyo``: every command, the reference's (:mod:`reference.cli`) and the learner's.

``train`` goes through :mod:`checks.graduation`, which hands the learner's
model, loss, metric and optimizer to the reference's trainer when ``IMPL`` is
not ``reference``.
"""

from __future__ import annotations

import sys

from reference.cli import COMMANDS as REFERENCE_COMMANDS
from reference.cli import dispatch

LEARNER_COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("checks.cli", "list the exercises in order with their status"),
    "check": ("checks.cli", "grade exercises against the reference"),
    "watch": ("checks.cli", "re-check the current exercise on every save"),
    "hint": ("checks.cli", "show a hint for an exercise"),
    "progress": ("checks.cli", "show your progress"),
    "reset": ("checks.cli", "restore the pristine stub of an exercise (or undo a reset)"),
    "solution": ("checks.cli", "show the solution of a passed exercise"),
    "quiz": ("quiz.cli", "answer questions whose answers are computed from the reference"),
    "course": ("course.build", "build the nbgrader course (instructors)"),
}

COMMANDS: dict[str, tuple[str, str]] = {
    **REFERENCE_COMMANDS,
    "train": (
        "checks.graduation",
        "train a model from a JSON config (KEY VALUE overrides; IMPL exercises = your code)",
    ),
    **LEARNER_COMMANDS,
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
