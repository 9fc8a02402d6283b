"""The book's repository address: one command sets it everywhere, and each chapter's setup cell installs cssl
from it on Colab (tools/set_repository.py)."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import set_repository  # noqa: E402

ADDRESS = "https://github.com/example-org/cssl-book"


def test_every_notebook_has_the_setup_cell_for_the_configured_address():
    assert set_repository.problems(ROOT) == []
    assert len(set_repository.notebooks(ROOT)) >= 13


def test_launch_buttons_are_off_while_the_address_is_unset():
    # Jupyter Book fills an unset repository.url with its own repository: buttons would open the wrong project
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    buttons = config["launch_buttons"]
    assert config["repository"]["branch"] == "main"
    if set_repository.config_address():
        assert set_repository.check_address(set_repository.config_address()) == set_repository.config_address()
        assert buttons["binderhub_url"] == set_repository.BINDERHUB and buttons["colab_url"] == set_repository.COLAB
        assert buttons["thebe"] is True  # Thebe starts its kernel on Binder from the repository
    else:
        assert buttons["binderhub_url"] == "" and buttons["colab_url"] == "" and buttons["thebe"] is False
        assert config["html"]["use_repository_button"] is False


def _hide_cssl(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "cssl" else real(name, *a, **k))


def test_setup_cell_without_an_address_says_how_to_install(monkeypatch):
    _hide_cssl(monkeypatch)
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: pytest.fail("must not install without an address"))
    with pytest.raises(ModuleNotFoundError, match=r"pip install -e \."):
        exec(set_repository.setup_source(""), {})


def test_setup_cell_installs_cssl_from_the_address_when_missing(monkeypatch):
    _hide_cssl(monkeypatch)
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, **k: calls.append(cmd))
    exec(set_repository.setup_source(ADDRESS), {})
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", f"cssl @ git+{ADDRESS}@main"]]


def test_setup_cell_does_nothing_where_cssl_is_installed(monkeypatch):
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: pytest.fail("cssl is installed: nothing to do"))
    exec(set_repository.setup_source(ADDRESS), {})
    exec(set_repository.setup_source(""), {})


def test_setting_the_address_updates_config_and_every_notebook(tmp_path):
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "chapters").mkdir()
    for name in ("01_setting.ipynb", "90_ledger.ipynb"):
        shutil.copy(ROOT / "chapters" / name, tmp_path / "chapters" / name)
    config = tmp_path / "_config.yml"
    before = config.read_text()

    set_repository.write_config(set_repository.check_address(ADDRESS + ".git"), config)
    assert set_repository.problems(tmp_path)  # the notebooks still carry the old (unset) address
    for nb in set_repository.notebooks(tmp_path):
        assert set_repository.write_setup_cell(nb, set_repository.config_address(config))
        assert not set_repository.write_setup_cell(nb, ADDRESS)  # idempotent
    assert set_repository.problems(tmp_path) == []

    data = yaml.safe_load(config.read_text())
    assert data["repository"] == {"url": ADDRESS, "branch": "main"}
    assert data["launch_buttons"]["thebe"] is True and data["html"]["use_repository_button"] is True
    assert data["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert data["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert data["launch_buttons"]["notebook_interface"] == yaml.safe_load(before)["launch_buttons"]["notebook_interface"]
    assert "# Empty while repository.url is unset" in config.read_text()  # other comments are kept
    nb = nbformat.read(tmp_path / "chapters" / "01_setting.ipynb", as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert f"BOOK_REPOSITORY = {ADDRESS!r}" in setup.source and setup.metadata["tags"] == ["remove-cell"]


def test_a_notebook_without_the_setup_cell_is_reported(tmp_path):
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "chapters").mkdir()
    nb = nbformat.read(ROOT / "chapters" / "90_ledger.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if "BOOK_REPOSITORY" not in c.source]
    nbformat.write(nb, tmp_path / "chapters" / "90_ledger.ipynb")
    assert set_repository.problems(tmp_path) == ["chapters/90_ledger.ipynb: its first code cell is not the setup cell"]
    assert set_repository.write_setup_cell(tmp_path / "chapters" / "90_ledger.ipynb", "")
    assert set_repository.problems(tmp_path) == []


@pytest.mark.parametrize("bad", ["http://github.com/o/r", "https://gitlab.com/o/r", "https://github.com/o",
                                 "github.com/o/r", "https://github.com/o/r/tree/main"])
def test_addresses_colab_cannot_open_are_refused(bad):
    with pytest.raises(ValueError, match="https://github.com/OWNER/REPO"):
        set_repository.check_address(bad)
