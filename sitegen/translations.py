"""Which Japanese pages are behind their English page.

Every ``docs/**/x.ja.md`` starts with front matter naming the English page
version it translates::

    ---
    translation_of: 3f9c2a1b7d4e   # text_hash of docs/**/x.md when it was translated
    ---

When the English page changes, its hash no longer matches and the page is
listed as stale until someone reads the translation again, updates it, and
stamps it (``python -m sitegen translations --stamp docs/x.ja.md``). The
Japanese texts of the generated exercise pages live in
``docs/exercises/catalog.ja.toml`` with the same kind of stamp per exercise.
"""

from __future__ import annotations

import re
from pathlib import Path

from sitegen.paths import DOCS, SiteError
from sitegen.util import text_hash

STAMP = re.compile(r"\A---\n(?:.*\n)*?translation_of: ([0-9a-f]{12})\n(?:.*\n)*?---\n", re.M)


def english_of(ja: Path) -> Path:
    return ja.with_name(ja.name[: -len(".ja.md")] + ".md")


def stamp_of(ja: Path) -> str | None:
    m = STAMP.match(ja.read_text(encoding="utf-8"))
    return m.group(1) if m else None


def page_pairs(docs: Path = DOCS) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(English, Japanese) pairs, and 'page: problem' for pages without a partner."""
    pairs, problems = [], []
    for en in sorted(docs.rglob("*.md")):
        if en.name.endswith(".ja.md"):
            if not english_of(en).is_file():
                problems.append(f"{en.relative_to(docs)}: no English page {english_of(en).name}")
            continue
        ja = en.with_name(en.stem + ".ja.md")
        if not ja.is_file():
            problems.append(f"{en.relative_to(docs)}: no Japanese page {ja.name}")
        else:
            pairs.append((en, ja))
    return pairs, problems


def stale_pages(docs: Path = DOCS) -> list[str]:
    """'page: why' for every Japanese page that is missing, unstamped or behind its English page."""
    pairs, problems = page_pairs(docs)
    for en, ja in pairs:
        stamp = stamp_of(ja)
        now = text_hash(en.read_text(encoding="utf-8"))
        rel = ja.relative_to(docs)
        if stamp is None:
            problems.append(f"{rel}: no `translation_of:` stamp in its front matter")
        elif stamp != now:
            problems.append(f"{rel}: translates {stamp}, but {en.name} is now {now}")
    return problems


def stamp(ja: Path) -> str:
    """Write the current hash of the English page into ``ja``'s front matter; return it."""
    if not ja.name.endswith(".ja.md") or not ja.is_file():
        raise SiteError(f"{ja}: not a Japanese page (x.ja.md)")
    en = english_of(ja)
    if not en.is_file():
        raise SiteError(f"{ja}: no English page {en.name} beside it")
    h = text_hash(en.read_text(encoding="utf-8"))
    text = ja.read_text(encoding="utf-8")
    line = f"translation_of: {h}\n"
    if STAMP.match(text):
        text = re.sub(r"^translation_of: [0-9a-f]{12}\n", line, text, count=1, flags=re.M)
    elif text.startswith("---\n"):
        text = "---\n" + line + text[4:]
    else:
        text = "---\n" + line + "---\n\n" + text
    ja.write_text(text, encoding="utf-8")
    return h


def stamp_catalog(path: Path, only: str | None = None) -> int:
    """Stamp the exercise tables of the Japanese catalog (all, or ``only``) as current."""
    from checks.catalog import load_catalog
    from sitegen.exercises import source_hash

    text = path.read_text(encoding="utf-8")
    n = 0
    for ex in load_catalog():
        if only is not None and ex.id != only:
            continue
        pat = re.compile(rf'(^\[{re.escape(ex.id)}\]\nsource = ")[0-9a-f]{{12}}(")', re.M)
        text, k = pat.subn(rf"\g<1>{source_hash(ex)}\g<2>", text)
        n += k
    if only is not None and n == 0:
        raise SiteError(f"{path}: no [{only}] table with a `source = ` line right below it")
    path.write_text(text, encoding="utf-8")
    return n
