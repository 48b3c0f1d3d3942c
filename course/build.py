"""``shakyo course build [--out DIR] [--only SLUG ...]``: write the nbgrader course.

DIR gets ``nbgrader_config.py`` and ``source/<assignment>/<notebook>.ipynb``; nothing
else in DIR is touched (the gradebook, release/, submitted/ ... of a running course
stay). The new ``source/`` is written beside the old one and swapped in by a rename.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import nbformat

from course.chapters import QUIZ, notebooks
from course.kernel import CODE_STUB
from course.notebooks import LANGS, new_notebook, notebook_cells
from reference.errors import ConfigError
from reference.utils import atomic_write_text

MARK = "# written by `shakyo course build`"
CELL_TIMEOUT = 180  # s per cell: a failing check also runs its diagnosis

CONFIG = f"""{MARK}; rebuilt on every build: put your own settings in
# nbgrader_config.local.py beside it (loaded last, so it wins).
import os

c = get_config()  # noqa: F821 - nbgrader's config loader defines it
c.CourseDirectory.course_id = "shakyo-coat-ulstm"
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}
# A cell may wait for a check and its diagnosis; a kernel that hangs is interrupted.
c.Execute.timeout = {CELL_TIMEOUT}
# Minimal tracebacks: an error in a graded cell shows its message, not the hidden code.
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Minimal"]
# The feedback HTML never shows the hidden half of a graded cell.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# Exams: uncomment (or set in nbgrader_config.local.py) so that the grading kernel runs
# no code of the student's: added code cells become raw cells, and each answer cell
# keeps its %%answer line (course/sanitize.py).
# c.Autograde.sanitize_preprocessors.append("course.sanitize.AnswersOnly")
_local = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbgrader_config.local.py")
if os.path.exists(_local):
    load_subconfig(_local)  # noqa: F821
"""


def quiz_kinds() -> list[str]:
    """The quiz's kinds that hold questions: one notebook each, in the catalog's order."""
    from quiz.catalog import KINDS, load_questions

    held = {q.kind for q in load_questions()}
    return [k for k in KINDS if k in held]


QUIZ_INTRO = {
    "en": (
        "# Quiz: {kind} (optional, not graded)\n\nEach question's numbers come from the "
        "reference. Assign your answer to `answer` (as you would type it in `shakyo quiz`) "
        "and run the cell below it: it says whether you are right and why. Nothing here is "
        "graded: the check shows the answer, so it is for practice only."
    ),
    "ja": (
        "# クイズ: {kind} (任意、採点なし)\n\n問題の数字はリファレンスから出します。答えを "
        "`answer` に代入し (`shakyo quiz` で入力するのと同じ書き方で)、その下のセルを実行すると、"
        "正しいかどうかと理由が表示されます。ここは採点しません。確認が答えを表示するので、"
        "練習専用です。"
    ),
}


def quiz_cells(kind: str, lang: str = "en") -> list:
    """The questions of one kind (quiz/notebook.py makes the cells; none is graded)."""
    from quiz.notebook import question_cells

    intro = nbformat.v4.new_markdown_cell(QUIZ_INTRO[lang].format(kind=kind))
    intro["id"] = "quiz-intro"
    cells = [intro]
    for k, c in enumerate(question_cells(kind, lang)):
        cell = nbformat.from_dict(c)
        cell["id"] = f"quiz-{k}"
        cells.append(cell)
    return cells


def build_course(out: Path, only: list[str] | None = None, lang: str = "en") -> list[Path]:
    """Write the course into ``out`` in ``lang``; the notebooks written (paths inside ``out``)."""
    if lang not in LANGS:
        raise ConfigError(f"--lang {lang}: the course is written in {' or '.join(LANGS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"--out {out}: is a file; the course needs a folder (choose another --out)"
        )
    config = out / "nbgrader_config.py"
    if config.exists() and MARK not in config.read_text(encoding="utf-8"):
        raise ConfigError(f"{config}: not written by `shakyo course build`; choose another --out")
    chosen = notebooks(only)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".source-", dir=out))
    except OSError as e:
        raise ConfigError(
            f"--out {out}: cannot write there ({e.strerror}); choose a folder you can write"
        ) from None
    written = []
    try:
        for nb in chosen:
            path = tmp / nb.chapter.slug / f"{nb.name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(new_notebook(notebook_cells(nb, lang)), path)
            written.append(Path("source") / nb.chapter.slug / path.name)
        if only is None or QUIZ.slug in only:
            (tmp / QUIZ.slug).mkdir()
            for kind in quiz_kinds():
                path = tmp / QUIZ.slug / f"quiz-{kind}.ipynb"
                nbformat.write(new_notebook(quiz_cells(kind, lang)), path)
                written.append(Path("source") / QUIZ.slug / path.name)
        old = out / "source"
        if old.exists():
            old.rename(tmp.with_name(tmp.name + "-old"))
        tmp.rename(old)
        shutil.rmtree(tmp.with_name(tmp.name + "-old"), ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(config, CONFIG)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="write nbgrader_config.py and source/ into DIR")
    b.add_argument("--out", default="build/course", help="the course folder (default build/course)")
    b.add_argument(
        "--only",
        nargs="+",
        metavar="ASSIGNMENT",
        help="build only these assignments (e.g. 01-data)",
    )
    b.add_argument(
        "--lang", default="en", help="en or ja: the notebooks' texts (check reports stay English)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        import nbgrader  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            "the course needs nbgrader: pip install -e '.[course]' (make .venv/.installed does)"
        ) from e
    written = build_course(Path(args.out), args.only, args.lang)
    assignments = sorted({p.parts[1] for p in written})
    print(
        f"wrote {len(written)} notebook(s) in {len(assignments)} assignment(s) to {args.out}/source"
    )
    for p in written:
        print(f"  {p}")
    print(f"next: cd {args.out} && nbgrader generate_assignment {assignments[0]} --force")
    return 0
