"""Checks: grade the learner's exercises against the reference, rung by rung.

    from checks import run_checks
    results = run_checks(["layer-norm-2d"], impl="solutions")

The catalog (``exercises/catalog.toml``) lists the exercises; ``checks.runner``
runs their ladders; ``checks.cli`` is ``shakyo list/check/watch/hint/...``.
See ``checks/README.md`` for how to add an exercise.
"""

from __future__ import annotations

from checks.catalog import Exercise, get_exercise, load_catalog
from checks.runner import Result, run_check, run_checks

__all__ = ["Exercise", "Result", "get_exercise", "load_catalog", "run_check", "run_checks"]
