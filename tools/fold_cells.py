"""Fold the code cells that do not teach, so that the page shows mathematics before bookkeeping.

    python tools/fold_cells.py chapters/03_guarantee.ipynb     # tag the cells in place
    python tools/fold_cells.py --check --all                    # exit 1 if a cell should be folded

A folded cell (tag ``hide-input``) shows its output and a one-line toggle; the reader can unfold its
code. Folded are: cells that draw a figure (an image output: the figure teaches, its matplotlib code does
not), cells that record claims (``ledger.``: bookkeeping of the claims ledger), and cells longer than
``MAX_LINES`` non-blank lines (long computations; their results and the prose carry the argument).
Short cells that call ``cssl`` stay visible: they show the reader how to compute what the text states.
A *setup* cell (only imports and the chapter's setup calls: book style, threads, the ledger, a start
time) is removed from the page (tag ``remove-input``): it teaches nothing, and the notebook keeps it.
Only tags change: sources, outputs and other metadata stay as they are, so no re-execution is needed.
``docs/design.md`` (section 8) sets the target this serves: visible code under 20 % of a theory
chapter's page height, measured by ``python bench/bench_page.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 30
FOLD = "hide-input"
REMOVE = "remove-input"
SHOWN_ELSEWHERE = {"remove-cell", REMOVE, FOLD}
#: Statements a setup cell may hold besides imports.
SETUP_CALLS = ("use_book_style(", "use_threads(", "claims.Ledger(", "time.perf_counter()", "manual_seed(")


def is_setup(cell) -> bool:
    """Whether a code cell only imports and makes the chapter's setup calls (:data:`SETUP_CALLS`)."""
    if cell.cell_type != "code":
        return False
    imports, open_paren = 0, False
    for line in cell.source.splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if open_paren:  # inside "from x import (" ... ")"
            open_paren = not text.startswith(")")
        elif text.startswith(("import ", "from ")):
            imports += 1
            open_paren = text.endswith("(")
        elif not any(call in text for call in SETUP_CALLS):
            return False
    return imports > 0


def should_fold(cell) -> bool:
    """Whether a code cell draws a figure, records claims or is longer than :data:`MAX_LINES`."""
    if cell.cell_type != "code":
        return False
    source = cell.source
    figure = any("image/png" in out.get("data", {}) or "image/svg+xml" in out.get("data", {})
                 for out in cell.get("outputs", []))
    long = sum(1 for line in source.splitlines() if line.strip()) > MAX_LINES
    return figure or "ledger." in source or long


def unfolded(nb) -> list[int]:
    """Indices of the cells that should be folded or removed and are still shown (a setup cell that is
    only folded counts as shown)."""
    def shown(cell):
        tags = set(cell.metadata.get("tags", []))
        return not tags & ({"remove-cell", REMOVE} if is_setup(cell) else SHOWN_ELSEWHERE)

    return [i for i, cell in enumerate(nb.cells) if (is_setup(cell) or should_fold(cell)) and shown(cell)]


def fold(path: Path, write: bool = True) -> list[int]:
    """Tag the cells of :func:`unfolded`: ``remove-input`` for a setup cell, else ``hide-input``; return
    their indices."""
    nb = nbformat.read(path, as_version=4)
    todo = unfolded(nb)
    for i in todo:
        cell = nb.cells[i]
        tags = [t for t in cell.metadata.get("tags", []) if t != FOLD]
        cell.metadata["tags"] = tags + [REMOVE if is_setup(cell) else FOLD]
    if todo and write:
        nbformat.write(nb, path)
    return todo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to fold")
    parser.add_argument("--all", action="store_true", help="every notebook under chapters/")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a cell should be folded")
    args = parser.parse_args(argv)
    paths = sorted((ROOT / "chapters").glob("*.ipynb")) if args.all else args.notebooks
    if not paths:
        parser.error("give notebooks or --all")
    status = 0
    for path in paths:
        cells = fold(path, write=not args.check)
        if cells:
            verb = "should fold" if args.check else "folded"
            print(f"{path}: {verb} cells {cells}")
            status = 1 if args.check else status
    return status


if __name__ == "__main__":
    sys.exit(main())
