"""The hook for the course: quiz questions as notebook cells, and the check those cells call.

The nbgrader course (a later issue) builds its optional quiz notebook with
:func:`question_cells`; each question becomes three nbformat-4 cells: the
question (Markdown), a code cell where the learner assigns ``answer``, and a
code cell calling :func:`check`. Both use the same seed, so the numbers the
learner reads are the numbers ``check`` computes the answer for, by running
the reference in the learner's kernel.
"""

from __future__ import annotations

from typing import Any

from quiz.answers import Unreadable
from quiz.attempt import Attempt, make_attempt
from quiz.catalog import Question, load_questions, select
from quiz.draw import attempt_rng

SEED = "course"


def _attempt(q: Question, lang: str, seed: int | str) -> Attempt:
    return make_attempt(q, lang, attempt_rng(seed, q.id))


def _cell(kind: str, source: str, qid: str) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "cell_type": kind,
        "metadata": {"tags": [f"quiz-{qid}"]},
        "source": source.splitlines(keepends=True),
    }
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def question_cells(
    topic: str | None = None, lang: str = "en", seed: int | str = SEED
) -> list[dict[str, Any]]:
    """nbformat-4 cells for the questions of ``topic`` (a kind, an id, or None for all)."""
    cells = []
    for q in select(load_questions(), topic):
        a = _attempt(q, lang, seed)
        md = [f"### `{q.id}`", "", a.text("markdown"), ""]
        md += [f"- **{letter}.** {text}" for letter, text in a.option_lines()]
        md += ["", f"*{a.format_hint()}*"]
        cells.append(_cell("markdown", "\n".join(md), q.id))
        cells.append(_cell("code", "answer = None  # your answer", q.id))
        cells.append(
            _cell(
                "code",
                f"from quiz.notebook import check\ncheck({q.id!r}, answer, lang={lang!r}, seed={seed!r})",
                q.id,
            )
        )
    return cells


def check(
    question_id: str, answer: Any, lang: str = "en", seed: int | str = SEED, echo: bool = True
) -> bool:
    """Judge ``answer`` (a string as typed in the terminal, or a tuple / number) and explain."""
    (q,) = select(load_questions(), question_id)
    a = _attempt(q, lang, seed)
    try:
        got = a.read(answer if isinstance(answer, str) else str(answer))
        right = a.judge(got).right
    except Unreadable:
        right = False
    if echo:
        mark = ("✓ " if right else "✗ ") + a.shown_answer
        print(mark + "\n" + a.explain())
        for letter, ok, why in a.option_whys():
            print(f"  {letter}) {'✓' if ok else '✗'} {why}")
    return right
