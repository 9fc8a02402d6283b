"""How much of each chapter's page is code: the visible-code share of the page height, on the built site.

Loads every chapter of the built book (``_build/html``, or ``--html``) in the headless Chromium of the site
tests at 1300 px, and measures, inside the article: its height, the summed height of the visible code
cells' input areas (``div.cell_input``; hidden and folded inputs are not visible), the number of visible
code lines, and the number of screens (the article height over a 1000 px window). The design notes set
the target (``docs/design.md``, section 8): visible code under 20 % of the height of a theory chapter.

Usage: ``python bench/bench_page.py [--html _build/html]`` after ``jupyter-book build .``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, write_report  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
import headless  # noqa: E402

from cssl.claims import toc_files  # noqa: E402

MEASURE_JS = """
const article = document.querySelector('article') || document.body;
// a folded cell's input sits in a closed <details>: only its one-line toggle shows
const inputs = [...article.querySelectorAll('div.cell_input')]
  .filter(e => e.offsetParent !== null && !e.closest('details:not([open])'));
const code = inputs.reduce((s, e) => s + e.getBoundingClientRect().height, 0);
const lines = inputs.reduce((s, e) => s + e.innerText.split('\\n').filter(l => l.trim()).length, 0);
return {article: article.getBoundingClientRect().height, code: code, lines: lines, cells: inputs.length};
"""
THEORY = ("01", "02", "03", "04", "05", "06", "07")
TARGET = 0.20


def chapter_pages() -> list[str]:
    return [f for f, _ in toc_files(ROOT) if re.match(r"chapters/\d\d_", f)
            and (ROOT / f"{f}.ipynb").is_file()]


def measure(html: Path) -> list[dict]:
    server, url = headless.serve(html)
    driver, profile = headless.start_chromium(width=1300, height=1000)
    try:
        rows = []
        for page in chapter_pages():
            driver.get(f"{url}/{page}.html")
            m = driver.execute_script(MEASURE_JS)
            rows.append({"page": page, "article_px": round(m["article"]), "code_px": round(m["code"]),
                         "share": m["code"] / m["article"] if m["article"] else 0.0, "code_lines": m["lines"],
                         "code_cells": m["cells"], "screens": m["article"] / 1000})
        return rows
    finally:
        headless.stop_chromium(driver, profile)
        server.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built site (default: _build/html)")
    args = parser.parse_args(argv)
    html = Path(args.html)
    if not (html / "index.html").is_file():
        parser.error(f"--html {html} holds no built site; run `jupyter-book build .` first")
    rows = measure(html)
    table = ["| chapter | visible code (share of page height) | visible code lines | code cells | screens at 1300 px |",
             "|---|---|---|---|---|"]
    for r in rows:
        mark = " (over the 20 % target)" if r["page"].split("/")[-1][:2] in THEORY and r["share"] >= TARGET else ""
        table.append(f"| {r['page'].split('/')[-1]} | {100 * r['share']:.0f} %{mark} | {r['code_lines']} | "
                     f"{r['code_cells']} | {r['screens']:.0f} |")
    theory = [r["share"] for r in rows if r["page"].split("/")[-1][:2] in THEORY]
    table += ["", f"Theory chapters: visible code {100 * min(theory):.0f}-{100 * max(theory):.0f} % of the page "
              f"height (target: under {100 * TARGET:.0f} %). Hidden and folded cells do not count."]
    write_report("page", {"rows": rows, "target": TARGET}, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
