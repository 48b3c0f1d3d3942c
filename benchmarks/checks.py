"""Time the checks: every exercise against the bundled solutions, in one process.

    .venv/bin/python benchmarks/checks.py          # in-process, with per-rung timings
    .venv/bin/python benchmarks/checks.py --cli    # also the wall time of `shakyo check --impl solutions`

Budgets (issue 5): the whole `shakyo check --impl solutions` <= 60 s wall on a
2-core machine, every single exercise <= 10 s. The import of torch, fastai and
the reference is outside each check's clock but inside the total.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

START = time.perf_counter()

# Run as a script, this file's folder comes first on sys.path, and this file
# (checks.py) would shadow the `checks` package it measures.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

TOTAL_BUDGET_S = 60.0
EXERCISE_BUDGET_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cli", action="store_true", help="also time the CLI in a fresh process")
    args = parser.parse_args()

    from checks.runner import run_checks

    t_import = time.perf_counter()
    results = run_checks(impl="solutions")
    total = time.perf_counter() - START
    print(f"{'exercise':<20} {'status':<8} {'seconds':>8}  slowest rung")
    slowest = ("-", "-", 0.0)
    for r in results:
        rung, secs = max(r.timings.items(), key=lambda kv: kv[1], default=("-", 0.0))
        if secs > slowest[2]:
            slowest = (r.id, rung, secs)
        print(f"{r.id:<20} {r.status:<8} {r.seconds:>8.2f}  {rung} {secs:.2f} s")
    checks_sum = sum(r.seconds for r in results)
    worst = max(results, key=lambda r: r.seconds)
    print(f"\nchecks: {len(results)}, sum of check times {checks_sum:.2f} s")
    print(
        f"imports (torch, fastai, reference) and Python start: {total - checks_sum:.2f} s "
        f"(checks module import {t_import - START:.2f} s)"
    )
    print(f"total wall in one process: {total:.2f} s (budget {TOTAL_BUDGET_S:g} s)")
    print(f"slowest exercise: {worst.id} {worst.seconds:.2f} s (budget {EXERCISE_BUDGET_S:g} s)")
    print(f"slowest rung: {slowest[0]}/{slowest[1]} {slowest[2]:.2f} s")
    ok = total <= TOTAL_BUDGET_S and worst.seconds <= EXERCISE_BUDGET_S
    ok &= all(r.status == "passed" for r in results)
    if args.cli:
        shakyo = Path(sys.executable).with_name("shakyo")
        t = time.perf_counter()
        rc = subprocess.run(
            [str(shakyo), "check", "--impl", "solutions"], capture_output=True
        ).returncode
        wall = time.perf_counter() - t
        print(
            f"`shakyo check --impl solutions`: exit {rc}, {wall:.2f} s wall (budget {TOTAL_BUDGET_S:g} s)"
        )
        ok &= rc == 0 and wall <= TOTAL_BUDGET_S
    print("within budget" if ok else "OVER BUDGET or not all passed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
