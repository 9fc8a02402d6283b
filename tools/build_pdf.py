"""The whole book as one PDF, printed from the built site by headless Chromium.

    jupyter-book build .              # the site, in _build/html (the README's first command)
    python tools/build_pdf.py         # -> _build/html/book.pdf, linked from the preface

Every page of the table of contents is taken from the built site (so the PDF has exactly the site's
numbering, executed outputs and figures), its article stitched in order into one HTML page,
``_build/html/chapters/book-print.html`` (the whole book on one page, with links between chapters turned
into links inside the page), which the same headless Chromium the site tests use (Debian's ``chromium``
and ``chromedriver``, through selenium) prints to A4 with page numbers and a PDF outline of the chapters.
The print rules of ``_ext/static/book.css`` wrap code and outputs, hide the site's navigation and keep
folded bookkeeping cells folded.

Before printing, the page is laid out for print at the width of the paper and checked: a code block,
output, table or display equation wider than its box would be cut off on paper. The findings go to
``_build/html/book-pdf.json`` (with the page count, the chapters and the time taken), which
tests/test_pdf.py reads; the command exits 1 when code or an output would be cut off.
"""
from __future__ import annotations

import argparse
import base64
import json
import posixpath
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import headless  # noqa: E402  (the browser and server the site tests use too)

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
PRINT_PAGE = "chapters/book-print.html"
PDF_NAME = "book.pdf"
REPORT_NAME = "book-pdf.json"
A4 = (8.27, 11.69)  # inches
MARGIN = 0.55  # inches, on every side
SCALE = 0.8  # of the screen layout: 16 px text prints at 9.6 pt (and the whole book stays under the
#             ~300 pages after which this Chromium stopped printing it at full scale; tests/test_pdf.py
#             fails if a page of the book is missing from the PDF)
CSS_PX_PER_INCH = 96

# What would be cut off on paper: elements wider than their box, under the print rules.
CLIPPED_JS = """
const out = [];
const kinds = [['code', 'div.highlight pre'], ['output', 'div.cell_output, div.cell_output pre'],
               ['table', 'table'], ['display equation', 'div.math, mjx-container[display="true"]']];
const seen = new Set();
for (const [kind, selector] of kinds) {
  for (const el of document.querySelectorAll('article ' + selector)) {
    if (seen.has(el)) continue;
    seen.add(el);
    if (kind === 'code' && el.closest('div.cell_output')) continue;
    if (!el.getClientRects().length) continue;
    if (el.scrollWidth - el.clientWidth > 1) {
      const page = el.closest('section.book-print-page');
      out.push({kind: kind, page: page ? page.id : '', width: el.scrollWidth, box: el.clientWidth,
                text: (el.innerText || '').trim().split('\\n')[0].slice(0, 80)});
    }
  }
}
return out;
"""


def toc_pages(root: Path = ROOT) -> list[str]:
    """The book's pages in reading order (``index`` first), as paths without suffix."""
    from cssl.claims import toc_files

    return ["index"] + [f for f, _ in toc_files(root)]


def _anchor(page: str, fragment: str = "") -> str:
    base = page.replace("/", "-")
    return f"{base}--{fragment}" if fragment else base


def stitch(html_dir: Path, pages: list[str]) -> str:
    """One HTML document (to be saved as ``PRINT_PAGE``) holding the article of every page in order.

    An id that occurs on more than one page ("exercises", "verdicts") is renamed ``<page>--<id>``; unique
    ids keep their names, so the scripts of a page (the explorers) still find their elements."""
    from bs4 import BeautifulSoup

    here = posixpath.dirname(PRINT_PAGE)
    known = set(pages)
    template = None
    articles = {}
    for page in pages:
        source = html_dir / f"{page}.html"
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing: build the site first (jupyter-book build .)")
        soup = BeautifulSoup(source.read_text(encoding="utf-8"), "html.parser")
        if template is None and posixpath.dirname(page) == here and soup.find("script", src=re.compile("mathjax")):
            template = soup
        article = soup.find("article")
        if article is None:
            raise ValueError(f"{source} has no <article>")
        articles[page] = article
    owners: dict[str, set] = {}
    for page, article in articles.items():
        for tag in article.find_all(id=True):
            owners.setdefault(tag["id"], set()).add(page)

    def new_id(page: str, fragment: str) -> str:
        if not fragment:
            return _anchor(page)
        return _anchor(page, fragment) if len(owners.get(fragment, ())) > 1 else fragment

    sections = []
    for page, article in articles.items():
        page_dir = posixpath.dirname(page)
        for tag in article.find_all(id=True):
            tag["id"] = new_id(page, tag["id"])
        for tag in article.find_all(["a", "img", "source", "link"]):
            attr = "href" if tag.name in ("a", "link") else "src"
            url = tag.get(attr)
            if not url or urlparse(url).scheme or url.startswith(("/", "mailto:", "data:")):
                continue
            path, _, fragment = url.partition("#")
            if not path:
                tag[attr] = "#" + new_id(page, fragment)
                continue
            target = posixpath.normpath(posixpath.join(page_dir, path))
            stem = re.sub(r"\.html$", "", target)
            if stem in known:
                tag[attr] = "#" + new_id(stem, fragment)
            else:
                tag[attr] = posixpath.relpath(target, here) + (f"#{fragment}" if fragment else "")
        for tag in article.find_all(srcset=True):
            del tag["srcset"]
        sections.append(f'<section class="book-print-page" id="{_anchor(page)}">{article.decode_contents()}</section>')
    if template is None:
        raise ValueError(f"no page under {here}/ loads MathJax: cannot make the print page")
    body = template.find("body")
    contents = "".join(f'<li><a href="#{_anchor(page)}">{_title(articles[page])}</a></li>' for page in pages)
    cover = _cover(template) + f'<nav class="book-print-contents"><h2>Contents</h2><ul>{contents}</ul></nav>'

    body.clear()
    body.append(BeautifulSoup(
        '<div class="bd-container"><div class="bd-container__inner bd-page-width"><main class="bd-main">'
        '<div class="bd-content"><div class="bd-article-container"><article class="bd-article">'
        + cover + "".join(sections) + "</article></div></div></main></div></div>", "html.parser"))
    for script in template.find_all("script"):
        if script.get("src") and "searchindex" in script["src"]:
            script.decompose()
    style = template.new_tag("style")
    style.string = PRINT_STYLE
    template.find("head").append(style)
    title = template.find("title")
    if title:
        title.string = _book_title(template)
    return str(template)


PRINT_STYLE = """
/* the theme hides each page's first h1 in print (it prints its own title): here every chapter keeps it */
.bd-main .bd-content .bd-article section.book-print-page h1,
.bd-main .bd-content .bd-article .book-print-cover h1 { display: block !important; }
section.book-print-page { break-before: page; }
section.book-print-page:first-of-type { break-before: auto; }
.book-print-cover { text-align: center; padding-top: 30vh; break-after: page; }
.book-print-cover h1 { font-size: 2.4em; }
.book-print-contents { break-after: page; }
.book-print-contents ul { list-style: none; padding-left: 0; }
@page { size: A4; }
"""


def _title(article) -> str:
    h1 = article.find("h1")
    if h1 is None:
        return ""
    parts = [t for t in h1.find_all(string=True) if not t.find_parent("a", class_="headerlink")]
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def _book_title(soup) -> str:
    title = soup.find("title").get_text() if soup.find("title") else ""
    return title.split("\u2014")[-1].strip() or "The book"


def _cover(soup) -> str:
    commit = ""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    when = time.strftime("%Y-%m-%d")
    made = f"Printed from the built site on {when}" + (f", commit {commit}" if commit else "") + "."
    return (f'<div class="book-print-cover"><h1>{_book_title(soup)}</h1>'
            f"<p>An executable textbook on Huang, Yi, Zhao and Jiang, <em>Towards the Generalization of "
            f"Contrastive Self-Supervised Learning</em> (ICLR 2023).</p><p>{made}</p></div>")


def _browser():
    try:
        return headless.start_chromium(timeout=600, prefix="cssl-pdf-")
    except RuntimeError as err:
        raise SystemExit(f"tools/build_pdf.py needs {err}") from None


def print_pdf(html_dir: Path, out: Path) -> dict:
    """Print ``PRINT_PAGE`` of the site in ``html_dir`` to ``out``; returns the report."""
    server, base = headless.serve(html_dir)
    driver, profile = _browser()
    try:
        width = round((A4[0] - 2 * MARGIN) * CSS_PX_PER_INCH / SCALE)  # the layout width on paper
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": 1200, "deviceScaleFactor": 1, "mobile": False})
        driver.get(f"{base}/{PRINT_PAGE}")
        typeset = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const wait = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
            "  ? MathJax.startup.promise.then(() => done('ok'), e => done('error: ' + e)) : setTimeout(wait, 100);"
            "wait();")
        if typeset != "ok":
            raise RuntimeError(f"MathJax failed on the print page: {typeset}")
        clipped = driver.execute_script(CLIPPED_JS)
        chapters = driver.execute_script(
            "return Array.from(document.querySelectorAll('section.book-print-page')).map(s => "
            "[s.id, ((s.querySelector('h1') || {}).innerText || '').replace(/#$/, '').trim()]);")
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        result = driver.execute_cdp_cmd("Page.printToPDF", {
            "paperWidth": A4[0], "paperHeight": A4[1], "marginTop": MARGIN, "marginBottom": MARGIN,
            "marginLeft": MARGIN, "marginRight": MARGIN, "printBackground": True, "preferCSSPageSize": False,
            "displayHeaderFooter": True, "headerTemplate": "<span></span>",
            "footerTemplate": '<div style="font-size:8px;width:100%;text-align:center;color:#555">'
                              '<span class="pageNumber"></span> / <span class="totalPages"></span></div>',
            "generateDocumentOutline": True, "scale": SCALE})
    finally:
        headless.stop_chromium(driver, profile)
        server.shutdown()
    data = base64.b64decode(result["data"])
    out.write_bytes(data)
    return {"pdf": out.name, "bytes": len(data), "pages": page_count(data), "chapters": chapters,
            "destinations": sorted(destinations(data)), "outline": outline_titles(data), "clipped": clipped}


def page_count(pdf: bytes) -> int:
    """Pages of a PDF written by Chromium (its page tree's /Count)."""
    counts = [int(c) for c in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", pdf, flags=re.S)]
    counts += [int(c) for c in re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", pdf, flags=re.S)]
    return max(counts) if counts else len(re.findall(rb"/Type\s*/Page\b", pdf))


def destinations(pdf: bytes) -> set[str]:
    """The named destinations of a PDF written by Chromium (one per element that a link points to)."""
    return {name.decode("latin-1") for name in re.findall(rb"/([A-Za-z0-9_.#-]+)\s*\[\s*\d+\s+0\s+R\s*/XYZ", pdf)}


def outline_titles(pdf: bytes) -> list[str]:
    """The titles of a PDF's outline (bookmarks) and document info, decoded (literal or UTF-16 strings)."""
    titles = []
    for raw in re.findall(rb"/Title\s*(\((?:[^()\\]|\\.)*\)|<[0-9A-Fa-f]+>)", pdf):
        if raw.startswith(b"<"):
            titles.append(bytes.fromhex(raw[1:-1].decode()).decode("utf-16-be").lstrip("\ufeff"))
        else:
            titles.append(re.sub(r"\\(.)", r"\1", raw[1:-1].decode("latin-1")))
    return titles


def build(html_dir: Path = HTML) -> dict:
    """Stitch and print the book from the site in ``html_dir``; writes the PDF and the report there."""
    start = time.perf_counter()
    if not (html_dir / "index.html").is_file():
        raise SystemExit(f"{html_dir}/index.html is missing: build the site first (jupyter-book build .)")
    pages = toc_pages()
    (html_dir / PRINT_PAGE).write_text(stitch(html_dir, pages), encoding="utf-8")
    report = print_pdf(html_dir, html_dir / PDF_NAME)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["print_page"] = PRINT_PAGE
    (html_dir / REPORT_NAME).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--html", type=Path, default=HTML, help="the built site (default: _build/html)")
    args = parser.parse_args(argv)
    report = build(args.html)
    print(f"{args.html / PDF_NAME}: {report['pages']} pages, {report['bytes'] / 1e6:.1f} MB, "
          f"{len(report['chapters'])} parts of the book, in {report['seconds']} s")
    cut = [c for c in report["clipped"] if c["kind"] in ("code", "output")]
    for c in report["clipped"]:
        print(f"  {c['kind']} wider than the paper ({c['width']} > {c['box']} px) in {c['page']}: {c['text']}")
    return 1 if cut else 0


if __name__ == "__main__":
    sys.exit(main())
