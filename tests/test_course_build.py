"""`shakyo course build`: the notebooks come from the catalog and the solutions' regions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from checks.catalog import SOLUTIONS_DIR, load_catalog
from checks.stubs import generated_stub
from course.build import MARK, build_course, quiz_kinds
from course.chapters import CHAPTERS, QUIZ, notebooks
from course.kernel import Notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "course"
    build_course(out)
    return out


def run_notebook(path: Path) -> nbformat.NotebookNode:
    """Run a notebook in a plain kernel of this venv (no nbgrader involved)."""
    nb = nbformat.read(path, 4)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute(
        cwd=str(path.parent)
    )
    return nb


def out_text(cell) -> str:
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.outputs)


def test_every_catalog_file_has_one_chapter():
    files = {e.file for e in load_catalog()}
    held = [f for c in CHAPTERS for f in c.files]
    assert sorted(held) == sorted(files)  # each once, none missing, none extra


def test_full_build_writes_seven_graded_assignments_and_the_quiz(course):
    found = sorted(p.relative_to(course / "source").as_posix() for p in course.rglob("*.ipynb"))
    graded = [f"{nb.chapter.slug}/{nb.name}.ipynb" for nb in notebooks()]
    quiz = [f"{QUIZ.slug}/quiz-{k}.ipynb" for k in quiz_kinds()]
    assert found == sorted(graded + quiz)
    assert len({g.split("/")[0] for g in graded}) == 7 and len(graded) == 10
    assert MARK in (course / "nbgrader_config.py").read_text()


def test_each_exercise_has_one_graded_cell_worth_its_difficulty(course):
    cells = {}
    for path in (course / "source").glob("0[1-7]-*/*.ipynb"):
        for c in nbformat.read(path, 4).cells:
            nbg = c.metadata.get("nbgrader", {})
            if nbg.get("grade"):
                cells[nbg["grade_id"]] = (nbg["points"], c.source)
    expected = {f"grade-{e.id}": e.difficulty for e in load_catalog() if e.available}
    assert {k: p for k, (p, _) in cells.items()} == expected
    for gid, (_, src) in cells.items():
        ex = gid.removeprefix("grade-")
        assert f'### BEGIN HIDDEN TESTS\nnb.grade("{ex}")\n### END HIDDEN TESTS' in src


def test_given_cells_are_locked_and_answers_are_solution_cells(course):
    nb = nbformat.read(course / "source" / "02-decoder-blocks" / "layers.ipynb", 4)
    kinds = {}
    for c in nb.cells:
        nbg = c.metadata["nbgrader"]
        if c.source.startswith("%%given"):
            kinds.setdefault("given", set()).add((nbg["locked"], nbg["solution"]))
        if c.source.startswith("%%answer"):
            kinds.setdefault("answer", set()).add((nbg["locked"], nbg["solution"]))
            assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source
    assert kinds == {"given": {(True, False)}, "answer": {(False, True)}}


@pytest.mark.parametrize("file", sorted({e.file for e in load_catalog() if e.available}))
def test_unanswered_notebook_writes_exactly_the_exercise_stub(file):
    assert Notebook(file).module_text() == generated_stub(file)


def test_answers_from_the_source_cells_rebuild_the_solution(course):
    path = course / "source" / "03-model" / "coat.ipynb"
    nb = Notebook("coat.py")
    for c in nbformat.read(path, 4).cells:
        if c.source.startswith("%%answer"):
            head, body = c.source.split("\n", 1)
            _, ex, k = head.split()
            nb.record(ex, int(k), body)
    strip = [ln for ln in nb.module_text().splitlines() if not ln.strip().startswith("#")]
    solution = (SOLUTIONS_DIR / "coat.py").read_text().splitlines()
    assert strip == [ln for ln in solution if not ln.strip().startswith("#")]


def test_rebuild_keeps_the_gradebook_and_refuses_a_foreign_config(tmp_path):
    out = tmp_path / "c"
    build_course(out, ["07-submission"])
    (out / "gradebook.db").write_text("kept")
    build_course(out, ["01-data"])
    assert (out / "gradebook.db").read_text() == "kept"
    assert [p.name for p in (out / "source").iterdir()] == ["01-data"]
    assert not [p for p in out.iterdir() if p.name.startswith(".source-")]
    other = tmp_path / "other"
    other.mkdir()
    (other / "nbgrader_config.py").write_text("c = get_config()\n")
    p = subprocess.run(
        [sys.executable, "-m", "shakyo.cli", "course", "build", "--out", str(other)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"shakyo course: error: {other / 'nbgrader_config.py'}: not written by "
        "`shakyo course build`; choose another --out"
    ]


def test_course_build_command_writes_the_chosen_assignment(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "shakyo.cli", "course", "build", "--out", str(tmp_path / "c"),
         "--only", "07-submission"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == [
        f"wrote 1 notebook(s) in 1 assignment(s) to {tmp_path / 'c'}/source",
        "  source/07-submission/submission.ipynb",
    ]
    assert (tmp_path / "c" / "source" / "07-submission" / "submission.ipynb").is_file()


def test_unknown_assignment_is_one_line_and_exit_2(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "shakyo.cli", "course", "build", "--out", str(tmp_path / "x"),
         "--only", "01-dta"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "unknown assignment `01-dta`" in p.stderr
    assert not (tmp_path / "x").exists()


def test_release_opens_in_a_plain_kernel_and_check_yourself_reports(tmp_path):
    """A student without nbgrader: the stub reports todo; typed answers pass."""
    build_course(tmp_path / "c", ["07-submission"])
    src = tmp_path / "c" / "source" / "07-submission" / "submission.ipynb"
    nb = nbformat.read(src, 4)
    for c in nb.cells:  # what nbgrader's release leaves in an answer cell
        if c.source.startswith("%%answer"):
            head = c.source.split("\n", 1)[0]
            c.source = f"{head}\n# YOUR CODE HERE\nraise NotImplementedError()"
    nbformat.write(nb, tmp_path / "release.ipynb")
    ran = run_notebook(tmp_path / "release.ipynb")
    check = next(c for c in ran.cells if c.get("id") == "check-rle")
    assert "rle                   todo" in out_text(check)
    grade = next(c for c in ran.cells if c.get("id") == "grade-rle")
    assert "rle: still a stub" in out_text(grade)
    ran = run_notebook(src)  # the source: the solutions typed in
    check = next(c for c in ran.cells if c.get("id") == "check-rle")
    assert "1 passed (1 checked)" in out_text(check)
    assert "rle: passed" in out_text(next(c for c in ran.cells if c.get("id") == "grade-rle"))


def test_quiz_notebook_runs_and_judges_each_question(course):
    ran = run_notebook(course / "source" / QUIZ.slug / "quiz-metric.ipynb")
    errors = [o for c in ran.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    checks = [c for c in ran.cells if c.cell_type == "code" and "check(" in c.source]
    assert len(checks) == 6
    assert all(out_text(c).startswith("✗ ") for c in checks)  # `answer = None` is wrong
    graded = [c for c in ran.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded == []  # the quiz is never graded


def test_instructors_page_tables_the_built_assignments():
    """The site's table is checked against the build (the catalog stays the one list)."""
    rows = {}
    for lang in ("index.md", "index.ja.md"):
        text = (Path(__file__).parent.parent / "docs" / "instructors" / lang).read_text()
        for line in text.splitlines():
            cols = [c.strip() for c in line.strip("|").split("|")]
            if line.startswith("| `0") and not cols[0].startswith(f"`{QUIZ.slug}"):
                rows.setdefault(lang, {})[cols[0].strip("`")] = cols[2].split(", ")
    expected: dict[str, list[str]] = {}
    for nb in notebooks():
        expected.setdefault(nb.chapter.slug, []).extend(e.id for e in nb.exercises)
    assert rows == {"index.md": expected, "index.ja.md": expected}
    total = sum(e.difficulty for e in load_catalog() if e.available)
    en = (Path(__file__).parent.parent / "docs" / "instructors" / "index.md").read_text()
    assert f"(the course totals {total})" in " ".join(en.split())


def test_japanese_course_takes_the_catalogs_translation(tmp_path):
    from sitegen.exercises import load_translations

    build_course(tmp_path / "ja", ["01-data", QUIZ.slug], lang="ja")
    nb = nbformat.read(tmp_path / "ja" / "source" / "01-data" / "data.ipynb", 4)
    about = next(c for c in nb.cells if c.get("id") == "about-ash-false-color")
    t = load_translations()["ash-false-color"]
    assert about.source.startswith(f"## `ash-false-color`: {t.title}\n\n{t.why}\n")
    assert nb.cells[0].source.startswith("# データ: `data.py`")
    quiz = nbformat.read(tmp_path / "ja" / "source" / QUIZ.slug / "quiz-metric.ipynb", 4)
    assert quiz.cells[0].source.startswith("# クイズ: metric")
    assert "check('fth-value', answer, lang='ja'" in "".join(c.source for c in quiz.cells)


def test_a_graded_cell_grades_one_exercise_check_yourself_the_whole_file(capsys):
    """tile-layout calls get_false_color (ash-false-color's): left a stub, it costs
    tile-layout nothing when graded, while check yourself reports what shakyo check does."""
    source = (SOLUTIONS_DIR / "data.py").read_text()
    nb = Notebook("data.py")
    for k, r in enumerate(nb.regions):
        if r.id == "tile-layout":
            nb.record(r.id, k, "\n".join(ln[len(r.indent) :] for ln in r.body(source.splitlines())))
    nb.grade("tile-layout")
    assert "tile-layout: passed, every rung up to values: 2 point(s)" in capsys.readouterr().out
    nb.check("tile-layout")
    report = capsys.readouterr().out
    assert "tile-layout           todo      shapes" in report  # ash-false-color is a stub
    with pytest.raises(AssertionError, match="ash-false-color: still a stub"):
        nb.require_written("ash-false-color")


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_out_that_is_not_a_folder_is_one_line_and_exit_2(tmp_path, capsys, where):
    from shakyo.cli import main

    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    out = f if where == "file" else f / "course"
    assert main(["course", "build", "--out", str(out), "--only", "07-submission"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--out {out}" in err[0] and "Traceback" not in err[0]
    assert f.read_text() == "mine\n" and sorted(tmp_path.iterdir()) == [f]
