"""Binder delivery: binder/ parses, its pins agree with requirements.txt, postBuild installs cssl (launch buttons: test_repository.py)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sync_binder  # noqa: E402


def test_binder_requirements_are_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_binder.py"), "--check"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


def test_binder_pins_agree_with_requirements_and_torch_is_the_cpu_build():
    project = sync_binder.parse_pins((ROOT / "requirements.txt").read_text())
    binder_text = (ROOT / "binder" / "requirements.txt").read_text()
    binder = sync_binder.parse_pins(binder_text)
    assert binder["torch"] == project["torch"].split("+")[0] + "+cpu"
    assert f"--extra-index-url {sync_binder.CPU_INDEX}" in binder_text.splitlines()
    assert {k: v for k, v in binder.items() if k != "torch"} == {k: v for k, v in project.items() if k != "torch"}
    assert "-e ." not in binder_text.splitlines()  # postBuild installs cssl


def test_render_refuses_unpinned_lines():
    with pytest.raises(ValueError, match="exact pin"):
        sync_binder.render("numpy>=1.0\n")
    assert sync_binder.render("torch==2.13.0\n-e .\n").endswith("torch==2.13.0+cpu\n")


def test_runtime_matches_the_python_of_ci():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime)
    assert f"python{runtime.split('-')[1]}" in (ROOT / ".ci" / "run").read_text()


def test_postbuild_is_an_executable_bash_script_that_installs_cssl():
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable (repo2docker runs it directly)"
    assert subprocess.run(["bash", "-n", str(post)], timeout=30).returncode == 0
    text = post.read_text()
    assert text.startswith("#!/bin/bash") and "set -euo pipefail" in text
    assert "pip install --no-deps -e ." in text and "import cssl" in text
