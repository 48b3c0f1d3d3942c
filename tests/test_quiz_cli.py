"""`shakyo quiz` in-process: a scripted session, the record, the list, the languages, errors."""

from __future__ import annotations

import io
import json
import random

import pytest

from quiz import cli, progress
from quiz.attempt import make_attempt
from quiz.catalog import load_questions, select
from quiz.draw import attempt_rng
from quiz.notebook import check, question_cells
from shakyo.cli import main


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    d = tmp_path / "state"
    monkeypatch.setenv("SHAKYO_STATE_DIR", str(d))
    return d


def planned(topic: str, n: int, seed: int, lang: str = "en"):
    """The attempts a session with this seed will ask (same record, same draws)."""
    pool = select(load_questions(), topic)
    picked = cli.choose(pool, n, random.Random(seed))
    return [make_attempt(q, lang, attempt_rng(seed, q.id, 0)) for q in picked]


def session(topic: str, n: int, seed: int, lines: list[str], lang: str = "en") -> str:
    out = io.StringIO()
    pool = select(load_questions(), topic)
    cli.session(pool, n, lang, seed, io.StringIO("".join(f"{x}\n" for x in lines)), out, topic)
    return out.getvalue()


def test_a_session_marks_right_wrong_shown_and_unreadable_answers_and_records_them():
    a = planned("data", 5, seed=3)
    right = [x.shown_answer for x in a]
    wrong = str(int(a[1].answer) + 1) if a[1].question.answer == "int" else "0.999"
    text = session("data", 5, 3, [right[0], wrong, "", "no idea", right[3], "q"])
    assert text.count("✓ Right") == 2
    assert "✗ Wrong: you answered" in text and f"the answer is {right[1]}" in text
    assert f"→ The answer: {right[2]}" in text
    assert "Could not read that as" in text
    assert "Stopped." in text and "2 of 4 right (1 shown)" in text
    # Every asked question is explained and links to its page.
    for x in a[:4]:
        assert x.explain().split(".")[0][:40] in text.replace("\n  ", " ")
        assert f"http://127.0.0.1:8000/{x.question.link}" in text
    records = progress.load()
    assert [records[x.question.id].last for x in a[:4]] == ["right", "wrong", "shown", "right"]
    assert a[4].question.id not in records


def test_the_exercise_progress_file_is_left_untouched(state_dir):
    state_dir.mkdir()
    exercise_progress = state_dir / "progress.txt"
    exercise_progress.write_text("# shakyo progress\nlayer-norm-2d\tpassed\t-\t0\t-\t-\n")
    before = exercise_progress.read_bytes()
    session("metric", 1, 0, [""])
    assert exercise_progress.read_bytes() == before
    assert (state_dir / "quiz.txt").read_text().startswith("# shakyo quiz: id, attempts")


def test_unanswered_then_wrong_questions_come_first():
    pool = select(load_questions(), "metric")
    for q in pool[:-1]:
        progress.record(q.id, "right")
    assert [q.id for q in cli.choose(pool, 1, random.Random(0))] == [pool[-1].id]
    progress.record(pool[-1].id, "right")
    progress.record(pool[0].id, "wrong")
    assert [q.id for q in cli.choose(pool, 1, random.Random(0))] == [pool[0].id]


def test_a_multiple_choice_question_explains_every_option():
    (a,) = planned("why-no-flips", 1, seed=5)
    wrong = next(letter for letter, o in a.options if not o.right)
    text = session("why-no-flips", 1, 5, [wrong])
    assert f"✗ Wrong: you answered {wrong}; the answer is {a.answer}" in text
    for letter, _ in a.options:
        assert f"{letter}) " in text
    assert "✓ Right:" not in text and "Why each option" in text


def test_a_place_in_the_right_file_but_the_wrong_lines_says_so():
    text = session("orig-epochs", 1, 0, ["train.py:12"])
    assert "✗ Wrong: right file, but the lines are train.py:57-59" in text
    assert "github.com/DrHB/2nd-place-contrails/blob/" in text
    text = session("orig-epochs", 1, 0, ["train.py 58"])
    assert "✓ Right: train.py:57-59" in text


def test_japanese_from_the_locale(monkeypatch, capsys):
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["quiz", "data-labelled-frame"]) == 0
    out = capsys.readouterr().out
    assert "問題 1 / 1 · data · data-labelled-frame" in out
    assert "→ 答え: 4" in out and "http://127.0.0.1:8000/ja/facts/data/#records" in out
    assert "1 問中 0 問正解 (1 問は答えを表示)" in out


@pytest.mark.parametrize(
    "env, lang",
    [
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LC_ALL": "C.UTF-8", "LANG": "ja_JP.UTF-8"}, "en"),
        ({"LC_MESSAGES": "ja_JP", "LANG": "en_US"}, "ja"),
        ({}, "en"),
    ],
)
def test_the_locale_picks_the_language(env, lang):
    assert cli.locale_lang(env) == lang


def test_list_as_a_table_and_as_json(capsys):
    assert main(["quiz", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["questions"]
    assert len(rows) == len(load_questions()) >= 40
    assert rows[0].keys() >= {"id", "kind", "languages", "page", "attempts"}
    assert all(r["languages"] == ["en", "ja"] for r in rows)
    progress.record("fth-global", "right")
    assert main(["quiz", "metric", "--list"]) == 0
    out = capsys.readouterr().out
    assert "fth-global" in out and "1/1 right" in out and "shape-logits" not in out
    assert out.rstrip().endswith("6 questions: 6 metric")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["quiz", "shapez"], "shakyo quiz: error: unknown topic `shapez`; did you mean `shapes`?"),
        (["quiz", "--n", "0"], "shakyo quiz: error: --n 0: ask at least 1 question"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_an_unknown_language_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["quiz", "--lang", "fr"])
    assert e.value.code == 2
    assert "invalid choice: 'fr'" in capsys.readouterr().err


def test_notebook_cells_ask_and_check_with_the_same_numbers(capsys):
    cells = question_cells("metric", lang="ja")
    assert len(cells) == 3 * 6
    json.dumps(cells)  # nbformat cells are plain JSON
    assert [c["cell_type"] for c in cells[:3]] == ["markdown", "code", "code"]
    assert "check('fth-value', answer, lang='ja', seed='course')" in "".join(cells[2]["source"])
    a = make_attempt(load_questions()[0], "en", attempt_rng("course", load_questions()[0].id))
    assert check(a.question.id, a.answer, echo=False)
    assert not check(a.question.id, (1, 2, 3), echo=False)
    assert not check(a.question.id, None)
    assert capsys.readouterr().out.startswith("✗ ")
