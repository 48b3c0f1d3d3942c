"""Solution regions: the single source of the stubs.

In ``solutions/*.py`` the code a learner writes sits between two markers::

        # BEGIN EXERCISE layer-norm-2d
        u = x.mean(1, keepdim=True)
        ...
        # END EXERCISE layer-norm-2d

The stub in ``exercises/`` is the same file with every region body replaced
by one line, ``raise NotImplementedError("layer-norm-2d: write LayerNorm2d.forward
(...)")``; the markers stay, so the learner sees where to write and
``shakyo reset`` can restore one exercise in a file shared by several. A region
must sit inside a function body (a module-level ``raise`` would break the
import of the stub).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reference.errors import ConfigError

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN EXERCISE (?P<id>[a-z0-9-]+)\s*$")
END = re.compile(r"^(?P<indent>[ \t]*)# END EXERCISE (?P<id>[a-z0-9-]+)\s*$")
_DEF = re.compile(r"^(?P<indent>[ \t]*)(?:async\s+)?def\s+(?P<name>\w+)")
_CLASS = re.compile(r"^(?P<indent>[ \t]*)class\s+(?P<name>\w+)")


@dataclass(frozen=True)
class Region:
    """Lines ``begin`` (the BEGIN marker) to ``end`` (the END marker), 0-based, inclusive."""

    id: str
    begin: int
    end: int
    indent: str
    qualname: str  # the enclosing function, e.g. "LayerNorm2d.forward"

    def body(self, lines: list[str]) -> list[str]:
        return lines[self.begin + 1 : self.end]


def _qualname(lines: list[str], at: int, indent: str) -> str:
    """The function (and class) enclosing line ``at``, found by indentation."""
    names: list[str] = []
    limit = len(indent)
    for line in reversed(lines[:at]):
        m = _DEF.match(line) or _CLASS.match(line)
        if m and len(m["indent"]) < limit:
            names.append(m["name"])
            limit = len(m["indent"])
            if limit == 0:
                break
    return ".".join(reversed(names)) or "<module>"


def find_regions(text: str, where: str = "<text>") -> list[Region]:
    """Every region of ``text`` in file order; ConfigError on unbalanced markers."""
    lines = text.splitlines()
    regions: list[Region] = []
    open_: tuple[int, str, str] | None = None
    for i, line in enumerate(lines):
        if m := BEGIN.match(line):
            if open_ is not None:
                raise ConfigError(
                    f"{where}:{i + 1}: BEGIN EXERCISE inside the region opened at line {open_[0] + 1}"
                )
            open_ = (i, m["id"], m["indent"])
        elif m := END.match(line):
            if open_ is None or m["id"] != open_[1]:
                raise ConfigError(f"{where}:{i + 1}: END EXERCISE {m['id']} without its BEGIN")
            begin, rid, indent = open_
            if not indent:
                raise ConfigError(
                    f"{where}:{begin + 1}: region {rid} must be inside a function body"
                )
            regions.append(Region(rid, begin, i, indent, _qualname(lines, begin, indent)))
            open_ = None
    if open_ is not None:
        raise ConfigError(f"{where}:{open_[0] + 1}: BEGIN EXERCISE {open_[1]} is never closed")
    return regions


def stub_line(exercise_id: str, qualname: str) -> str:
    """The one statement that replaces a region body (without indentation)."""
    return (
        f'raise NotImplementedError("{exercise_id}: write {qualname} (shakyo hint {exercise_id})")'
    )


def make_stub(text: str, where: str = "<text>") -> str:
    """The stub of a solution file: every region body replaced by its ``raise`` line."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    for r in find_regions(text, where):
        out += lines[pos : r.begin + 1]
        out.append(f"{r.indent}{stub_line(r.id, r.qualname)}\n")
        pos = r.end
    out += lines[pos:]
    return "".join(out)


def is_stub_region(lines: list[str], region: Region) -> bool:
    """True when the region body is still exactly the stub's ``raise`` (blank lines ignored)."""
    body = [ln.strip() for ln in region.body(lines) if ln.strip()]
    return body == [stub_line(region.id, region.qualname)]


def exercise_state(path: Path, exercise_id: str) -> str:
    """'todo' (every region of the exercise is still a stub), 'started', or 'missing'.

    'missing' means the file or the exercise's markers are gone (the learner
    deleted them); the checks still run then.
    """
    if not path.is_file():
        return "missing"
    text = path.read_text(encoding="utf-8")
    try:
        regions = [r for r in find_regions(text, str(path)) if r.id == exercise_id]
    except ConfigError:
        return "missing"
    if not regions:
        return "missing"
    lines = text.splitlines()
    return "todo" if all(is_stub_region(lines, r) for r in regions) else "started"


def region_texts(text: str, exercise_id: str) -> list[tuple[str, str]]:
    """[(qualname, dedented body)] of the exercise's regions in ``text``."""
    lines = text.splitlines()
    out = []
    for r in find_regions(text):
        if r.id == exercise_id:
            body = [ln[len(r.indent) :] if ln.startswith(r.indent) else ln for ln in r.body(lines)]
            out.append((r.qualname, "\n".join(body)))
    return out


def reset_regions(learner_text: str, stub_text: str, exercise_id: str) -> str | None:
    """``learner_text`` with the exercise's regions restored from ``stub_text``.

    None when the learner's markers no longer match the stub's (deleted or
    renamed): the caller then restores the whole file.
    """
    try:
        mine = [r for r in find_regions(learner_text) if r.id == exercise_id]
    except ConfigError:
        return None
    pristine = [r for r in find_regions(stub_text) if r.id == exercise_id]
    if len(mine) != len(pristine) or not mine:
        return None
    lines = learner_text.splitlines(keepends=True)
    stub_lines = stub_text.splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    for r, p in zip(mine, pristine):
        out += lines[pos : r.begin + 1]
        out += stub_lines[p.begin + 1 : p.end]
        pos = r.end
    out += lines[pos:]
    return "".join(out)
