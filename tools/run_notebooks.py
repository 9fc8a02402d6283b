"""Execute chapter notebooks top to bottom in place and strip stray metadata, ready to commit.

    python tools/run_notebooks.py chapters/01_setting.ipynb [more.ipynb ...]
    python tools/run_notebooks.py --all          # every notebook under chapters/, in toc order

Each notebook is executed in a fresh kernel of the current environment with its own folder as working
directory, then saved with: outputs of this run, execution counts 1..n, deterministic cell ids, only
the ``kernelspec``/``language_info`` notebook metadata and only ``tags``/``mystnb`` in cell metadata. It prints
the wall time of each notebook. nbval compares the committed outputs of the verdict cells, so re-run
this after changing a chapter or ``cssl``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
KEEP_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
KEEP_CELL_METADATA = {"tags", "mystnb"}  # mystnb carries figure captions and names


def coalesce_streams(outputs: list) -> list:
    """Consecutive stream outputs of one stream as one output.

    How the kernel chunks a cell's printing depends on when stdout is flushed, so the same run can be
    stored as one, two or three stream outputs; joined, the committed outputs depend only on the text.
    Only neighbours are joined: nbclient's ``coalesce_streams`` option joins every output of a stream
    and so moves text printed after a figure to before it.
    """
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None
                and prev.get("output_type") == "stream" and prev.get("name") == out.get("name")):
            prev["text"] = "".join(prev["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Keep only the metadata a reader needs, give cells stable ids and join split stream outputs."""
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NOTEBOOK_METADATA}
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA and v}
        cell.id = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    return nb


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    nbformat.write(clean(nb), path)
    return elapsed


def toc_notebooks() -> list[Path]:
    """The chapter notebooks of ``_toc.yml`` in book order (read by :func:`cssl.claims.toc_files`)."""
    from cssl.claims import toc_files

    return [ROOT / f"{f}.ipynb" for f, _ in toc_files(ROOT)
            if f.startswith("chapters/") and (ROOT / f"{f}.ipynb").is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute in place")
    parser.add_argument("--all", action="store_true", help="every chapter notebook in _toc.yml order")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    paths = toc_notebooks() if args.all else args.notebooks
    if not paths:
        parser.error("name notebooks to execute, or pass --all")
    for p in paths:
        if p.suffix != ".ipynb" or not p.is_file():
            parser.error(f"{p} is not a notebook file")
    for p in paths:
        print(f"{p.relative_to(ROOT) if p.is_absolute() else p}: {run(p.resolve(), args.timeout):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
