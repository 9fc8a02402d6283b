"""Build the graded course assignments: run ``otter assign`` on every master notebook under assignments/.

    python tools/build_assignments.py                      # every master -> _build/assignments/<name>/
    python tools/build_assignments.py ch03_theorem1        # only the named assignment(s)
    python tools/build_assignments.py --out /tmp/course    # another output folder (outside the repository)
    python tools/build_assignments.py --list               # list the masters and their questions
    python tools/build_assignments.py --no-check           # skip otter's check of the solutions (faster)

A master is ``assignments/<name>/<name>.ipynb`` in otter-grader's notebook format (an ``# ASSIGNMENT CONFIG``
raw cell, questions between ``# BEGIN QUESTION`` / ``# END QUESTION``, solutions marked ``# BEGIN SOLUTION`` /
``# END SOLUTION`` or ``# SOLUTION``, tests between ``# BEGIN TESTS`` / ``# END TESTS``, hidden tests starting
with ``# HIDDEN``). For each master this writes

    <out>/<name>/student/<name>.ipynb                      the notebook to hand out (public tests only)
    <out>/<name>/autograder/<name>.ipynb                   the solutions notebook (keep private)
    <out>/<name>/autograder/<name>-autograder.zip          the autograder: every test, public and hidden

and, unless ``--no-check``, otter assign grades the solutions notebook with that autograder (locally, no
Docker) and fails unless it scores full marks. Grade a submission locally with
``otter run -a <name>-autograder.zip submission.ipynb``. The output folder ``<out>/<name>`` is replaced.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "assignments"
DEFAULT_OUT = ROOT / "_build" / "assignments"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class AssignmentError(Exception):
    """A master notebook or an option is not usable; the message says what to fix."""


@dataclass
class Master:
    """A validated master notebook: its name, path and questions with their public/hidden test counts."""

    name: str
    path: Path
    questions: dict = field(default_factory=dict)  # question name -> (public tests, hidden tests)


def _raw_lines(cell) -> list[str]:
    return [line.strip() for line in cell.source.strip().splitlines()]


def read_master(path: Path) -> Master:
    """Parse and check one master notebook; raise :class:`AssignmentError` with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise AssignmentError(f"{path}: no such master notebook")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - any parse or schema error is reported the same way
        raise AssignmentError(f"{path}: not a valid Jupyter notebook ({exc})") from exc
    if nb.metadata.get("kernelspec", {}).get("language", "python") != "python":
        raise AssignmentError(f"{path}: the kernelspec must be a Python kernel")
    if not nb.cells or nb.cells[0].cell_type != "raw" or not nb.cells[0].source.lstrip().startswith("# ASSIGNMENT CONFIG"):
        raise AssignmentError(f"{path}: the first cell must be a raw cell starting with '# ASSIGNMENT CONFIG'")
    config_name = re.search(r"^name:\s*(\S+)\s*$", nb.cells[0].source, flags=re.M)
    if not config_name:
        raise AssignmentError(f"{path}: the ASSIGNMENT CONFIG cell must set 'name: <assignment name>'")
    name = config_name.group(1)
    if name != path.stem or name != path.parent.name:
        raise AssignmentError(f"{path}: the config name {name!r} must match the notebook and its folder "
                              f"(assignments/{name}/{name}.ipynb)")
    master = Master(name, path)
    question, in_tests = None, False
    for i, cell in enumerate(nb.cells[1:], start=2):
        lines = _raw_lines(cell) if cell.cell_type == "raw" else []
        head = lines[0] if lines else ""
        if head == "# BEGIN QUESTION":
            if question is not None:
                raise AssignmentError(f"{path}, cell {i}: BEGIN QUESTION inside question {question!r}")
            q = re.search(r"^name:\s*(\S+)\s*$", cell.source, flags=re.M)
            if not q:
                raise AssignmentError(f"{path}, cell {i}: a question needs 'name: <question name>'")
            question = q.group(1)
            if question in master.questions:
                raise AssignmentError(f"{path}, cell {i}: question name {question!r} is used twice")
            master.questions[question] = [0, 0]
        elif head == "# END QUESTION":
            if question is None:
                raise AssignmentError(f"{path}, cell {i}: END QUESTION without BEGIN QUESTION")
            public, hidden = master.questions[question]
            if not public or not hidden:
                raise AssignmentError(f"{path}: question {question!r} needs at least one public and one hidden "
                                      f"test (has {public} public, {hidden} hidden)")
            question = None
        elif head == "# BEGIN TESTS":
            in_tests = True
        elif head == "# END TESTS":
            in_tests = False
        elif in_tests and cell.cell_type == "code" and question is not None:
            first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
            hidden = first.startswith("#") and re.search(r"\bhidden\b", first, flags=re.I) is not None
            master.questions[question][1 if hidden else 0] += 1
    if question is not None:
        raise AssignmentError(f"{path}: question {question!r} is never closed with END QUESTION")
    if not master.questions:
        raise AssignmentError(f"{path}: no questions (BEGIN QUESTION ... END QUESTION) found")
    master.questions = {q: tuple(c) for q, c in master.questions.items()}
    return master


def find_masters(names: list[str] | None = None, root: Path = MASTERS) -> list[Master]:
    """The masters ``<root>/<name>/<name>.ipynb`` (all, sorted, or the given names), validated."""
    if not root.is_dir():
        raise AssignmentError(f"{root}: no assignments folder")
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / f"{p.name}.ipynb").is_file())
    if names:
        unknown = [n for n in names if n not in available]
        if unknown:
            raise AssignmentError(f"unknown assignment(s) {unknown}; available: {available}")
        available = list(dict.fromkeys(names))
    if not available:
        raise AssignmentError(f"{root}: no master notebooks (expected <name>/<name>.ipynb)")
    return [read_master(root / n / f"{n}.ipynb") for n in available]


def check_out_dir(out: Path) -> Path:
    """The output folder must lie outside the repository or inside its _build/ folder."""
    out = Path(out).expanduser().resolve()
    build = (ROOT / "_build").resolve()
    root = ROOT.resolve()
    inside_repo = out == root or root in out.parents
    if inside_repo and not (out == build or build in out.parents):
        raise AssignmentError(f"--out {out} is inside the repository but not under {build}: generated "
                              "notebooks (and the solutions) must not land in the tracked tree")
    if out.exists() and not out.is_dir():
        raise AssignmentError(f"--out {out} exists and is not a folder")
    return out


def build_one(master: Master, out: Path, *, check: bool = True, quiet: bool = True) -> dict:
    """Run otter assign on one master into ``out/<name>``; return the paths written and the wall time."""
    from otter.assign import main as otter_assign

    target = out / master.name
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log) if quiet else contextlib.nullcontext():
            otter_assign(str(master.path), str(target), no_pdfs=True, no_run_tests=not check)
    except Exception as exc:  # noqa: BLE001 - re-raised with the assignment's name
        raise AssignmentError(f"otter assign failed on {master.name}: {exc}\n{log.getvalue()}") from exc
    finally:
        # otter assign runs in the master's folder and may leave a stray tests/ or .OTTER_LOG there
        for stray in (master.path.parent / ".OTTER_LOG",):
            if stray.is_file():
                stray.unlink()
    zips = sorted((target / "autograder").glob(f"{master.name}-autograder_*.zip"))
    if len(zips) != 1:
        raise AssignmentError(f"otter assign wrote {len(zips)} autograder zips for {master.name}, expected 1")
    autograder = target / "autograder" / f"{master.name}-autograder.zip"
    zips[0].rename(autograder)
    return {"name": master.name, "student": target / "student" / f"{master.name}.ipynb",
            "solutions": target / "autograder" / f"{master.name}.ipynb", "autograder": autograder,
            "seconds": time.perf_counter() - start, "checked": check}


def build(names: list[str] | None = None, out: Path = DEFAULT_OUT, *, check: bool = True, quiet: bool = True,
          root: Path = MASTERS) -> list[dict]:
    """Validate the masters and the output folder, then build every assignment."""
    out = check_out_dir(out)
    masters = find_masters(names, root)
    return [build_one(m, out, check=check, quiet=quiet) for m in masters]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="assignments to build (default: all under assignments/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder, outside the repository or under _build/ (default: _build/assignments)")
    parser.add_argument("--no-check", action="store_true", help="do not grade the solutions with the autograder")
    parser.add_argument("--list", action="store_true", help="list the masters and their questions, build nothing")
    parser.add_argument("--verbose", action="store_true", help="show otter's own output")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for m in find_masters(args.names):
                print(f"{m.name}: {m.path.relative_to(ROOT)}")
                for q, (public, hidden) in m.questions.items():
                    print(f"    {q}: {public} public, {hidden} hidden test(s)")
            return 0
        results = build(args.names, args.out, check=not args.no_check, quiet=not args.verbose)
    except AssignmentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        status = "solutions pass every test" if r["checked"] else "solutions not checked"
        print(f"{r['name']}: {status} ({r['seconds']:.1f} s)")
        for key in ("student", "solutions", "autograder"):
            print(f"    {key:10s} {os.path.relpath(r[key])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
