"""The built site in a real browser: Debian's chromium driven by Playwright, offline.

The site is served from site/ on 127.0.0.1; every request the pages make is
recorded, and so is every console error. Screenshots go to
$SHAKYO_SCREENSHOTS (default: a folder in the system temp dir), outside the repo.
Outside CI the tests are skipped when chromium or Playwright is missing; in CI
(CI=true) a missing browser is a failure, since .ci/run installs it.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from sitegen.paths import SITE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHOTS = Path(
    os.environ.get("SHAKYO_SCREENSHOTS", Path(tempfile.gettempdir()) / "shakyo-site-screenshots")
)

# Material renders each Mermaid diagram into a closed shadow root; open it so the test can
# look inside (the page itself does not change).
OPEN_SHADOW = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) { return attach.call(this, {...init, mode: "open"}); };
"""


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[docs]')"
    if not Path(CHROMIUM).is_file():
        return "chromium is not installed (apt-get install chromium fonts-noto-cjk)"
    return None


@pytest.fixture(scope="module")
def server(built_site):
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield b
        b.close()


class Visit:
    """One browser page that records requests, console errors and page errors."""

    def __init__(self, browser, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(OPEN_SHADOW)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> None:
        self.page.goto(self.base + path, wait_until="networkidle")

    def shot(self, name: str, full_page: bool = False) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def search(self, query: str) -> list[str]:
        """Type ``query`` into Material's search box; the hrefs of the results."""
        box = self.page.locator("input.md-search__input")
        box.click()
        box.fill(query)
        box.press("End")  # Material searches on keyup; fill() alone sends no key
        results = self.page.locator(".md-search-result__list a.md-search-result__link")
        results.first.wait_for(timeout=10_000)
        return [a.get_attribute("href") or "" for a in results.all()]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, server):
    v = Visit(browser, server)
    yield v
    outside = [u for u in v.requests if not u.startswith(server + "/")]
    v.close()
    assert outside == [], f"requests outside 127.0.0.1: {outside}"
    assert v.errors == [], f"console errors: {v.errors}"


def _cjk_width(page) -> float:
    """Width of a CJK string in the page's font: tofu boxes (no CJK font) are all alike."""
    return page.evaluate(
        """() => {
            const c = document.createElement("canvas").getContext("2d");
            c.font = "32px " + getComputedStyle(document.body).fontFamily;
            return c.measureText("飛行機雲").width - c.measureText("\\u{10FFFD}\\u{10FFFD}\\u{10FFFD}\\u{10FFFD}").width;
        }"""
    )


@pytest.mark.parametrize("path,lang", [("/", "en"), ("/ja/", "ja")])
def test_home_page_renders_with_cjk_glyphs(visit, path, lang):
    visit.go(path)
    assert visit.page.locator("html").get_attribute("lang") == lang
    assert visit.page.evaluate("document.fonts.check('16px \"Noto Sans CJK JP\"')")
    assert abs(_cjk_width(visit.page)) > 1, "CJK text is drawn with the missing-glyph box"
    if lang == "ja":
        assert "はじめに" in visit.page.locator("h1").inner_text()
    visit.shot(f"home-{lang}")


def test_the_language_switch_lands_on_the_same_page(visit):
    visit.go("/model/")
    link = visit.page.locator('a.md-select__link[hreflang="ja"]')
    assert link.count() == 1
    link.dispatch_event("click")
    visit.page.wait_for_url("**/ja/model/")
    assert visit.page.locator("h1").inner_text().startswith("モデル")
    back = visit.page.locator('a.md-select__link[hreflang="en"]')
    back.dispatch_event("click")
    visit.page.wait_for_url(lambda url: url.rstrip("/").endswith("/model") and "/ja/" not in url)


def test_search_finds_lovasz_in_english(visit):
    visit.go("/")
    hrefs = visit.search("Lovász")
    assert any("training/" in h and "/ja/" not in h for h in hrefs), hrefs


def test_search_finds_contrails_in_japanese(visit):
    visit.go("/ja/")
    hrefs = visit.search("飛行機雲")
    assert hrefs and all("/ja/" in h for h in hrefs[:3]), hrefs
    assert any("ja/task/" in h for h in hrefs), hrefs
    visit.shot("search-ja")


def test_the_model_diagram_is_an_svg(visit):
    visit.go("/model/")
    visit.page.wait_for_function(
        "() => [...document.querySelectorAll('div.mermaid')].some(d => d.shadowRoot && d.shadowRoot.querySelector('svg'))",
        timeout=15_000,
    )
    texts = visit.page.evaluate(
        "() => [...document.querySelectorAll('div.mermaid')].map(d => d.shadowRoot.querySelector('svg').textContent)"
    )
    assert any("dec4" in t and "(1, 1, 256, 256)" in t for t in texts), texts
    visit.page.locator("div.mermaid").first.scroll_into_view_if_needed()
    visit.shot("model-diagram")


def test_math_is_rendered(visit):
    visit.go("/training/")
    visit.page.wait_for_selector(".katex", timeout=10_000)
    assert visit.page.locator(".arithmatex .katex").count() >= 5
    assert visit.page.locator(".katex-error").count() == 0


def test_an_exercise_page_shows_its_failure_message(visit):
    visit.go("/exercises/layer-norm-2d/")
    text = visit.page.locator("article").inner_text()
    assert "shakyo check layer-norm-2d" in text
    assert "failed at the values rung" in text
    visit.page.locator("#common-mistake").scroll_into_view_if_needed()
    visit.shot("exercise-layer-norm-2d")
