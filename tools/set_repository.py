"""Give the book its public repository address, in every place that needs it, in one step.

    python tools/set_repository.py https://github.com/OWNER/REPO   # once the book is published
    python tools/set_repository.py --check                           # do all places agree? (run by the tests)
    python tools/set_repository.py --setup-cells                     # (re)write the setup cells, address unchanged

The address is needed by

* ``_config.yml``: ``repository.url`` and the ``launch_buttons`` (Binder, Colab) of sphinx-book-theme, the
  repository button, and ``launch_buttons.thebe`` for live code cells, which start a kernel on Binder from the same
  repository. While the address is unset the launch buttons stay off: Jupyter Book would otherwise fill in its
  own repository (executablebooks/jupyter-book) and every page would get buttons that open the wrong project;
* the **setup cell** of every notebook under ``chapters/`` (its first code cell, removed from the rendered
  pages): on Colab, or any kernel where ``cssl`` is missing, it installs ``cssl`` from that repository. On
  Binder (``binder/postBuild``) and after the README's install, ``cssl`` is present and the cell does nothing;
  while the address is unset it stops with an error that says how to install ``cssl`` by hand.

A published clone needs none of this for Binder, Thebe and the repository button: the build reads the
address from the git remote when it is a public GitHub repository (``_ext/book_repository.py``). This tool
is for the other cases (a build outside a clone, a mirror, a private remote with a public copy) and for
Colab, whose button turns on only when the setup cells name the address, because Colab opens a chapter
from GitHub and installs ``cssl`` from the address in its setup cell.

Setting the address edits these files in place; the notebooks keep their outputs (the setup cell prints
nothing), so no chapter needs re-executing. ``--check`` exits 1 when a notebook lacks the setup cell or names
another address than ``_config.yml``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
SETUP_TAGS = ["remove-cell"]
_ADDRESS = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_MARKER = "BOOK_REPOSITORY = "
BINDERHUB = "https://mybinder.org"
COLAB = "https://colab.research.google.com"

SETUP_CELL = '''\
# Colab or a fresh kernel: install this book's package cssl when it is missing (on Binder, and after the
# README's install, it is already there and this cell does nothing). Written by tools/set_repository.py.
import importlib
import importlib.util
import subprocess
import sys

BOOK_REPOSITORY = {address!r}
if importlib.util.find_spec("cssl") is None:
    if not BOOK_REPOSITORY:
        raise ModuleNotFoundError("this notebook needs the package cssl: clone the book's repository, run "
                                  "`pip install -e .` at its root (see the README) and restart the kernel")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           f"cssl @ git+{{BOOK_REPOSITORY}}@main"])
    importlib.invalidate_caches()'''


def check_address(address: str) -> str:
    """The address as given, or ``ValueError`` unless it is ``https://github.com/OWNER/REPO``."""
    address = address.strip().rstrip("/")
    if address.endswith(".git"):
        address = address[:-4]
    if not _ADDRESS.match(address):
        raise ValueError(f"repository address must look like https://github.com/OWNER/REPO (Colab opens "
                         f"notebooks from GitHub only), got {address!r}")
    return address


def config_address(config: Path = CONFIG) -> str:
    """``repository.url`` of the book's ``_config.yml``, or ``""`` while it is unset."""
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    return str((data.get("repository") or {}).get("url") or "")


def setup_source(address: str) -> str:
    """The source of the setup cell for ``address`` (``""``: unset)."""
    return SETUP_CELL.format(address=address)


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "chapters").glob("*.ipynb"))


def _setup_index(nb) -> int | None:
    """Index of the setup cell: the first code cell, when it is one."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            return i if _MARKER in cell.source and "find_spec(\"cssl\")" in cell.source else None
    return None


def write_setup_cell(path: Path, address: str) -> bool:
    """Insert or update the setup cell of one notebook; returns whether the file changed."""
    nb = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell(setup_source(address), metadata={"tags": list(SETUP_TAGS)})
    i = _setup_index(nb)
    if i is not None:
        old = nb.cells[i]
        if old.source == cell.source and old.metadata.get("tags") == SETUP_TAGS and not old.outputs:
            return False
        cell.id, cell.execution_count = old.id, old.execution_count
        nb.cells[i] = cell
    else:
        first_code = next((k for k, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        cell.id = "cell-setup"
        nb.cells.insert(first_code, cell)
    nbformat.write(nb, path)
    return True


def write_config(address: str, config: Path = CONFIG) -> None:
    """Set ``repository.url``, the launch buttons, the repository button and Thebe in ``_config.yml``, keeping
    its comments."""
    text = config.read_text(encoding="utf-8")
    block = re.compile(r"^repository:\n(?:[ \t]+.*\n|[ \t]*\n)*", flags=re.M)
    if not block.search(text):
        raise ValueError(f"{config} has no top-level 'repository:' block")
    text = block.sub(f"repository:\n  url: {address}\n  branch: main\n\n", text, count=1)
    text = re.sub(r"^(\s*)use_repository_button:.*$", r"\1use_repository_button: true", text, flags=re.M)
    for key, url in (("binderhub_url", BINDERHUB), ("colab_url", COLAB)):
        text = re.sub(rf"^(\s*){key}:.*$", lambda m, key=key, url=url: f'{m.group(1)}{key}: "{url}"', text, flags=re.M)
    text = re.sub(r"^(\s*)thebe:.*$", r"\1thebe: true   # live code cells, on a Binder kernel of the repository",
                  text, flags=re.M)
    yaml.safe_load(text)  # still valid YAML
    config.write_text(text, encoding="utf-8")


def problems(root: Path = ROOT) -> list[str]:
    """What disagrees: notebooks without the setup cell, or with another address than ``_config.yml``."""
    want = setup_source(config_address(root / "_config.yml"))
    out = []
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        i = _setup_index(nb)
        if i is None:
            out.append(f"{path.relative_to(root)}: its first code cell is not the setup cell")
        elif nb.cells[i].source != want:
            out.append(f"{path.relative_to(root)}: the setup cell differs from the one for the address in _config.yml")
        elif nb.cells[i].metadata.get("tags") != SETUP_TAGS:
            out.append(f"{path.relative_to(root)}: the setup cell must carry the tags {SETUP_TAGS}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", nargs="?", help="https://github.com/OWNER/REPO")
    parser.add_argument("--check", action="store_true", help="exit 1 if the places disagree")
    parser.add_argument("--setup-cells", action="store_true", help="rewrite the setup cells for the current address")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        for line in found:
            print(line, file=sys.stderr)
        if found:
            print("fix: python tools/set_repository.py --setup-cells", file=sys.stderr)
        return 1 if found else 0
    if args.address:
        try:
            address = check_address(args.address)
        except ValueError as err:
            parser.error(str(err))
        write_config(address)
    elif not args.setup_cells:
        parser.error("give the repository address, --check or --setup-cells")
    address = config_address()
    changed = [p.name for p in notebooks() if write_setup_cell(p, address)]
    print(f"repository address: {address or '(unset)'}; setup cells written in {len(changed)} notebook(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
