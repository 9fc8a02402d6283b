"""Course assignments (otter-grader, tools/build_assignments.py): the build works, otter's check grades every
solutions notebook with full marks (public and hidden tests), blank student notebooks score zero, and the
student notebooks hold neither solution code nor hidden tests. Runs offline (no Docker: otter run locally)."""
import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_assignments", ROOT / "tools" / "build_assignments.py")
build_assignments = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("build_assignments", build_assignments)
_spec.loader.exec_module(build_assignments)

# the four assignments the course needs: Chapter 2, Chapter 3, Chapter 5 and the richness experiment
REQUIRED = {"ch02_concentration", "ch03_theorem1", "ch05_infonce", "ch08_richness"}
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
    assert REQUIRED <= set(masters)
    for m in masters.values():
        assert len(m.questions) >= 2, m.name
        assert all(public >= 1 and hidden >= 1 for public, hidden in m.questions.values()), m.questions


def test_build_writes_student_notebook_solutions_and_autograder(built):
    assert REQUIRED <= set(built) and set(built) == set(ALL)
    for name, r in built.items():
        assert r["checked"]
        for key in ("student", "solutions", "autograder"):
            assert r[key].is_file(), f"{name}: missing {key} output {r[key]}"
        questions = build_assignments.read_master(ROOT / "assignments" / name / f"{name}.ipynb").questions
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
    assert set(scores) == set(build_assignments.read_master(ROOT / "assignments" / name / f"{name}.ipynb").questions)
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
    cells += [new_raw_cell("# BEGIN QUESTION\nname: q1"), new_markdown_cell("Double `x`."),
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
