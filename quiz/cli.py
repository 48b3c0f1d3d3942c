"""``shakyo quiz [TOPIC] [--n N] [--lang en|ja] [--list [--json]]``: questions in the terminal.

shakyo quiz                  5 questions of any kind, those you have not answered first
shakyo quiz shapes --n 3     3 shape questions (TOPIC: a kind, `all`, or a question id)
shakyo quiz --list           every question: id, kind, languages, site page, your record
shakyo quiz --list --json    the same for scripts

Each computed question draws its numbers for this attempt and computes its
answer by running the reference. Type the answer and Enter; an empty line (or
?) shows the answer, q stops. Results go to quiz.txt beside the exercises'
progress (quiz/progress.py). The language is --lang, else the locale
(LC_ALL, LC_MESSAGES, LANG starting with "ja" means Japanese).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Callable
from typing import TextIO

from quiz import progress
from quiz.answers import Unreadable, show
from quiz.attempt import Attempt, make_attempt
from quiz.catalog import KINDS, Question, load_questions, select
from quiz.draw import attempt_rng
from quiz.terminal import wrap
from reference.errors import ConfigError

SITE_URL = "http://127.0.0.1:8000/"

LABELS = {
    "en": {
        "intro": "shakyo quiz: {n} question(s){topic}. Type your answer and press Enter; an empty line shows the answer, q stops.",
        "topic": " on {topic}",
        "header": "Question {i} of {n} · {kind} · {id}",
        "running": "(running the reference to compute the answer...)",
        "answer_as": "Answer with {format}.",
        "right": "✓ Right: {answer}",
        "wrong": "✗ Wrong: you answered {got}; the answer is {answer}",
        "wrong_lines": "✗ Wrong: right file, but the lines are {answer}",
        "shown": "→ The answer: {answer}",
        "options": "Why each option is right or wrong:",
        "more": "More on the study site: {link} (`make serve`, then {url})",
        "unreadable": "Could not read that as {format}; try again (empty line: show the answer).",
        "summary": "{right} of {asked} right{shown}. Your record: {path}",
        "summary_shown": " ({k} shown)",
        "stopped": "Stopped.",
        "next": "Next: `shakyo quiz --list` shows every question and your record.",
    },
    "ja": {
        "intro": "shakyo quiz: {n} 問{topic}。答えを入力して Enter を押します。空行で答えを表示、q で終了します。",
        "topic": " ({topic})",
        "header": "問題 {i} / {n} · {kind} · {id}",
        "running": "(リファレンスを実行して答えを計算しています...)",
        "answer_as": "{format}",
        "right": "✓ 正解: {answer}",
        "wrong": "✗ 不正解: あなたの答えは {got}、正しくは {answer}",
        "wrong_lines": "✗ 不正解: ファイルは合っていますが、行は {answer} です",
        "shown": "→ 答え: {answer}",
        "options": "選択肢ごとの理由:",
        "more": "学習サイトで詳しく: {link} (`make serve` のあと {url})",
        "unreadable": "{format}。もう一度どうぞ (空行で答えを表示)。",
        "summary": "{asked} 問中 {right} 問正解{shown}。記録: {path}",
        "summary_shown": " ({k} 問は答えを表示)",
        "stopped": "終了しました。",
        "next": "次へ: `shakyo quiz --list` で全問題とあなたの記録を見られます。",
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "topic",
        nargs="?",
        metavar="TOPIC",
        help=f"a kind ({', '.join(KINDS)}), `all` (default) or a question id",
    )
    parser.add_argument(
        "--n", type=int, default=5, metavar="N", help="how many questions (default 5)"
    )
    parser.add_argument(
        "--lang", choices=("en", "ja"), default=None, help="language (default: from the locale)"
    )
    parser.add_argument("--list", action="store_true", help="list the questions instead of asking")
    parser.add_argument(
        "--json", action="store_true", help="with --list: print JSON (implies --list)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="draw the same questions and numbers again"
    )


def locale_lang(env: dict[str, str] | None = None) -> str:
    """'ja' when the first set of LC_ALL, LC_MESSAGES, LANG starts with 'ja', else 'en'."""
    env = os.environ if env is None else env
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


def site_url(q: Question, lang: str) -> str:
    return SITE_URL + ("ja/" if lang == "ja" else "") + q.link


def choose(pool: tuple[Question, ...], n: int, rng: random.Random) -> list[Question]:
    """``n`` questions: never attempted first, then last wrong or shown, then the rest;
    random within each group; asked in catalog order."""
    records = progress.load()

    def group(q: Question) -> int:
        r = records.get(q.id)
        return 0 if r is None else 1 if r.last != "right" else 2

    shuffled = list(pool)
    rng.shuffle(shuffled)
    picked = sorted(shuffled, key=group)[:n]
    return sorted(picked, key=lambda q: q.index)


# ----------------------------------------------------------------- listing
def list_rows(pool: tuple[Question, ...]) -> list[dict]:
    records = progress.load()
    rows = []
    for q in pool:
        r = records.get(q.id)
        rows.append(
            {
                "id": q.id,
                "kind": q.kind,
                "answer": q.answer,
                "languages": list(q.languages),
                "page": q.link,
                "attempts": r.attempts if r else 0,
                "right": r.right if r else 0,
                "last": r.last if r else None,
            }
        )
    return rows


def print_list(pool: tuple[Question, ...], as_json: bool, out: TextIO) -> None:
    rows = list_rows(pool)
    if as_json:
        out.write(json.dumps({"questions": rows}, ensure_ascii=False, indent=1) + "\n")
        return
    cells = [("id", "kind", "languages", "page", "you")]
    for r in rows:
        you = f"{r['right']}/{r['attempts']} right" if r["attempts"] else "-"
        cells.append((r["id"], r["kind"], ",".join(r["languages"]), r["page"], you))
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    for c in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip() + "\n")
    counts = {k: sum(1 for r in rows if r["kind"] == k) for k in KINDS}
    out.write(
        f"{len(rows)} questions: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + "\n"
    )


# ----------------------------------------------------------------- asking
def _print(out: TextIO, text: str = "", indent: str = "") -> None:
    out.write((wrap(text, indent=indent) if text else "") + "\n")
    out.flush()


def ask(a: Attempt, read: Callable[[], str | None], out: TextIO) -> str | None:
    """Ask one attempt; 'right', 'wrong', 'shown', or None when the learner stops."""
    L = LABELS[a.lang]
    _print(out, a.text())
    for letter, text in a.option_lines():
        _print(out, f"{letter}) {text}", indent="   ")
    _print(out, L["answer_as"].format(format=a.format_hint()))
    while True:
        typed = read()
        if typed is None or typed.strip().lower() in ("q", "quit", "exit"):
            return None
        if typed.strip() in ("", "?"):
            result, line = "shown", L["shown"].format(answer=a.shown_answer)
            break
        try:
            got = a.read(typed)
        except Unreadable:
            _print(out, L["unreadable"].format(format=a.format_hint()))
            continue
        verdict = a.judge(got)
        if verdict.right:
            result, line = "right", L["right"].format(answer=a.shown_answer)
        elif verdict.note == "file":
            result, line = "wrong", L["wrong_lines"].format(answer=a.shown_answer)
        else:
            shown = got if a.question.answer == "choice" else show(a.question, got)
            result, line = "wrong", L["wrong"].format(got=shown, answer=a.shown_answer)
        break
    _print(out, line)
    _print(out, a.explain(), indent="  ")
    if a.options:
        _print(out, L["options"], indent="  ")
        for letter, right, why in a.option_whys():
            _print(out, f"{letter}) {'✓' if right else '✗'} {why}", indent="    ")
    q = a.question
    _print(out, L["more"].format(link=q.link, url=site_url(q, a.lang)), indent="  ")
    return result


def _reader(stream: TextIO, out: TextIO) -> Callable[[], str | None]:
    def read() -> str | None:
        out.write("> ")
        out.flush()
        line = stream.readline()
        if not line:
            out.write("\n")
            return None
        return line.rstrip("\n")

    return read


def session(
    pool: tuple[Question, ...],
    n: int,
    lang: str,
    seed: int | None,
    stream: TextIO,
    out: TextIO,
    topic: str | None = None,
) -> tuple[int, int]:
    """Ask ``n`` questions of ``pool``; (asked, right)."""
    L = LABELS[lang]
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    picked = choose(pool, n, random.Random(seed))
    about = L["topic"].format(topic=topic) if topic and topic != "all" else ""
    _print(out, L["intro"].format(n=len(picked), topic=about))
    read = _reader(stream, out)
    asked = right = shown = 0
    for i, q in enumerate(picked, 1):
        _print(out)
        _print(out, L["header"].format(i=i, n=len(picked), kind=q.kind, id=q.id))
        if q.computed and i == 1:
            _print(out, L["running"])
        attempts = progress.load().get(q.id)
        a = make_attempt(q, lang, attempt_rng(seed, q.id, attempts.attempts if attempts else 0))
        result = ask(a, read, out)
        if result is None:
            _print(out, L["stopped"])
            break
        progress.record(q.id, result)
        asked += 1
        right += result == "right"
        shown += result == "shown"
    _print(out)
    extra = L["summary_shown"].format(k=shown) if shown else ""
    _print(
        out, L["summary"].format(right=right, asked=asked, shown=extra, path=progress.quiz_path())
    )
    _print(out, L["next"])
    return asked, right


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ConfigError(f"--n {args.n}: ask at least 1 question")
    questions = load_questions()
    pool = select(questions, args.topic)
    if args.list or args.json:
        print_list(pool, args.json, sys.stdout)
        return 0
    lang = args.lang or locale_lang()
    session(pool, args.n, lang, args.seed, sys.stdin, sys.stdout, topic=args.topic)
    return 0
