"""The exercise catalog: ``exercises/catalog.toml`` read into :class:`Exercise` objects."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from reference.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXERCISES_DIR = REPO / "exercises"
SOLUTIONS_DIR = REPO / "solutions"
CATALOG_PATH = EXERCISES_DIR / "catalog.toml"

_REQUIRED = (
    "id", "title", "file", "symbols", "reference", "docs", "hints", "check",
    "difficulty", "minutes", "concept", "why", "original", "signatures",
)  # fmt: skip
CONCEPTS = ("task", "model", "training")
SIGNATURE_SOURCES = ("original", "exercise", "fastai")


@dataclass(frozen=True)
class Differs:
    """One place where the published code and the exercise (or the reference) part ways."""

    id: str
    accepted: bool  # True: a faithful copy of the original passes; False: a deliberate departure
    original: str  # what the published code does
    kit: str  # what the kit does, and why


@dataclass(frozen=True)
class Original:
    """Where the exercise's code lives in the published repository."""

    file: str
    symbols: tuple[str, ...]
    also: str = ""


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
    difficulty: int = 1
    minutes: int = 0
    concept: str = "task"
    why: str = ""
    original: Original = Original("", ())
    signatures: dict[str, str] = field(default_factory=dict)  # symbol -> "(a, b=1)"
    signature_source: dict[str, str] = field(default_factory=dict)  # symbol -> source
    optional_params: dict[str, tuple[str, ...]] = field(default_factory=dict)
    differs: tuple[Differs, ...] = ()
    given_modules: tuple[str, ...] = ()  # modules of the learner's model built by given code

    def reference_module(self, symbol: str) -> str:
        return self.reference[symbol]

    def source_of(self, symbol: str) -> str:
        """'original' (the published code), 'exercise' (the kit's own) or 'fastai'."""
        return self.signature_source.get(symbol, "original")

    def differ(self, differs_id: str) -> Differs:
        for d in self.differs:
            if d.id == differs_id:
                return d
        raise KeyError(f"{self.id}: no differs entry {differs_id!r}")


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
    eid = entry["id"]
    sigs = dict(entry["signatures"])
    if set(sigs) != set(symbols):
        raise ConfigError(
            f"{where}: {eid}: `signatures` must name exactly the symbols "
            f"(missing {sorted(set(symbols) - set(sigs))}, extra {sorted(set(sigs) - set(symbols))})"
        )
    sources = dict(entry.get("signature_source", {}))
    bad = {k: v for k, v in sources.items() if k not in symbols or v not in SIGNATURE_SOURCES}
    if bad:
        raise ConfigError(
            f"{where}: {eid}: bad signature_source {bad}; sources are {SIGNATURE_SOURCES}"
        )
    if entry["concept"] not in CONCEPTS:
        raise ConfigError(f"{where}: {eid}: concept {entry['concept']!r}; one of {CONCEPTS}")
    if entry["difficulty"] not in (1, 2, 3):
        raise ConfigError(f"{where}: {eid}: difficulty must be 1, 2 or 3")
    orig = entry["original"]
    differs = []
    for d in entry.get("differs", []):
        missing_d = [k for k in ("id", "accepted", "original", "kit") if k not in d]
        if missing_d:
            raise ConfigError(f"{where}: {eid}: a differs entry lacks {', '.join(missing_d)}")
        differs.append(Differs(d["id"], bool(d["accepted"]), d["original"], d["kit"]))
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
        difficulty=int(entry["difficulty"]),
        minutes=int(entry["minutes"]),
        concept=entry["concept"],
        why=entry["why"],
        original=Original(orig["file"], tuple(orig["symbols"]), orig.get("also", "")),
        signatures=sigs,
        signature_source=sources,
        optional_params={k: tuple(v) for k, v in entry.get("optional_params", {}).items()},
        differs=tuple(differs),
        given_modules=tuple(entry.get("given_modules", ())),
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
