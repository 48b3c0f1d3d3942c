"""One pytest test per exercise of the catalog (run with ``pytest checks``)."""

from __future__ import annotations

import pytest

from checks.catalog import load_catalog
from checks.runner import run_check

EXERCISES = list(load_catalog())


@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.id for e in EXERCISES])
def test_exercise(exercise, request) -> None:
    r = run_check(exercise, request.config.getoption("--impl"))
    if r.status in ("todo", "unavailable"):
        pytest.skip(f"{r.status}: {r.message}")
    if r.status != "passed":
        pytest.fail(f"{exercise.id}: {r.status} at the {r.rung} rung\n{r.message}", pytrace=False)
