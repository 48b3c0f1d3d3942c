"""Load the code under test from a directory, fresh, without touching ``sys.modules`` names.

``--impl exercises`` (the learner's files), ``--impl solutions`` or ``--impl DIR``
(any directory laid out like ``solutions/``, e.g. a mutant) all become a
directory. Each :class:`Impl` imports that directory as a new package with a
unique name, reading the sources directly (no ``.pyc``: an edit made within
the same second as the last check is still seen), so ``shakyo watch`` re-imports
after every save and files of one impl can import each other relatively
(``from .layers import LayerNorm2d``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import sys
import types
from pathlib import Path

from checks.catalog import EXERCISES_DIR, SOLUTIONS_DIR
from reference.errors import ConfigError

PREFIX = "_shakyo_impl_"
_counter = itertools.count()
_dirs: dict[str, Path] = {}  # package name -> directory


def resolve_impl(impl: str | Path) -> Path:
    """'exercises' | 'solutions' | a directory -> the directory (ConfigError if absent)."""
    if isinstance(impl, str) and impl in ("exercises", "solutions"):
        return EXERCISES_DIR if impl == "exercises" else SOLUTIONS_DIR
    path = Path(impl)
    if not path.is_dir():
        raise ConfigError(
            f"--impl {impl}: not a directory; use exercises, solutions or a folder laid out like solutions/"
        )
    return path.resolve()


def impl_label(path: Path) -> str:
    if path == EXERCISES_DIR:
        return "exercises"
    if path == SOLUTIONS_DIR:
        return "solutions"
    return str(path)


class _FreshLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source on every import; never reads or writes bytecode."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        root = fullname.split(".")[0]
        if root not in _dirs:
            return None
        base = _dirs[root].joinpath(*fullname.split(".")[1:])
        if base.is_dir():
            init = base / "__init__.py"
            loader = _FreshLoader(fullname, str(init)) if init.is_file() else None
            spec = importlib.util.spec_from_file_location(
                fullname, str(init), loader=loader, submodule_search_locations=[str(base)]
            )
            if loader is None:  # a folder without __init__.py: an empty package
                spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
                spec.submodule_search_locations = [str(base)]
            return spec
        file = base.with_suffix(".py")
        if file.is_file():
            return importlib.util.spec_from_file_location(
                fullname, str(file), loader=_FreshLoader(fullname, str(file))
            )
        return None


_FINDER = _Finder()


class Impl:
    """One fresh import of an implementation directory."""

    def __init__(self, impl: str | Path) -> None:
        self.path = resolve_impl(impl)
        self.label = impl_label(self.path)
        self.package = f"{PREFIX}{next(_counter)}"
        _dirs[self.package] = self.path
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)

    def module(self, file: str) -> types.ModuleType:
        """Import ``file`` (e.g. 'layers.py') of this implementation (cached within this Impl)."""
        return importlib.import_module(f"{self.package}.{Path(file).stem}")

    def file(self, file: str) -> Path:
        return self.path / file

    def close(self) -> None:
        """Forget the modules of this import (frees memory in long `shakyo watch` sessions)."""
        for name in [
            n for n in sys.modules if n == self.package or n.startswith(self.package + ".")
        ]:
            del sys.modules[name]
        _dirs.pop(self.package, None)
