"""Text for a terminal: wrapping by display width, so Japanese lines break too.

``textwrap`` breaks only at spaces and counts a CJK character as one column;
Japanese has no spaces and its characters take two columns. :func:`wrap`
breaks between any two CJK characters (never before 、。）」 and the like) and
between words elsewhere.
"""

from __future__ import annotations

import re
import shutil
import unicodedata

_NO_LINE_START = set("、。，．・：；？！）」』】〕ー…,.:;!?)]}")
_CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
# A shape such as (1, 384, 32, 32) stays on one line; then one CJK character, spaces, a word.
_TOKEN = re.compile(rf"\(\d+(?:, \d+)*\)[^\s{_CJK}]*|[{_CJK}]|\s+|[^\s{_CJK}]+")


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal (East Asian wide characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def terminal_width(default: int = 100) -> int:
    return max(40, min(default, shutil.get_terminal_size((default, 24)).columns - 1))


def _wrap_paragraph(text: str, cols: int, indent: str) -> list[str]:
    lines, line = [], indent
    for tok in _TOKEN.findall(text):
        if tok.isspace():
            if line.strip():
                line += " "
            continue
        if width(line) + width(tok) > cols and line.strip() and tok[0] not in _NO_LINE_START:
            lines.append(line.rstrip())
            line = indent
        line += tok
    if line.strip():
        lines.append(line.rstrip())
    return lines


def wrap(text: str, cols: int | None = None, indent: str = "") -> str:
    """Wrap every paragraph of ``text`` to ``cols`` columns; lines starting with two
    spaces (tables, code) are kept as they are."""
    cols = cols or terminal_width()
    out: list[str] = []
    for para in text.split("\n"):
        if para.startswith("  ") or not para.strip():
            out.append(indent + para if para.strip() else "")
        else:
            out += _wrap_paragraph(para, cols, indent)
    return "\n".join(out)
