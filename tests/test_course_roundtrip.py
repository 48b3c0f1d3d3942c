"""The instructor's round trip, end to end, with nbgrader's CLI and no Jupyter server.

build (01-data only) -> generate_assignment -> validate (API) -> release -> fetch ->
four students submit -> collect -> autograde -> generate_feedback -> export.

The students of 01-data (ash-false-color: 1 point, tile-layout: 2 points):
  alice  types the solutions                    -> 3
  bob    submits the release untouched (stubs)  -> 0
  carol  a mutant of tile-layout (round, not floor) -> 1
  dave   the solutions, plus a cell that hangs the kernel: interrupted after the
         cell timeout, the rest of his notebook still graded -> 3
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import nbformat
import pytest

from checks.catalog import get_exercise
from checks.mutants import load_mutants
from course.build import build_course

ASSIGNMENT = "01-data"
COURSE_ID = "shakyo-coat-ulstm"
HANG_TIMEOUT = 20  # s: the cell timeout of this test (a check here takes ~2 s)
MUTANT = next(m for m in load_mutants() if m.name == "round-instead-of-floor")
POINTS = {e: get_exercise(e).difficulty for e in ("ash-false-color", "tile-layout")}


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from the venv
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "CI": "true"}


def nbgrader(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "nbgrader"
    p = subprocess.run(
        [str(exe), *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=170
    )
    if ok:
        assert p.returncode == 0, f"nbgrader {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
    return p


def typed(source_cell: str) -> str:
    """What a student types: the source's answer without nbgrader's markers."""
    return "\n".join(ln for ln in source_cell.splitlines() if "### " not in ln)


def fill(release: Path, dest: Path, source: Path, mutate=None, hang: bool = False) -> None:
    nb = nbformat.read(release, 4)
    answers = {c.id: c.source for c in nbformat.read(source, 4).cells if c.id.startswith("answer-")}
    for c in nb.cells:
        if c.id in answers and mutate is not None:
            c.source = typed(answers[c.id])
            if mutate and MUTANT.old in c.source:
                c.source = c.source.replace(MUTANT.old, MUTANT.new)
    if hang:
        cell = nbformat.v4.new_code_cell("import time\ntime.sleep(3600)")
        nb.cells.insert(2, cell)
    nbformat.write(nb, dest)


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    start = time.perf_counter()
    root = tmp_path_factory.mktemp("course")
    course, exchange, home = root / "course", root / "exchange", root / "students"
    exchange.mkdir(mode=0o777)
    home.mkdir()
    build_course(course, [ASSIGNMENT])
    (course / "nbgrader_config.local.py").write_text(
        f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\n"
        f"c.Execute.timeout = {HANG_TIMEOUT}\n"
    )
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    release = course / "release" / ASSIGNMENT / "data.ipynb"
    source = course / "source" / ASSIGNMENT / "data.ipynb"
    validated = validate(release, home / "alice-validate.ipynb", source)
    nbgrader(course, "release_assignment", ASSIGNMENT, "--force")
    flags = [f"--Exchange.root={exchange}", f"--CourseDirectory.course_id={COURSE_ID}"]
    nbgrader(home, "fetch_assignment", ASSIGNMENT, *flags)
    fetched = home / ASSIGNMENT / "data.ipynb"
    students = {"alice": {"mutate": False}, "bob": {}, "carol": {"mutate": True},
                "dave": {"mutate": False, "hang": True}}  # fmt: skip
    for name, how in students.items():
        work = root / name
        (work / ASSIGNMENT).mkdir(parents=True)
        fill(
            fetched,
            work / ASSIGNMENT / "data.ipynb",
            source,
            how.get("mutate"),
            how.get("hang", False),
        )
        nbgrader(work, "submit", ASSIGNMENT, f"--student={name}", *flags)
    nbgrader(course, "collect", ASSIGNMENT, "--update")
    graded = nbgrader(course, "autograde", ASSIGNMENT, "--force", ok=False)
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    nbgrader(course, "export")
    with open(course / "grades.csv", newline="") as f:
        grades = {row["student_id"]: row for row in csv.DictReader(f)}
    feedback = {
        s: (course / "feedback" / s / ASSIGNMENT / "data.html").read_text() for s in students
    }
    return {"grades": grades, "feedback": feedback, "autograde": graded, "validated": validated,
            "seconds": time.perf_counter() - start, "course": course}  # fmt: skip


def validate(release: Path, filled: Path, source: Path) -> dict:
    """nbgrader validate through its API (its CLI exits 0 even when a notebook fails)."""
    code = (
        "import json, sys\nfrom nbgrader.validator import Validator\n"
        "print(json.dumps([Validator().validate(p) for p in sys.argv[1:]]))"
    )
    fill(release, filled, source, mutate=False)
    p = subprocess.run(
        [sys.executable, "-c", code, str(release), str(filled)],
        env=_env(), capture_output=True, text=True, timeout=170, cwd=filled.parent,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    released, solved = json.loads(p.stdout.strip().splitlines()[-1])
    return {"release": released, "solved": solved}


def test_grades_csv_holds_each_students_points(round_trip):
    g = round_trip["grades"]
    total = sum(POINTS.values())
    assert float(g["alice"]["max_score"]) == total == 3
    assert {s: float(row["score"]) for s, row in g.items()} == {
        "alice": 3.0,
        "bob": 0.0,
        "carol": float(POINTS["ash-false-color"]),  # tile-layout's mutant: 1 of 3
        "dave": 3.0,
    }


def test_mutant_feedback_names_the_exercise_and_rung(round_trip):
    html = text_of(round_trip["feedback"]["carol"])
    assert "tile-layout: failed at the values rung (0 of 2 point(s))" in html
    assert "ash-false-color: passed" in html


def test_stub_feedback_says_still_a_stub(round_trip):
    html = text_of(round_trip["feedback"]["bob"])
    assert "ash-false-color: still a stub" in html and "tile-layout: still a stub" in html


def test_hung_kernel_is_interrupted_and_the_rest_graded(round_trip):
    html = text_of(round_trip["feedback"]["dave"])
    assert "CellTimeoutError" in html or "KeyboardInterrupt" in html
    assert "tile-layout: passed" in html


def text_of(html: str) -> str:
    """The feedback as a reader sees it (syntax highlighting splits code into spans)."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def test_feedback_never_shows_the_hidden_tests(round_trip):
    for student, html in round_trip["feedback"].items():
        html = text_of(html)
        assert "nb.grade(" not in html, student
        assert "BEGIN HIDDEN TESTS" not in html, student
        assert "nb.require_written(" in html, student  # the visible half is there


def test_validate_api_fails_the_release_and_passes_the_solutions(round_trip):
    v = round_trip["validated"]
    failed = " ".join(str(c) for c in v["release"]["failed"])
    assert len(v["release"]["failed"]) == 2
    assert "ash-false-color: still a stub" in failed and "tile-layout: still a stub" in failed
    assert v["solved"] == {}


def test_round_trip_fits_in_three_minutes(round_trip):
    assert round_trip["seconds"] < 180, round_trip["seconds"]
    print(f"round trip: {round_trip['seconds']:.1f} s")


def test_no_stray_gradebook_outside_the_course(round_trip):
    course = round_trip["course"]
    assert (course / "gradebook.db").is_file()
    assert not (course.parent / "students" / "gradebook.db").exists()
    shutil.rmtree(course / "autograded", ignore_errors=True)


def test_answers_only_leaves_the_kernel_no_student_code(round_trip):
    """course.sanitize.AnswersOnly on a cheat: a patch of nb.grade, an answer run as Python."""
    from nbgrader.preprocessors import NbGraderPreprocessor  # noqa: F401 - nbgrader installed

    from course.sanitize import NOT_RUN, AnswersOnly

    course = round_trip["course"]
    nb = nbformat.read(course / "release" / ASSIGNMENT / "data.ipynb", 4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("nb.grade = lambda exercise_id: None"))
    answer = next(c for c in nb.cells if c.get("id") == "answer-tile-layout-2")
    answer.source = "import os\nos.system('echo pwned')"  # the %%answer line removed
    resources = {"nbgrader": {"notebook": "data", "assignment": ASSIGNMENT,
                              "db_url": f"sqlite:///{course / 'gradebook.db'}"}}  # fmt: skip
    out, _ = AnswersOnly().preprocess(nb, resources)
    added = out.cells[2]
    assert (
        added.cell_type == "raw" and added.source == NOT_RUN + "nb.grade = lambda exercise_id: None"
    )
    answer = next(c for c in out.cells if c.get("id") == "answer-tile-layout-2")
    assert answer.source == "%%answer tile-layout 2\nimport os\nos.system('echo pwned')"
    code = [c for c in out.cells if c.cell_type == "code"]
    assert all(c.metadata.get("nbgrader", {}).get("grade_id") for c in code)
