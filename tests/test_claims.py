"""The claims mechanism: true claims are recorded, false ones fail loudly, bad input is refused."""
import json
import math

import numpy as np
import pytest
import sympy as sp

from cssl import claims
from cssl.claims import ClaimFailed, Ledger


@pytest.fixture
def ledger(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: chapters/01_x\n")
    return Ledger("01_x", root=tmp_path)


def test_true_claim_is_recorded_with_margin(ledger):
    c = ledger.check("thm-1", [0.1, 0.2], "<=", [0.5, 0.3], statement="Err <= bound", kind="exact")
    assert c.margin == pytest.approx(0.1)
    assert c.n_cases == 2 and c.verdict == "holds"
    record = json.loads((ledger.root / "_build/claims/01_x.json").read_text())
    assert record["claims"][0]["label"] == "thm-1"
    assert record["source_hash"] == claims.source_hash(ledger.notebook)


@pytest.mark.parametrize("lhs,rel,rhs", [(1.0, "<=", 0.5), (0.5, "<", 0.5), (0.2, ">=", 0.3),
                                         (0.3, ">", 0.3), (1.0, "==", 1.1)])
def test_false_claim_fails_loudly(ledger, lhs, rel, rhs):
    with pytest.raises(ClaimFailed, match=r"claim thm-2 does not hold: my statement[\s\S]*lhs=") as err:
        ledger.check("thm-2", lhs, rel, rhs, statement="my statement", kind="exact")
    assert "01_x" in str(err.value)
    assert ledger.claims == []


def test_one_failing_case_among_many_fails_and_names_its_seed(ledger):
    with pytest.raises(ClaimFailed, match=r"1 of 3 case\(s\) fail.*seeds=\[7\]"):
        ledger.check("thm-3", [0.1, 0.9, 0.2], "<=", 0.5, statement="s", kind="empirical", seeds=[5, 7, 9])


def test_identity_tolerance_and_strictness(ledger):
    ledger.check("a", 1.0, "==", 1.0 + 1e-12, statement="s", kind="exact", tol=1e-9)
    with pytest.raises(ClaimFailed):
        ledger.check("b", 1.0, "==", 1.0 + 1e-12, statement="s", kind="exact")


def test_symbolic_identity(ledger):
    u, v = sp.symbols("u v", real=True)
    ledger.check_identity("lem-x", (u + v) ** 2, u**2 + 2 * u * v + v**2, statement="binomial")
    with pytest.raises(ClaimFailed, match="sympy leaves"):
        ledger.check_identity("lem-y", (u + v) ** 2, u**2 + v**2, statement="wrong binomial")


@pytest.mark.parametrize("kwargs,match", [
    (dict(label="", lhs=1, rel="<=", rhs=2), "non-empty label"),
    (dict(label="   ", lhs=1, rel="<=", rhs=2), "non-empty label"),
    (dict(label="has space", lhs=1, rel="<=", rhs=2), "not a valid"),
    (dict(label="t", lhs=float("nan"), rel="<=", rhs=2), "contains NaN"),
    (dict(label="t", lhs=1, rel="<=", rhs=[1, np.nan]), "contains NaN"),
    (dict(label="t", lhs=1, rel="=<", rhs=2), "unknown relation"),
    (dict(label="t", lhs=1, rel="~", rhs=2), "unknown relation"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, kind="numeric"), "unknown kind"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, verdict="true"), "unknown verdict"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, statement=""), "statement"),
    (dict(label="t", lhs=[1, 2], rel="<=", rhs=[1, 2, 3]), "one value per case"),
    (dict(label="t", lhs=[], rel="<=", rhs=1), "empty"),
    (dict(label="t", lhs="abc", rel="<=", rhs=1), "number"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, tol=-1), "tol"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, tol=0.1), "tol only applies"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, kind="empirical"), "seeds"),
])
def test_bad_input_is_refused_clearly(ledger, kwargs, match):
    args = dict(statement="s", kind="exact") | kwargs
    label, lhs, rel, rhs = (args.pop(k) for k in ("label", "lhs", "rel", "rhs"))
    with pytest.raises((ValueError, TypeError), match=match):
        ledger.check(label, lhs, rel, rhs, **args)


def test_duplicate_claim_is_refused(ledger):
    ledger.check("t", 1, "<=", 2, statement="s", kind="exact")
    with pytest.raises(ValueError, match="already checked"):
        ledger.check("t", 1, "<=", 2, statement="s", kind="exact")
    ledger.check("t", 1, "<=", 2, statement="s", kind="exact", name="second world")


@pytest.mark.parametrize("bad", ["", "has space", None, "ch/01"])
def test_bad_chapter_name(tmp_path, bad):
    with pytest.raises(ValueError, match="chapter"):
        Ledger(bad, root=tmp_path)


def _verdict_output(root):
    led = Ledger("01_x", root=root)
    led.check("thm-1", np.random.rand(5), "<=", 2.0, statement="random but true", kind="exact")
    led.check("lem-2", 0.3, ">", 0.1, statement="s", kind="empirical", seeds=[0, 1, 2], name="three seeds")
    led.check("thm-3", 2.0, ">", 1.0, statement="paper's bound fails", kind="exact", verdict="fails as printed")
    return "\n".join(led.verdict_lines())


def test_verdict_table_is_stable_and_has_no_floats(ledger):
    first, second = _verdict_output(ledger.root), _verdict_output(ledger.root)
    assert first == second
    assert not any(ch.isdigit() and "." in tok for tok in first.split() for ch in tok if tok[0].isdigit())
    assert "fails as printed" in first and "three seeds" in first


def test_verdicts_refuses_an_empty_chapter(ledger, capsys):
    with pytest.raises(ValueError, match="no claims"):
        ledger.verdicts()


def test_collect_reads_fresh_records_and_rejects_stale_ones(ledger, tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": [{"source": "a"}]}))
    ledger.check("thm-1", 0, "<=", 1, statement="s", kind="exact")
    got = claims.collect(root=tmp_path, rebuild_stale=False)
    assert [r["label"] for r in got] == ["thm-1"]
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": [{"source": "changed"}]}))
    with pytest.raises(RuntimeError, match="no current claims record"):
        claims.collect(root=tmp_path, rebuild_stale=False)


def test_ledger_markdown_links_every_claim(ledger):
    ledger.check("thm-1", 0, "<=", math.inf, statement="a | b", kind="exact")
    md = claims.ledger_markdown([json.loads(json.dumps(c.__dict__)) for c in ledger.claims])
    assert "{prf:ref}`thm-1`" in md and "a \\| b" in md and "| inf |" in md and "01_x" in md


def test_check_proof_records_sympy_proofs_and_refuses_failed_ones(ledger):
    from cssl import symbolic

    c = ledger.check_proof("lem-sphere", symbolic.prove_sphere_inner_product_identity(3))
    assert c.kind == "symbolic" and "method" in c.extra
    with pytest.raises(ClaimFailed, match="could not prove"):
        ledger.check_proof("lem-off", symbolic.prove_sphere_inner_product_identity(3, on_sphere=False))
    with pytest.raises(TypeError, match="Proof"):
        ledger.check_proof("lem-bad", True)


def test_ledger_command_prints_fresh_records_and_fails_on_missing_ones(ledger, tmp_path, capsys):
    from cssl.__main__ import main

    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": [{"source": "a"}]}))
    assert main(["ledger", "--root", str(tmp_path)]) == 1
    assert "no current claims record" in capsys.readouterr().err
    ledger.check("thm-1", 0, "<=", 1, statement="zero is at most one", kind="exact")
    assert main(["ledger", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "thm-1" in out and "zero is at most one" in out and "1 claims" in out


def test_large_claims_store_a_bounded_sample_but_the_margin_of_all_cases(ledger):
    lhs = np.linspace(0, 1, 1000)
    c = ledger.check("thm-big", lhs, "<=", 1.5, statement="many cases", kind="exact")
    assert len(c.lhs) == claims.MAX_STORED_VALUES and c.n_cases == 1000
    assert c.margin == pytest.approx(0.5)


def test_check_pattern_records_holding_and_reversed_cases_separately(ledger):
    made = ledger.check_pattern("obs-x", [1.0, 3.0, 2.0], ">", [0.0, 4.0, 1.0], "+-+", statement="acc rises",
                                name="acc", seeds=[0, 1, 2], cases=["a to b", "b to c", "c to d"])
    assert [c.verdict for c in made] == ["holds", "not reproduced at this scale"]
    assert [c.relation for c in made] == [">", "<="]
    assert made[0].lhs == [1.0, 2.0] and made[0].seeds == [0, 1, 2] and "a to b, c to d" in made[0].statement
    assert made[1].lhs == [3.0] and made[1].margin == 1.0 and "opposite (<=)" in made[1].statement
    only = ledger.check_pattern("obs-y", [1.0, 2.0], "<", 5.0, "++", statement="below", name="b", seeds=[0])
    assert len(only) == 1 and only[0].verdict == "holds" and only[0].seeds == [0]


@pytest.mark.parametrize("pattern", ["++", "--", "-+"])
def test_check_pattern_fails_when_a_case_changes_direction(ledger, pattern):
    # the observed directions are (+, -): any other pinned pattern must fail, naming the claim
    with pytest.raises(ClaimFailed, match="obs-x"):
        ledger.check_pattern("obs-x", [1.0, 0.0], ">", [0.0, 1.0], pattern, statement="s", name="n", seeds=[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(rel="==", pattern="+"), "inequality"),
    (dict(pattern="+"), "2 characters"),
    (dict(pattern="+x"), "'\\+'"),
    (dict(pattern="++", cases=["one"]), "1 case names for 2"),
])
def test_check_pattern_refuses_bad_input(ledger, kwargs, match):
    args = dict(rel=">", pattern="++", cases=None) | kwargs
    with pytest.raises(ValueError, match=match):
        ledger.check_pattern("obs-x", [1.0, 2.0], args["rel"], 0.0, args["pattern"], statement="s", name="n",
                             seeds=[0], cases=args["cases"])
