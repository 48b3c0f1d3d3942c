"""CI: every exercise passes alone, in a process of its own (no import left behind by another check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from checks.catalog import load_catalog

AVAILABLE = [e.id for e in load_catalog() if e.available]


@pytest.mark.parametrize("exercise_id", AVAILABLE)
def test_each_solution_passes_in_a_fresh_process(exercise_id, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "shakyo.cli",
            "check",
            exercise_id,
            "--impl",
            "solutions",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SHAKYO_STATE_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert [(r["id"], r["status"]) for r in results] == [(exercise_id, "passed")]
