"""pytest plugin of the checks: ``pytest checks [--impl exercises|solutions|DIR] [-k ID]``.

One test per exercise (``checks/test_checks.py``): passed -> pass, todo and
unavailable -> skip with the reason, failed/error/timeout -> fail with the
check's message.
"""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--impl",
        default="exercises",
        help="code under test: exercises (default), solutions, or a folder laid out like solutions/",
    )
