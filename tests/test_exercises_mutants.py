"""CI: every mutant (a deliberately wrong implementation) is caught by its check at its rung."""

from __future__ import annotations

import pytest

from checks.catalog import load_catalog
from checks.mutants import load_mutants, run_mutant

AVAILABLE = {e.id for e in load_catalog() if e.available}
MUTANTS = [m for m in load_mutants() if m.exercise in AVAILABLE]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.label for m in MUTANTS])
def test_mutant_is_caught_at_its_rung(mutant):
    outcome = run_mutant(mutant)
    r = outcome.result
    assert (r.status, r.rung) == ("failed", mutant.expected_rung), r.message
    assert r.message  # a failure always explains itself
