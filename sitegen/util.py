"""Small helpers of the site generator: hashes, atomic writes, Markdown bits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from reference.utils import atomic_write_text

SKIP_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def text_hash(text: str, n: int = 12) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def tree_hash(paths: Iterable[Path], extra: str = "") -> str:
    """One hash over every file below ``paths`` (names and bytes) and ``extra``."""
    h = hashlib.sha256(extra.encode("utf-8"))
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if SKIP_PARTS & set(f.parts) or f.suffix == ".pyc":
                continue
            h.update(str(f.relative_to(root.parent)).encode("utf-8") + b"\0")
            h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def write_json(path: Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def md_escape_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def indent(text: str, n: int = 4) -> str:
    pad = " " * n
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


def fence(text: str, lang: str = "text") -> str:
    """A fenced code block that survives backticks inside ``text``."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"
