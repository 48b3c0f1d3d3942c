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
LANGS = ("en", "ja")
LABELS = {
    "en": {
        "intro": (
            "This notebook is `exercises/{file}` cut into cells. The locked `%%given` cells "
            "hold the kit's code; write yours in the `%%answer` cells, without the indent of "
            'the function they sit in. Run the cells from the top, then the "check yourself" '
            "cell of an exercise: it prints the same ladder report as `shakyo check`. Each "
            "exercise is worth its difficulty in points (1 to 3), all or nothing: the graded "
            "cell gives them when the exercise's whole ladder passes."
        ),
        "table": "| exercise | what | points |",
        "original": "In the original",
        "also": "also",
        "write": "You write: {symbols} (regions marked below)",
        "points": "Points: {points}, all or nothing; about {minutes} minutes",
        "stuck": "Stuck? `shakyo hint {id}` in a terminal",
        "body": "# the body of {qualname}",
        "check": "# check yourself",
        "graded": "# graded when you submit: {id}, {points} point(s), all or nothing",
    },
    "ja": {
        "intro": (
            "このノートブックは `exercises/{file}` をセルに切り分けたものです。ロックされた "
            "`%%given` セルはキットのコードです。自分のコードは `%%answer` セルに、その関数の"
            "インデントを付けずに書きます。上から順にセルを実行し、演習ごとの「自分で確かめる」"
            "セルを実行すると、`shakyo check` と同じラダーの報告が出ます。各演習の配点は難しさ "
            "(1 から 3 点) で、全部か無かです。演習のラダーがすべて通れば採点セルが満点を付けます。"
        ),
        "table": "| 演習 | 内容 | 配点 |",
        "original": "元のコード",
        "also": "ほかに",
        "write": "書くもの: {symbols} (下の領域)",
        "points": "配点: {points} 点、全部か無か。目安は約 {minutes} 分",
        "stuck": "行き詰まったら端末で `shakyo hint {id}`",
        "body": "# {qualname} の本体",
        "check": "# 自分で確かめる",
        "graded": "# 提出すると採点: {id}、{points} 点、全部か無か",
    },
}


def _texts(ex: Exercise, lang: str) -> tuple[str, str]:
    """(title, why) in ``lang``; English where the Japanese is missing or stale."""
    if lang == "en":
        return ex.title, ex.why
    from sitegen.exercises import load_translations, source_hash

    t = load_translations().get(ex.id)
    if t is None or t.source != source_hash(ex):
        return ex.title, ex.why
    return t.title, t.why


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


def exercise_markdown(ex: Exercise, lang: str = "en") -> str:
    L = LABELS[lang]
    title, why = _texts(ex, lang)
    o = ex.original
    where = f"`{o.file}`: " + ", ".join(f"`{s}`" for s in o.symbols)
    if o.also:
        where += f" ({L['also']} {o.also})"
    symbols = ", ".join(f"`{s}`" for s in ex.symbols)
    return "\n".join(
        [
            f"## `{ex.id}`: {title}",
            "",
            why,
            "",
            f"- {L['original']}: {where}",
            "- " + L["write"].format(symbols=symbols),
            "- " + L["points"].format(points=ex.difficulty, minutes=ex.minutes),
            "- " + L["stuck"].format(id=ex.id),
        ]
    )


def _intro(nb: Notebook, lang: str) -> str:
    L = LABELS[lang]
    rows = [f"| `{ex.id}` | {_texts(ex, lang)[0]} | {ex.difficulty} |" for ex in nb.exercises]
    head = [f"# {nb.chapter.heading(lang)}: `{nb.file}`", "", L["intro"].format(file=nb.file), ""]
    return "\n".join([*head, L["table"], "|---|---|---|", *rows])


def notebook_cells(nb: Notebook, lang: str = "en") -> list[nbformat.NotebookNode]:
    stem = nb.name
    text = (SOLUTIONS_DIR / nb.file).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    regions = find_regions(text, f"solutions/{nb.file}")
    by_id = {ex.id: ex for ex in nb.exercises}
    first = {r.id: k for k, r in reversed(list(enumerate(regions)))}
    last = {r.id: k for k, r in enumerate(regions)}
    cells = [
        _markdown(f"intro-{stem}", _intro(nb, lang)),
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
            cells.append(_markdown(f"about-{r.id}", exercise_markdown(ex, lang)))
        if given:
            cells.append(_code(f"given-{stem}-{k}", f"%%given\n{given}", locked=True))
        body = _trim(
            [ln[len(r.indent) :] if ln.startswith(r.indent) else ln for ln in r.body(lines)]
        )
        answer = (
            f"%%answer {r.id} {k}\n{LABELS[lang]['body'].format(qualname=r.qualname)}\n"
            f"### BEGIN SOLUTION\n{body}\n### END SOLUTION"
        )
        cells.append(_code(f"answer-{r.id}-{k}", answer, locked=False, solution=True))
        if ex is not None and last[r.id] == k:
            cells += _check_cells(ex, lang)
        pos = r.end + 1
    rest = _trim(lines[pos:])
    if rest:
        cells.append(_code(f"given-{stem}-end", f"%%given\n{rest}", locked=True))
    return cells


def _check_cells(ex: Exercise, lang: str) -> list[nbformat.NotebookNode]:
    L = LABELS[lang]
    check = _code(f"check-{ex.id}", f'{L["check"]}\nnb.check("{ex.id}")', locked=True)
    graded = (
        L["graded"].format(id=ex.id, points=ex.difficulty) + "\n"
        f'nb.require_written("{ex.id}")\n'
        f'### BEGIN HIDDEN TESTS\nnb.grade("{ex.id}")\n### END HIDDEN TESTS'
    )
    return [check, _code(f"grade-{ex.id}", graded, locked=True, points=ex.difficulty)]


def new_notebook(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    return nb
