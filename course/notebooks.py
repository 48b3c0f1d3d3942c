"""The cells of one course notebook, from a solution file's regions and the catalog.

Cell order follows the file: the kit's code between regions as locked ``%%given``
cells, each region as an nbgrader solution cell (``%%answer ID K``). Before an
exercise's first region: its title, the why-note and where the code is in the
original; after its last region: a "check yourself" cell and a graded cell whose
hidden half calls the runner (:mod:`course.kernel`).
"""

from __future__ import annotations

from typing import Any

import nbformat

from checks.catalog import SOLUTIONS_DIR, Exercise
from checks.regions import find_regions
from course.chapters import Notebook

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
POINTS_NOTE = (
    "Each exercise is worth its difficulty in points (1 to 3), all or nothing: the "
    "graded cell gives them when the exercise's whole ladder passes."
)


def _meta(grade_id: str, *, locked: bool, solution: bool = False, points: int | None = None):
    nbg: dict[str, Any] = {
        "grade": points is not None,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        nbg["points"] = points
    return {"nbgrader": nbg}


def _code(cell_id: str, source: str, **nbg) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata=_meta(cell_id, **nbg))
    cell["id"] = cell_id
    return cell


def _markdown(cell_id: str, source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source, metadata=_meta(cell_id, locked=True))
    cell["id"] = cell_id
    return cell


def _trim(lines: list[str]) -> str:
    return "".join(lines).strip("\n")


def exercise_markdown(ex: Exercise) -> str:
    o = ex.original
    where = f"`{o.file}`: " + ", ".join(f"`{s}`" for s in o.symbols)
    if o.also:
        where += f" (also {o.also})"
    return "\n".join(
        [
            f"## `{ex.id}`: {ex.title}",
            "",
            ex.why,
            "",
            f"- In the original: {where}",
            f"- You write: {', '.join(f'`{s}`' for s in ex.symbols)} (regions marked below)",
            f"- Points: {ex.difficulty}, all or nothing; about {ex.minutes} minutes",
            f"- Stuck? `shakyo hint {ex.id}` in a terminal",
        ]
    )


def _intro(nb: Notebook) -> str:
    rows = [f"| `{ex.id}` | {ex.title} | {ex.difficulty} |" for ex in nb.exercises]
    return "\n".join(
        [
            f"# {nb.chapter.title}: `{nb.file}`",
            "",
            f"This notebook is `exercises/{nb.file}` cut into cells. The locked `%%given` "
            "cells hold the kit's code; write yours in the `%%answer` cells, without the indent "
            "of the function they sit in. Run the cells from the top, then the "
            '"check yourself" cell of an exercise: it prints the same ladder report as '
            f"`shakyo check`. {POINTS_NOTE}",
            "",
            "| exercise | what | points |",
            "|---|---|---|",
            *rows,
        ]
    )


def notebook_cells(nb: Notebook) -> list[nbformat.NotebookNode]:
    stem = nb.name
    text = (SOLUTIONS_DIR / nb.file).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    regions = find_regions(text, f"solutions/{nb.file}")
    by_id = {ex.id: ex for ex in nb.exercises}
    first = {r.id: k for k, r in reversed(list(enumerate(regions)))}
    last = {r.id: k for k, r in enumerate(regions)}
    cells = [
        _markdown(f"intro-{stem}", _intro(nb)),
        _code(
            f"setup-{stem}",
            f'from course.kernel import start\n\nnb = start("{nb.file}")',
            locked=True,
        ),
    ]
    pos = 0
    for k, r in enumerate(regions):
        given = _trim(lines[pos : r.begin])
        ex = by_id.get(r.id)
        if ex is not None and first[r.id] == k:
            cells.append(_markdown(f"about-{r.id}", exercise_markdown(ex)))
        if given:
            cells.append(_code(f"given-{stem}-{k}", f"%%given\n{given}", locked=True))
        body = _trim(
            [ln[len(r.indent) :] if ln.startswith(r.indent) else ln for ln in r.body(lines)]
        )
        answer = (
            f"%%answer {r.id} {k}\n# the body of {r.qualname}\n"
            f"### BEGIN SOLUTION\n{body}\n### END SOLUTION"
        )
        cells.append(_code(f"answer-{r.id}-{k}", answer, locked=False, solution=True))
        if ex is not None and last[r.id] == k:
            cells += _check_cells(ex)
        pos = r.end + 1
    rest = _trim(lines[pos:])
    if rest:
        cells.append(_code(f"given-{stem}-end", f"%%given\n{rest}", locked=True))
    return cells


def _check_cells(ex: Exercise) -> list[nbformat.NotebookNode]:
    check = _code(f"check-{ex.id}", f'# check yourself\nnb.check("{ex.id}")', locked=True)
    graded = (
        f"# graded when you submit: {ex.id}, {ex.difficulty} point(s), all or nothing\n"
        f'nb.require_written("{ex.id}")\n'
        f'### BEGIN HIDDEN TESTS\nnb.grade("{ex.id}")\n### END HIDDEN TESTS'
    )
    return [check, _code(f"grade-{ex.id}", graded, locked=True, points=ex.difficulty)]


def new_notebook(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    return nb
