"""The learner's progress: a plain-text state file, ``.shakyo/progress.txt`` in the repo.

One line per exercise, tab-separated::

    # id  status  rung  hints_seen  updated (UTC)  passed (UTC)
    layer-norm-2d	failed	values	1	2026-11-28T09:00:00Z	2026-11-27T22:00:00Z

``status`` and ``rung`` are the last run's; ``passed`` is when the exercise last
passed ("-" never), so a pass stays a pass when a later edit breaks it again.
Files written before the ``passed`` column existed are read as they were.

``SHAKYO_STATE_DIR`` moves the folder (tests use it). The file is rewritten
atomically; an unreadable line is ignored rather than fatal.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from checks.catalog import REPO
from reference.errors import ConfigError
from reference.utils import atomic_write_text

HEADER = "# shakyo progress: id, last status, last rung, hints seen, updated (UTC), passed (UTC); tab-separated\n"


def state_dir() -> Path:
    return Path(os.environ.get("SHAKYO_STATE_DIR") or REPO / ".shakyo")


def progress_path() -> Path:
    return state_dir() / "progress.txt"


@dataclass
class Entry:
    id: str
    status: str = "unchecked"
    rung: str = "-"
    hints_seen: int = 0
    updated: str = "-"
    passed_at: str = "-"  # when it last passed

    @property
    def ever_passed(self) -> bool:
        return self.passed_at != "-"

    def line(self) -> str:
        return (
            f"{self.id}\t{self.status}\t{self.rung}\t{self.hints_seen}\t{self.updated}"
            f"\t{self.passed_at}\n"
        )


def load() -> dict[str, Entry]:
    path = progress_path()
    entries: dict[str, Entry] = {}
    if path.is_dir():
        raise ConfigError(
            f"{path}: is a folder, not the progress file; move it away (or set SHAKYO_STATE_DIR)"
        )
    if not path.is_file():
        return entries
    # A damaged file (binary junk, a bad encoding) loses only its unreadable lines.
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) == 5:  # before the passed column: a pass is dated by its update
            parts.append(parts[4] if parts[1] == "passed" else "-")
        if len(parts) != 6:
            continue
        try:
            entries[parts[0]] = Entry(
                parts[0], parts[1], parts[2], int(parts[3]), parts[4], parts[5]
            )
        except ValueError:
            continue
    return entries


def save(entries: dict[str, Entry]) -> None:
    text = HEADER + "".join(e.line() for e in entries.values())
    atomic_write_text(progress_path(), text)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record_result(exercise_id: str, status: str, rung: str | None) -> None:
    entries = load()
    e = entries.setdefault(exercise_id, Entry(exercise_id))
    e.status, e.rung, e.updated = status, rung or "-", _now()
    if status == "passed":
        e.passed_at = e.updated
    save(entries)


def record_hint(exercise_id: str, n: int) -> None:
    entries = load()
    e = entries.setdefault(exercise_id, Entry(exercise_id))
    e.hints_seen = max(e.hints_seen, n)
    e.updated = _now()
    save(entries)


def reset_entry(exercise_id: str) -> None:
    entries = load()
    if entries.pop(exercise_id, None) is not None:
        save(entries)


def has_passed(exercise_id: str) -> bool:
    """True once the exercise has passed (a later failing run does not take it back)."""
    e = load().get(exercise_id)
    return e is not None and e.ever_passed
