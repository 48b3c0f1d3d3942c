"""Assemble build/site-src/ from docs/ and the code, then build the site with MkDocs.

1. Copy docs/ (the hand-written pages) into build/site-src/.
2. Check the catalog against docs/ and mkdocs.yml: no hand-written page for an
   exercise, and the exercise navigation lists exactly the catalog, in order.
3. Write one page per exercise and language (sitegen.exercises), with the real
   failure message of one mutant (sitegen.mutants).
4. Replace every ``<!-- gen:NAME -->`` line of a page by the fragment NAME made
   from the code at build time (FRAGMENTS: shape trace, figures, CLI, config keys...).
5. Extract the pinned Mermaid and KaTeX (sitegen.vendor) into assets/vendor/.
6. ``mkdocs build --strict``, then check every link and anchor of the built site
   (sitegen.links).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sitegen.paths import DOCS, MKDOCS_YML, REPO, SITE, SRC, SiteError

NAV_BEGIN = "# BEGIN generated exercise nav"
NAV_END = "# END generated exercise nav"
MARKER = re.compile(r"^<!-- gen:([a-z0-9-]+) -->$", re.M)
NOT_COPIED = {"catalog.ja.toml"}  # sources of generated pages, not pages


@dataclass
class Context:
    """What the fragment makers share during one build."""

    src: Path
    catalog: tuple
    translations: dict
    made: dict[str, object] = field(default_factory=dict)  # memo of expensive results
    timings: dict[str, float] = field(default_factory=dict)  # seconds per fragment

    def memo(self, key: str, make: Callable[[], object]) -> object:
        if key not in self.made:
            self.made[key] = make()
        return self.made[key]


def _fragments() -> dict[str, Callable[[Context, str, str], str]]:
    from sitegen import figures, nanstudy, quiz, refpages, trace

    return {
        "exercise-table": refpages.exercise_table,
        "cli": refpages.cli_reference,
        "config-keys": refpages.config_keys,
        "shape-summary": trace.shape_summary,
        "shape-trace": trace.full_trace,
        "model-diagram": trace.model_diagram,
        "param-counts": trace.param_counts,
        "fig-ash-record": figures.ash_record,
        "fig-dice-curve": figures.dice_curve,
        "fig-one-cycle": figures.one_cycle,
        "fig-trust-ratio": figures.trust_ratio,
        "fig-half-pixel": figures.half_pixel,
        "param-table": trace.params_table,
        "quiz": quiz.quiz_page,
        "quiz-counts": quiz.question_counts,
        "nan-study": nanstudy.nan_study_section,
    }


def exercise_nav(catalog) -> list[str]:
    """The lines of mkdocs.yml's exercise navigation, one per catalog entry."""
    from sitegen.exercises import page_path

    return [f"      - {ex.id}: {page_path(ex)}" for ex in catalog]


def nav_lines(text: str) -> tuple[int, int]:
    lines = text.splitlines()
    try:
        begin = next(i for i, line in enumerate(lines) if line.strip().startswith(NAV_BEGIN))
        end = next(i for i, line in enumerate(lines) if line.strip().startswith(NAV_END))
    except StopIteration:
        raise SiteError(
            f"{MKDOCS_YML.name}: the markers `{NAV_BEGIN}` / `{NAV_END}` are missing"
        ) from None
    return begin, end


def update_nav(catalog, path: Path = MKDOCS_YML, check: bool = False) -> bool:
    """Rewrite (or, with check, only compare) the exercise navigation; True if it was current."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    begin, end = nav_lines(text)
    want = exercise_nav(catalog)
    current = lines[begin + 1 : end] == want
    if not current and not check:
        lines[begin + 1 : end] = want
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return current


def check_sources(catalog, docs: Path = DOCS, mkdocs_yml: Path = MKDOCS_YML) -> None:
    """No hand-written exercise pages; the navigation is the catalog (else SiteError)."""
    from sitegen.exercises import page_path

    ids = {ex.id for ex in catalog}
    own = {"index.md", "index.ja.md", *NOT_COPIED}
    for p in sorted((docs / "exercises").glob("*")):
        if p.name not in own:
            stem = p.name.split(".")[0]
            why = "is generated from the catalog" if stem in ids else "is not in the catalog"
            raise SiteError(f"docs/exercises/{p.name}: exercise `{stem}` {why}; remove the file")
    if not update_nav(catalog, mkdocs_yml, check=True):
        raise SiteError(
            "mkdocs.yml: the exercise navigation is not the catalog's list; "
            "run `python -m sitegen nav` and commit mkdocs.yml"
        )
    slugs = [page_path(ex) for ex in catalog]
    bad = [s for s in slugs if not s.startswith("exercises/") or s.count("/") != 1]
    if bad:
        raise SiteError(f"exercises/catalog.toml: docs slugs must be exercises/<id>: {bad}")


# A line break between two Japanese characters: browsers draw it as a space.
_CJK = r"\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_CJK_BREAK = re.compile(rf"(?<=[{_CJK}])\n[ \t]*(?=[{_CJK}])")


def join_cjk_lines(text: str) -> str:
    """Join the source lines of Japanese paragraphs (outside code fences) without a space."""
    parts = re.split(r"(^```.*?^```[^\n]*$)", text, flags=re.M | re.S)
    return "".join(p if p.startswith("```") else _CJK_BREAK.sub("", p) for p in parts)


def fill_markers(ctx: Context, path: Path, fragments: dict) -> None:
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(ctx.src).as_posix()
    lang = "ja" if rel.endswith(".ja.md") else "en"
    if lang == "ja":
        text = join_cjk_lines(text)
        path.write_text(text, encoding="utf-8")
    if "<!-- gen:" not in text:
        return

    def replace(m: re.Match) -> str:
        name = m.group(1)
        if name not in fragments:
            raise SiteError(
                f"docs/{rel}: unknown generated fragment `{name}` (known: {', '.join(fragments)})"
            )
        t = time.perf_counter()
        text = fragments[name](ctx, lang, rel).rstrip()
        ctx.timings[name] = ctx.timings.get(name, 0.0) + time.perf_counter() - t
        return text

    path.write_text(MARKER.sub(replace, text), encoding="utf-8")


def assemble(log: Callable[[str], None] = print) -> Context:
    """Write build/site-src/: docs/ + generated pages + vendored scripts."""
    from checks.catalog import load_catalog
    from sitegen import exercises, mutants, trace, vendor

    catalog = load_catalog()
    check_sources(catalog)
    translations = exercises.load_translations()
    if SRC.exists():
        shutil.rmtree(SRC)
    shutil.copytree(DOCS, SRC, ignore=shutil.ignore_patterns(*NOT_COPIED))
    ctx = Context(SRC, catalog, translations)

    t = time.perf_counter()
    # The shape trace (a forward pass of the medium model) runs in a second process while
    # the mutants run here: the two expensive steps of a cold build share the CPUs.
    tracer = None
    if not trace.cache_path().is_file():
        tracer = subprocess.Popen([sys.executable, "-m", "sitegen.trace"], cwd=REPO)
    shown = mutants.shown_mistakes([ex.id for ex in catalog if ex.available])
    exercises.write_pages(SRC, catalog, shown, translations)
    log(
        f"exercise pages: {2 * len(catalog)} ({len(shown)} mutant runs) in {time.perf_counter() - t:.1f} s"
    )
    if tracer is not None and tracer.wait() != 0:
        raise SiteError("python -m sitegen.trace failed (see the traceback above)")

    t = time.perf_counter()
    fragments = _fragments()
    for path in sorted(SRC.rglob("*.md")):
        fill_markers(ctx, path, fragments)
    slow = sorted(ctx.timings.items(), key=lambda kv: -kv[1])[:4]
    log(
        f"generated fragments in {time.perf_counter() - t:.1f} s (slowest: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in slow)
        + ")"
    )
    vendor.install(SRC / "assets" / "vendor")
    return ctx


def run_mkdocs(strict: bool = True) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true")
    cmd = [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(MKDOCS_YML), "-d", str(SITE)]
    if strict:
        cmd.append("--strict")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    noise = ("MkDocs 2.0", "mkdocs-material", "squidfunk")
    shown = [
        ln for ln in (proc.stdout + proc.stderr).splitlines() if not any(n in ln for n in noise)
    ]
    if proc.returncode != 0:
        raise SiteError("mkdocs build --strict failed:\n" + "\n".join(shown[-30:]))


def build(log: Callable[[str], None] = print) -> None:
    from sitegen import links

    start = time.perf_counter()
    assemble(log)
    t = time.perf_counter()
    run_mkdocs()
    log(f"mkdocs build --strict in {time.perf_counter() - t:.1f} s")
    problems = links.check_site(SITE)
    if problems:
        raise SiteError(f"{len(problems)} broken links in site/:\n" + "\n".join(problems[:40]))
    counts = links.page_counts(SITE)
    log(
        f"site/ built in {time.perf_counter() - start:.1f} s: "
        + ", ".join(f"{n} pages ({lang})" for lang, n in counts.items())
    )
