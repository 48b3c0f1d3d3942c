"""The Quiz page: every question of ``quiz/questions.toml``, answers folded, both languages.

Each computed question is drawn once for the site (seed "site") and its answer
computed by running the reference at build time, as ``shakyo quiz`` does per
attempt. The page quotes each question's site link with the heading it points
at, read from the page's own source. Rendering all questions takes some
seconds (it imports fastai and runs CoaT_ULSTM on meta tensors), so the
Markdown is cached in build/cache/, keyed by a hash of quiz/, reference/,
configs/ and the library versions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sitegen.paths import CACHE, DOCS, REPO
from sitegen.util import indent, tree_hash, write_json

SEED = "site"
KIND_TITLES = {
    "en": {
        "shapes": "Shapes",
        "counts": "Counts",
        "schedule": "Schedule",
        "metric": "Metric",
        "data": "Data",
        "design": "Design",
        "original": "Reading the original",
    },
    "ja": {
        "shapes": "形",
        "counts": "数",
        "schedule": "スケジュール",
        "metric": "評価指標",
        "data": "データ",
        "design": "設計",
        "original": "元のコードを読む",
    },
}
LABELS = {
    "en": {
        "answer": "Answer",
        "explained": "Explained in",
        "ask": "In the terminal",
        "why": "The options",
    },
    "ja": {
        "answer": "答え",
        "explained": "解説",
        "ask": "端末で",
        "why": "選択肢",
    },
}


def _page_source(page: str, lang: str) -> tuple[Path, str]:
    """The docs file of a site page slug ('model/', 'facts/model/') and its docs-relative path."""
    suffix = ".ja.md" if lang == "ja" else ".md"
    stem = page.strip("/")
    for rel in (f"{stem}/index", stem):
        path = DOCS / (rel + suffix)
        if path.is_file():
            return path, rel + ".md"
    raise FileNotFoundError(f"no docs page for (site: {page})")


def heading(page: str, anchor: str, lang: str) -> str:
    """The text of the heading ``{#anchor}`` of a page (its title when the anchor is missing)."""
    path, _ = _page_source(page, lang)
    text = path.read_text(encoding="utf-8")
    m = re.search(rf"^#+ (.+?) \{{#{re.escape(anchor)}\}}\s*$", text, re.M)
    title = re.search(r"^# (.+)$", text, re.M)
    return (m or title).group(1).strip() if (m or title) else page


def link(page: str, anchor: str, lang: str) -> str:
    """A Markdown link from quiz/index.md to a page and anchor, named by its heading."""
    _, rel = _page_source(page, lang)
    return f"[{heading(page, anchor, lang)}](../{rel}#{anchor})"


def _question(a, lang: str) -> str:
    """One question of the page, its answer folded; ``a`` is its attempt in ``lang``."""
    q = a.question
    L = LABELS[lang]
    out = [f"### `{q.id}` {{#{q.id}}}", "", a.text("markdown"), ""]
    for letter, text in a.option_lines():
        out.append(f"- **{letter}.** {text}")
    if a.options:
        out.append("")
    body = []
    if q.answer == "location":
        body.append(f"**[{a.shown_answer}]({q.location.url})**")
    elif q.answer == "choice":
        body.append(f"**{a.answer}**")
    else:
        body.append(f"**{a.shown_answer}**")
    body += ["", a.explain("markdown"), ""]
    if a.options:
        body += [f"{L['why']}:", ""]
        body += [f"- **{letter}.** {'✓' if r else '✗'} {why}" for letter, r, why in a.option_whys()]
        body.append("")
    body.append(
        f"{L['explained']}: {link(q.page, q.anchor, lang)} · {L['ask']}: `shakyo quiz {q.id}`"
    )
    out += [f'??? success "{L["answer"]}"', "", indent("\n".join(body)), ""]
    return "\n".join(out)


def render() -> dict[str, str]:
    """{lang: Markdown}: each question drawn and computed once, written in both languages."""
    from dataclasses import replace

    from quiz.attempt import make_attempt
    from quiz.catalog import KINDS, LANGS, load_questions
    from quiz.draw import attempt_rng

    attempts = [make_attempt(q, "en", attempt_rng(SEED, q.id)) for q in load_questions()]
    out = {}
    for lang in LANGS:
        parts = []
        for kind in KINDS:
            of_kind = [a for a in attempts if a.question.kind == kind]
            if of_kind:
                parts += [f"## {KIND_TITLES[lang][kind]} {{#{kind}}}", ""]
                parts += [_question(replace(a, lang=lang), lang) for a in of_kind]
        out[lang] = "\n".join(parts)
    return out


def _versions() -> str:
    import fastai
    import timm
    import torch

    return f"torch {torch.__version__} timm {timm.__version__} fastai {fastai.__version__}"


def cache_path(cache: Path = CACHE) -> Path:
    roots = [REPO / "quiz", REPO / "reference", REPO / "configs", DOCS]
    return cache / f"quiz-{tree_hash(roots, extra=_versions())}.json"


def pages(cache: Path = CACHE) -> dict[str, str]:
    """{lang: Markdown} of every question, from the cache when its inputs did not change."""
    path = cache_path(cache)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    data = render()
    for old in cache.glob("quiz-*.json"):
        old.unlink()
    write_json(path, data)
    return data


def quiz_page(ctx, lang: str, page: str) -> str:
    """The `<!-- gen:quiz -->` fragment: all questions of the catalog in ``lang``."""
    return ctx.memo("quiz", pages)[lang]


def question_counts(ctx, lang: str, page: str) -> str:
    """A table of how many questions each kind has (`<!-- gen:quiz-counts -->`)."""
    from quiz.catalog import KINDS, load_questions

    qs = load_questions()
    head = "| kind | questions |" if lang == "en" else "| 種類 | 問題数 |"
    lines = [head, "|---|---:|"]
    for kind in KINDS:
        n = sum(q.kind == kind for q in qs)
        lines.append(f"| [{KIND_TITLES[lang][kind]}](#{kind}) (`{kind}`) | {n} |")
    lines.append(f"| **{'total' if lang == 'en' else '合計'}** | **{len(qs)}** |")
    return "\n".join(lines)
