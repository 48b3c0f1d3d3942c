"""benchmarks/train_step.py runs end to end (tiny sizes; the speed itself is not a test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_step_benchmark_prints_its_table(tmp_path):
    cmd = [sys.executable, "benchmarks/train_step.py", "--size", "64", "--train", "8",
           "--repeats", "1", "--loader-samples", "16", "--dir", str(tmp_path)]  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    for name in ("reference", "published"):
        row = re.search(
            rf"^{name} +train +([\d.]+) samples/s .* ([\d]+) minor page faults", out, re.M
        )
        assert row and float(row.group(1)) > 0, out
    ratios = re.search(r"train samples/s ([\d.]+)x, epoch time ([\d.]+)x", out)
    assert ratios and all(float(r) > 0 for r in ratios.groups()), out
    assert re.search(r"NUM_WORKERS 0 [\d.]+ samples/s, NUM_WORKERS 2 [\d.]+ samples/s", out), out
    # Both Learners wrote their runs (each in its own process).
    assert (tmp_path / "runs" / "reference").is_dir() and (tmp_path / "runs" / "published").is_dir()
