"""The rendered site, loaded page by page in headless Chromium.

Needs the built site (`jupyter-book build .`, the README's first command) and Debian's `chromium` and
`chromedriver` (`.ci/run` installs them when missing). Outside CI the tests skip when either is
missing; under CI (the variable CI is set) they fail instead, so CI can never pass without them.

Each page is served from `_build/html` on 127.0.0.1 and checked for: math typeset by MathJax (no raw
TeX left in the text), numbered theorem/lemma/definition boxes, internal links (including every
`{prf:ref}`) that resolve to an existing page and anchor, images that load, and no JavaScript errors.
The ledger page must list every recorded claim. Screenshots of a few pages go to `_build/screenshots/`.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT_PAGES = {"index", "chapters/01_setting", "chapters/90_ledger"}
TITLE = re.compile(r"^(Definition|Lemma|Theorem|Proposition|Corollary|Remark|Example|Conjecture|Exercise"
                   r"|Observation|Property|Assumption|Criterion|Algorithm|Axiom|Notation) \d+(\.\d+)*\b")


def _requirement(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (required under CI)")
        pytest.skip(why)


def _pages() -> list[str]:
    toc = (ROOT / "_toc.yml").read_text()
    names = ["index"] + re.findall(r"file:\s*(\S+)", toc)
    return [re.sub(r"\.(ipynb|md)$", "", n) for n in names]


@pytest.fixture(scope="module")
def site_url():
    _requirement((HTML / "index.html").is_file(), "the site is not built: run `jupyter-book build .` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def browser():
    _requirement(bool(CHROMIUM and CHROMEDRIVER), "chromium and chromedriver are not installed "
                 "(Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="cssl-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _load(browser, url: str) -> None:
    browser.get(url)
    typeset = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) { done('no-mathjax'); return; }"
        "MathJax.startup.promise.then(() => done('ok'), (e) => done('error: ' + e));")
    assert typeset in ("ok", "no-mathjax"), f"MathJax failed on {url}: {typeset}"


def _prose_text(browser) -> str:
    """The article's text without code blocks (code may legitimately contain TeX)."""
    return browser.execute_script(
        "const a = document.querySelector('article') || document.body; const c = a.cloneNode(true);"
        "c.querySelectorAll('pre, code, .highlight, script, style, mjx-assistive-mml').forEach(e => e.remove());"
        "return c.innerText;")


@pytest.mark.parametrize("page", _pages())
def test_page_renders(browser, site_url, page):
    html_file = HTML / f"{page}.html"
    assert html_file.is_file(), f"{page}.html was not built"
    source = html_file.read_text(encoding="utf-8")
    _load(browser, f"{site_url}/{page}.html")

    if 'class="math' in source:
        assert browser.execute_script("return !!window.MathJax"), f"{page}: MathJax did not load"
        assert browser.execute_script("return document.querySelectorAll('mjx-container').length") > 0
    text = _prose_text(browser)
    for raw in ("$$", "\\mathbb", "\\frac", "\\boldsymbol", "\\(", "\\["):
        assert raw not in text, f"{page}: raw TeX {raw!r} left in the page text"

    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('div.admonition.proof:not([id^=proof]) > .admonition-title,"
        " div.exercise.admonition > .admonition-title')).map(e => e.innerText.trim());")
    for title in titles:
        assert TITLE.match(title), f"{page}: statement box without a number: {title!r}"

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);")
    broken = [src for src, ok in images if not ok]
    assert not broken, f"{page}: images that did not load: {broken}"

    # Uncaught exceptions and failed loads of the site's own files. Console messages of the theme
    # ("invalid theme mode" on a fresh profile) and the browser's own favicon probe are not errors.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and e.get("source") in ("javascript", "network") and "favicon.ico" not in e["message"]]
    assert not errors, f"{page}: JavaScript errors: {errors}"

    if page in SCREENSHOT_PAGES:
        SHOTS.mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1280, min(max(height, 800), 16000))
        browser.save_screenshot(str(SHOTS / f"{page.replace('/', '__')}.png"))
        browser.set_window_size(1280, 1600)


def _anchors(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", _pages())
def test_internal_links_resolve(page):
    _requirement((HTML / "index.html").is_file(), "the site is not built")
    source_path = HTML / f"{page}.html"
    source = source_path.read_text(encoding="utf-8")
    article = source[source.find("<article"):source.find("</article>")] or source
    bad = []
    for href in re.findall(r'<a class="reference internal"[^>]*href="([^"]*)"', article):
        parsed = urlparse(href)
        target = (source_path.parent / unquote(parsed.path)).resolve() if parsed.path else source_path
        if not target.is_file():
            bad.append(href)
        elif parsed.fragment and parsed.fragment not in _anchors(target):
            bad.append(href)
    assert not bad, f"{page}: internal links that do not resolve: {bad}"


def test_launch_links_open_the_book_repository_or_are_absent():
    # an unset repository.url makes Jupyter Book link the launch buttons to executablebooks/jupyter-book
    _requirement((HTML / "index.html").is_file(), "the site is not built")
    import yaml

    address = (yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository") or {}).get("url") or ""
    repo = urlparse(address).path.strip("/")
    for page in _pages():
        html = (HTML / f"{page}.html").read_text(encoding="utf-8")
        assert "executablebooks/jupyter-book" not in html, f"{page}: a link to Jupyter Book's own repository"
        launches = re.findall(r'href="(https://(?:mybinder\.org/v2/gh|colab\.research\.google\.com/github)/[^"]+)"', html)
        if not repo:
            assert not launches, f"{page}: launch buttons without a repository address: {launches[:2]}"
        else:
            assert all(f"/{repo}/" in url for url in launches), f"{page}: launch links elsewhere: {launches[:2]}"


def test_ledger_lists_every_recorded_claim():
    _requirement((HTML / "index.html").is_file(), "the site is not built")
    records = []
    for path in sorted((ROOT / "_build" / "claims").glob("*.json")):
        records += json.loads(path.read_text())["claims"]
    assert records, "no claims were recorded by the build"
    ledger = (HTML / "chapters" / "90_ledger.html").read_text(encoding="utf-8")
    body = ledger[ledger.find("<article"):ledger.find("</article>")]
    rows = re.findall(r"<tr class=\"row-(?:odd|even)\">(.*?)</tr>", body, flags=re.S)
    data_rows = [r for r in rows if "<td" in r]
    assert len(data_rows) == len(records), f"ledger shows {len(data_rows)} claims, {len(records)} recorded"
    for r in records:
        assert f'href="{r["chapter"]}.html#{r["label"]}"' in body or f'#{r["label"]}"' in body, r["label"]
