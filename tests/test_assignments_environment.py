"""The autograder zip carries its own environment: a fresh Python 3.11 virtual environment set up from the
zip alone (no book checkout, no Docker) grades a submission.

Gradescope and ``otter grade`` unpack the zip to ``/autograder/source`` and run its ``setup.sh``, which
creates the conda environment of ``environment.yml`` (``python=3.11``, ``jupyter_server`` and the pip
requirements: otter-grader, CPU PyTorch, the book's pinned packages and the ``cssl`` wheel shipped in the
zip), then ``run_autograder`` runs ``run_otter.py`` in it. Conda and root are not available here, so this
test does the same with ``python3.11 -m venv`` and pip, in the same folder layout under a temporary
``autograder/`` (the zip's ``/autograder`` paths are rewritten to it), and grades the solutions and a
submission that calls a forbidden function. pip's own cache and the machine's configured indexes and
``--find-links`` make a second run fast; the first downloads the packages once.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_assignments", ROOT / "tools" / "build_assignments.py")
build_assignments = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("build_assignments", build_assignments)
_spec.loader.exec_module(build_assignments)

NAME = "ch03_theorem1"
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop:Warning")


def _python311() -> str:
    for candidate in (shutil.which("python3.11"), sys.executable):
        if candidate:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
            if out.stdout.strip() == "(3, 11)":
                return candidate
    pytest.fail("the autograder's environment is Python 3.11, and no python3.11 is on this machine")


#: What pip prints when it cannot reach an index (no DNS, no route, refused, timed out).
_OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
            "Connection refused", "ConnectTimeoutError", "Failed to establish a new connection")


def _run(cmd, **kwargs):
    kwargs.setdefault("timeout", 300)  # a hung step fails the test instead of the whole run
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd[:3]} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_zip_sets_up_python311_with_cssl_and_grades_in_a_fresh_venv(tmp_path):
    timings = {}
    t0 = time.perf_counter()
    built = build_assignments.build([NAME], out=tmp_path / "build", check=False)[0]
    timings["build"] = time.perf_counter() - t0

    # the zip alone, laid out as on Gradescope: autograder/{source,submission,results}
    ag = tmp_path / "autograder"
    for sub in ("source", "submission", "results"):
        (ag / sub).mkdir(parents=True)
    with zipfile.ZipFile(built["autograder"]) as z:
        z.extractall(ag / "source")
        names = set(z.namelist())
    assert {"setup.sh", "environment.yml", "run_autograder", "run_otter.py", "otter_config.json",
            "files/cssl_autograde.py"} <= names
    wheels = [n for n in names if n.startswith("files/cssl-") and n.endswith(".whl")]
    assert len(wheels) == 1, names
    env = yaml.safe_load((ag / "source" / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in conda, conda
    assert any(line.startswith("otter-grader") for line in pip_lines)
    assert any(line.startswith("torch==") and "+cpu" in line for line in pip_lines), "CPU PyTorch, pinned"
    assert f"/autograder/source/{wheels[0]}" in pip_lines, "cssl comes from the wheel in the zip"
    assert "mamba env create -f /autograder/source/environment.yml" in (ag / "source" / "setup.sh").read_text()

    # setup: what setup.sh does with conda, here with venv + pip (same requirement lines)
    t0 = time.perf_counter()
    venv = tmp_path / "venv"
    _run([_python311(), "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    requirements = tmp_path / "requirements.txt"
    extra = [d for d in conda if not d.startswith(("python", "pip"))]          # jupyter_server
    requirements.write_text("\n".join([*pip_lines, *extra]).replace("/autograder", str(ag)) + "\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "20", "-r", str(requirements)]
    # resolve first (about a second): offline, say so and skip; a wrong pin with a reachable index still fails
    dry = subprocess.run([*pip, "--dry-run"], capture_output=True, text=True, timeout=600)
    if dry.returncode != 0 and any(s in dry.stdout + dry.stderr for s in _OFFLINE):
        pytest.skip("the zip's requirements (otter-grader 7.0.0, CPU PyTorch, ...) need a package index, and "
                    "none is reachable: " + (dry.stdout + dry.stderr).strip().splitlines()[-1][:200])
    _run(pip, timeout=1800)
    timings["setup"] = time.perf_counter() - t0
    check = _run([str(python), "-c", "import sys, torch, cssl, otter; print(sys.version_info[:2], torch.__version__, "
                  "cssl.__file__, otter.__version__)"], cwd=tmp_path).stdout
    assert "(3, 11)" in check and "+cpu" in check and str(venv) in check and "7.0.0" in check, check

    # grade: run_otter.py from the zip (its /autograder paths rewritten), in the new environment only
    run_otter = ag / "source" / "run_otter.py"
    run_otter.write_text(run_otter.read_text().replace("/autograder", str(ag)))
    solutions = nbformat.read(built["solutions"], as_version=4)
    forbidden = nbformat.read(built["solutions"], as_version=4)
    for cell in forbidden.cells:
        if cell.cell_type == "code" and cell.source.startswith("def r_eps_of"):
            cell.source = "def r_eps_of(world, eps):\n    return metrics.r_eps(world, eps)\n"
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean_env["PATH"] = f"{venv / 'bin'}:{clean_env.get('PATH', '')}"
    scores = {}
    for label, nb in (("solutions", solutions), ("forbidden", forbidden)):
        for old in (ag / "submission").iterdir():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        nbformat.write(nb, ag / "submission" / f"{NAME}.ipynb")
        t0 = time.perf_counter()
        _run([str(python), str(run_otter)], cwd=ag, env=clean_env, timeout=900)
        timings[f"grade {label}"] = time.perf_counter() - t0
        results = json.loads((ag / "results" / "results.json").read_text())
        by_question = {}
        for t in results["tests"]:
            q = t["name"].split(" - ")[0]
            by_question[q] = by_question.get(q, 0.0) + float(t.get("score", 0) or 0)
        scores[label] = (float(results.get("score", sum(by_question.values()))), by_question)
    master = build_assignments.read_master(ROOT / "assignments" / NAME / f"{NAME}.ipynb")
    possible = sum(master.points.values())
    assert scores["solutions"][0] == possible, scores
    assert scores["forbidden"][1]["q1_r_eps"] == 0 and scores["forbidden"][0] == possible - master.points["q1_r_eps"], \
        scores
    print("\nautograder environment: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()), file=sys.stderr)
