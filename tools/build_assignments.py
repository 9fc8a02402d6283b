"""Build the graded course assignments (``otter assign`` on every master under assignments/) and grade them.

    python tools/build_assignments.py                      # every master -> _build/assignments/<name>/
    python tools/build_assignments.py ch03_theorem1        # only the named assignment(s)
    python tools/build_assignments.py --out /tmp/course    # another output folder (outside the repository)
    python tools/build_assignments.py --list               # list the masters, their questions and points
    python tools/build_assignments.py --no-check           # skip otter's check of the solutions (faster)
    python tools/build_assignments.py --grade <zip> subs/*.ipynb --timeout 120 --csv scores.csv

A master is ``assignments/<name>/<name>.ipynb`` in otter-grader's notebook format (an ``# ASSIGNMENT CONFIG``
raw cell, questions between ``# BEGIN QUESTION`` / ``# END QUESTION``, solutions marked ``# BEGIN SOLUTION`` /
``# END SOLUTION`` or ``# SOLUTION``, tests between ``# BEGIN TESTS`` / ``# END TESTS``, hidden tests starting
with ``# HIDDEN``). Every autograded question gives ``points`` as a list, one per test, hidden tests at least
70 % of them; a question with ``manual: true`` has no tests and a rubric as its solution. Each master is
staged with the grading helpers (``assignments/_support/cssl_autograde.py``), a wheel of ``cssl`` built from
this checkout, the pinned requirements (Python 3.11, CPU PyTorch) and, when it lists ``book_runs`` in
``files:``, the committed runs' records. For each master this writes

    <out>/<name>/student/<name>.ipynb                      the notebook to hand out (public tests only)
    <out>/<name>/autograder/<name>.ipynb                   the solutions notebook with the rubrics (keep private)
    <out>/<name>/autograder/<name>-autograder.zip          the autograder: every test, and its environment

and, unless ``--no-check``, otter assign grades the solutions notebook with that autograder (locally, no
Docker) and fails unless it scores full marks. ``--grade`` grades submissions locally with ``otter run`` and
time limits per cell and per call of the student's code (plain ``otter run`` has none). The output folder
``<out>/<name>`` is replaced.
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
    points: dict = field(default_factory=dict)     # autograded question name -> its points
    hidden_share: dict = field(default_factory=dict)  # autograded question name -> share of hidden points
    manual: list = field(default_factory=list)     # questions graded by hand, with the rubric as solution


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
    question, in_tests, config, kinds, solutions = None, False, {}, [], 0
    for i, cell in enumerate(nb.cells[1:], start=2):
        lines = _raw_lines(cell) if cell.cell_type == "raw" else []
        head = lines[0] if lines else ""
        if head == "# BEGIN QUESTION":
            if question is not None:
                raise AssignmentError(f"{path}, cell {i}: BEGIN QUESTION inside question {question!r}")
            import yaml

            config = yaml.safe_load(cell.source.split("\n", 1)[1] if "\n" in cell.source else "") or {}
            question = config.get("name") if isinstance(config, dict) else None
            if not question:
                raise AssignmentError(f"{path}, cell {i}: a question needs 'name: <question name>'")
            if question in master.questions:
                raise AssignmentError(f"{path}, cell {i}: question name {question!r} is used twice")
            master.questions[question] = [0, 0]
            kinds, solutions = [], 0
        elif head == "# END QUESTION":
            if question is None:
                raise AssignmentError(f"{path}, cell {i}: END QUESTION without BEGIN QUESTION")
            public, hidden = master.questions[question]
            if config.get("manual"):
                if public or hidden:
                    raise AssignmentError(f"{path}: manual question {question!r} must not have tests")
                if not solutions:
                    raise AssignmentError(f"{path}: manual question {question!r} needs a solution block "
                                          "(the rubric for graders)")
                master.manual.append(question)
            else:
                if not public or not hidden:
                    raise AssignmentError(f"{path}: question {question!r} needs at least one public and one "
                                          f"hidden test (has {public} public, {hidden} hidden)")
                points = config.get("points")
                if not isinstance(points, list) or len(points) != len(kinds):
                    raise AssignmentError(f"{path}: question {question!r} must give 'points' as a list, one "
                                          f"value per test cell in order ({len(kinds)} tests)")
                total = float(sum(points))
                share = sum(p for p, k in zip(points, kinds) if k) / total if total else 0.0
                if total <= 0 or share < MIN_HIDDEN_SHARE - 1e-9:
                    raise AssignmentError(f"{path}: question {question!r}: hidden tests carry {share:.0%} of its "
                                          f"points, at least {MIN_HIDDEN_SHARE:.0%} required")
                master.points[question] = total
                master.hidden_share[question] = share
            question = None
        elif head == "# BEGIN SOLUTION" and question is not None:
            solutions += 1
        elif head == "# BEGIN TESTS":
            in_tests = True
        elif head == "# END TESTS":
            in_tests = False
        elif in_tests and cell.cell_type == "code" and question is not None:
            first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
            hidden = first.startswith("#") and re.search(r"\bhidden\b", first, flags=re.I) is not None
            master.questions[question][1 if hidden else 0] += 1
            kinds.append(hidden)
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


SUPPORT = MASTERS / "_support"            # files shipped with every assignment (grading helpers)
SUPPORT_MODULE = "cssl_autograde.py"
BOOK_RUNS = "book_runs"                    # a master listing this in `files:` gets the committed run records
PYTHON_VERSION = "3.11"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MIN_HIDDEN_SHARE = 0.7                     # hidden tests carry at least this share of a question's points
AUTOGRADER_DIR = "/autograder"             # where Gradescope and `otter grade` unpack the zip


def _pinned_closure(roots) -> dict[str, str]:
    """``{distribution: installed version}`` for ``roots`` and everything they require (extras followed)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    seen: dict[str, tuple[str, set]] = {}
    stack = [(name, set(extras)) for name, extras in roots]
    while stack:
        name, extras = stack.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional extra that is not installed here: pip resolves it on the grading machine
        if key in seen and extras <= seen[key][1]:
            continue
        seen[key] = (dist.version, seen.get(key, ("", set()))[1] | extras)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            stack.append((req.name, set(req.extras)))
    return {k: v for k, (v, _) in sorted(seen.items())}


def grading_requirements(wheel_name: str) -> list[str]:
    """The autograder's pip requirements: the book's pins for cssl and otter-grader's closure, CPU PyTorch
    from its own index, and the ``cssl`` wheel shipped in the zip (``/autograder/source/files/<wheel>``).

    The versions are those installed in the environment that builds (the book's, from requirements.txt),
    so the grading environment matches the one the solutions were checked in.
    """
    pins = _pinned_closure([("cssl", ()), ("otter-grader", ("grading", "plugins"))])
    lines = [f"--extra-index-url {TORCH_CPU_INDEX}"]
    for name, version in pins.items():
        if name in {"cssl", "setuptools", "pip", "otter-grader"}:
            continue  # cssl: the wheel below; otter-grader: otter's setup adds its own pinned line
        if name == "torch":
            version = version.split("+")[0] + "+cpu"  # the CPU build, whichever build is installed here
        if name.startswith(("nvidia-", "triton")):
            continue  # CUDA runtime wheels of a CUDA build of torch: not needed by the CPU build
        lines.append(f"{name}=={version}")
    if not any(line.startswith("torch==") for line in lines):
        raise AssignmentError("torch is not installed in this environment; install requirements.txt first")
    lines.append(f"{AUTOGRADER_DIR}/source/files/{wheel_name}")
    return lines


def build_wheel(dest: Path) -> Path:
    """A wheel of the book's package ``cssl`` built from this checkout (a copy, so no build/ folder here)."""
    import subprocess
    import tempfile

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (ROOT / name).is_file():
                shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "cssl", src / "cssl", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # build isolation, as `pip install -e .` does: pyproject.toml needs a recent setuptools
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(src)],
                              capture_output=True, text=True)
        if proc.returncode:
            raise AssignmentError(f"could not build the cssl wheel:\n{proc.stdout}\n{proc.stderr}")
    wheels = sorted(dest.glob("cssl-*.whl"))
    if len(wheels) != 1:
        raise AssignmentError(f"expected one cssl wheel in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


def _config_cell(nb) -> dict:
    import yaml

    source = nb.cells[0].source.split("\n", 1)[1] if "\n" in nb.cells[0].source else ""
    return yaml.safe_load(source) or {}


def _copy_book_runs(dest: Path) -> None:
    """The committed runs' records (run.json only, no weights) under ``dest/<experiment>/...``."""
    from cssl import runcache

    root = runcache.cache_root()
    for record in sorted(root.glob("*/*/*/seed*/run.json")):
        target = dest / record.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(record, target)


def stage(master: Master, folder: Path, wheel: Path) -> Path:
    """Copy a master into ``folder`` with what its autograder needs; return the staged notebook.

    Adds the grading helpers (``cssl_autograde.py``), the committed run records when the master lists
    ``book_runs`` in ``files:``, the requirements file and the cssl wheel, and sets ``python_version``,
    ``requirements``, ``files`` and ``autograder_files`` in the config (the master's own entries kept).
    """
    import yaml

    staged = folder / master.name
    shutil.copytree(master.path.parent, staged, ignore=shutil.ignore_patterns(".OTTER_LOG", "__pycache__"))
    shutil.copy2(SUPPORT / SUPPORT_MODULE, staged / SUPPORT_MODULE)
    shutil.copy2(wheel, staged / wheel.name)
    nb = nbformat.read(staged / f"{master.name}.ipynb", as_version=4)
    config = _config_cell(nb)
    files = list(config.get("files") or [])
    if BOOK_RUNS in files:
        _copy_book_runs(staged / BOOK_RUNS)
    config["files"] = list(dict.fromkeys(files + [SUPPORT_MODULE]))
    config["autograder_files"] = list(dict.fromkeys(list(config.get("autograder_files") or []) + [wheel.name]))
    config["python_version"] = PYTHON_VERSION
    config["requirements"] = "requirements.txt"
    (staged / "requirements.txt").write_text("\n".join(grading_requirements(wheel.name)) + "\n")
    nb.cells[0].source = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False).strip()
    nbformat.write(nb, staged / f"{master.name}.ipynb")
    return staged / f"{master.name}.ipynb"


RUN_OTTER = f"""\
\"\"\"Runs Otter-Grader's autograding process, with the book's time limits (cssl_autograde).\"\"\"
import sys

sys.path.insert(0, "{AUTOGRADER_DIR}/source/files")
from cssl_autograde import install_cell_timeout  # noqa: E402

install_cell_timeout()

from otter.run.run_autograder import main as run_autograder  # noqa: E402

if __name__ == "__main__":
    run_autograder("{AUTOGRADER_DIR}")
"""


def _finish_zip(path: Path) -> None:
    """Replace the zip's run_otter.py with one that installs the per-cell time limit first."""
    import zipfile

    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        names = src.namelist()
        for name in ("run_otter.py", f"files/{SUPPORT_MODULE}", "setup.sh", "environment.yml"):
            if name not in names:
                raise AssignmentError(f"{path.name}: otter wrote no {name}")
        for info in src.infolist():
            data = RUN_OTTER.encode() if info.filename == "run_otter.py" else src.read(info)
            dst.writestr(info, data)
    tmp.replace(path)


def build_one(master: Master, out: Path, *, check: bool = True, quiet: bool = True, wheel: Path | None = None) -> dict:
    """Run otter assign on one (staged) master into ``out/<name>``; return the paths written and the wall time."""
    import tempfile

    from otter.assign import main as otter_assign

    target = out / master.name
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            wheel = build_wheel(Path(tmp) / "wheel")
        staged = stage(master, Path(tmp) / "staged", wheel)
        try:
            with contextlib.redirect_stdout(log) if quiet else contextlib.nullcontext():
                otter_assign(str(staged), str(target), no_pdfs=True, no_run_tests=not check)
        except Exception as exc:  # noqa: BLE001 - re-raised with the assignment's name
            raise AssignmentError(f"otter assign failed on {master.name}: {exc}\n{log.getvalue()}") from exc
    zips = sorted((target / "autograder").glob(f"{master.name}-autograder_*.zip"))
    if len(zips) != 1:
        raise AssignmentError(f"otter assign wrote {len(zips)} autograder zips for {master.name}, expected 1")
    autograder = target / "autograder" / f"{master.name}-autograder.zip"
    zips[0].rename(autograder)
    _finish_zip(autograder)
    return {"name": master.name, "student": target / "student" / f"{master.name}.ipynb",
            "solutions": target / "autograder" / f"{master.name}.ipynb", "autograder": autograder,
            "seconds": time.perf_counter() - start, "checked": check}


def build(names: list[str] | None = None, out: Path = DEFAULT_OUT, *, check: bool = True, quiet: bool = True,
          root: Path = MASTERS) -> list[dict]:
    """Validate the masters and the output folder, then build every assignment (one cssl wheel for all)."""
    import tempfile

    out = check_out_dir(out)
    masters = find_masters(names, root)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))
        return [build_one(m, out, check=check, quiet=quiet, wheel=wheel) for m in masters]


def _support_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cssl_autograde", SUPPORT / SUPPORT_MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _possible(autograder: Path) -> float:
    """The points of an autograder zip (the sum over its test files)."""
    import zipfile

    from otter.test_files import ExceptionTestFile

    with zipfile.ZipFile(autograder) as z:
        files = [ExceptionTestFile.from_string(z.read(n).decode(), path=n) for n in z.namelist()
                 if n.startswith("tests/") and n.endswith(".py")]
    return float(sum(tc.points for f in files for tc in f.test_cases))


def grade(autograder: Path, submissions, *, cell_timeout: int = 120, call_timeout: float = 60,
          tests_timeout: int = 900) -> list[dict]:
    """Grade submissions locally (no Docker) with an autograder zip, with time limits.

    Runs ``otter run`` in this process for each submission, after giving notebook execution a per-cell
    limit of ``cell_timeout`` seconds (an endless cell is interrupted and graded as an error) and every
    call of the student's code in a hidden test a limit of ``call_timeout`` seconds. Needs the book's
    environment (cssl, torch, otter-grader). Returns one dict per submission: ``submission``, ``score``,
    ``possible``, ``questions`` (question -> score), ``seconds`` and ``error`` (why otter could not grade
    it, e.g. a notebook of another assignment: score 0; empty otherwise).
    """
    from otter.run import main as otter_run

    autograder = Path(autograder).resolve()
    if not autograder.is_file():
        raise AssignmentError(f"{autograder}: no such autograder zip")
    _support_module().install_cell_timeout(cell_timeout, tests_timeout)
    saved = {k: os.environ.get(k) for k in ("CSSL_GRADING_CALL_TIMEOUT", "CSSL_GRADING_CELL_TIMEOUT")}
    os.environ["CSSL_GRADING_CALL_TIMEOUT"] = str(call_timeout)  # read by the kernel's cssl_autograde
    os.environ["CSSL_GRADING_CELL_TIMEOUT"] = str(cell_timeout)
    rows = []
    try:
        for sub in submissions:
            sub = Path(sub).resolve()
            if not sub.is_file():
                raise AssignmentError(f"{sub}: no such submission")
            t0 = time.perf_counter()
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    results = otter_run(str(sub), autograder=str(autograder), output_dir=None, no_logo=True)
            except Exception as exc:  # noqa: BLE001 - one unreadable submission must not stop the class
                rows.append({"submission": str(sub), "score": 0.0, "possible": _possible(autograder),
                             "questions": {}, "seconds": time.perf_counter() - t0,
                             "error": f"{type(exc).__name__}: {exc}"})
                continue
            rows.append({"submission": str(sub), "score": float(results.total), "possible": float(results.possible),
                         "questions": {q: float(r.score) for q, r in results.results.items()},
                         "seconds": time.perf_counter() - t0, "error": ""})
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="assignments to build (default: all under assignments/); "
                        "with --grade: the submissions (notebooks or export zips)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder, outside the repository or under _build/ (default: _build/assignments)")
    parser.add_argument("--no-check", action="store_true", help="do not grade the solutions with the autograder")
    parser.add_argument("--list", action="store_true", help="list the masters and their questions, build nothing")
    parser.add_argument("--verbose", action="store_true", help="show otter's own output")
    parser.add_argument("--grade", type=Path, metavar="ZIP", help="grade the submissions with this autograder zip")
    parser.add_argument("--timeout", type=int, default=120, help="with --grade: seconds a notebook cell may run "
                        "(default 120); otter's final cell, which runs every test, gets 10 times as long")
    parser.add_argument("--call-timeout", type=float, default=None, help="with --grade: seconds a test's call of "
                        "the student's code may run (default: half of --timeout)")
    parser.add_argument("--csv", type=Path, help="with --grade: also write the scores to this CSV file")
    args = parser.parse_args(argv)
    try:
        if args.grade:
            if not args.names:
                raise AssignmentError("--grade needs at least one submission")
            call = args.call_timeout if args.call_timeout is not None else max(1, args.timeout // 2)
            rows = grade(args.grade, args.names, cell_timeout=args.timeout, call_timeout=call,
                         tests_timeout=10 * args.timeout)
            questions = list(dict.fromkeys(q for r in rows for q in r["questions"]))
            lines = [",".join(["submission", "score", "possible", *questions, "seconds", "error"])]
            for r in rows:
                error = '"' + r["error"].replace('"', "'").replace("\n", " ") + '"' if r["error"] else ""
                lines.append(",".join([Path(r["submission"]).name, f"{r['score']:g}", f"{r['possible']:g}",
                                       *(f"{r['questions'].get(q, 0):g}" for q in questions), f"{r['seconds']:.1f}",
                                       error]))
            print("\n".join(lines))
            if args.csv:
                args.csv.write_text("\n".join(lines) + "\n")
            return 0
        if args.list:
            for m in find_masters(args.names):
                print(f"{m.name}: {m.path.relative_to(ROOT)}")
                for q, (public, hidden) in m.questions.items():
                    what = "graded by hand (rubric)" if q in m.manual else \
                        f"{public} public, {hidden} hidden test(s), {m.points[q]:g} points " \
                        f"({m.hidden_share[q]:.0%} hidden)"
                    print(f"    {q}: {what}")
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
