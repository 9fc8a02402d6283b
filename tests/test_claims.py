"""The claims mechanism: true claims are recorded, false ones fail loudly, bad input is refused."""
import json
import math
import re

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


def _paired_t(higher, lower, confidence=0.95):
    """The paired Student-t interval computed independently of cssl.claims (numpy + scipy.stats.t)."""
    from scipy import stats

    d = np.asarray(higher, dtype=float) - np.asarray(lower, dtype=float)
    n, mean, sd = d.size, d.mean(), d.std(ddof=1)
    half = stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * sd / np.sqrt(n)
    return mean, mean - half, mean + half, sd


class TestCompare:
    """Ledger.compare computes an experiment's verdict from per-seed values; the caller never passes it."""

    SEEDS = [0, 1, 2, 3, 4]
    LOWER = [0.60, 0.62, 0.58, 0.61, 0.59]
    DIFF = [0.030, 0.045, 0.020, 0.040, 0.025]  # mean 0.032, clearly above 0 over 5 seeds

    def higher(self, shift=0.0):
        return [lo + d + shift for lo, d in zip(self.LOWER, self.DIFF)]

    def test_clear_positive_effect_reproduces_with_the_t_interval(self, ledger):
        c = ledger.compare("obs-rich", self.higher(), self.LOWER, seeds=self.SEEDS, statement="abcde beats abcd",
                           name="knn")
        mean, lo, hi, sd = _paired_t(self.higher(), self.LOWER)
        assert c.verdict == "reproduces" and lo > 0
        assert c.relation == ">" and c.kind == "empirical" and c.seeds == self.SEEDS and c.n_cases == 5
        assert c.lhs == pytest.approx(self.higher()) and c.rhs == pytest.approx(self.LOWER)
        assert c.margin == c.extra["ci_low"] == pytest.approx(lo)
        assert c.extra["effect"] == pytest.approx(mean) and c.extra["ci_high"] == pytest.approx(hi)
        assert c.extra["sd"] == pytest.approx(sd)
        assert c.extra["confidence"] == 0.95 and c.extra["interval"] == "paired t" and c.extra["n"] == 5
        record = json.loads((ledger.root / "_build/claims/01_x.json").read_text())["claims"][0]
        assert record["verdict"] == "reproduces" and record["extra"]["ci_low"] == pytest.approx(lo)

    def test_confidence_level_changes_the_interval(self, ledger):
        c = ledger.compare("obs-rich", self.higher(), self.LOWER, seeds=self.SEEDS, statement="s", name="n",
                           confidence=0.99)
        _, lo, hi, _ = _paired_t(self.higher(), self.LOWER, 0.99)
        assert (c.extra["ci_low"], c.extra["ci_high"]) == pytest.approx((lo, hi))

    def test_clear_negative_effect_is_reversed_and_recorded_not_raised(self, ledger):
        c = ledger.compare("obs-rich", self.LOWER, self.higher(), seeds=self.SEEDS, statement="s", name="n")
        assert c.verdict == "reversed" and c.extra["ci_high"] < 0 and c.margin < 0
        assert ledger.claims == [c]

    def test_noisy_zero_mean_effect_is_inconclusive(self, ledger):
        noise = [0.05, -0.04, 0.03, -0.06, 0.02]  # mean 0
        c = ledger.compare("obs-rich", [lo + e for lo, e in zip(self.LOWER, noise)], self.LOWER,
                           seeds=self.SEEDS, statement="s", name="n")
        assert c.verdict == "inconclusive" and c.extra["ci_low"] < 0 < c.extra["ci_high"]
        assert c.verdict != "holds"

    def test_the_verdict_follows_the_numbers(self, ledger):
        # the same seeds shifted down until the interval's lower end crosses 0: reproduces -> inconclusive
        _, lo, _, _ = _paired_t(self.higher(), self.LOWER)
        first = ledger.compare("obs-rich", self.higher(), self.LOWER, seeds=self.SEEDS, statement="s", name="as run")
        shifted = ledger.compare("obs-rich", self.higher(-lo - 0.001), self.LOWER, seeds=self.SEEDS, statement="s",
                                 name="shifted")
        assert first.verdict == "reproduces" and shifted.verdict == "inconclusive"
        assert shifted.margin == pytest.approx(-0.001)

    def test_identical_differences_give_an_interval_of_width_zero(self, ledger):
        c = ledger.compare("obs-rich", [2.0] * 5, [1.0] * 5, seeds=self.SEEDS, statement="s", name="n")
        assert c.extra["ci_low"] == c.extra["ci_high"] == c.extra["effect"] == 1.0
        assert c.extra["sd"] == 0.0 and c.verdict == "reproduces"
        tie = ledger.compare("obs-rich", [1.0] * 5, [1.0] * 5, seeds=self.SEEDS, statement="s", name="tie")
        assert tie.verdict == "inconclusive" and tie.margin == 0.0

    @pytest.mark.parametrize("kwargs, match", [
        (dict(higher=[1.0] * 4, lower=[0.0] * 4, seeds=[0, 1, 2, 3]), "give at least 5 seeds"),
        (dict(higher=[1.0, np.nan, 1, 1, 1]), r"obs-rich.*NaN"),
        (dict(lower=[0.0, 0, 0, np.inf, 0]), r"obs-rich.*not finite"),
        (dict(higher=[1.0] * 6), "one value per seed"),
        (dict(seeds=[0, 1, 2, 3]), "one value per seed"),
        (dict(seeds=[0, 1, 2, 3, 3]), "distinct"),
        (dict(seeds=[0, 1, 2, 3, 4.5]), "integers"),
        (dict(label="has space"), "not a valid"),
        (dict(statement=" "), "statement"),
        (dict(kind="numeric"), "unknown kind"),
        (dict(confidence=1.0), "confidence"),
    ])
    def test_bad_input_is_refused(self, ledger, kwargs, match):
        args = dict(label="obs-rich", higher=[1.0, 1.1, 0.9, 1.2, 1.0], lower=[0.0] * 5, seeds=self.SEEDS,
                    statement="s", name="n") | kwargs
        with pytest.raises(ValueError, match=match):
            ledger.compare(args.pop("label"), args.pop("higher"), args.pop("lower"), **args)
        assert ledger.claims == []

    def test_duplicate_name_is_refused(self, ledger):
        ledger.compare("obs-rich", self.higher(), self.LOWER, seeds=self.SEEDS, statement="s", name="knn")
        with pytest.raises(ValueError, match="already checked"):
            ledger.compare("obs-rich", self.higher(), self.LOWER, seeds=self.SEEDS, statement="s", name="knn")
        with pytest.raises(ValueError, match="already checked"):
            ledger.check("obs-rich", 1, ">", 0, statement="s", kind="exact", name="knn")

    @pytest.mark.parametrize("verdict", claims.COMPUTED_VERDICTS)
    def test_check_cannot_be_given_a_computed_verdict(self, ledger, verdict):
        assert verdict in claims.VERDICTS
        with pytest.raises(ValueError, match="computed"):
            ledger.check("t", 1, "<=", 2, statement="s", kind="exact", verdict=verdict)

    def test_format_effect_and_the_ledger_show_the_interval(self, ledger):
        c = ledger.compare("obs-rich", self.higher(), self.LOWER, seeds=self.SEEDS, statement="s", name="knn")
        mean, lo, hi, _ = _paired_t(self.higher(), self.LOWER)
        assert claims.format_effect(c) == f"{mean:+.3f} [{lo:.3f}, {hi:.3f}]" == "+0.032 [0.019, 0.045]"
        assert claims.format_effect(c, scale=100) == "+3.2 [1.9, 4.5]"
        assert claims.format_effect(c, scale=100, decimals=2, describe=True) == "+3.20 [1.91, 4.49] (paired t, 95%)"
        rev = ledger.compare("obs-rich", self.LOWER, self.higher(), seeds=self.SEEDS, statement="s", name="rev")
        assert claims.format_effect(rev) == "-0.032 [-0.045, -0.019]"
        assert "effect +0.032 [0.019, 0.045]" in repr(c)
        ledger.check("thm-1", 0, "<=", 1, statement="plain", kind="exact")
        with pytest.raises(ValueError, match="compare"):
            claims.format_effect(ledger.claims[-1])
        md = claims.ledger_markdown([json.loads(json.dumps(x.__dict__)) for x in ledger.claims])
        assert "| reproduces | effect +0.032 [0.019, 0.045] (paired t, 95%) | 5 (seeds 0, 1, 2, 3, 4) |" in md
        assert "| reversed | effect -0.032 [-0.045, -0.019] (paired t, 95%) |" in md
        assert "| holds | 1 |" in md

    def test_verdict_table_shows_computed_verdicts_and_no_floats(self, ledger):
        ledger.compare("obs-rich", self.higher(), self.LOWER, seeds=self.SEEDS, statement="s", name="knn")
        ledger.compare("obs-rich", self.LOWER, self.higher(), seeds=self.SEEDS, statement="s", name="rev")
        text = "\n".join(ledger.verdict_lines())
        assert "reproduces" in text and "reversed" in text
        assert not re.search(r"\d\.\d", text)


def test_paired_effect_is_the_computation_behind_compare():
    from scipy import stats

    h = np.array([0.80, 0.82, 0.79, 0.85, 0.81])
    l_ = np.array([0.75, 0.80, 0.78, 0.80, 0.79])
    d = h - l_
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    effect, low, high, sd, verdict = claims.paired_effect(h, l_)
    assert effect == pytest.approx(d.mean()) and sd == pytest.approx(d.std(ddof=1))
    assert (low, high) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    assert verdict == "reproduces" and claims.paired_effect(l_, h)[4] == "reversed"
    # the verdict comes from the numbers: a tighter claim (a shift of the lower side by the effect) is inconclusive
    assert claims.paired_effect(h, l_ + d.mean())[4] == "inconclusive"
    with pytest.raises(ValueError, match="equal length"):
        claims.paired_effect([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        claims.paired_effect([1.0, np.nan], [1.0, 2.0])
