"""The Quiz page of the built site: every question in both languages, answers folded and computed."""

from __future__ import annotations

import re

from quiz.catalog import load_questions
from quiz.draw import attempt_rng, draw
from sitegen import quiz as site_quiz

# The team's parameter counts (site: facts/model/#parameters), independent of the reference.
PUBLISHED = {"mini": "19,487,073", "small": "28,314,017", "medium": "53,323,425"}


def _page(built_site, lang: str) -> str:
    root = built_site if lang == "en" else built_site / "ja"
    return (root / "quiz" / "index.html").read_text(encoding="utf-8")


def test_every_question_is_on_the_quiz_page_in_both_languages_with_its_answer_folded(built_site):
    for lang, answer in (("en", "Answer"), ("ja", "答え")):
        html = _page(built_site, lang)
        for q in load_questions():
            assert f'id="{q.id}"' in html, (lang, q.id)
        folded = re.findall(r'<details class="success">\s*<summary>([^<]+)</summary>', html)
        assert folded.count(answer) == len(load_questions())


def test_the_page_shows_answers_computed_by_the_reference(built_site):
    q = next(q for q in load_questions() if q.id == "count-model")
    arch = draw(q.draw, attempt_rng(site_quiz.SEED, q.id))["arch"]
    for lang in ("en", "ja"):
        html = _page(built_site, lang)
        block = html[html.index('id="count-model"') : html.index('id="count-encoder"')]
        assert f"<strong>{PUBLISHED[arch]}</strong>" in block


def test_the_quiz_page_is_in_the_navigation(built_site):
    assert 'href="quiz/"' in (built_site / "index.html").read_text(encoding="utf-8")
    ja = (built_site / "ja" / "index.html").read_text(encoding="utf-8")
    assert re.search(r'href="quiz/"[^>]*>\s*(<span[^>]*>)?\s*クイズ', ja)


def test_links_are_named_by_the_heading_they_point_at():
    assert site_quiz.link("model/", "forward", "en") == (
        "[The forward pass, step by step](../model/index.md#forward)"
    )
    assert site_quiz.link("facts/model/", "encoder", "ja").endswith("(../facts/model.md#encoder)")
    assert site_quiz.heading("facts/training/", "metric", "en") == "The metric `F_th`"


def test_the_rendered_questions_are_cached_and_reused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(site_quiz, "render", lambda: calls.append(1) or {"en": "E", "ja": "J"})
    assert site_quiz.pages(tmp_path) == {"en": "E", "ja": "J"}
    assert site_quiz.pages(tmp_path) == {"en": "E", "ja": "J"}
    assert calls == [1] and site_quiz.cache_path(tmp_path).is_file()
