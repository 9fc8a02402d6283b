"""The whole book as one PDF (tools/build_pdf.py): it exists, the preface links it, it has every chapter,
and no code or output is cut off on paper.

Needs the built site and Debian's chromium and chromedriver, like tests/test_site.py (skips without them
outside CI, fails under CI). The PDF is printed once, when it is missing or older than the site, into
``_build/html/book.pdf`` (on the 2-core reference machine: about two minutes).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_pdf  # noqa: E402

HTML = Path(os.environ.get("BOOK_HTML") or ROOT / "_build" / "html")


def _requirement(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (required under CI)")
        pytest.skip(why)


def _browser_available() -> bool:
    return bool((shutil.which("chromium") or shutil.which("chromium-browser")) and shutil.which("chromedriver"))


@pytest.fixture(scope="module")
def printed():
    _requirement((HTML / "index.html").is_file(), "the site is not built: run `jupyter-book build .` first")
    pdf, report = HTML / build_pdf.PDF_NAME, HTML / build_pdf.REPORT_NAME
    fresh = pdf.is_file() and report.is_file() and pdf.stat().st_mtime >= (HTML / "index.html").stat().st_mtime
    if not fresh:
        _requirement(_browser_available(), "chromium and chromedriver are not installed")
        build_pdf.build(HTML)
    return pdf.read_bytes(), json.loads(report.read_text())


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text.replace("#", "")).lower()


def _page_titles() -> dict[str, str]:
    titles = {}
    for page in build_pdf.toc_pages():
        html = (HTML / f"{page}.html").read_text(encoding="utf-8")
        h1 = re.search(r"<h1[^>]*>(.*?)</h1>", html[html.find("<article"):], flags=re.S)
        assert h1, f"{page}.html has no title"
        titles[page] = re.sub(r"<[^>]+>", "", h1.group(1)).replace("&#8217;", "\u2019").strip()
    return titles


def test_the_pdf_exists_and_has_every_chapter(printed):
    pdf, report = printed
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    pages = build_pdf.toc_pages()
    assert report["pages"] == build_pdf.page_count(pdf) >= 4 * len(pages)
    assert [pid for pid, _ in report["chapters"]] == [p.replace("/", "-") for p in pages]
    titles = _page_titles()
    assert [_norm(title) for _, title in report["chapters"]] == [_norm(titles[p]) for p in pages]
    # every page of the book is a place in the PDF: the contents on its second page links each one, and
    # Chromium writes a named destination for each link target that it laid out on a page
    missing = [p for p in pages if p.replace("/", "-") not in build_pdf.destinations(pdf)]
    assert not missing, f"pages of the book that are not in the PDF: {missing}"
    # the PDF's outline (bookmarks) starts with the book's first chapters
    outline = {_norm(t) for t in build_pdf.outline_titles(pdf)}
    assert _norm(titles["chapters/01_setting"]) in outline


def test_no_code_or_output_is_cut_off_on_paper(printed):
    _, report = printed
    cut = [c for c in report["clipped"] if c["kind"] in ("code", "output")]
    assert not cut, f"{len(cut)} code blocks or outputs wider than the paper: {cut[:5]}"


def test_the_preface_links_the_pdf(printed):
    index = (HTML / "index.html").read_text(encoding="utf-8")
    assert f'href="{build_pdf.PDF_NAME}"' in index, "the preface does not link the PDF"


def test_the_print_check_finds_code_wider_than_the_paper(tmp_path):
    # the check behind test_no_code_or_output_is_cut_off_on_paper, on a page without the print rules
    _requirement(_browser_available(), "chromium and chromedriver are not installed")
    page = tmp_path / "wide.html"
    page.write_text('<html><body><article><div class="highlight"><pre style="overflow:auto;width:300px">'
                    + "x = 1  # " + "wide " * 60 + "</pre></div><pre>short</pre></article></body></html>")
    driver, profile = build_pdf._browser()
    try:
        driver.get(page.as_uri())
        clipped = driver.execute_script(build_pdf.CLIPPED_JS)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert [c["kind"] for c in clipped] == ["code"] and clipped[0]["width"] > 300


def test_stitching_keeps_links_inside_the_book(tmp_path):
    # links between pages become links inside the one page; an id used on two pages is renamed per page
    site = tmp_path / "html"
    (site / "chapters").mkdir(parents=True)
    head = '<head><title>A &#8212; The Book</title><script src="../mathjax/tex-chtml.js"></script></head>'
    (site / "index.html").write_text('<html><head><title>The Book</title></head><body><article><h1 id="top">Preface'
                                     '</h1><a href="chapters/a.html#thm-1">Theorem 1.1</a>'
                                     '<img src="_images/x.png"></article></body></html>')
    (site / "chapters" / "a.html").write_text(f'<html>{head}<body><article><section id="top"><h1>1. A</h1>'
                                              '<a href="#top">up</a><a href="../index.html">preface</a>'
                                              '<a href="https://example.org/x.html">out</a>'
                                              '<div id="thm-1">T</div></section></article></body></html>')
    html = build_pdf.stitch(site, ["index", "chapters/a"])
    assert 'href="#thm-1"' in html and 'id="thm-1"' in html  # unique ids keep their names
    assert 'href="#chapters-a--top"' in html and 'id="index--top"' in html  # ids on two pages are renamed
    assert 'href="#index"' in html
    assert 'src="../_images/x.png"' in html and 'href="https://example.org/x.html"' in html
    assert html.count('class="book-print-page"') == 2 and "The Book" in html
