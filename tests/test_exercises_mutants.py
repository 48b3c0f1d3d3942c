"""CI: every mutant (a deliberately wrong implementation) is caught by its check at its rung,
and the failure's diagnosis names that mutant and no other."""

from __future__ import annotations

import pytest

from checks.catalog import load_catalog
from checks.diagnosis import named_in as named_mistakes
from checks.mutants import load_mutants, run_mutant

AVAILABLE = {e.id for e in load_catalog() if e.available}
MUTANTS = [m for m in load_mutants() if m.exercise in AVAILABLE]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.label for m in MUTANTS])
def test_mutant_is_caught_at_its_rung_and_named(mutant):
    outcome = run_mutant(mutant)
    r = outcome.result
    assert (r.status, r.rung) == ("failed", mutant.expected_rung), r.message
    assert r.message  # a failure always explains itself
    # A syntax error's report is its traceback, which names the learner's own file.
    expected = set() if mutant.expected_rung == "import" else {mutant.label}
    assert named_mistakes(r.message) == expected, r.message


def test_every_mutant_has_a_description_and_a_fix():
    for m in load_mutants():
        assert m.description and m.fix, m.label
