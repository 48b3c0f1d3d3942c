"""The study site: sources, generation rules, translations, links and references.

The tests on the built site use site/ as `make docs` left it (`make test` builds it
first); the `built_site` fixture builds it when it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from checks.catalog import load_catalog
from sitegen import exercises, links, translations
from sitegen.build import check_sources, update_nav
from sitegen.paths import DOCS, MKDOCS_YML, REPO, SRC, SiteError
from sitegen.util import text_hash, tree_hash

# ----------------------------------------------------------------- sources and rules


def test_every_page_has_a_current_japanese_translation():
    stale = translations.stale_pages()
    assert stale == [], "stale or missing translations:\n" + "\n".join(stale)


def test_every_exercise_text_has_a_current_japanese_translation():
    stale = exercises.stale_translations(load_catalog(), exercises.load_translations())
    assert stale == [], "stale exercise translations:\n" + "\n".join(stale)


def test_a_changed_english_page_makes_its_translation_stale(tmp_path):
    (tmp_path / "p.md").write_text("# Page\n\nText.\n", encoding="utf-8")
    (tmp_path / "p.ja.md").write_text("# ページ\n\n本文。\n", encoding="utf-8")
    assert translations.stale_pages(tmp_path) == [
        "p.ja.md: no `translation_of:` stamp in its front matter"
    ]
    h = translations.stamp(tmp_path / "p.ja.md")
    assert h == text_hash("# Page\n\nText.\n")
    assert translations.stale_pages(tmp_path) == []
    (tmp_path / "p.md").write_text("# Page\n\nNew text.\n", encoding="utf-8")
    assert translations.stale_pages(tmp_path) == [
        f"p.ja.md: translates {h}, but p.md is now {text_hash('# Page' + chr(10) * 2 + 'New text.' + chr(10))}"
    ]
    (tmp_path / "q.md").write_text("# Q\n", encoding="utf-8")
    assert "q.md: no Japanese page q.ja.md" in translations.stale_pages(tmp_path)


def test_a_changed_catalog_entry_makes_its_translation_stale():
    ex = load_catalog()[0]
    t = exercises.load_translations()[ex.id]
    current = type(t)(t.title, t.why, t.hints, t.differs, exercises.source_hash(ex))
    assert exercises.stale_translations((ex,), {ex.id: current}) == []
    changed = type(ex)(**{**ex.__dict__, "why": ex.why + " More."})
    (line,) = exercises.stale_translations((changed,), {ex.id: current})
    assert line == (
        f"{ex.id}: translated from {current.source}, the English is now {exercises.source_hash(changed)}"
    )
    assert exercises.stale_translations((ex,), {}) == [
        f"{ex.id}: no translation in docs/exercises/catalog.ja.toml"
    ]


def test_the_navigation_lists_exactly_the_catalog_in_order():
    assert update_nav(load_catalog(), check=True), "run `python -m sitegen nav`"
    text = MKDOCS_YML.read_text(encoding="utf-8")
    listed = re.findall(r"^      - ([a-z0-9-]+): exercises/\1\.md$", text, re.M)
    assert listed == [ex.id for ex in load_catalog()]


def _docs_copy(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS / "exercises", docs / "exercises")
    yml = tmp_path / "mkdocs.yml"
    shutil.copy(MKDOCS_YML, yml)
    return docs, yml


def test_a_hand_written_page_for_an_id_outside_the_catalog_fails_the_build(tmp_path):
    docs, yml = _docs_copy(tmp_path)
    check_sources(load_catalog(), docs, yml)  # the real sources pass
    (docs / "exercises" / "not-an-exercise.md").write_text("# ?\n", encoding="utf-8")
    with pytest.raises(SiteError, match="not-an-exercise.*is not in the catalog"):
        check_sources(load_catalog(), docs, yml)


def test_a_catalog_entry_missing_from_the_navigation_fails_the_build(tmp_path):
    docs, yml = _docs_copy(tmp_path)
    first = load_catalog()[0]
    text = yml.read_text(encoding="utf-8")
    yml.write_text(
        text.replace(f"      - {first.id}: exercises/{first.id}.md\n", ""), encoding="utf-8"
    )
    with pytest.raises(SiteError, match="navigation is not the catalog"):
        check_sources(load_catalog(), docs, yml)


def test_the_cache_key_follows_every_input_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.py").write_text("1", encoding="utf-8")
    before = tree_hash([tmp_path / "a"])
    (tmp_path / "a" / "x.py").write_text("2", encoding="utf-8")
    assert tree_hash([tmp_path / "a"]) != before
    (tmp_path / "a" / "x.py").write_text("1", encoding="utf-8")
    assert tree_hash([tmp_path / "a"]) == before
    (tmp_path / "a" / "y.py").write_text("", encoding="utf-8")
    assert tree_hash([tmp_path / "a"]) != before


# ----------------------------------------------------------------- the built site


def test_the_built_site_has_no_broken_link_and_loads_nothing_from_outside(built_site):
    assert links.check_site(built_site) == []


def test_every_exercise_has_an_english_and_a_japanese_page(built_site):
    for ex in load_catalog():
        slug = exercises.page_path(ex)[: -len(".md")]
        for root in (built_site, built_site / "ja"):
            page = root / slug / "index.html"
            assert page.is_file(), page
            html = page.read_text(encoding="utf-8")
            assert f"shakyo check {ex.id}" in html
            for d in ex.differs:
                assert f'id="differs-{d.id}"' in html, (page, d.id)


def test_an_exercise_page_shows_what_the_check_prints_today(built_site):
    from checks.mutants import load_mutants
    from sitegen.mutants import _run_one, pick

    mutant = pick(load_mutants(), "layer-norm-2d")
    shown = _run_one(mutant)
    assert shown.status == "failed"
    page = (SRC / "exercises" / "layer-norm-2d.md").read_text(encoding="utf-8")
    # The row's time differs from run to run; everything after it must be identical.
    details = shown.output.split("\n", 1)[1].strip()
    assert details and details in page


def test_the_model_page_counts_the_published_parameters(built_site):
    # 53,323,425: the parameter count of the team's CoaT_ULSTM medium checkpoint (FACTS),
    # independent of the reference code that the page is generated from.
    for root in (built_site, built_site / "ja"):
        html = (root / "model" / "index.html").read_text(encoding="utf-8")
        assert "53,323,425" in html
        assert "(1, 1, 256, 256)" in html  # the output shape of the traced forward pass


def test_every_site_reference_in_the_code_lands_on_a_page_and_anchor(built_site):
    refs = links.site_refs()
    assert len(refs) >= 20, "the stubs, hints and messages should cite the site"
    problems = links.check_site_refs(built_site, refs)
    assert problems == [], "\n".join(problems)


def test_a_wrong_site_reference_is_reported(built_site, tmp_path):
    f = tmp_path / "x.py"
    f.write_text(
        '"""See (site: facts/model/#no-such-anchor) and (site: nowhere/)."""\n', encoding="utf-8"
    )
    refs = links.site_refs([f])
    assert [(p, a) for _, _, p, a in refs] == [("facts/model/", "no-such-anchor"), ("nowhere/", "")]
    problems = links.check_site_refs(built_site, refs)
    assert len(problems) == 4  # both references, in both languages
    assert "no such anchor" in problems[0] and "has no page" in problems[2]


def test_no_facts_section_number_is_left_in_what_learners_read():
    left = []
    for root in links.REF_DIRS:
        path = REPO / root
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for f in files:
            if f.suffix in (".py", ".toml", ".md") and "__pycache__" not in f.parts:
                for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                    if re.search(r"FACTS(\.md)? §", line):
                        left.append(f"{f.relative_to(REPO)}:{i}")
    assert left == [], "cite the site instead: " + ", ".join(left)


def test_the_search_index_holds_both_languages(built_site):
    index = json.loads((built_site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert set(index["config"]["lang"]) == {"en", "ja"}
    docs = index["docs"]
    ja = [d for d in docs if d["location"].startswith("ja/")]
    en = [d for d in docs if not d["location"].startswith("ja/")]
    assert any("飛行機雲" in d["text"] for d in ja)
    assert any("Lovász" in d["text"] for d in en)
    assert not any("飛行機雲" in d["text"] for d in en if d["location"].startswith("task/"))
