"""Format the code cells of notebooks to the book's column: black, 88 characters a line.

    python tools/format_notebooks.py chapters/03_guarantee.ipynb      # format in place
    python tools/format_notebooks.py --all                             # every chapter notebook
    python tools/format_notebooks.py --check chapters/*.ipynb          # exit 1 if anything would change

The text column of the site fits 88 characters of code (``_ext/static/book.css``), and
``tests/test_site_code.py`` fails on a visible code line longer than that. This tool formats each code cell
with black (pinned in ``requirements.txt``) at line length 88, splitting long string literals as well
(black's ``string_processing`` feature: a long ``statement="..."`` becomes implicitly concatenated pieces).

It touches only the source of code cells: outputs, execution counts, metadata and Markdown cells stay as
they are, so formatted notebooks need no re-execution (black only makes changes that leave the program's
syntax tree the same). Skipped, and listed:

* the hidden setup cell (tag ``remove-cell``): ``tools/set_repository.py --check`` compares it byte for byte;
* cells black cannot parse (IPython magics such as ``%time``, shell escapes ``!pip``).

After formatting, the lines that are still longer than 88 characters (a long comment, a URL) are listed
with their notebook and cell so that they can be shortened by hand. Exit status: 0, or 1 with ``--check``
when a cell would change or a line is too long.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
LINE_LENGTH = 88
SKIP_TAGS = {"remove-cell"}


def _black():
    try:
        import black
    except ImportError as err:  # pragma: no cover - black is pinned in requirements.txt
        raise SystemExit("tools/format_notebooks.py needs black: pip install -r requirements.txt") from err
    return black


def mode(split_strings: bool = True):
    """black's mode for the book: line length 88, long strings split when ``split_strings``."""
    black = _black()
    features = {black.mode.Preview.string_processing} if split_strings else set()
    return black.Mode(line_length=LINE_LENGTH, enabled_features=features)


def format_source(source: str, split_strings: bool = True) -> str:
    """``source`` formatted by black (without the trailing newline a notebook cell does not have).

    Raises ``ValueError`` when black cannot parse it (IPython magics, shell escapes, syntax errors)."""
    black = _black()
    if not source.strip():
        return source
    # A trailing ";" hides the cell's value in a notebook; black would drop it and change the page.
    body = source.rstrip()
    quiet = body.endswith(";")
    try:
        out = black.format_str(body[:-1] if quiet else source, mode=mode(split_strings))
    except black.parsing.InvalidInput as err:
        raise ValueError(f"black cannot parse this cell: {err}") from err
    return out.rstrip("\n") + (";" if quiet else "")


def long_lines(source: str, limit: int = LINE_LENGTH) -> list[tuple[int, str]]:
    """The lines of ``source`` longer than ``limit`` characters, as ``(line number from 1, line)``."""
    return [(i, line) for i, line in enumerate(source.splitlines(), 1) if len(line) > limit]


@dataclass
class Report:
    path: Path
    changed: list[int] = field(default_factory=list)  # indices of cells whose source changed
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (cell index, why)
    too_long: list[tuple[int, int, str]] = field(default_factory=list)  # (cell index, line number, line)


def format_notebook(path: Path, write: bool = True, split_strings: bool = True) -> Report:
    """Format every code cell of the notebook at ``path`` except the hidden setup cell; write it back when
    ``write`` and something changed. Returns what changed, what was skipped and what is still too long."""
    nb = nbformat.read(path, as_version=4)
    report = Report(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        if tags & SKIP_TAGS:
            report.skipped.append((i, "tagged " + ", ".join(sorted(tags & SKIP_TAGS))))
            continue
        try:
            new = format_source(cell.source, split_strings)
        except ValueError as err:
            report.skipped.append((i, str(err).splitlines()[0]))
            new = cell.source
        if new != cell.source:
            report.changed.append(i)
            cell.source = new
        report.too_long += [(i, n, line) for n, line in long_lines(new)]
    if write and report.changed:
        nbformat.write(nb, path)
    return report


def chapter_notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "chapters").glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to format")
    parser.add_argument("--all", action="store_true", help="every notebook under chapters/")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything would change")
    parser.add_argument("--no-split-strings", action="store_true", help="leave long string literals whole")
    args = parser.parse_args(argv)
    paths = chapter_notebooks() if args.all else args.notebooks
    if not paths:
        parser.error("give notebooks or --all")
    for path in paths:
        if not path.is_file():
            parser.error(f"no such notebook: {path}")
    failed = False
    for path in paths:
        report = format_notebook(path, write=not args.check, split_strings=not args.no_split_strings)
        verb = "would reformat" if args.check else "reformatted"
        print(f"{path}: {verb} {len(report.changed)} cell(s)" if report.changed else f"{path}: unchanged")
        for i, why in report.skipped:
            if not why.startswith("tagged"):
                print(f"  cell {i} skipped: {why}")
        for i, n, line in report.too_long:
            print(f"  cell {i} line {n} has {len(line)} > {LINE_LENGTH} characters: {line.strip()[:70]}...")
        failed |= bool(report.too_long) or (args.check and bool(report.changed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
