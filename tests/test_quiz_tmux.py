"""Acceptance: `shakyo quiz shapes --n 5` in a real terminal (tmux), answered as a person would.

The test starts the installed `shakyo` in a detached tmux session, waits for each
question, types an answer (right in three notations, wrong, empty, unreadable),
and reads the screen back. The right answers are worked out here from the same
seed (the same draws, computed by the reference). The last screen is written to
$SHAKYO_SCREENSHOTS/quiz-tmux.txt (run pytest with -s to see it).
Outside CI the test is skipped when tmux is missing; in CI (CI=true) that is a
failure, since .ci/run installs it.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from quiz import cli
from quiz.attempt import make_attempt
from quiz.catalog import load_questions, select
from quiz.draw import attempt_rng

SEED = 11
PROMPT = re.compile(r"^>( |$)", re.M)  # capture-pane drops the trailing space of a bare prompt
TMUX = shutil.which("tmux")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHAKYO = Path(sys.executable).with_name("shakyo")


def _tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", "shakyo-quiz-test", *args], capture_output=True, text=True, check=True
    ).stdout


def _screen() -> str:
    return _tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "quiz")


def _wait_for(predicate, what: str, timeout: float = 120.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        screen = _screen()
        if predicate(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; the screen:\n{_screen()}")


def _type(text: str) -> None:
    if text:
        _tmux("send-keys", "-t", "quiz", "-l", text)
    _tmux("send-keys", "-t", "quiz", "Enter")


@pytest.fixture
def terminal(tmp_path):
    if TMUX is None:
        if IN_CI:
            pytest.fail("tmux is missing; .ci/run installs it with apt-get")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    state = tmp_path / "state"
    cmd = (
        f"env SHAKYO_STATE_DIR={state} LANG=C.UTF-8 LC_ALL=C.UTF-8 "
        f"{SHAKYO} quiz shapes --n 5 --seed {SEED}; echo QUIZ-EXITED $?; sleep 600"
    )
    _tmux("-f", "/dev/null", "new-session", "-d", "-s", "quiz", "-x", "110", "-y", "50", cmd)
    try:
        yield state
    finally:
        subprocess.run(["tmux", "-L", "shakyo-quiz-test", "kill-server"], capture_output=True)


def test_shakyo_quiz_shapes_in_a_terminal(terminal, monkeypatch):
    monkeypatch.setenv("SHAKYO_STATE_DIR", str(terminal))  # choose() reads the same (empty) record
    picked = cli.choose(select(load_questions(), "shapes"), 5, random.Random(SEED))
    answers = [make_attempt(q, "en", attempt_rng(SEED, q.id, 0)).answer for q in picked]
    wrong = (*answers[1][:-1], answers[1][-1] + 1)
    typed = [
        ["x".join(map(str, answers[0]))],  # 1x384x32x32
        [str(wrong)],
        [""],  # show the answer
        ["no idea", str(tuple(answers[3]))],  # unreadable, then (1, 384, 32, 32)
        ["[" + ",".join(map(str, answers[4])) + "]"],  # [1,384,32,32]
    ]
    for i, lines in enumerate(typed, 1):
        for k, line in enumerate(lines):
            n_prompts = sum(len(x) for x in typed[: i - 1]) + k + 1
            _wait_for(
                lambda s, n=n_prompts: len(PROMPT.findall(s)) >= n and s.rstrip().endswith(">"),
                f"prompt {n_prompts} (question {i})",
            )
            _type(line)
    screen = _wait_for(lambda s: "QUIZ-EXITED" in s, "the end of the session")

    shots = Path(
        os.environ.get(
            "SHAKYO_SCREENSHOTS", Path(tempfile.gettempdir()) / "shakyo-site-screenshots"
        )
    )
    shots.mkdir(parents=True, exist_ok=True)
    (shots / "quiz-tmux.txt").write_text(screen, encoding="utf-8")
    print(screen)

    for i, q in enumerate(picked, 1):
        assert f"Question {i} of 5 · shapes · {q.id}" in screen
    fmt = lambda s: "(" + ", ".join(map(str, s)) + ")"  # noqa: E731
    assert f"✓ Right: {fmt(answers[0])}" in screen
    assert f"✗ Wrong: you answered {fmt(wrong)}; the answer is {fmt(answers[1])}" in screen
    assert f"→ The answer: {fmt(answers[2])}" in screen
    assert "Could not read that as a shape" in screen
    assert f"✓ Right: {fmt(answers[3])}" in screen and f"✓ Right: {fmt(answers[4])}" in screen
    assert screen.count("More on the study site:") == 5  # every answer explained, with its page
    assert "3 of 5 right (1 shown)." in screen
    assert "QUIZ-EXITED 0" in screen
    record = (terminal / "quiz.txt").read_text(encoding="utf-8")
    assert record.count("\tright\t") == 3 and "\twrong\t" in record and "\tshown\t" in record
