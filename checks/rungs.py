"""The rungs every check starts with (import, signature) and :func:`climb`, the whole ladder.

Both run on both sides of a check (see :mod:`checks.ladder`): the learner's file is
imported, and its symbols inspected, in the learner's process; the grader receives what
they are (where each symbol comes from, its signature described as plain data) and
decides.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from checks.catalog import EXERCISES_DIR, Exercise
from checks.ladder import Ladder, LearnerRaised
from checks.signature import (
    contract_problems,
    contract_signature,
    describe_signature,
    signature_of,
    signature_text,
)

REPO = Path(__file__).resolve().parent.parent
_SOURCE_NAMES = {
    "original": "the original",
    "exercise": "this exercise (the original has no such function)",
    "fastai": "fastai",
}
_NOT_YOURS = {
    "reference": "the reference's",
    "solutions": "the bundled solution's",
    "checks": "the checks'",
}


def display(path: str | Path) -> str:
    """A path relative to the folder the check was started from, when below it."""
    from checks.runner import ORIGINAL_CWD

    try:
        return str(Path(path).resolve().relative_to(ORIGINAL_CWD))
    except ValueError:
        return str(path)


def _symbol(module: Any, dotted: str) -> Any:
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def symbol_report(module: Any, symbols: tuple[str, ...]) -> dict[str, Any]:
    """(learner side) For each symbol: None when missing, else where it comes from and its
    signature, as plain data."""
    out: dict[str, Any] = {}
    for name in symbols:
        try:
            obj = _symbol(module, name)
        except AttributeError:
            out[name] = None
            continue
        owner = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
        try:
            source = inspect.getsourcefile(inspect.unwrap(obj)) or ""
        except TypeError:
            source = ""
        out[name] = {
            "module": getattr(obj, "__module__", None) or getattr(owner, "__module__", "") or "",
            "source": str(Path(source).resolve()) if source else "",
            "signature": describe_signature(obj),
        }
    return out


def _not_yours(info: dict[str, Any], impl_dir: Path) -> str | None:
    """'the reference's' when a symbol is the reference's (or the solutions') own object
    rather than code of the folder under test."""
    source = Path(info["source"]) if info["source"] else None
    if source is not None and source.is_relative_to(impl_dir):
        return None
    for top, owner in _NOT_YOURS.items():
        if info["module"] == top or info["module"].startswith(top + "."):
            return owner
        if source is not None and source.is_relative_to(REPO / top):
            return owner
    return None


def import_rung(c: Ladder) -> None:
    ex = c.exercise
    with c.rung("import"):
        path = c.impl_dir / ex.file
        if not path.is_file():
            # `shakyo reset` restores exercises/ only; another folder is the user's to fill.
            fix = (
                f"restore it with `shakyo reset {ex.id}`"
                if Path(c.impl_dir).resolve() == EXERCISES_DIR.resolve()
                else f"that folder needs every file of solutions/ (here {ex.file})"
            )
            c.fail(f"{display(path)} does not exist; {fix}")
        try:
            c.module = c.call(f"import {display(path)}", lambda: c.impl.module(ex.file))
        except LearnerRaised as e:
            if e.kind == "NotImplementedError":
                raise NotImplementedError(e.text) from None  # a stub raising at import: todo
            if e.kind in ("SystemExit", "KeyboardInterrupt"):
                raise
            c.fail(f"importing {display(path)} failed:\n{e.trace}")
        c.symbols = c.call(
            f"the symbols of {display(path)}", lambda: symbol_report(c.module, ex.symbols)
        )
        if not c.grader:
            return
        for name, info in c.symbols.items():
            owner = info and _not_yours(info, Path(c.impl_dir).resolve())
            if owner:
                c.fail(
                    f"{display(path)}: your `{name}` is {owner} own object "
                    f"({display(info['source']) or info['module']}), not yours: the exercise is "
                    f"to write it in {display(path)}"
                )


def signature_rung(c: Ladder) -> None:
    ex = c.exercise
    with c.rung("signature"):
        if not c.grader:
            return
        for name in ex.symbols:
            info = c.symbols.get(name)
            if info is None:
                c.fail(
                    f"{display(c.impl_dir / ex.file)} has no `{name}`; the checks look it up by this name"
                )
            if info["signature"] is None:
                continue  # a builtin without a signature: nothing to compare
            mine = signature_of(info["signature"])
            contract = contract_signature(ex.signatures[name])
            problems = contract_problems(mine, contract, ex.optional_params.get(name, ()))
            if problems:
                source = ex.source_of(name)
                where = f" ({ex.original.file})" if source == "original" else ""
                c.fail(
                    f"signature of {name}: {_SOURCE_NAMES[source]}{where} has\n"
                    f"    {name}{signature_text(contract)}\n"
                    f"  yours:\n    {name}{signature_text(mine)}\n"
                    + "\n".join(f"  - {p}" for p in problems)
                    + "\n  (extra parameters with defaults, *args and **kwargs are fine)"
                )


def resolve_check(ex: Exercise):
    module_name, _, func = ex.check.partition(":")
    return getattr(importlib.import_module(module_name), func)


def climb(c: Ladder) -> None:
    """The whole ladder of ``c.exercise``: the import and signature rungs, then its check."""
    import_rung(c)
    signature_rung(c)
    resolve_check(c.exercise)(c)
