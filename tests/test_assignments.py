"""Course assignments (otter-grader, tools/build_assignments.py): the build works, otter's check grades every
solutions notebook with full marks (public and hidden tests), blank student notebooks score zero, the
student notebooks hold neither solution code, nor hidden tests, nor the rubrics of the questions graded by
hand, every part of the book has an assignment, and the grading helpers (forbidden functions, time limits)
work. Runs offline (no Docker: otter run locally). Grading whole classes of submissions:
tests/test_assignments_grading.py; the zip's own environment: tests/test_assignments_environment.py."""
import importlib.util
import json
import re
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_assignments", ROOT / "tools" / "build_assignments.py")
build_assignments = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("build_assignments", build_assignments)
_spec.loader.exec_module(build_assignments)

# one assignment per part of the book: I (ch01-02), II (ch03-04, with the printed-R_eps finding),
# III (ch05-07), IV (ch08-10, on the committed trained-encoder runs), V (ch11-12)
PARTS = {"ch02_concentration": "I", "ch03_theorem1": "II", "ch05_infonce": "III", "ch08_richness": "IV",
         "ch12_lipschitz": "V"}
REQUIRED = set(PARTS)
# otter-grader 7.0.0 calls DataFrame.drop(inplace=True), which pandas 3.1 deprecates; not ours to fix
ALL = sorted(m.name for m in build_assignments.find_masters())  # every master under assignments/
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop:Warning")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignments")
    # check=True: otter assign grades each solutions notebook with its autograder and raises unless full marks
    return {r["name"]: r for r in build_assignments.build(out=out, check=True)}


def _master_cells(name):
    return nbformat.read(ROOT / "assignments" / name / f"{name}.ipynb", as_version=4).cells


def _solution_lines(name) -> set[str]:
    """Code lines of the master that otter must strip: inside # BEGIN/END SOLUTION or ending in # SOLUTION."""
    lines, in_block = set(), False
    for cell in _master_cells(name):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            s = line.strip()
            if s == "# BEGIN SOLUTION":
                in_block = True
            elif s == "# END SOLUTION":
                in_block = False
            elif in_block and s and not s.startswith("#"):
                lines.add(s)
            elif re.search(r"#\s*SOLUTION\s*$", s):
                lines.add(re.sub(r"\s*#\s*SOLUTION\s*$", "", s))
    return lines


def _hidden_test_names(name) -> set[str]:
    names = set()
    for cell in _master_cells(name):
        if cell.cell_type == "code" and cell.source.lstrip().startswith("# HIDDEN"):
            names.update(re.findall(r"^def (\w+)\(", cell.source, flags=re.M))
    return names


def _code_lines(notebook_path: Path) -> set[str]:
    nb = nbformat.read(notebook_path, as_version=4)
    text = "\n".join(c.source for c in nb.cells) + "\n" + json.dumps(nb.metadata)
    return {line.strip() for line in text.replace("\\n", "\n").splitlines()}


def test_required_masters_exist_with_public_and_hidden_tests():
    masters = {m.name: m for m in build_assignments.find_masters()}
    assert REQUIRED <= set(masters) and len(masters) >= 5
    assert sorted(set(PARTS.values())) == ["I", "II", "III", "IV", "V"]
    for m in masters.values():
        assert len(m.points) >= 2, m.name
        assert all(m.questions[q][0] >= 1 and m.questions[q][1] >= 1 for q in m.points), m.questions
        assert len(m.manual) == 1, f"{m.name}: one question explained in words, graded with a rubric"
    text = (ROOT / "assignments" / "ch08_richness" / "ch08_richness.ipynb").read_text()
    assert "runcache.grid_configs" in text and "book_runs" in text, "Part IV reads the committed runs"
    text = (ROOT / "assignments" / "ch03_theorem1" / "ch03_theorem1.ipynb").read_text()
    assert "printed_counterexample" in text, "Part II rebuilds the counterexample of the errata, row 4"


def test_hidden_tests_carry_most_points_and_every_question_is_checked():
    for m in build_assignments.find_masters():
        nb = nbformat.read(m.path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "raw" and cell.source.startswith("# BEGIN QUESTION") and "manual" not in cell.source:
                points = yaml.safe_load(cell.source.split("\n", 1)[1])["points"]
                assert isinstance(points, list) and len(points) >= 2
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.source.lstrip().startswith("# HIDDEN"):
                # references are computed in the test, inputs drawn in it: no helper from the student's namespace
                params = re.search(r"^def \w+\(([^)]*)\)", cell.source, flags=re.M).group(1)
                for p in (x.strip() for x in params.split(",") if x.strip()):
                    assert p == "env" or re.search(rf"^\s*fn = student\({p}, ", cell.source, flags=re.M), \
                        f"{m.name}: hidden test reads {p!r} from the student's namespace without student()"
                assert "time_limit(" in cell.source, f"{m.name}: every call of student code has a time limit"


def test_build_writes_student_notebook_solutions_and_autograder(built):
    assert REQUIRED <= set(built) and set(built) == set(ALL)
    for name, r in built.items():
        assert r["checked"]
        for key in ("student", "solutions", "autograder"):
            assert r[key].is_file(), f"{name}: missing {key} output {r[key]}"
        questions = build_assignments.read_master(ROOT / "assignments" / name / f"{name}.ipynb").points
        with zipfile.ZipFile(r["autograder"]) as z:
            members = set(z.namelist())
            tests = "".join(z.read(m).decode() for m in members if m.startswith("tests/"))
        assert {f"tests/{q}.py" for q in questions} <= members
        assert _hidden_test_names(name) and all(t in tests for t in _hidden_test_names(name)), \
            f"{name}: the autograder must hold the hidden tests"


@pytest.mark.parametrize("name", ALL)
def test_blank_student_notebook_scores_zero(built, name):
    from otter.api import grade_submission

    r = built[name]
    results = grade_submission(str(r["student"]), str(r["autograder"]), quiet=True)
    assert results.possible > 0
    scores = {q: res.score for q, res in results.results.items()}
    assert set(scores) == set(build_assignments.read_master(ROOT / "assignments" / name / f"{name}.ipynb").points)
    assert all(score == 0 for score in scores.values()), f"{name}: a blank notebook earns points: {scores}"


@pytest.mark.parametrize("name", ALL)
def test_student_notebook_holds_no_solution_and_no_hidden_test(built, name):
    solution = _solution_lines(name)
    assert len(solution) >= 3
    student = _code_lines(built[name]["student"])
    leaked = sorted(line for line in solution if line in student)
    assert not leaked, f"{name}: solution lines in the student notebook: {leaked}"
    raw = built[name]["student"].read_text()
    assert not [t for t in _hidden_test_names(name) if t in raw], f"{name}: hidden tests in the student notebook"
    kept = built[name]["solutions"].read_text()
    assert all(json.dumps(line)[1:-1] in kept for line in solution), "the solutions notebook keeps the solutions"
    assert "Rubric" not in raw and "Rubric" in kept, f"{name}: the rubric stays in the instructors' notebook"


def test_output_folder_inside_the_repository_is_refused(capsys):
    with pytest.raises(build_assignments.AssignmentError, match="inside the repository"):
        build_assignments.check_out_dir(ROOT / "assignments" / "generated")
    assert build_assignments.check_out_dir(ROOT / "_build" / "assignments") == (ROOT / "_build" / "assignments").resolve()
    assert build_assignments.main(["--out", str(ROOT / "chapters" / "x")]) == 2
    assert "inside the repository" in capsys.readouterr().err
    assert build_assignments.main(["no_such_assignment", "--list"]) == 2
    assert "unknown assignment" in capsys.readouterr().err


def _tiny_master(folder: Path, *, config=True, hidden=True, answer="2 * x  # SOLUTION", name="tiny") -> Path:
    cells = []
    if config:
        cells.append(new_raw_cell(f"# ASSIGNMENT CONFIG\nname: {name}\ngenerate:\n  pdf: false\nexport_cell: false\n"
                                  "tests:\n  files: false\n  ok_format: false"))
    cells += [new_raw_cell("# BEGIN QUESTION\nname: q1\npoints: " + ("[0.5, 1.5]" if hidden else "[1]")),
              new_markdown_cell("Double `x`."),
              new_raw_cell("# BEGIN SOLUTION"), new_code_cell(f"x = 3\ny = {answer}"), new_raw_cell("# END SOLUTION"),
              new_raw_cell("# BEGIN TESTS"), new_code_cell("def test_public(y):\n    assert y is not None\n\ntest_public(y)")]
    if hidden:
        cells.append(new_code_cell("# HIDDEN\ndef test_hidden(y):\n    assert y == 6\n\ntest_hidden(y)"))
    cells += [new_raw_cell("# END TESTS"), new_raw_cell("# END QUESTION")]
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    path = folder / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_invalid_masters_are_reported_clearly(tmp_path):
    cases = [(dict(config=False), "ASSIGNMENT CONFIG"), (dict(hidden=False), "one public and one hidden")]
    for i, (options, message) in enumerate(cases):
        path = _tiny_master(tmp_path / str(i), **options)
        with pytest.raises(build_assignments.AssignmentError, match=message):
            build_assignments.read_master(path)
    path = _tiny_master(tmp_path / "renamed")
    path.rename(path.parent / "other.ipynb")
    with pytest.raises(build_assignments.AssignmentError, match="must match"):
        build_assignments.read_master(path.parent / "other.ipynb")


def test_a_wrong_solution_fails_the_build(tmp_path):
    # otter's check is live: a solution that fails a hidden test stops the build with the assignment's name
    _tiny_master(tmp_path / "masters", answer="2 * x + 1  # SOLUTION")
    with pytest.raises(build_assignments.AssignmentError, match="otter assign failed on tiny"):
        build_assignments.build(out=tmp_path / "out", root=tmp_path / "masters")


def test_points_and_manual_questions_are_validated(tmp_path):
    path = _tiny_master(tmp_path / "share")
    text = path.read_text().replace("points: [0.5, 1.5]", "points: [1, 1]")
    path.write_text(text)
    with pytest.raises(build_assignments.AssignmentError, match="hidden tests carry 50% of its points"):
        build_assignments.read_master(path)
    path.write_text(text.replace("points: [1, 1]", "points: 2"))
    with pytest.raises(build_assignments.AssignmentError, match="'points' as a list"):
        build_assignments.read_master(path)
    nb = nbformat.read(_tiny_master(tmp_path / "manual"), as_version=4)
    nb.cells[-1:-1] = [new_raw_cell("# END QUESTION"), new_raw_cell("# BEGIN QUESTION\nname: q2\nmanual: true"),
                       new_markdown_cell("Explain."), new_raw_cell("# END QUESTION")]
    del nb.cells[-1]
    nbformat.write(nb, tmp_path / "manual" / "tiny" / "tiny.ipynb")
    with pytest.raises(build_assignments.AssignmentError, match="needs a solution block"):
        build_assignments.read_master(tmp_path / "manual" / "tiny" / "tiny.ipynb")


def _support():
    return build_assignments._support_module()


def test_forbidden_functions_raise_however_they_are_reached_and_come_back():
    from cssl import bounds
    from cssl.bounds import rho_max as alias

    support = _support()
    args = (0.95, 0.05, 0.05, 0.02, [0.25, 0.75], 1.0, 1.0)
    before = float(bounds.rho_max(*args))
    with support.forbidden(bounds.rho_max, bounds.theorem1_bound):
        for call in (lambda: bounds.rho_max(*args), lambda: alias(*args), lambda: bounds.theorem1_bound(0.9, 0.1)):
            with pytest.raises(RuntimeError, match="forbidden in this question"):
                call()
    assert float(alias(*args)) == before and bounds.theorem1_bound(0.9, 0.1) == pytest.approx(0.2)
    with pytest.raises(RuntimeError, match="rho_max is forbidden"):   # restored even when the block raises
        with support.forbidden(bounds.rho_max):
            bounds.rho_max(*args)
    assert float(bounds.rho_max(*args)) == before


def test_time_limit_stops_an_endless_call_and_student_names_a_missing_function():
    support = _support()
    t0 = time.perf_counter()
    with pytest.raises(support.GradingTimeout, match="ran too long"):
        with support.time_limit(0.5):
            while True:
                pass
    assert time.perf_counter() - t0 < 5

    def swallowing():                          # a student's loop that catches every Exception
        while True:
            try:
                while True:
                    pass
            except Exception:  # noqa: BLE001
                pass

    with pytest.raises(support.GradingTimeout):
        with support.time_limit(0.5):
            swallowing()
    with support.time_limit(5):
        assert sum(range(10)) == 45            # a quick call is not affected
    with pytest.raises(AssertionError, match="is not defined: run the notebook from the top"):
        support.student(None, "sigma_of")
    with pytest.raises(AssertionError, match="must be a function"):
        support.student(3, "sigma_of")


def test_autograder_zip_carries_its_environment_and_time_limits(built):
    import zipfile

    for name, r in built.items():
        with zipfile.ZipFile(r["autograder"]) as z:
            env = yaml.safe_load(z.read("environment.yml"))
            run_otter = z.read("run_otter.py").decode()
            names = z.namelist()
        pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert "python=3.11" in env["dependencies"]
        assert any(line.startswith("torch==") and line.endswith("+cpu") for line in pip_lines)
        assert any(line.startswith("numpy==") for line in pip_lines)
        wheel = [n for n in names if n.startswith("files/cssl-") and n.endswith(".whl")]
        assert len(wheel) == 1 and f"/autograder/source/{wheel[0]}" in pip_lines
        assert "install_cell_timeout()" in run_otter and "files/cssl_autograde.py" in names


def test_grade_command_reports_bad_input(capsys, tmp_path):
    assert build_assignments.main(["--grade", str(tmp_path / "missing.zip"), str(tmp_path / "x.ipynb")]) == 2
    assert "no such autograder zip" in capsys.readouterr().err
    assert build_assignments.main(["--grade", str(tmp_path / "missing.zip")]) == 2
    assert "at least one submission" in capsys.readouterr().err


def test_grading_a_class_goes_on_past_a_submission_otter_cannot_grade(built):
    rows = build_assignments.grade(built["ch03_theorem1"]["autograder"],
                                   [built["ch08_richness"]["student"], built["ch03_theorem1"]["solutions"]],
                                   cell_timeout=120, call_timeout=60)
    wrong, right = rows
    assert wrong["score"] == 0 and "ch08_richness" in wrong["error"] and wrong["possible"] == 10
    assert right["score"] == right["possible"] == 10 and right["error"] == ""
