"""Mutants: deliberately wrong implementations that the checks must catch.

``checks/mutants.toml`` lists them as text replacements in a copy of
``solutions/`` (``old`` -> ``new``, or a list ``edits = [{old, new}, ...]``). :func:`run_mutant` applies one to a temporary copy, runs the
check of its exercise on that copy (an impl directory) and reports whether the
check failed at the expected rung.

    python -m checks.mutants [EXERCISE_ID ...]   # a table; exit 1 if one escapes
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from checks.catalog import SOLUTIONS_DIR, get_exercise
from checks.runner import Result, run_check
from reference.errors import ConfigError

MUTANTS_PATH = Path(__file__).resolve().parent / "mutants.toml"


@dataclass(frozen=True)
class Mutant:
    exercise: str
    name: str
    file: str
    expected_rung: str
    old: str = ""
    new: str = ""
    edits: tuple[tuple[str, str], ...] = ()  # more replacements, after old -> new
    # The mistake, as a failure message names it ("this matches a known mistake: ...").
    description: str = ""
    fix: str = ""  # what to change
    differs: str = ""  # a catalog differs id: the published code's own behaviour, not a mistake

    @property
    def label(self) -> str:
        return f"{self.exercise}/{self.name}"


@cache
def _load(path: Path) -> tuple[Mutant, ...]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    out = []
    for m in data.get("mutant", []):
        m = dict(m)
        m["edits"] = tuple((e["old"], e["new"]) for e in m.get("edits", ()))
        out.append(Mutant(**m))
    return tuple(out)


def load_mutants(path: Path = MUTANTS_PATH) -> list[Mutant]:
    return list(_load(Path(path)))


def apply_mutant(m: Mutant, src: Path, dst: Path) -> None:
    """Copy the implementation ``src`` to ``dst`` with the mutation applied."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    path = dst / m.file
    text = path.read_text(encoding="utf-8")
    pairs = ([(m.old, m.new)] if m.old else []) + list(m.edits)
    for old, new in pairs:
        n = text.count(old)
        if n != 1:
            raise ConfigError(
                f"mutant {m.label}: `old` occurs {n} times in {m.file}; it must occur once"
            )
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


@dataclass
class MutantOutcome:
    mutant: Mutant
    result: Result

    @property
    def caught(self) -> bool:
        return self.result.status == "failed" and self.result.rung == self.mutant.expected_rung


def run_mutant(m: Mutant, src: Path = SOLUTIONS_DIR) -> MutantOutcome:
    with tempfile.TemporaryDirectory(prefix=f"shakyo-mutant-{m.name}-") as tmp:
        dst = Path(tmp) / "impl"
        apply_mutant(m, src, dst)
        return MutantOutcome(m, run_check(get_exercise(m.exercise), dst))


def main(argv: list[str] | None = None) -> int:
    ids = set(sys.argv[1:] if argv is None else argv)
    mutants = [m for m in load_mutants() if not ids or m.exercise in ids]
    escaped = 0
    for m in mutants:
        o = run_mutant(m)
        r = o.result
        verdict = "caught" if o.caught else "ESCAPED"
        escaped += not o.caught
        print(
            f"{verdict:<8} {m.label:<40} expected {m.expected_rung:<10} got {r.status} at {r.rung}"
        )
        if not o.caught and r.message:
            print("  " + r.message.replace("\n", "\n  "))
    print(f"{len(mutants) - escaped} of {len(mutants)} mutants caught")
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
