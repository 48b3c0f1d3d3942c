"""Checks on the built site: links and anchors, offline assets, `(site: page/#anchor)` references.

Every ``href``/``src`` of every page must point at a file of the site (and, with
``#anchor``, at an element with that id). A page may link out to the web with
``<a href>``, but nothing it *loads* (scripts, styles, images, fonts) may come
from outside the site: the site has to work with the network unplugged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sitegen.paths import LANGS, REPO

LOADING = {
    ("script", "src"),
    ("img", "src"),
    ("link", "href"),
    ("source", "src"),
    ("iframe", "src"),
}
# The plain-text form that stubs, hints, check messages and docstrings use to point at the
# site: `(site: facts/model/#blocks)`, or `site: page/#anchor` inside a longer parenthesis.
SITE_REF = re.compile(r"\bsite: ([a-z0-9][a-z0-9/._-]*/)(?:#([A-Za-z0-9_-]+))?")
REF_DIRS = ("exercises", "solutions", "checks", "reference", "benchmarks", "quiz", "README.md")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and tag != "meta":
                self.ids.add(value)
            if (name == "href" and tag in ("a", "link")) or (
                name == "src" and tag in ("script", "img", "source", "iframe")
            ):
                self.refs.append((tag, name, value))


@cache
def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


def _target(site: Path, page: Path, url: str) -> tuple[Path, str]:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if path.startswith("/"):
        target = site / path.lstrip("/")
    elif path:
        target = page.parent / path
    else:
        target = page
    if path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target.resolve(), unquote(parts.fragment)


def check_site(site: Path) -> list[str]:
    """'page: problem' for every broken internal link, missing anchor or external asset."""
    _parse.cache_clear()
    site = site.resolve()
    problems = []
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site).as_posix()
        for tag, attr, url in _parse(page).refs:
            scheme = urlsplit(url).scheme
            if scheme in ("mailto", "javascript", "data"):
                continue
            if scheme in ("http", "https") or url.startswith("//"):
                host = urlsplit(url).hostname
                if (tag, attr) in LOADING and host not in ("127.0.0.1", "localhost"):
                    problems.append(f"{rel}: <{tag} {attr}={url}> loads from outside the site")
                continue
            target, anchor = _target(site, page, url)
            if not target.is_file():
                problems.append(f"{rel}: <{tag} {attr}={url}> points at a missing file")
            elif anchor and target.suffix == ".html" and anchor not in _parse(target).ids:
                problems.append(f"{rel}: <{tag} {attr}={url}> has no #{anchor} on its page")
    return problems


def page_counts(site: Path) -> dict[str, int]:
    """Number of content pages per language (index.html files, without search and 404)."""
    counts = {}
    for lang in LANGS:
        root = site if lang == "en" else site / lang
        pages = [
            p
            for p in root.rglob("index.html")
            if (lang != "en" or p.relative_to(site).parts[0] not in LANGS[1:])
            and "search" not in p.relative_to(root).parts
        ]
        counts[lang] = len(pages)
    return counts


def site_refs(paths: Iterable[Path] | None = None) -> list[tuple[Path, int, str, str]]:
    """(file, line, page, anchor) of every `(site: page/#anchor)` reference in the repo's code."""
    if paths is None:
        paths = [REPO / p for p in REF_DIRS]
    out = []
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for f in files:
            if (
                not f.is_file()
                or f.suffix not in (".py", ".toml", ".md")
                or "__pycache__" in f.parts
            ):
                continue
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                for m in SITE_REF.finditer(line):
                    out.append((f, i, m.group(1), m.group(2) or ""))
    return out


def check_site_refs(site: Path, refs=None) -> list[str]:
    """'file:line: problem' for every site reference that does not land on a page and anchor."""
    problems = []
    for f, line, page, anchor in site_refs() if refs is None else refs:
        for lang in LANGS:
            base = site if lang == "en" else site / lang
            target = (base / page / "index.html").resolve()
            where = f"{f.relative_to(REPO) if f.is_relative_to(REPO) else f}:{line}"
            if not target.is_file():
                problems.append(f"{where}: (site: {page}) has no page in {lang}")
            elif anchor and anchor not in _parse(target).ids:
                problems.append(f"{where}: (site: {page}#{anchor}) has no such anchor in {lang}")
    return problems
