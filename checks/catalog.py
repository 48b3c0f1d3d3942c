"""The exercise catalog: ``exercises/catalog.toml`` read into :class:`Exercise` objects."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from reference.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXERCISES_DIR = REPO / "exercises"
SOLUTIONS_DIR = REPO / "solutions"
CATALOG_PATH = EXERCISES_DIR / "catalog.toml"

_REQUIRED = ("id", "title", "file", "symbols", "reference", "docs", "hints", "check")


@dataclass(frozen=True)
class Exercise:
    """One catalog entry (see the comment at the top of catalog.toml)."""

    id: str
    title: str
    file: str
    symbols: tuple[str, ...]
    reference: dict[str, str]  # symbol -> reference module
    docs: str
    hints: tuple[str, ...]
    check: str  # "module:function"
    available: bool
    timeout: float | None
    index: int  # 1-based position in the catalog

    def reference_module(self, symbol: str) -> str:
        return self.reference[symbol]


def _parse(entry: dict, index: int, where: Path) -> Exercise:
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ConfigError(f"{where}: exercise #{index} lacks {', '.join(missing)}")
    symbols = tuple(entry["symbols"])
    ref = entry["reference"]
    reference = {s: ref for s in symbols} if isinstance(ref, str) else dict(ref)
    unmapped = [s for s in symbols if s not in reference]
    if unmapped:
        raise ConfigError(f"{where}: {entry['id']}: no reference module for {', '.join(unmapped)}")
    return Exercise(
        id=entry["id"],
        title=entry["title"],
        file=entry["file"],
        symbols=symbols,
        reference=reference,
        docs=entry["docs"],
        hints=tuple(entry["hints"]),
        check=entry["check"],
        available=bool(entry.get("available", True)),
        timeout=entry.get("timeout"),
        index=index,
    )


@cache
def _load(path: Path) -> tuple[Exercise, ...]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    exercises = tuple(_parse(e, i, path) for i, e in enumerate(data.get("exercise", []), 1))
    ids = [e.id for e in exercises]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ConfigError(f"{path}: duplicate exercise ids {sorted(dup)}")
    return exercises


def load_catalog(path: Path = CATALOG_PATH) -> tuple[Exercise, ...]:
    """All exercises in catalog order (available or not)."""
    return _load(Path(path))


def get_exercise(exercise_id: str) -> Exercise:
    """The exercise called ``exercise_id``; ConfigError with a suggestion when unknown."""
    for e in load_catalog():
        if e.id == exercise_id:
            return e
    ids = [e.id for e in load_catalog()]
    close = difflib.get_close_matches(exercise_id, ids, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    raise ConfigError(f"unknown exercise `{exercise_id}`; {hint}run `shakyo list` to see them all")


def exercise_ids() -> list[str]:
    return [e.id for e in load_catalog()]
