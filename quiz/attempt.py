"""One attempt at a question: the drawn numbers, the computed answer, the filled-in words.

:func:`make_attempt` draws the question's values, runs its compute function on
the reference, shuffles the options of a multiple-choice question, and keeps
everything a front end needs to ask, judge and explain. The terminal, the site
and the notebook cells all render an :class:`Attempt`; ``target`` says how
(``"text"``: plain text, tables aligned; ``"markdown"``: the site's Markdown).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from quiz import answers
from quiz.catalog import Option, Question
from quiz.compute import Table
from quiz.draw import draw

LETTERS = "abcdefgh"

# What to type, per answer type (shown under the question), and why a text was not read.
FORMATS = {
    "en": {
        "shape": "a shape, e.g. (1, 3, 256, 256) or 1x3x256x256",
        "ints": "numbers in brackets, e.g. (3, 1, 2)",
        "int": "a whole number (1,234 or 1234)",
        "float": "a number (1.43e-4, 0.857 or 40%)",
        "choice": "a letter",
        "location": "file:line or file:first-last, e.g. train.py:12 or train.py:10-14",
    },
    "ja": {
        "shape": "形で答えます。例: (1, 3, 256, 256) または 1x3x256x256",
        "ints": "括弧に入れた数で答えます。例: (3, 1, 2)",
        "int": "整数で答えます (1,234 でも 1234 でも可)",
        "float": "数で答えます (1.43e-4、0.857、40% など)",
        "choice": "記号 (a, b, ...) で答えます",
        "location": "ファイル:行 または ファイル:始め-終わり で答えます。例: train.py:12、train.py:10-14",
    },
}


@dataclass
class Attempt:
    question: Question
    lang: str
    params: dict[str, Any]
    answer: Any  # the computed value, the right letter, or the Location
    facts: dict[str, Any] = field(default_factory=dict)
    options: list[tuple[str, Option]] = field(default_factory=list)  # (letter, option), as shown

    def _values(self, target: str) -> dict[str, str]:
        vals: dict[str, Any] = {**self.params, **self.facts}
        out = {}
        for k, v in vals.items():
            if isinstance(v, dict) and self.lang in v:  # a fact in words: {"en": .., "ja": ..}
                v = v[self.lang]
            if isinstance(v, Table):
                out[k] = v.markdown() if target == "markdown" else v.text()
            elif k == "url" and target == "markdown":
                out[k] = f"<{v}>"
            else:
                out[k] = str(v)
        out["answer"] = self.shown_answer
        return out

    @property
    def shown_answer(self) -> str:
        if self.question.answer == "choice":
            return self.answer
        return answers.show(self.question, self.answer)

    def text(self, target: str = "text") -> str:
        return self.question.texts[self.lang].text.format_map(self._values(target))

    def explain(self, target: str = "text") -> str:
        return self.question.texts[self.lang].explain.format_map(self._values(target))

    def format_hint(self) -> str:
        return FORMATS[self.lang][self.question.answer]

    def option_lines(self) -> list[tuple[str, str]]:
        return [(letter, o.texts[self.lang][0]) for letter, o in self.options]

    def option_whys(self) -> list[tuple[str, bool, str]]:
        return [(letter, o.right, o.texts[self.lang][1]) for letter, o in self.options]

    def read(self, typed: str) -> Any:
        """The answer in ``typed`` (raises answers.Unreadable)."""
        return answers.parse(self.question, typed, n_options=len(self.options))

    def judge(self, got: Any) -> answers.Verdict:
        return answers.judge(self.question, self.answer, got)


def make_attempt(q: Question, lang: str, rng: random.Random) -> Attempt:
    """Draw, compute and shuffle: one attempt at ``q`` in ``lang`` ('en' or 'ja')."""
    params = draw(q.draw, rng)
    facts: dict[str, Any] = {}
    options: list[tuple[str, Option]] = []
    if q.computed:
        from quiz.compute import run

        result = run(q.compute, params, q.args)
        answer, facts = result.answer, dict(result.facts)
    elif q.kind == "design":
        order = list(q.options)
        rng.shuffle(order)
        options = [(LETTERS[i], o) for i, o in enumerate(order)]
        (answer,) = (letter for letter, o in options if o.right)
    else:
        answer = q.location
        facts = {"file": q.location.file, "url": q.location.url}
    return Attempt(q, lang, params, answer, facts, options)
