"""Reading a typed answer leniently, comparing it with the computed one, printing answers.

A person types shapes as ``(1, 384, 32, 32)``, ``[1,384,32,32]``, ``1x384x32x32``
or ``1 × 384 × 32 × 32``; numbers as ``53,323,425``, ``53 323 425``,
``53_323_425``, ``1.43e-4``, ``1.43 × 10^-4`` or ``40%``; a choice as ``b``,
``(B)`` or ``2``; a place in the published code as ``train.py:58``,
``train.py 57-59`` or ``train.py#L57-L59``. Full-width characters (a Japanese
input method) are read as their ASCII forms.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from quiz.catalog import Location, Question


class Unreadable(ValueError):
    """The typed text holds no answer of the expected kind; ``key`` names the hint to show."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


# A number with optional thousands separators (comma, space, underscore, apostrophe).
_NUMBER = re.compile(
    r"[-+]?(?:\d{1,3}(?:[,_' ]\d{3})+(?![\d])|\d+)(?:\.\d*)?(?:e[-+]?\d+)?%?|[-+]?\.\d+(?:e[-+]?\d+)?%?"
)
_POWER = re.compile(r"\s*[x×*·]\s*10\s*(?:\^|\*\*)\s*\(?\s*([-+]?\d+)\s*\)?")
_LOCATION = re.compile(
    r"([\w./\\-]*\w\.py)\s*(?:[:#, ]\s*)?(?:lines?|l)?\s*(\d+)(?:\s*(?:-|–|~|to|\.\.)\s*l?(\d+))?",
    re.I,
)


def normalise(typed: str) -> str:
    text = unicodedata.normalize("NFKC", typed).strip()
    return text.replace("−", "-").replace("—", "-").replace("\u3000", " ")


def numbers(typed: str) -> list[float]:
    """Every number in the text, separators removed, ``%`` divided out."""
    text = _POWER.sub(lambda m: f"e{m.group(1)}", normalise(typed).lower())
    # A decimal comma (0,5 or 0,857), not a thousands separator (1,234).
    if re.fullmatch(r"[-+]?0,\d+|[-+]?\d+,(?:\d{1,2}|\d{4,})", text):
        text = text.replace(",", ".")
    text = re.sub(r"(^|[\s(\[])([-+])\s+(?=[\d.])", r"\1\2", text)  # "- 0.5" is -0.5
    out = []
    for tok in _NUMBER.findall(text):
        pct = tok.endswith("%")
        tok = re.sub(r"[,_' ]", "", tok.rstrip("%"))
        try:
            v = float(tok)
        except ValueError:
            continue
        out.append(v / 100 if pct else v)
    return out


def parse(q: Question, typed: str, n_options: int = 0) -> Any:
    """The answer in ``typed`` as the question's answer type; raises :class:`Unreadable`."""
    text = normalise(typed)
    kind = q.answer
    if kind in ("shape", "ints"):
        dims = re.findall(r"-?\d+", text)
        if not dims:
            raise Unreadable(kind)
        return tuple(int(d) for d in dims)
    if kind in ("int", "float"):
        vals = numbers(text)
        if len(vals) != 1:
            raise Unreadable(kind)
        if kind == "int":
            if not math.isfinite(vals[0]) or vals[0] != int(vals[0]):
                raise Unreadable("int")
            return int(vals[0])
        return vals[0]
    if kind == "choice":
        t = text.lower().strip(" ().:）")
        letters = "abcdefgh"[:n_options]
        if len(t) == 1 and t in letters:
            return t
        if t.isdigit() and 1 <= int(t) <= n_options:
            return letters[int(t) - 1]
        raise Unreadable("choice")
    if kind == "location":
        m = _LOCATION.search(text.replace("\\", "/"))
        if not m:
            raise Unreadable("location")
        first = int(m.group(2))
        last = int(m.group(3)) if m.group(3) else first
        return (m.group(1), min(first, last), max(first, last))
    raise ValueError(f"unknown answer type {kind}")


def _same_file(typed: str, loc: Location) -> bool:
    """``utils.py`` and ``src_inference1/utils.py`` both name src_inference1/utils.py."""
    a = typed.strip("./").lower().split("/")
    b = loc.file.lower().split("/")
    return a == b[-len(a) :]


@dataclass(frozen=True)
class Verdict:
    right: bool
    note: str = ""  # "file" when the file is right but not the lines


def judge(q: Question, expected: Any, got: Any) -> Verdict:
    """Whether the parsed answer ``got`` is the computed (or stored) ``expected``."""
    if q.answer in ("shape", "ints", "int", "choice"):
        return Verdict(
            tuple(got) == tuple(expected) if q.answer in ("shape", "ints") else got == expected
        )
    if q.answer == "float":
        tol = max(q.abs_tol, q.rel_tol * abs(float(expected)))
        return Verdict(abs(float(got) - float(expected)) <= tol)
    if q.answer == "location":
        loc: Location = expected
        file, first, last = got
        if not _same_file(file, loc):
            return Verdict(False)
        inside = loc.first <= first and last <= loc.last
        return Verdict(inside, "" if inside else "file")
    raise ValueError(f"unknown answer type {q.answer}")


def show(q: Question, value: Any) -> str:
    """An answer (computed or parsed) as the quiz prints it."""
    if q.answer in ("shape", "ints"):
        from quiz.compute import fmt_shape

        return fmt_shape(value)
    if q.answer == "int":
        return f"{int(value):,}"
    if q.answer == "float":
        return format(float(value), q.format or ".4g")
    if q.answer == "location" and isinstance(value, tuple):
        file, first, last = value
        return f"{file}:{first}" + (f"-{last}" if last != first else "")
    return str(value)
