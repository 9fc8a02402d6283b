"""Launch buttons turn on when the book is published: the build takes the repository address from the git
remote when it is a public GitHub repository (_ext/book_repository.py); ``_config.yml`` (written by
tools/set_repository.py) and the variable BOOK_REPOSITORY take precedence."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
import book_repository  # noqa: E402

ADDRESS = "https://github.com/example-org/cssl-book"


@pytest.mark.parametrize("remote", [
    "https://github.com/example-org/cssl-book.git", "https://github.com/example-org/cssl-book",
    "https://github.com/example-org/cssl-book/", "git@github.com:example-org/cssl-book.git",
    "ssh://git@github.com/example-org/cssl-book.git", "https://user:secret@github.com/example-org/cssl-book.git"])
def test_github_remotes_give_the_public_address(remote):
    assert book_repository.github_address(remote) == ADDRESS  # credentials never reach the page


@pytest.mark.parametrize("remote", ["https://gitlab.com/o/r.git", "/srv/git/book.git", "file:///tmp/book",
                                    "git@example.org:o/r.git", "https://github.com/o", ""])
def test_other_remotes_give_no_address(remote):
    assert book_repository.github_address(remote) == ""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def clone(tmp_path):
    _git(tmp_path, "init", "-q")
    return tmp_path


def test_git_remote_reads_origin_or_the_only_remote(clone):
    assert book_repository.git_remote(clone) == ""
    _git(clone, "remote", "add", "upstream", "git@github.com:example-org/cssl-book.git")
    assert book_repository.git_remote(clone) == "git@github.com:example-org/cssl-book.git"
    _git(clone, "remote", "add", "mirror", "https://gitlab.com/o/r.git")
    assert book_repository.git_remote(clone) == ""  # two remotes, none named origin: ambiguous
    _git(clone, "remote", "add", "origin", "https://github.com/someone/fork.git")
    assert book_repository.git_remote(clone) == "https://github.com/someone/fork.git"


def test_resolve_order_and_the_public_check(clone):
    public, private = (lambda a: True), (lambda a: False)
    assert book_repository.resolve("", clone, {}, public) == ("", "no git remote")
    _git(clone, "remote", "add", "origin", ADDRESS + ".git")
    assert book_repository.resolve("", clone, {}, public) == (ADDRESS, "git remote")
    assert book_repository.resolve("", clone, {}, lambda a: None) == (ADDRESS, "git remote")  # offline
    assert book_repository.resolve("", clone, {}, private)[0] == ""  # private: dead buttons otherwise
    assert book_repository.resolve("", clone, {"BOOK_REPOSITORY_CHECK": "0"}, private)[0] == ADDRESS
    other = "https://github.com/other/book"
    assert book_repository.resolve(other, clone, {}, private) == (other, "_config.yml")
    assert book_repository.resolve(other, clone, {"BOOK_REPOSITORY": "none"}, public)[0] == ""
    assert book_repository.resolve("", clone, {"BOOK_REPOSITORY": ADDRESS + ".git"}, private) == (ADDRESS, "environment")
    with pytest.raises(ValueError, match="BOOK_REPOSITORY"):
        book_repository.resolve("", clone, {"BOOK_REPOSITORY": "https://gitlab.com/o/r"}, public)
    _git(clone, "remote", "set-url", "origin", "https://gitlab.com/o/r.git")
    assert book_repository.resolve("", clone, {}, public)[0] == ""


def _mini_book(path: Path) -> None:
    """A copy of the book's configuration, extension and bibliography with one small notebook chapter."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert not (config.get("repository") or {}).get("url"), "the test expects the committed config unset"
    text = (ROOT / "_config.yml").read_text().replace("execute_notebooks: force", 'execute_notebooks: "off"')
    (path / "_config.yml").write_text(text)
    shutil.copytree(ROOT / "_ext", path / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "_vendor").mkdir()
    shutil.copy(ROOT / "references.bib", path / "references.bib")
    (path / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: chapter\n")
    (path / "index.md").write_text("# A book\n\nThe preface.\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter"),
                                         nbformat.v4.new_code_cell("1 + 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path / "chapter.ipynb")


def _build(path: Path, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOOK_REPOSITORY")} | env
    jb = Path(sys.executable).with_name("jupyter-book")
    out = subprocess.run([str(jb), "build", str(path)], capture_output=True, text=True, env=environ, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return (path / "_build" / "html" / "chapter.html").read_text(encoding="utf-8")


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
def test_a_copy_with_a_github_remote_builds_with_launch_buttons(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    _mini_book(book)
    _git(book, "init", "-q")
    _git(book, "remote", "add", "origin", "git@github.com:example-org/cssl-book.git")
    html = _build(book, BOOK_REPOSITORY_CHECK="0")  # example-org/cssl-book need not exist
    launches = re.findall(r'href="(https://(?:mybinder\.org|colab\.research\.google\.com)[^"]+)"', html)
    assert any(u.startswith("https://mybinder.org/v2/gh/example-org/cssl-book/main?") for u in launches), launches
    assert not any("colab" in u for u in launches)  # the setup cells do not name the address yet
    assert f'href="{ADDRESS}"' in html  # the repository button
    assert "thebe" in html.lower() and "executablebooks/jupyter-book" not in html

    _git(book, "remote", "remove", "origin")
    html = _build(book)
    assert "mybinder.org/v2" not in html and "executablebooks/jupyter-book" not in html
