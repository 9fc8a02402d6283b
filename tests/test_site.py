"""The rendered site, loaded page by page in headless Chromium.

Needs the built site (`jupyter-book build .`, the README's first command) and Debian's `chromium` and
`chromedriver` (`.ci/run` installs them when missing). Outside CI the tests skip when either is
missing; under CI (the variable CI is set) they fail instead, so CI can never pass without them.

Each page is served from `_build/html` on 127.0.0.1 and checked for: math typeset by MathJax (no raw
TeX left in the text, no TeX errors), nothing left unrendered (a MyST fence, `:label:`, a `{prf:...}` or
`{cite}` role), no doubled words ("Definition Definition"), numbered theorem/lemma/definition boxes
whose titles have no nested parentheses,
internal links (including every `{prf:ref}`) that resolve to an existing page and anchor, images that load,
and no JavaScript errors. The ledger page must list every recorded claim.

Nothing may be clipped: at a 1300 px wide window no code block, output, table, display equation or figure
is wider than its box or the text column (scrollWidth against clientWidth), and no inline code or math runs
past its paragraph; at 390 px (a phone) only code blocks may scroll sideways. Screenshots of a few pages
go to `_build/screenshots/`.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from cssl.claims import toc_files

ROOT = Path(__file__).resolve().parents[1]
# BOOK_HTML: check another build of the site (default: the README's build in _build/html)
HTML = Path(os.environ.get("BOOK_HTML") or ROOT / "_build" / "html")
SHOTS = ROOT / "_build" / "screenshots"
sys.path.insert(0, str(ROOT / "tools"))
import headless  # noqa: E402  (tools/headless.py: the browser and server every site check uses)

CHROMIUM, CHROMEDRIVER = headless.CHROMIUM, headless.CHROMEDRIVER
SCREENSHOT_PAGES = {"index", "chapters/01_setting", "chapters/90_ledger"}
TITLE = re.compile(r"^(Definition|Lemma|Theorem|Proposition|Corollary|Remark|Example|Conjecture|Exercise"
                   r"|Observation|Property|Assumption|Criterion|Algorithm|Axiom|Notation) \d+(\.\d+)*\b")


def _requirement(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (required under CI)")
        pytest.skip(why)


def _pages() -> list[str]:
    return ["index"] + [f for f, _ in toc_files(ROOT)]


@pytest.fixture(scope="module")
def site_url():
    _requirement((HTML / "index.html").is_file(), "the site is not built: run `jupyter-book build .` first")
    server, url = headless.serve(HTML)
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    _requirement(bool(CHROMIUM and CHROMEDRIVER), "chromium and chromedriver are not installed "
                 "(Debian: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium.webdriver")
    driver, profile = headless.start_chromium(width=1280, log_browser=True)
    yield driver
    headless.stop_chromium(driver, profile)


def _viewport(browser, width: int, height: int = 1000) -> None:
    """Lay pages out at ``width`` CSS pixels (below 500 px a headless window cannot go: emulate a phone)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def _load(browser, url: str) -> None:
    browser.get(url)
    typeset = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) { done('no-mathjax'); return; }"
        "MathJax.startup.promise.then(() => done('ok'), (e) => done('error: ' + e));")
    assert typeset in ("ok", "no-mathjax"), f"MathJax failed on {url}: {typeset}"
    browser.execute_script("if (window.bookFitDisplays) bookFitDisplays();")  # _ext/static/book.js


# Unrendered MyST: a fence or directive option shown as text, a role that was not parsed.
RAW_MYST = [(re.compile(r"```|~~~"), "a code fence"), (re.compile(r"(^|\n)\s*:::"), "a colon fence"),
            (re.compile(r":(label|class|nonumber|name):"), "a directive option"),
            (re.compile(r"\{(prf|cite|doc|ref|numref|eq|math|download|term|abbr)\b[^}]*\}"), "a MyST role")]
# TeX outside math: a command, or dollar-delimited math MathJax did not typeset.
RAW_TEX = [(re.compile(r"\\[A-Za-z]+\b|\\[()\[\]{}|]"), "a TeX command"), (re.compile(r"\$\$|\$[^$\n]{1,300}\$"),
           "dollar math")]
def _nested(title: str) -> bool:
    """Whether parentheses nest in ``title`` (an equation number such as "eq. (5)" aside)."""
    depth = 0
    for ch in re.sub(r"\(\d{1,2}[a-z]?\)", "", title):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth > 1:
            return True
    return False


DOUBLED = re.compile(r"\b([A-Za-z]{2,})[ \u00a0]+\1\b")


def _problems_in_text(text: str) -> list[str]:
    """Unrendered MyST, TeX outside math and doubled words in a page's prose text."""
    found = []
    for pattern, what in RAW_MYST + RAW_TEX:
        for m in pattern.finditer(text):
            start = max(0, m.start() - 40)
            found.append(f"{what} left raw: {text[start:m.end() + 40]!r}")
    for m in DOUBLED.finditer(text):
        found.append(f"doubled word: {text[max(0, m.start() - 30):m.end() + 30]!r}")
    return found


# What may not be wider than its box or the text column; at 390 px code blocks may scroll (not overflow
# the column themselves). Hidden (folded) elements are skipped.
OVERFLOW_JS = """
const narrow = arguments[0];
const art = document.querySelector('article.bd-article') || document.querySelector('article') || document.body;
const right = art.getBoundingClientRect().right;
const kinds = [
  ['code', 'div.highlight pre'],
  ['output', 'div.cell_output, div.cell_output div.output, div.cell_output pre'],
  ['table', 'table, .pst-scrollable-table-container'],
  ['display equation', 'div.math, mjx-container[display="true"]'],
  ['figure', 'figure, img'],
];
const seen = new Set(), out = [];
for (const [kind, selector] of kinds) {
  for (const el of art.querySelectorAll(selector)) {
    if (seen.has(el)) continue;
    seen.add(el);
    if (kind === 'code' && el.closest('div.cell_output')) continue;  // an output, counted below
    if (!el.getClientRects().length) continue;  // folded or hidden
    const scrolls = el.scrollWidth - el.clientWidth > 1 && kind !== 'figure';
    const past = el.getBoundingClientRect().right - right > 1;
    if (past || (scrolls && !(narrow && kind === 'code'))) {
      const section = el.closest('section');
      const heading = section ? (section.querySelector('h1, h2, h3') || {}).innerText : '';
      out.push(`${kind} ${scrolls ? el.scrollWidth + ' px wide in a box of ' + el.clientWidth + ' px'
                                   : 'past the column'} in "${(heading || '').trim().slice(0, 50)}": `
               + (el.innerText || el.getAttribute('alt') || '').trim().split('\\n')[0].slice(0, 70));
    }
  }
}
// Inline code and inline math that run past the paragraph (or list item, cell, box) that holds them.
for (const el of art.querySelectorAll('code.literal, mjx-container:not([display="true"])')) {
  if (el.closest('pre, div.math') || !el.getClientRects().length) continue;
  const box = el.parentElement.closest('p, li, dd, dt, td, th, div, figcaption, h1, h2, h3, h4');
  if (!box) continue;
  const limit = Math.min(box.getBoundingClientRect().right, right);
  const over = Math.max(...Array.from(el.getClientRects()).map(r => r.right)) - limit;
  if (over > 1) {
    const section = el.closest('section');
    const heading = section ? (section.querySelector('h1, h2, h3') || {}).innerText : '';
    out.push(`inline ${el.tagName === 'CODE' ? 'code' : 'math'} ${Math.round(over)} px past its box in `
             + `"${(heading || '').trim().slice(0, 50)}": ` + (el.innerText || '').trim().slice(0, 60));
  }
}
if (document.documentElement.scrollWidth > window.innerWidth + 1) {
  out.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px in a ${window.innerWidth} px window`);
}
return out;
"""


def _prose_text(browser) -> str:
    """The article's text without code blocks (code may legitimately contain TeX); typeset math reads
    "[math]"."""
    return browser.execute_script(
        "const a = document.querySelector('article') || document.body; const c = a.cloneNode(true);"
        "c.querySelectorAll('pre, code, .highlight, script, style, mjx-assistive-mml').forEach(e => e.remove());"
        "c.querySelectorAll('mjx-container').forEach(e => e.replaceWith(' [math] '));"
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
    problems = _problems_in_text(text)
    problems += [f"a code block that is a MyST fence left raw: {t[:80]!r}" for t in browser.execute_script(
        "return Array.from(document.querySelectorAll('article div.highlight-default pre, article pre.literal-block'))"
        ".map(e => e.innerText).filter(t => /\\{prf:|:label:|\\{cite|^```/m.test(t));")]
    errors = browser.execute_script("return Array.from(document.querySelectorAll('mjx-merror'))"
                                    ".map(e => e.getAttribute('data-mjx-error') || e.innerText);")
    problems += [f"a TeX error: {e}" for e in errors]
    assert not problems, f"{page}: " + "\n".join(problems[:8])

    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('div.admonition.proof:not([id^=proof]) > .admonition-title,"
        " div.exercise.admonition > .admonition-title')).map(e => { const c = e.cloneNode(true);"
        " c.querySelectorAll('mjx-container').forEach(m => m.replaceWith('[math]'));"
        " c.querySelectorAll('mjx-assistive-mml, script').forEach(m => m.remove());"
        " return c.textContent.replace(/\\s+/g, ' ').trim(); });")
    for title in titles:
        assert TITLE.match(title), f"{page}: statement box without a number: {title!r}"
    # the theme puts a box's title in parentheses: "(the book's)" inside it reads "(... (the book's))"
    nested = [t for t in titles if _nested(t)]
    assert not nested, f"{page}: box titles with nested parentheses: {nested[:3]}"

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


@pytest.mark.parametrize("width", [1300, 390])
@pytest.mark.parametrize("page", _pages())
def test_nothing_is_clipped(browser, site_url, page, width):
    _viewport(browser, width)
    try:
        _load(browser, f"{site_url}/{page}.html")
        clipped = browser.execute_script(OVERFLOW_JS, width < 600)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert not clipped, f"{page} at {width} px: {len(clipped)} clipped: " + "\n".join(clipped[:10])


def test_text_checks_catch_what_they_must():
    # the checks of test_page_renders on text they must flag, and on text they must leave alone
    for bad in ["```{prf:theorem} Theorem 1", ":label: thm-peers-huang", "{cite:t}`huang2023towards`",
                "the norm \\|f\\| = r", "$x^2$ in prose", "$$", "(Definition Definition 2.2 below)",
                "see {prf:ref}`thm-1`"]:
        assert _problems_in_text(bad), bad
    for good in ["Theorem 3.3 (Theorem 1 of the paper) holds at r = 1.", "a $5 note", "that is, is it",
                 "1 1 2", "Err(G_f) ≤ 0.3"]:
        assert not _problems_in_text(good), good
    assert _nested("Proposition 5.1 (Ranges of the two parts (the book's))")
    assert _nested("Theorem 11.3 (Wang and Isola (2020), Theorem 1)")
    assert not _nested("Proposition 5.1 (Ranges of the two parts, the book's) and (x)")
    assert not _nested("Proposition 1.2 (InfoNCE split, eq. (5) of the paper)")


def _anchors(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", _pages())
def test_every_image_has_alt_text(page):
    """A reader with a screen reader gets each figure's first caption sentence (``mystnb.image.alt``)."""
    _requirement((HTML / "index.html").is_file(), "the site is not built")
    source = (HTML / f"{page}.html").read_text(encoding="utf-8")
    article = source[source.find("<article"):source.find("</article>")] or source
    images = re.findall(r"<img\b[^>]*>", article)
    bare = [img[:120] for img in images if not re.search(r'\balt="[^"]{12,}"', img)]
    assert not bare, f"{page}: images without alt text (give the figure cell mystnb.image.alt): {bare}"


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
    # an unset repository.url makes Jupyter Book link the launch buttons to executablebooks/jupyter-book;
    # the build takes the address from _config.yml, else from a public GitHub remote (_ext/book_repository.py)
    _requirement((HTML / "index.html").is_file(), "the site is not built")
    import yaml

    sys.path.insert(0, str(ROOT / "_ext"))
    import book_repository

    configured = (yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository") or {}).get("url") or ""
    address, _ = book_repository.resolve(configured, ROOT)
    repo = urlparse(address).path.strip("/")
    for page in _pages():
        html = (HTML / f"{page}.html").read_text(encoding="utf-8")
        assert "executablebooks/jupyter-book" not in html, f"{page}: a link to Jupyter Book's own repository"
        launches = re.findall(r'href="(https://(?:mybinder\.org/v2/gh|colab\.research\.google\.com/github)/[^"]+)"', html)
        if not repo:
            assert not launches, f"{page}: launch buttons without a repository address: {launches[:2]}"
        else:
            assert all(f"/{repo}/" in url for url in launches), f"{page}: launch links elsewhere: {launches[:2]}"
            if page.startswith("chapters/") and (ROOT / f"{page}.ipynb").is_file():
                assert any("mybinder.org" in url for url in launches), f"{page}: no Binder button for {address}"


def test_ledger_lists_every_recorded_claim():
    _requirement((HTML / "index.html").is_file(), "the site is not built")
    records = []
    for path in sorted((ROOT / "_build" / "claims").glob("*.json")):
        records += json.loads(path.read_text())["claims"]
    assert records, "no claims were recorded by the build"
    ledger = (HTML / "chapters" / "90_ledger.html").read_text(encoding="utf-8")
    body = ledger[ledger.find("<article"):ledger.find("</article>")]
    # one row per claim in the chapters' claim tables (those with a "how checked" column); the table of
    # checks that pass against a tighter bound lists some claims again
    tables = [t for t in re.findall(r"<table.*?</table>", body, flags=re.S) if ">how checked<" in t]
    rows = [r for t in tables for r in re.findall(r"<tr class=\"row-(?:odd|even)\">(.*?)</tr>", t, flags=re.S)]
    data_rows = [r for r in rows if "<td" in r]
    assert len(data_rows) == len(records), f"ledger shows {len(data_rows)} claims, {len(records)} recorded"
    for r in records:
        assert f'href="{r["chapter"]}.html#{r["label"]}"' in body or f'#{r["label"]}"' in body, r["label"]


def test_ledger_opens_with_its_summary_and_filters_by_verdict(browser, site_url):
    records = []
    for path in sorted((ROOT / "_build" / "claims").glob("*.json")):
        records += json.loads(path.read_text())["claims"]
    _load(browser, f"{site_url}/chapters/90_ledger.html")
    headings = browser.execute_script(
        "return [...document.querySelectorAll('article h2')].map(h => h.innerText.replace(/#$/, '').trim());")
    assert headings.index("Summary") < headings.index("Claims by chapter"), headings
    buttons = browser.execute_script(
        "return [...document.querySelectorAll('#ledger-filter button')].map(b => b.innerText);")
    assert buttons and buttons[0] == f"all ({len(records)})", buttons
    visible_rows = ("return [...document.getElementById('ledger-filter').closest('section')"
                    ".querySelectorAll('table tbody tr')].filter(r => r.offsetParent !== null)"
                    ".map(r => r.children[2].innerText.trim());")
    assert len(browser.execute_script(visible_rows)) == len(records)
    counts = {}
    for r in records:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    for verdict in ("fails as printed", "reversed"):
        if verdict not in counts:
            continue
        browser.execute_script(
            "[...document.querySelectorAll('#ledger-filter button')]"
            ".find(b => b.dataset.verdict === arguments[0]).click();", verdict)
        shown = browser.execute_script(visible_rows)
        assert len(shown) == counts[verdict] and all(s.startswith(verdict) for s in shown), (verdict, shown[:3])
    browser.execute_script("document.querySelector('#ledger-filter button').click();")
    assert len(browser.execute_script(visible_rows)) == len(records)


@pytest.mark.parametrize("chapter", [p for p in _pages() if re.fullmatch(r"chapters/(0[1-9]|1[0-2])_\w+", p)])
def test_chapter_verdict_table_links_boxes_and_marks_verdicts(browser, site_url, chapter):
    """Each chapter ends with its claims as an HTML table (boxes linked, verdicts marked by colour); the
    printed verdict lines that nbval compares are not shown."""
    record = ROOT / "_build" / "claims" / f"{chapter.split('/')[-1]}.json"
    _requirement(record.is_file(), f"no claim record {record}: build the book first")
    claims_ = json.loads(record.read_text())["claims"]
    _load(browser, f"{site_url}/{chapter}.html")
    found = browser.execute_script("""
        const outs = [...document.querySelectorAll('article .cell_output')].filter(
            o => [...o.querySelectorAll('.output.stream')].some(s => s.classList.contains('verdict-lines')));
        if (outs.length !== 1) return {outputs: outs.length};
        const out = outs[0];
        const rows = [...out.querySelectorAll('table tbody tr')];
        return {outputs: 1, rows: rows.length,
                linked: rows.filter(r => r.children[0].querySelector('a.reference.internal')).length,
                marked: rows.filter(r => r.children[2].classList.contains('verdict')).length,
                fails: rows.filter(r => r.children[2].classList.contains('verdict-fails'))
                           .map(r => getComputedStyle(r.children[2]).color),
                body: getComputedStyle(out.closest('article')).color,
                linesShown: [...out.querySelectorAll('.verdict-lines')].some(s => s.offsetParent !== null)};
    """)
    assert found["outputs"] == 1, f"{chapter}: expected one verdict cell, found {found}"
    assert found["rows"] == len(claims_) == found["linked"] == found["marked"], (chapter, found, len(claims_))
    assert all(color != found["body"] for color in found["fails"]), found
    assert not found["linesShown"], f"{chapter}: the printed verdict lines show beside the table"


def test_instructors_page_offers_every_assignment_without_solutions():
    _requirement((HTML / "index.html").is_file(), "the site is not built")
    import zipfile

    page = (HTML / "chapters" / "95_instructors.html").read_text(encoding="utf-8")
    masters = sorted(p.parent.name for p in (ROOT / "assignments").glob("*/*.ipynb") if p.stem == p.parent.name)
    assert masters, "no assignment masters found"
    for name in masters:
        assert f'href="../assignments/{name}-student.zip"' in page, f"the instructors' page does not offer {name}"
        archive = HTML / "assignments" / f"{name}-student.zip"
        assert archive.is_file(), f"{archive} was not built (_ext/book_assets.py publish_assignments)"
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            assert f"{name}.ipynb" in names, names
            text = z.read(f"{name}.ipynb").decode("utf-8")
        assert not any("autograder" in n for n in names), names
        for secret in ("# BEGIN SOLUTION", "# HIDDEN", "# BEGIN TESTS"):
            assert secret not in text, f"{name}: the student notebook contains {secret!r}"
