"""The static-site explorers (``cssl.static_explore``) in headless Chromium: a slider moves, the figure changes.

Two pages are tested:

* a small page written here (two explorers and the plotly.js the book serves, laid out as on the
  site), so the explorers' JavaScript is tested without building the book;
* the book's own page ``_build/html/chapters/94_explorers.html`` when the site is built: all four
  explorers draw, every slider changes its figure, plotly.js comes from the site, and nothing is
  fetched from another origin (the page works offline).

Needs Debian's ``chromium`` and ``chromedriver`` (as ``tests/test_site.py``); outside CI the tests skip
without them (and the second without a built site), under CI (the variable CI is set) they fail.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from cssl import static_explore

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
PAGE = "chapters/94_explorers"
sys.path.insert(0, str(ROOT / "tools"))
import headless  # noqa: E402  (tools/headless.py: the browser and server every site check uses)

CHROMIUM, CHROMEDRIVER = headless.CHROMIUM, headless.CHROMEDRIVER
EXPLORERS = ("theorem1", "sigma-table1", "theorem3", "results-table1")


def _requirement(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (required under CI)")
        pytest.skip(why)


_serve = headless.serve


@pytest.fixture(scope="module")
def browser():
    _requirement(bool(CHROMIUM and CHROMEDRIVER), "chromium and chromedriver are not installed "
                 "(Debian: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium.webdriver")
    driver, profile = headless.start_chromium(width=1300, log_browser=True)
    yield driver
    headless.stop_chromium(driver, profile)


def _wait_drawn(browser, names, timeout: float = 60) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    ids = [f"cssl-explorer-{n}" for n in names]
    script = ("return arguments[0].map(id => { const e = document.getElementById(id);"
              " return e ? [e.getAttribute('data-state'), e.className] : [null, 'missing']; });")
    try:
        WebDriverWait(browser, timeout).until(
            lambda d: all(state for state, _ in d.execute_script(script, ids)))
    except Exception:
        pytest.fail(f"explorers not drawn within {timeout} s: {browser.execute_script(script, ids)}")
    for state, cls in browser.execute_script(script, ids):
        assert "unavailable" not in cls


def _snapshot(browser, element_id: str) -> dict:
    """What the reader sees change: the traces' data, the drawn SVG paths, the sliders' readouts."""
    return json.loads(browser.execute_script(
        "const gd = document.getElementById(arguments[0]);"
        "return JSON.stringify({state: gd.getAttribute('data-state'),"
        " data: gd.data.map(t => [t.x, t.y]),"
        " paths: Array.from(gd.querySelectorAll('.scatterlayer path')).map(p => p.getAttribute('d')),"
        " title: (gd.querySelector('.gtitle') || {}).textContent || '',"
        " readouts: Array.from(gd.querySelectorAll('.slider-container text.slider-currentvalue'))"
        "   .map(t => t.textContent)});", element_id))


def _move_slider(browser, element_id: str, index: int) -> tuple[dict, dict]:
    """Click slider ``index`` at its far end (its first tick when it already sits at the last)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    before = _snapshot(browser, element_id)
    rails = browser.find_elements("css selector", f"#{element_id} .slider-container .slider-rail-touch-rect")
    assert len(rails) > index, f"{element_id}: slider {index} not drawn"
    rail = rails[index]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", rail)
    n_steps = len(json.loads(browser.execute_script(
        "return JSON.stringify(document.getElementById(arguments[0]).layout.sliders[arguments[1]].steps)",
        element_id, index)))
    at_end = int(before["state"].split("-")[index]) == n_steps - 1
    offset = (-1 if at_end else 1) * (rail.size["width"] // 2 - 3)
    ActionChains(browser).move_to_element_with_offset(rail, offset, 0).click_and_hold().release().perform()
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return document.getElementById(arguments[0]).getAttribute('data-state')",
                                   element_id) != before["state"])
    return before, _snapshot(browser, element_id)


def _assert_changed(name: str, index: int, before: dict, after: dict) -> None:
    moved = after["state"].split("-")
    assert moved[index] != before["state"].split("-")[index], f"{name}: slider {index} did not move"
    assert [p for i, p in enumerate(moved) if i != index] == \
        [p for i, p in enumerate(before["state"].split("-")) if i != index], f"{name}: other sliders moved"
    assert after["data"] != before["data"], f"{name}: slider {index} moved but the traces kept their data"
    assert after["paths"] != before["paths"], f"{name}: slider {index} moved but the drawing did not change"


def _severe(browser) -> list:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
            and e.get("source") in ("javascript", "network") and "favicon.ico" not in e["message"]]


@pytest.fixture(scope="module")
def small_site(tmp_path_factory):
    """Two explorers on a page laid out as the book's (``data-content_root``, plotly.js under ``_static``)."""
    site = tmp_path_factory.mktemp("site")
    static_explore.write_plotly_js(site)
    explorers = {"theorem1": static_explore.theorem1_explorer((0.9, 1.0), (0.0, 0.1), (0.0, 0.2), points=11),
                 "theorem3": static_explore.theorem3_explorer((1.0, 1.5), (0.0, 0.1), (2, 5), points=9)}
    body = "".join(e.to_html() for e in explorers.values())
    (site / "chapters").mkdir()
    (site / "chapters" / "page.html").write_text(
        '<!DOCTYPE html><html data-content_root="../"><head><meta charset="utf-8"></head>'
        f'<body><main style="width: 704px">{body}</main></body></html>', encoding="utf-8")
    (site / "chapters" / "elsewhere.html").write_text(  # not on the site: plotly.js cannot be found
        f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{body}</body></html>', encoding="utf-8")
    server, url = _serve(site)
    yield url, explorers
    server.shutdown()


def test_every_slider_changes_its_figure_on_a_small_page(browser, small_site):
    url, explorers = small_site
    browser.get(f"{url}/chapters/page.html")
    _wait_drawn(browser, list(explorers))
    for name, explorer in explorers.items():
        for index in range(3):
            before, after = _move_slider(browser, f"cssl-explorer-{name}", index)
            _assert_changed(name, index, before, after)
            # the figure drawn is the frame precomputed for the sliders' positions
            frame = explorer.spec()["frames"]
            frame = next(f for f in frame if f["name"] == after["state"])
            for trace, update in zip(frame["traces"], frame["data"]):
                assert after["data"][trace][1] == update.get("y", after["data"][trace][1])
    assert not _severe(browser)


def test_outside_the_site_the_explorer_says_why_instead_of_failing_silently(browser, small_site):
    browser.get(f"{small_site[0]}/chapters/elsewhere.html")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "return document.querySelectorAll('.cssl-explorer-unavailable').length") == 2)
    text = browser.find_element("id", "cssl-explorer-theorem1").text
    assert "book's web page" in text and "theorem1_explorer()" in text


def test_the_book_page_explorers_work_offline(browser):
    page = HTML / f"{PAGE}.html"
    _requirement(page.is_file(), "the site is not built: run `jupyter-book build .` first")
    source = page.read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', source)
    external = [s for s in scripts if urlparse(s).scheme or s.startswith("//")]
    assert not external, f"{PAGE}: scripts from outside the site: {external}"
    served = HTML / static_explore.PLOTLY_JS
    assert served.is_file(), "plotly.js is not served with the book (_ext/plotly_assets.py)"
    from plotly.offline import get_plotlyjs

    assert served.read_text(encoding="utf-8") == get_plotlyjs(), "the served plotly.js is not the pinned one"

    server, url = _serve(HTML)
    try:
        browser.get(f"{url}/{PAGE}.html")
        _wait_drawn(browser, EXPLORERS)
        for name in EXPLORERS:
            n_sliders = browser.execute_script(
                "return document.getElementById(arguments[0]).layout.sliders.length", f"cssl-explorer-{name}")
            for index in range(n_sliders):
                before, after = _move_slider(browser, f"cssl-explorer-{name}", index)
                _assert_changed(name, index, before, after)
        origin = urlparse(url).netloc
        fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        foreign = [f for f in fetched if urlparse(f).netloc not in (origin, "")]
        assert not foreign, f"{PAGE}: fetched from outside the site: {foreign}"
        assert any(f.split("?")[0].endswith(static_explore.PLOTLY_JS) for f in fetched)
        widths = browser.execute_script(
            "return Array.from(document.querySelectorAll('.cssl-explorer')).map(e => "
            "[e.id, e.getBoundingClientRect().width, e.parentElement.getBoundingClientRect().width])")
        for element_id, width, parent in widths:
            assert width <= parent + 1, f"{element_id} is wider ({width} px) than its column ({parent} px)"
        assert not _severe(browser)
    finally:
        server.shutdown()
