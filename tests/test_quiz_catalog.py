"""The question catalog: its size and kinds, both languages, links, facts, and its validation."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from quiz import catalog
from quiz.attempt import make_attempt
from quiz.catalog import KINDS, QUESTIONS_PATH, english_hash, load_questions, select
from quiz.compute import REGISTRY
from quiz.draw import attempt_rng
from reference.errors import ConfigError
from sitegen.links import site_refs

# The published repository's files, as listed in DrHB/2nd-place-contrails (independent of the catalog).
PUBLISHED_FILES = {
    "train.py",
    "prepare_data.py",
    "config.json",
    "src_inference1/CoaT_ULSTM.py",
    "src_inference1/data.py",
    "src_inference1/layers.py",
    "src_inference1/lovasz.py",
    "src_inference1/radam.py",
    "src_inference1/utils.py",
}


def test_the_catalog_has_at_least_40_questions_of_every_kind_in_both_languages():
    qs = load_questions()
    kinds = Counter(q.kind for q in qs)
    assert len(qs) >= 40
    assert set(kinds) == set(KINDS), kinds
    assert all(q.languages == ("en", "ja") for q in qs)
    for q in qs:
        for lang in ("en", "ja"):
            assert q.texts[lang].text and q.texts[lang].explain, (q.id, lang)
    ja = "".join(q.texts["ja"].text for q in qs)
    assert re.search(r"[\u3040-\u30ff]", ja)  # kana: the Japanese is Japanese


def test_every_japanese_text_translates_the_current_english():
    assert catalog.stale_translations(load_questions()) == []


def test_a_changed_english_text_makes_its_translation_stale():
    q = load_questions()[0]
    changed = replace(q, texts={**q.texts, "en": replace(q.texts["en"], text="Another text.")})
    (line,) = catalog.stale_translations((changed,))
    assert line.startswith(f"{q.id}: Japanese made from {q.ja_source}")
    assert english_hash(changed) != q.ja_source


def test_every_question_links_to_its_page_in_the_form_sitegen_refs_checks():
    refs = {(p, a) for f, _, p, a in site_refs([QUESTIONS_PATH])}
    for q in load_questions():
        assert (q.page, q.anchor) in refs, q.id


def test_every_computed_question_names_a_registered_function():
    for q in load_questions():
        if q.computed:
            assert q.compute in REGISTRY, q.id


def test_every_placeholder_is_filled_in_both_languages():
    # One attempt of every question (two of the cheap ones); format_map raises on a gap.
    for q in load_questions():
        seeds = (0,) if q.kind in ("shapes", "schedule") else (0, 1)
        for seed in seeds:
            a = make_attempt(q, "en", attempt_rng(seed, q.id))
            for lang in ("en", "ja"):
                a.lang = lang
                assert "{" not in a.text() + a.explain(), (q.id, lang)
                assert a.text("markdown") and a.explain("markdown")


def test_design_questions_explain_every_option_and_have_one_right_answer():
    design = [q for q in load_questions() if q.kind == "design"]
    assert len(design) >= 7
    for q in design:
        assert sum(o.right for o in q.options) == 1
        for o in q.options:
            for lang in ("en", "ja"):
                text, why = o.texts[lang]
                assert text and len(why) > 3, (q.id, lang)


def test_reading_questions_name_a_published_file_and_commit():
    orig = [q for q in load_questions() if q.kind == "original"]
    assert len(orig) >= 5
    for q in orig:
        loc = q.location
        assert loc.file in PUBLISHED_FILES, q.id
        assert re.fullmatch(r"[0-9a-f]{40}", loc.commit)
        assert 1 <= loc.first <= loc.last < 700
        assert loc.url == (
            f"https://github.com/DrHB/2nd-place-contrails/blob/{loc.commit}/{loc.file}"
            f"#L{loc.first}" + (f"-L{loc.last}" if loc.last > loc.first else "")
        )


def test_select_by_kind_id_and_all():
    qs = load_questions()
    assert select(qs, None) == qs and select(qs, "all") == qs
    assert {q.kind for q in select(qs, "metric")} == {"metric"}
    assert [q.id for q in select(qs, "fth-global")] == ["fth-global"]
    with pytest.raises(ConfigError, match=r"unknown topic `shape`; did you mean `shapes`\?"):
        select(qs, "shape")


GOOD = """
[[question]]
id = "q-one"
kind = "metric"
page = "(site: training/#metric)"
answer = "int"
compute = "dice"
args = { what = "n_thresholds" }
en.text = "How many?"
en.explain = "{answer}."
ja.source = ""
ja.text = "いくつ?"
ja.explain = "{answer}。"
"""


def _load(tmp_path: Path, text: str):
    p = tmp_path / "questions.toml"
    p.write_text(text, encoding="utf-8")
    return load_questions(p)


def test_a_well_formed_catalog_loads_and_its_stamp_is_written(tmp_path):
    (q,) = _load(tmp_path, GOOD)
    assert q.id == "q-one" and q.page == "training/" and q.anchor == "metric"
    assert catalog.stamp(tmp_path / "questions.toml") == 1
    (q,) = load_questions(tmp_path / "questions.toml")
    assert q.ja_source == english_hash(q)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('kind = "metric"', 'kind = "maths"', "kind 'maths'; one of shapes"),
        ("(site: training/#metric)", "training/#metric", r"page must read \(site: PAGE/#ANCHOR\)"),
        ('ja.explain = "{answer}。"', 'ja.explain = "{answr}。"', "different {placeholders}"),
        ('en.text = "How many?"', 'en.text = "How many? {answer}"', "must not show {answer}"),
        ('compute = "dice"\n', "", "names its `compute` function"),
        ('answer = "int"', 'answer = "float"', "a float answer needs tolerance"),
        ('ja.text = "いくつ?"\n', "", "needs ja.text and ja.explain"),
    ],
)
def test_a_malformed_question_is_one_clear_error(tmp_path, old, new, message):
    assert old in GOOD
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, GOOD.replace(old, new))


def test_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="duplicate question ids q-one"):
        _load(tmp_path, GOOD + GOOD)
