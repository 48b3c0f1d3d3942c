"""Generate the stubs in ``exercises/`` from ``solutions/`` (the single source).

    python -m checks.stubs           # write exercises/*.py
    python -m checks.stubs --check   # exit 1 when a committed stub differs

Only the files named by the catalog are generated; ``exercises/__init__.py`` and
``exercises/catalog.toml`` are hand-written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from checks.catalog import EXERCISES_DIR, SOLUTIONS_DIR, load_catalog
from checks.regions import find_regions, is_stub_region, make_stub
from reference.errors import ConfigError
from reference.utils import atomic_write_text


def stub_files() -> list[str]:
    """Files of the catalog whose solution exists, in catalog order, without repeats."""
    files = dict.fromkeys(e.file for e in load_catalog())
    return [f for f in files if (SOLUTIONS_DIR / f).is_file()]


def generated_stub(file: str, solutions_dir: Path = SOLUTIONS_DIR) -> str:
    path = solutions_dir / file
    return make_stub(path.read_text(encoding="utf-8"), str(path))


def stale_stubs(exercises_dir: Path = EXERCISES_DIR) -> list[str]:
    """Files whose committed stub differs from the generated one (or is missing)."""
    stale = []
    for f in stub_files():
        path = exercises_dir / f
        if not path.is_file() or path.read_text(encoding="utf-8") != generated_stub(f):
            stale.append(f)
    return stale


def has_learner_work(path: Path) -> bool:
    """True when some region of ``path`` is no longer the stub's raise (a learner wrote code)."""
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    try:
        regions = find_regions(text, str(path))
    except ConfigError:
        return True
    lines = text.splitlines()
    return not all(is_stub_region(lines, r) for r in regions)


def write_stubs(
    exercises_dir: Path = EXERCISES_DIR, force: bool = False
) -> tuple[list[str], list[str]]:
    """Write every stale stub; returns (files written, files kept because they hold learner work)."""
    written, kept = [], []
    for f in stale_stubs(exercises_dir):
        path = exercises_dir / f
        if has_learner_work(path) and not force:
            kept.append(f)
            continue
        atomic_write_text(path, generated_stub(f))
        written.append(f)
    return written, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m checks.stubs", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="only report stale stubs; exit 1 if any"
    )
    parser.add_argument("--force", action="store_true", help="overwrite stubs that hold code")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_stubs()
        for f in stale:
            print(f"exercises/{f} differs from the stub generated from solutions/{f}")
        if stale:
            print("run `python -m checks.stubs` to regenerate", file=sys.stderr)
        return 1 if stale else 0
    written, kept = write_stubs(force=args.force)
    print(f"wrote {len(written)} stub(s): {', '.join(written) or 'all up to date'}")
    for f in kept:
        print(f"kept exercises/{f}: it holds your code (use --force to overwrite it)")
    return 1 if kept else 0


if __name__ == "__main__":
    sys.exit(main())
