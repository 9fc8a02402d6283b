"""Code on the page fits the text column, and Markdown that renders wrongly is caught in the source.

* Every visible code line of a chapter (code cells that are not removed from the page, including folded
  ones, which the reader can unfold, and code blocks in Markdown) has at most 88 characters: the column
  of the site fits 88 (``_ext/static/book.css``; tests/test_site.py checks the rendered pages).
  ``tools/format_notebooks.py`` formats code cells to this width.
* The formatter changes code cells only: outputs, metadata and the hidden setup cell stay as they are.
* In a Markdown table ``\\|`` is an escaped column separator, so ``$\\|f\\|$`` inside a table renders as
  ``|f|``: norms in tables must be written ``\\Vert``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import format_notebooks  # noqa: E402

LIMIT = format_notebooks.LINE_LENGTH
HIDDEN = {"remove-cell", "remove-input"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
PAGES = sorted((ROOT / "chapters").glob("*.md")) + [ROOT / "index.md"] + sorted((ROOT / "docs").glob("*.md"))


def _fenced_code(markdown: str) -> list[str]:
    """Lines inside code fences (```python ... ```) of Markdown text; directive fences ({prf:...}) and
    their content are prose, not code."""
    lines, out, stack = markdown.splitlines(), [], []
    for line in lines:
        m = FENCE.match(line)
        if m and stack and m.group(2)[0] == stack[-1][0][0] and len(m.group(2)) >= len(stack[-1][0]) \
                and not m.group(3).strip():
            stack.pop()
            continue
        if m and (not stack or not stack[-1][1]):
            info = m.group(3).strip()
            stack.append((m.group(2), not info.startswith("{") or info.startswith("{code")))
            continue
        if stack and stack[-1][1]:
            out.append(line)
    return out


def visible_code_lines(path: Path) -> list[tuple[str, str]]:
    """``(where, line)`` for every code line a reader can see on the page of the notebook at ``path``."""
    nb = nbformat.read(path, as_version=4)
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and not HIDDEN & set(cell.metadata.get("tags", [])):
            out += [(f"cell {i}", line) for line in cell.source.splitlines()]
        elif cell.cell_type == "markdown":
            out += [(f"cell {i} (Markdown)", line) for line in _fenced_code(cell.source)]
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_visible_code_lines_fit_the_column(path):
    lines = visible_code_lines(path)
    assert lines, f"{path.name}: no visible code found"
    long = [(where, line) for where, line in lines if len(line) > LIMIT]
    assert not long, (f"{path.name}: {len(long)} of {len(lines)} visible code lines are longer than {LIMIT} "
                      f"characters (run python tools/format_notebooks.py {path.relative_to(ROOT)}), e.g. "
                      + "; ".join(f"{w}: {len(l)} chars {l.strip()[:50]!r}" for w, l in long[:3]))


@pytest.mark.parametrize("path", PAGES, ids=[p.stem for p in PAGES])
def test_code_blocks_of_markdown_pages_fit_the_column(path):
    long = [line for line in _fenced_code(path.read_text(encoding="utf-8")) if len(line) > LIMIT]
    assert not long, f"{path.name}: code lines longer than {LIMIT} characters: {long[:3]}"


def test_fenced_code_finds_code_but_not_directives():
    text = "intro\n```python\nx = 1\n```\n```{prf:theorem} T\n:label: t\n$a$\n```\n````{code-cell}\ny\n````\n"
    assert _fenced_code(text) == ["x = 1", "y"]


def _table_rows_with_escaped_bars(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("|") and "\\|" in line]


@pytest.mark.parametrize("path", PAGES + CHAPTERS, ids=[p.name for p in PAGES + CHAPTERS])
def test_no_norm_bars_inside_markdown_tables(path):
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    rows = _table_rows_with_escaped_bars(text)
    assert not rows, (f"{path.name}: '\\|' in a Markdown table renders as a single bar; write \\Vert: "
                      f"{rows[0][:100]!r}")


# --- the formatter -----------------------------------------------------------------------------------

pytest.importorskip("black")

LONG = ('ledger.check("thm-x", statement="a statement far longer than the column of the book allows, '
        'as the chapters write them", value=1.0, expected=1.0)')


def _notebook(tmp_path: Path) -> Path:
    setup = nbformat.v4.new_code_cell("x  =  1   # setup, " + "kept exactly " * 8,
                                      metadata={"tags": ["remove-cell"]})
    long = nbformat.v4.new_code_cell(LONG, metadata={"tags": ["hide-input"]}, execution_count=3)
    long.outputs = [nbformat.v4.new_output("stream", name="stdout", text="claim thm-x: holds\n")]
    magic = nbformat.v4.new_code_cell("%time y = [1,2]")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), setup, long, magic])
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    return path


def test_formatter_fits_code_to_the_column_and_keeps_outputs_and_the_setup_cell(tmp_path):
    path = _notebook(tmp_path)
    before = nbformat.read(path, as_version=4)
    assert format_notebooks.main(["--check", str(path)]) == 1  # the long cell would change
    assert nbformat.read(path, as_version=4) == before  # --check writes nothing
    report = format_notebooks.format_notebook(path)
    after = nbformat.read(path, as_version=4)
    assert report.changed == [2] and report.too_long == []
    assert [i for i, _ in report.skipped] == [1, 3]  # the setup cell and the magic
    assert after.cells[1] == before.cells[1] and after.cells[3] == before.cells[3]
    assert after.cells[2].outputs == before.cells[2].outputs
    assert after.cells[2].metadata == before.cells[2].metadata
    assert after.cells[2].execution_count == 3
    assert all(len(line) <= LIMIT for line in after.cells[2].source.splitlines())
    assert "statement=(" in after.cells[2].source  # the long string was split, not left whole
    compile(after.cells[2].source, "cell", "exec")
    assert format_notebooks.main(["--check", str(path)]) == 0  # idempotent


def test_formatter_reports_lines_it_cannot_shorten(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1  # " + "word " * 30)])
    path = tmp_path / "c.ipynb"
    nbformat.write(nb, path)
    report = format_notebooks.format_notebook(path)
    assert [(i, n) for i, n, _ in report.too_long] == [(0, 1)]
    assert format_notebooks.main([str(path)]) == 1


def test_formatter_keeps_the_semicolon_that_hides_a_cell_value():
    assert format_notebooks.format_source("x = 1\nplt.plot([1],[2]);") == "x = 1\nplt.plot([1], [2]);"
    assert format_notebooks.format_source("y=2") == "y = 2"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_cells_that_do_not_teach_are_folded(path):
    import fold_cells

    nb = nbformat.read(path, as_version=4)
    assert not fold_cells.unfolded(nb), (
        f"{path.name}: cells {fold_cells.unfolded(nb)} set up the chapter, draw a figure, record claims or "
        f"run over {fold_cells.MAX_LINES} lines and are shown: run `python tools/fold_cells.py {path.relative_to(ROOT)}`")


def test_fold_rule_catches_a_shown_ledger_cell():
    import fold_cells

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("ledger.check('x', 1, '<=', 2)"),
                                         nbformat.v4.new_code_cell("bounds.rho_max(0.1)")])
    assert fold_cells.unfolded(nb) == [0]
    nb.cells[0].metadata["tags"] = ["hide-input"]
    assert fold_cells.unfolded(nb) == []


def test_fold_rule_removes_a_setup_cell_and_keeps_a_computing_one():
    import fold_cells

    setup = ("import numpy as np\nfrom cssl import claims\nfrom cssl.plotting import (\n    PALETTE,\n)\n\n"
             "use_book_style()\nledger = claims.Ledger('01_setting')\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup, metadata={"tags": ["hide-input"]}),
                                         nbformat.v4.new_code_cell("import numpy as np\nx = np.zeros(3)")])
    assert fold_cells.unfolded(nb) == [0]  # folding is not enough for a setup cell
    nb.cells[0].metadata["tags"] = ["remove-input"]
    assert fold_cells.unfolded(nb) == []
