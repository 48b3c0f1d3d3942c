"""The real failure message of a common mistake, for every exercise page.

For each exercise one of its mutants (``checks/mutants.toml``) is applied to a copy
of ``solutions/`` and graded with the same runner as ``shakyo check``; the page
shows the row and the details the CLI prints for it. Results are cached in
build/cache/, keyed by a hash of every file that can change them (solutions,
checks, reference, catalog, mutants) and the library versions, so a page never
shows a stale message and an unchanged tree does not pay for the runs again.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from sitegen.paths import CACHE, REPO
from sitegen.util import tree_hash, write_json

# The rung whose message teaches most: a wrong value, with the worst element and the
# first diverging module. Exercises without a values mutant show their first mutant.
PREFERRED_RUNG = "values"
INPUTS = ("solutions", "checks", "reference", "exercises/catalog.toml")


@dataclass(frozen=True)
class Shown:
    """One mutant run as a page shows it."""

    exercise: str
    mutant: str
    file: str
    old: str
    new: str
    status: str
    rung: str | None
    output: str  # what `shakyo check <id>` prints for it: the result row and the details


def pick(mutants: list, exercise_id: str):
    """The mutant shown on ``exercise_id``'s page, or None when it has none."""
    mine = [m for m in mutants if m.exercise == exercise_id]
    for m in mine:
        if m.expected_rung == PREFERRED_RUNG:
            return m
    return mine[0] if mine else None


def _run_one(m) -> Shown:
    from checks import cli
    from checks.catalog import get_exercise
    from checks.mutants import apply_mutant
    from checks.runner import run_check

    with tempfile.TemporaryDirectory(prefix="shakyo-site-") as tmp:
        dst = Path(tmp) / "exercises"
        apply_mutant(m, REPO / "solutions", dst)
        r = run_check(get_exercise(m.exercise), dst)
        text = cli._row(r)
        if r.status in ("failed", "error", "timeout"):
            text += "\n\n" + cli._details(r)
        # The copy lives in a temporary folder; a learner's lives in exercises/.
        text = text.replace(str(dst.resolve()), "exercises").replace(str(dst), "exercises")
    return Shown(m.exercise, m.name, m.file, m.old, m.new, r.status, r.rung, text)


def cache_key() -> str:
    import fastai
    import timm
    import torch

    versions = f"torch {torch.__version__} timm {timm.__version__} fastai {fastai.__version__}"
    return tree_hash([REPO / p for p in INPUTS], extra=versions)


def shown_mistakes(exercise_ids: list[str], cache: Path = CACHE) -> dict[str, Shown]:
    """exercise id -> the mutant run shown on its page (ids without mutants are left out)."""
    from checks.mutants import load_mutants

    key = cache_key()
    path = cache / f"mutants-{key}.json"
    if path.is_file():  # the key covers the catalog, so the ids are the same
        data = json.loads(path.read_text(encoding="utf-8"))
        return {k: Shown(**v) for k, v in data.items()}
    mutants = load_mutants()
    out: dict[str, Shown] = {}
    for eid in exercise_ids:
        m = pick(mutants, eid)
        if m is not None:
            out[eid] = _run_one(m)
    for old in cache.glob("mutants-*.json"):
        old.unlink()
    write_json(path, {k: asdict(v) for k, v in out.items()})
    return out
