"""The book's plumbing: CI runs the README's commands, notebooks are committed executed and clean,
and nbval really compares the verdict cells."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cssl import claims

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
VERDICT = "# NBVAL_CHECK_OUTPUT"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- commands:start -->\s*```bash\n(.*?)```\s*<!-- commands:end -->", text, re.S)
    assert block, "README.md must hold the two commands between <!-- commands:start/end --> markers"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_has_exactly_two_commands_and_ci_runs_them():
    commands = readme_commands()
    assert len(commands) == 2
    assert "jupyter-book build" in commands[0] and "-W" in commands[0] and "-n" in commands[0]
    assert "pytest" in commands[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    run_lines = [line for line in ci_lines if line and not line.startswith("#")]
    for command in commands:
        assert command in run_lines, f".ci/run does not run the README command {command!r}"
    assert run_lines[-1] == commands[1], ".ci/run must end with the test command (pytest's summary line)"
    assert os.access(ROOT / ".ci/run", os.X_OK)


def test_ci_uses_a_fresh_venv_and_forces_execution():
    ci = (ROOT / ".ci/run").read_text()
    assert "mktemp -d" in ci and "-m venv" in ci
    config = (ROOT / "_config.yml").read_text()
    assert re.search(r"execute_notebooks:\s*force", config), "the book must force notebook execution"


def test_every_chapter_notebook_is_in_the_toc_and_vice_versa():
    listed = {f for f, _ in claims.toc_files(ROOT)}
    on_disk = {f"chapters/{p.stem}" for p in (ROOT / "chapters").iterdir() if p.suffix in (".ipynb", ".md")}
    assert listed == on_disk


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_committed_executed_clean_with_one_stored_verdict(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: re-run top to bottom (execution counts {counts})"
    verdicts = [c for c in code if VERDICT in c.source]
    assert len(verdicts) == 1, f"{path.name}: needs exactly one '{VERDICT}' cell"
    assert code[-1] is verdicts[0], f"{path.name}: the verdict cell must be the last code cell"
    text = "".join(o.get("text", "") for o in verdicts[0].outputs if o.output_type == "stream")
    assert text.strip(), f"{path.name}: the verdict cell has no stored output, so nbval would check nothing"
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, f"{path.name}: stray notebook metadata"
    for cell in nb.cells:
        assert set(cell.metadata) <= {"tags", "mystnb"}, f"{path.name}: stray cell metadata {set(cell.metadata)}"
        for out in cell.get("outputs", []):
            assert out.get("name") != "stderr", f"{path.name}: a warning or error spilled into the outputs"
            assert out.output_type != "error", f"{path.name}: a cell raised"
        streams = [o.get("name") if o.output_type == "stream" else None for o in cell.get("outputs", [])]
        assert not any(a and a == b for a, b in zip(streams, streams[1:])), (
            f"{path.name}: a cell's printing is split into several outputs; save it with "
            "tools/run_notebooks.py, which joins them")


def test_saving_joins_a_cell_printing_that_the_kernel_split():
    sys.path.insert(0, str(ROOT / "tools"))
    import run_notebooks

    out = lambda kind, **kw: nbformat.from_dict({"output_type": kind, **kw})  # noqa: E731
    cell = nbformat.v4.new_code_cell("print(1); print(2)")
    cell.outputs = [out("stream", name="stdout", text="1\n"), out("stream", name="stdout", text=["2\n"]),
                    out("display_data", data={"text/plain": "x"}, metadata={}),
                    out("stream", name="stdout", text="3\n"), out("stream", name="stderr", text="w\n")]
    nb = run_notebooks.clean(nbformat.v4.new_notebook(cells=[cell]))
    assert [(o.output_type, o.get("name"), o.get("text")) for o in nb.cells[0].outputs] == [
        ("stream", "stdout", "1\n2\n"), ("display_data", None, None), ("stream", "stdout", "3\n"),
        ("stream", "stderr", "w\n")]


def _nbval(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "-o", "addopts=", "-o", "testpaths=", str(path)],
                          cwd=path.parent, capture_output=True, text=True, timeout=300)


def test_nbval_fails_when_a_stored_verdict_is_edited(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (tmp_path / "chapters").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from cssl.claims import Ledger\nledger = Ledger('00_probe')\n"
                                  "ledger.check('thm-probe', 1.0, '<=', 2.0, statement='1 <= 2', kind='exact')"),
        nbformat.v4.new_code_cell(f"{VERDICT}\nledger.verdicts()"),
    ]
    path = tmp_path / "chapters" / "00_probe.ipynb"
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    assert "thm-probe" in nb.cells[1].outputs[0]["text"]
    passed = _nbval(path)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    nb.cells[1].outputs[0]["text"] = nb.cells[1].outputs[0]["text"].replace("holds", "fails as printed")
    nbformat.write(nb, path)
    failed = _nbval(path)
    assert failed.returncode != 0 and "1 failed" in failed.stdout, failed.stdout


def test_ledger_record_of_each_chapter_lists_its_labels():
    """Each chapter's claims name labels that the chapter defines with a {prf:...} directive."""
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        text = "\n".join("".join(c["source"]) for c in nb["cells"])
        checked = set(re.findall(r"\.check(?:_identity|_proof)?\(\s*\"([^\"]+)\"", text))
        defined = set(re.findall(r":label:\s*(\S+)", text))
        assert checked <= defined, f"{path.name}: claims on labels it does not define: {checked - defined}"


def test_readme_shows_the_current_benchmark_reports():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "update_readme.py"), "--check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _png_size(b64: str) -> tuple[int, int]:
    import base64
    import struct

    head = base64.b64decode(b64[:64])
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "image/png output is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_a_caption_a_name_and_a_readable_size(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        images = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if not images:
            continue
        fig = cell.metadata.get("mystnb", {}).get("figure", {})
        assert fig.get("caption", "").strip() and fig.get("name"), \
            f"{path.name} cell {i}: a figure needs mystnb.figure caption and name metadata"
        assert len(images) == 1, f"{path.name} cell {i}: one figure per cell, so that it has one caption"
        width, height = _png_size(images[0])
        assert width >= 400 and height >= 150, f"{path.name} cell {i}: figure {width}x{height} px is too small to read"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_title_has_no_tex(path):
    """Titles go into every page's navigation, also on pages where MathJax is not loaded: no TeX there."""
    title = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
    assert title.startswith("# ") and "$" not in title and "\\" not in title, f"{path.name}: {title!r}"
