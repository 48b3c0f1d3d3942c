"""Where the site's sources, build folders and output live."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"  # hand-written pages, English `x.md` + Japanese `x.ja.md`
BUILD = REPO / "build"  # ignored by git
SRC = BUILD / "site-src"  # docs/ + generated pages: mkdocs.yml's docs_dir
CACHE = BUILD / "cache"  # results of the expensive generators, keyed by a hash of their inputs
SITE = REPO / "site"  # the built site (ignored)
MKDOCS_YML = REPO / "mkdocs.yml"
LANGS = ("en", "ja")


class SiteError(Exception):
    """A problem with the site's sources that the author fixes (one line, exit code 2)."""
