"""The learner's quiz record: ``quiz.txt`` beside the exercises' ``progress.txt``.

Same folder as :mod:`checks.progress` (``.shakyo/`` in the repo, or
``SHAKYO_STATE_DIR``), a file of its own so the exercise progress format stays
untouched. One line per question, tab-separated::

    # id  attempts  right  last  updated (UTC)
    shape-lstm-input	3	2	right	2026-11-28T09:00:00Z

``last`` is the last attempt's result: right, wrong or shown (the answer was
shown without a try). Rewritten atomically; an unreadable line is ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from checks.progress import state_dir
from reference.utils import atomic_write_text

HEADER = (
    "# shakyo quiz: id, attempts, right, last (right|wrong|shown), updated (UTC); tab-separated\n"
)
RESULTS = ("right", "wrong", "shown")


def quiz_path() -> Path:
    return state_dir() / "quiz.txt"


@dataclass
class Record:
    id: str
    attempts: int = 0
    right: int = 0
    last: str = "-"
    updated: str = "-"

    def line(self) -> str:
        return f"{self.id}\t{self.attempts}\t{self.right}\t{self.last}\t{self.updated}\n"


def load() -> dict[str, Record]:
    path = quiz_path()
    out: dict[str, Record] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 5 or parts[3] not in (*RESULTS, "-"):
            continue
        try:
            out[parts[0]] = Record(parts[0], int(parts[1]), int(parts[2]), parts[3], parts[4])
        except ValueError:
            continue
    return out


def record(question_id: str, result: str) -> Record:
    """Add one attempt's result (right, wrong or shown) and save."""
    if result not in RESULTS:
        raise ValueError(f"result must be one of {RESULTS}, got {result!r}")
    records = load()
    r = records.setdefault(question_id, Record(question_id))
    r.attempts += 1
    r.right += result == "right"
    r.last = result
    r.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_text(quiz_path(), HEADER + "".join(x.line() for x in records.values()))
    return r
