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
    assert record["source_hash"] == claims.source_hash(ledger.notebook, record["modules"])
    assert "claims.py" in record["modules"] and "__init__.py" in record["modules"]


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
    (dict(label="t", lhs=1, rel="<=", rhs=2, verdict="holds"), "unexpected keyword"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, regression=" "), "regression"),
    (dict(label="t", lhs=1, rel="==", rhs=1, sharper=0.5), "sharper"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, tries=0), "tries"),
    (dict(label="t", lhs=1, rel="<=", rhs=2, floor=("nope", "")), "floor"),
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
    led.check("thm-1", np.linspace(0, 1, 5), "<=", 2.0, statement="true", kind="exact")
    led.check("lem-2", 0.3, ">", 0.1, statement="s", kind="empirical", seeds=[0, 1, 2], name="three seeds")
    led.refute("thm-3", 2.0, "<=", 1.0, corrected="thm-1", statement="paper's bound fails", kind="exact")
    return "\n".join(led.verdict_lines())


def test_verdict_table_is_stable_and_shows_margins_and_sensitivity(ledger):
    first, second = _verdict_output(ledger.root), _verdict_output(ledger.root)
    assert first == second
    assert "fails as printed" in first and "three seeds" in first
    assert "| " not in first and " 1 " in first  # thm-1's margin 2 - 1 = 1, two significant digits
    assert "loose by >= 10x" not in first.splitlines()[3]  # thm-1: 1 <= 2 fails against 0.2, passes 1.8
    assert "fails at 10% tighter" not in first


def test_verdicts_refuses_an_empty_chapter(ledger, capsys):
    with pytest.raises(ValueError, match="no claims"):
        ledger.verdicts()


def test_collect_reads_fresh_records_and_rejects_stale_ones(ledger, tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": [{"source": "Ledger('01_x')"}]}))
    ledger.check("thm-1", 0, "<=", 1, statement="s", kind="exact")
    with pytest.raises(RuntimeError, match="no current claims record"):   # not complete yet
        claims.collect(root=tmp_path, rebuild_stale=False)
    ledger.verdicts()
    got = claims.collect(root=tmp_path, rebuild_stale=False)
    assert [r["label"] for r in got] == ["thm-1"]
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": [{"source": "Ledger('01_x') # changed"}]}))
    with pytest.raises(RuntimeError, match="no current claims record"):
        claims.collect(root=tmp_path, rebuild_stale=False)


def test_ledger_markdown_links_every_claim(ledger):
    ledger.check("thm-1", 0, "<=", math.inf, statement="a | b", kind="exact")
    md = claims.ledger_markdown([json.loads(json.dumps(c.__dict__)) for c in ledger.claims],
                                root=ledger.root)
    assert "{prf:ref}`thm-1`" in md and "a \\| b" in md and "margin inf;" in md and "01_x" in md


def test_ledger_tables_fit_the_column_and_leave_the_verdict_table_alone(ledger):
    """The ledger page's tables have four columns and long tokens that may wrap; the chapter's own
    verdict table (``verdict_lines``, compared by nbval) keeps its five columns."""
    ledger.check("thm-1", 0.95, "<=", 1, statement="on lemma32_counterexample_world: f(x)^T mu_l >= 0",
                 kind="exact", name="printed constant")
    ledger.check("thm-2", np.zeros(15), "<=", 1, statement="s", kind="empirical", seeds=[0, 1, 2, 3, 4] * 3)
    ledger.check("thm-3", 0, "<=", 1, statement="s", kind="exact", seeds=[0, 2], name="two")
    md = claims.ledger_markdown([json.loads(json.dumps(c.__dict__)) for c in ledger.claims],
                                root=ledger.root)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[0] == "| statement | claim | verdict; margin; can fail? | how checked |"
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 5 for row in rows)
    assert "lemma32\\_<wbr>counterexample\\_<wbr>world: f(x)^T mu_l" in md
    assert "| holds<br>margin 0.05; fails at 10% tighter | exact, 1 case |" in md
    assert "| empirical, 15 cases, seeds 0\u20134 |" in md and "| exact, 1 case, seeds 0, 2 |" in md
    head = ledger.verdict_lines()[1].split()
    assert head == ["statement", "check", "verdict", "margin", "can", "fail?"]
    assert claims._breakable("short_token a_b") == "short_token a_b"
    math = "$\\mu_{very_long_subscript}$ `code_that_is_long_too`"
    assert claims._breakable(math) == math


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
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": [{"source": "Ledger('01_x')"}]}))
    assert main(["ledger", "--root", str(tmp_path)]) == 1
    assert "no current claims record" in capsys.readouterr().err
    ledger.check("thm-1", 0, "<=", 1, statement="zero is at most one", kind="exact")
    ledger.verdicts()
    assert main(["ledger", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "thm-1" in out and "zero is at most one" in out and "1 claims" in out


def test_large_claims_store_a_bounded_sample_but_the_margin_of_all_cases(ledger):
    lhs = np.linspace(0, 1, 1000)
    c = ledger.check("thm-big", lhs, "<=", 1.5, statement="many cases", kind="exact")
    assert len(c.lhs) == claims.MAX_STORED_VALUES and c.n_cases == 1000
    assert c.margin == pytest.approx(0.5)


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

    @pytest.mark.parametrize("verdict", claims.VERDICTS)
    def test_check_cannot_be_given_a_verdict(self, ledger, verdict):
        with pytest.raises(TypeError, match="verdict"):
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
        md = claims.ledger_markdown([json.loads(json.dumps(x.__dict__)) for x in ledger.claims],
                                    root=ledger.root)
        assert "| reproduces<br>effect +0.032 [0.019, 0.045] (paired t, 95%) | empirical, 5 cases, seeds 0\u20134 |" in md
        assert "| reversed<br>effect -0.032 [-0.045, -0.019] (paired t, 95%) |" in md
        assert "| holds<br>margin 1; loose by >= 10x | exact, 1 case |" in md

    def test_verdict_table_shows_computed_verdicts_and_effects(self, ledger):
        ledger.compare("obs-rich", self.higher(), self.LOWER, seeds=self.SEEDS, statement="s", name="knn")
        ledger.compare("obs-rich", self.LOWER, self.higher(), seeds=self.SEEDS, statement="s", name="rev")
        text = "\n".join(ledger.verdict_lines())
        assert "reproduces" in text and "reversed" in text
        assert "effect +0.032 [0.019, 0.045]" in text


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


# ---------------------------------------------------------------- computed verdicts from the book's boxes
def _md_cell(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


@pytest.fixture
def book(tmp_path):
    """A two-chapter book: chapter 1 (numbered) with a proved theorem, an unproved lemma, a floor and
    an observation; the appendix (unnumbered) with a remark."""
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: index\nparts:\n  - caption: P\n    numbered: true\n    chapters:\n"
        "      - file: chapters/01_x\n  - caption: A\n    chapters:\n      - file: chapters/90_y\n")
    (tmp_path / "chapters").mkdir()
    cells = [
        _md_cell("# One\n\n```{prf:theorem} Proved one\n:label: thm-a\n\nA.\n```\n\n"
                 "```{prf:proof}\nEasy.\n```\n"),
        _md_cell("```{prf:lemma} Not proved here\n:label: lem-b\n\nB.\n```\n\n"
                 ":::{prf:theorem} Second theorem\n:label: thm-c\n:::\n\n```{prf:proof}\nC.\n```\n"),
        _md_cell("```{prf:observation} Seen\n:label: obs-d\n```\n\n"
                 "```{prf:theorem} Unnumbered\n:label: thm-e\n:nonumber:\n```\n"),
    ]
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": cells}))
    (tmp_path / "chapters/90_y.ipynb").write_text(json.dumps({"cells": [
        _md_cell("```{prf:remark} Later\n:label: rem-f\n```\n")]}))
    return Ledger("01_x", root=tmp_path)


def test_book_boxes_number_each_type_per_chapter(book):
    boxes = claims.book_boxes(book.root)
    assert {k: (b.number, b.proved) for k, b in boxes.items()} == {
        "thm-a": ("Theorem 1.1", True), "lem-b": ("Lemma 1.1", False), "thm-c": ("Theorem 1.2", True),
        "obs-d": ("Observation 1.1", False), "thm-e": ("Theorem", False), "rem-f": ("Remark", False)}
    assert boxes["thm-a"].heading == "Theorem 1.1 (Proved one)"


def test_the_table_of_contents_is_read_once_for_every_reader(book, tmp_path_factory):
    assert claims.toc_files(book.root) == [("chapters/01_x", True), ("chapters/90_y", False)]
    assert claims._toc_chapters(book.root) == ["01_x", "90_y"]
    assert claims.toc_files(tmp_path_factory.mktemp("no_book")) == []


def test_verdicts_are_computed_from_the_box_and_the_check(book):
    assert book.check("thm-a", 0.5, "<=", 1.0, statement="s", kind="exact").verdict == "holds"
    opened = book.check("lem-b", [0.1, 0.2], "<=", 1.0, statement="s", kind="exact", tries=1600)
    assert opened.verdict == "open" and opened.extra["tries"] == 1600
    assert book.check("lem-b", 0.1, "<=", 1.0, statement="s", kind="empirical", seeds=[0],
                      name="seeds").verdict == "holds"
    assert book.check("obs-d", 0.1, "<=", 1.0, statement="s", kind="exact").verdict == "holds"
    floor = book.check("thm-c", 1.5, ">=", 1.0, statement="rhs >= 1 always", kind="exact", name="floor")
    vac = book.check("thm-a", 0.5, "<=", 1.5, statement="s", kind="exact", name="v", floor=floor)
    assert vac.verdict == "true but vacuous" and vac.extra["floor"]["label"] == "thm-c"
    assert book.check("thm-a", 1, "<=", 1, statement="s", kind="exact", name="r",
                      regression="compares a formula with itself").verdict == "regression test"
    with pytest.raises(ValueError, match="no .* box"):
        book.check("thm-zz", 0, "<=", 1, statement="s", kind="exact")
    with pytest.raises(ValueError, match="must be a claim that holds"):
        book.check("thm-a", 0.5, "<=", 1.5, statement="s", kind="exact", name="w", floor=opened)


def test_refute_checks_the_negation_and_links_the_correction(book, capsys):
    c = book.refute("lem-b", 2.0, "<=", 1.0, corrected="thm-a", statement="counterexample", kind="exact")
    assert c.verdict == "fails as printed" and c.relation == ">" and c.extra["corrected"] == "thm-a"
    with pytest.raises(ClaimFailed):
        book.refute("lem-b", 0.5, "<=", 1.0, corrected="thm-a", statement="no counterexample",
                    kind="exact", name="x")
    with pytest.raises(ValueError, match="no .* box"):
        book.refute("lem-b", 2.0, "<=", 1.0, corrected="thm-none", statement="s", kind="exact", name="y")
    with pytest.raises(ValueError, match="no claim of 'thm-a' holds"):
        book.verdicts()
    book.check("thm-a", 0, "<=", 1, statement="corrected", kind="exact")
    book.verdicts()
    out = capsys.readouterr().out
    assert "Lemma 1.1 (Not proved here)" in out and "Theorem 1.1 (Proved one)" in out
    md = claims.ledger_markdown([json.loads(json.dumps(x.__dict__)) for x in book.claims], root=book.root)
    assert "corrected: {prf:ref}`Theorem 1.1 <thm-a>`" in md
    assert "{prf:ref}`Lemma 1.1 <lem-b>` (Not proved here)" in md


@pytest.mark.parametrize("lhs, rel, rhs, fails, loose", [
    (0.95, "<=", 1.0, True, False),     # 0.95 > 0.9: fails when the bound moves 10 %
    (0.5, "<=", 1.0, False, False),     # passes at 0.9, fails at 0.1
    (0.05, "<=", 1.0, False, True),     # passes even at 0.1
    (1.05, ">=", 1.0, True, False),     # lower bound moved to 1.1
    (20.0, ">=", 1.0, False, True),     # passes even against 10
    (-0.5, ">=", -1.0, False, False),   # lower bound -1 moved to -0.9 (passes), 10x is -0.1 (fails)
    ([-0.01, 0.5], "<", [0.0, 1.0], True, False),  # b = 0 moves by the claim's largest |b|
])
def test_inequality_sensitivity(ledger, lhs, rel, rhs, fails, loose):
    c = ledger.check("thm-1", lhs, rel, rhs, statement="s", kind="exact")
    assert c.sensitivity["fails"] is fails and c.sensitivity["loose_10x"] is loose
    assert c.sensitivity["fails_10pct"] is fails


def test_a_sign_claim_moves_by_the_largest_lhs(ledger):
    attained = ledger.check("thm-1", [0.0, -0.3], "<=", 0.0, statement="s", kind="exact")
    assert attained.sensitivity["fails"] is True      # 0 <= -0.03 fails
    strict = ledger.check("thm-1", [-0.3, -0.29], "<", 0.0, statement="s", kind="exact", name="b")
    assert strict.sensitivity["fails"] is False and strict.sensitivity["loose_10x"] is True
    sharp = ledger.check("thm-1", -0.3, "<", 0.0, statement="s", kind="exact", name="c", sharper=-0.5)
    assert sharp.sensitivity["fails"] is True


def test_sharper_bound_and_identity_perturbation(ledger):
    c = ledger.check("thm-2", [0.3, 0.4], "<=", 1.0, statement="s", kind="exact", sharper=0.35)
    assert c.sensitivity["test"] == "sharper bound" and c.sensitivity["fails"] is True
    assert claims.sensitivity_text(c) == "fails at sharper bound"
    eq = ledger.check("thm-3", 1.0, "==", 1.0 + 1e-12, statement="s", kind="exact", tol=1e-9)
    assert eq.sensitivity == {"test": "perturbed rhs", "fails": True, "perturbed_rejected": True}
    wide = ledger.check("thm-4", 1.0, "==", 1.0, statement="s", kind="exact", tol=0.2)
    assert wide.sensitivity["fails"] is False  # a tolerance of 20 % accepts rhs + 10 %
    u = sp.Symbol("u")
    ident = ledger.check_identity("lem-5", (u + 1) ** 2, u**2 + 2 * u + 1, statement="s")
    assert ident.sensitivity["perturbed_rejected"] is True
    summary = claims.sensitivity_summary(ledger.claims)
    assert summary["n"] == 1 and summary["fail_10pct"] == 1


def test_box_numbers_agree_with_the_built_site():
    """Where the site was built after the chapters last changed, every box number matches the HTML."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    boxes = claims.book_boxes(root)
    compared = 0
    for label, box in boxes.items():
        html = root / "_build" / "html" / "chapters" / f"{box.chapter}.html"
        source = root / "chapters" / f"{box.chapter}.ipynb"
        if not html.is_file() or not source.is_file() or html.stat().st_mtime < source.stat().st_mtime:
            continue
        text = html.read_text(encoding="utf-8")
        m = re.search(r'id="' + re.escape(label) + r'".{0,600}?caption-number">([^<]*)<', text, flags=re.S)
        if m is None:
            continue
        assert m.group(1).strip() == box.number, label
        compared += 1
    if compared == 0:
        pytest.skip("no chapter's site is newer than its notebook")


def test_collect_skips_pages_that_record_no_claims(ledger, tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: chapters/01_x\n"
                                       "  - file: chapters/95_map\n")
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": [{"source": "Ledger('01_x')"}]}))
    (tmp_path / "chapters/95_map.ipynb").write_text(json.dumps({"cells": [{"source": "a map"}]}))
    ledger.check("thm-1", 0, "<=", 1, statement="s", kind="exact")
    ledger.verdicts()
    assert [r["label"] for r in claims.collect(root=tmp_path, rebuild_stale=False)] == ["thm-1"]


def test_result_status_is_computed_from_the_verdicts(book):
    book.check("thm-a", 0.5, "<=", 1.0, statement="s", kind="exact")
    book.check("lem-b", 0.5, "<=", 1.0, statement="s", kind="exact")
    floor = book.check("thm-c", 1.5, ">=", 1.0, statement="s", kind="exact", name="floor")
    book.check("thm-c", 0.5, "<=", 1.5, statement="s", kind="exact", name="v", floor=floor)
    book.refute("obs-d", 2.0, "<=", 1.0, corrected="thm-a", statement="s", kind="exact")
    seeds = [0, 1, 2, 3, 4]
    book.compare("rem-f", [2.0] * 5, [1.0] * 5, seeds=seeds, statement="s", name="up")
    records = [json.loads(json.dumps(c.__dict__)) for c in book.claims]
    assert claims.result_status(records, ["thm-a"])[0] == "proved as printed"
    assert claims.result_status(records, ["lem-b"])[0] == "open"
    assert claims.result_status(records, ["thm-c"])[0] == "true but vacuous"
    state, detail = claims.result_status(records, ["obs-d"])
    assert state == "false as printed" and detail["corrected"] == ["thm-a"]
    assert claims.result_status(records, ["rem-f"])[0] == "reproduces"
    book.compare("rem-f", [1.0] * 5, [2.0] * 5, seeds=seeds, statement="s", name="down")
    records = [json.loads(json.dumps(c.__dict__)) for c in book.claims]
    assert claims.result_status(records, ["rem-f"])[0] == "mixed"
    assert claims.result_status(records, ["thm-e"])[0] == "not checked"


def test_a_record_is_stale_only_when_a_module_it_loaded_changes(tmp_path):
    """The hash covers the notebook and the cssl files the chapter loaded, not every file."""
    used = claims.loaded_modules()
    assert "claims.py" in used
    everything = claims.source_hash(None)
    assert claims.source_hash(None, used) != everything or set(used) == set(
        str(p.relative_to(claims.Path(claims.__file__).parent))
        for p in claims.Path(claims.__file__).parent.rglob("*.py"))
    assert claims.source_hash(None, ["claims.py"]) != claims.source_hash(None, ["bounds.py"])


def test_a_page_without_claims_can_save_a_complete_empty_record(ledger, tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters/01_x.ipynb").write_text(json.dumps({"cells": [{"source": "Ledger('01_x').save()"}]}))
    Ledger("01_x", root=tmp_path).save()
    assert claims.collect(root=tmp_path, rebuild_stale=False) == []


def test_a_witness_is_checked_against_a_control_and_counted_apart(book):
    """An existence claim: the witness must satisfy the relation, the control must not."""
    w = book.witness("thm-a", 1.0, ">", 0.0, control_lhs=[0.0, -0.5], control_rhs=0.0,
                     control="a true metric", statement="d13 > d12 + d23 on one triple",
                     kind="exact", name="triangle")
    assert w.verdict == "holds" and w.relation == ">"
    assert w.sensitivity["test"] == "control rejected" and w.sensitivity["fails"] is True
    assert w.sensitivity["fails_10pct"] is False  # the old 10 % test passes: a wide margin
    assert w.extra["control"] == "a true metric" and w.extra["control_lhs"] == [0.0, -0.5]
    assert w.extra["control_margin"] == 0.0
    assert claims.sensitivity_text(w) == "witness; control rejected"
    # a witness that is no witness
    with pytest.raises(ClaimFailed, match="does not hold"):
        book.witness("thm-a", -1.0, ">", 0.0, control_lhs=-1.0, control_rhs=0.0, control="c",
                     statement="s", kind="exact", name="no witness")
    assert [c.name for c in book.claims] == ["triangle"]  # nothing recorded by a refused witness
    # on an unproved lemma a witness still holds: the existence is shown by the case
    assert book.witness("lem-b", 2.0, ">=", 1.0, control_lhs=0.5, control_rhs=1.0, control="c",
                        statement="s", kind="exact").verdict == "holds"
    floor = book.check("thm-c", 1.5, ">=", 1.0, statement="rhs >= 1 always", kind="exact", name="floor")
    book.check("thm-a", 0.5, "<=", 1.5, statement="s", kind="exact", name="v", floor=floor)
    book.compare("obs-d", [2.0, 2.1, 2.2, 2.3, 2.4], [1.0] * 5, seeds=range(5), statement="s", name="e")
    book.check("thm-a", 0.95, "<=", 1.0, statement="s", kind="exact", name="bound")
    records = [json.loads(json.dumps(claims.asdict(c))) for c in book.claims]
    s = claims.sensitivity_summary(records)
    assert (s["n"], s["fail_10pct"]) == (2, 1)  # the floor (passes 10 %) and the bound (fails)
    assert [r["name"] for r in s["witnesses"]] == ["triangle", ""]
    assert [r["name"] for r in s["vacuous"]] == ["v"] and s["experiments"] == {"reproduces": 1}
    assert s["all_inequality"] == {"n": 5, "fail_10pct": 1, "share": 0.2}
    assert "a true metric" in claims.witness_markdown(records, root=book.root)
    assert "Theorem 1.2 <thm-c>" in claims.vacuous_markdown(records, root=book.root)
    # the record round-trips through the chapter's file and collect's reader
    path = book.save()
    saved = json.loads(path.read_text())["claims"][0]
    assert saved == records[0] and claims.Claim(**saved) == book.claims[0]


def test_an_observation_is_checked_against_control_runs_and_counted_apart(book):
    """How trained runs came out, read against a chosen threshold: shown able to fail by a control."""
    o = book.observe("obs-d", [20.0, 22.0, 25.0, 19.0, 30.0], ">=", 15.0,
                     control_lhs=[-3.0, 1.0, 2.0, 0.0, -1.0], control_rhs=15.0,
                     control="the rows without grayscale", statement="trained 15 points above untrained",
                     kind="empirical", seeds=range(5), name="learned")
    assert o.verdict == "holds" and o.sensitivity["group"] == "observation"
    assert o.sensitivity["fails"] is True and o.sensitivity["fails_10pct"] is False
    assert claims.sensitivity_text(o) == "observation; control rejected"
    assert o.extra["control_margin"] == 2.0 - 15.0
    with pytest.raises(ClaimFailed, match="does not hold"):
        book.observe("obs-d", [20.0, 14.0], ">=", 15.0, control_lhs=1.0, control_rhs=15.0, control="c",
                     statement="s", kind="exact", name="one run misses")
    book.witness("thm-a", 1.0, ">", 0.0, control_lhs=0.0, control_rhs=0.0, control="c",
                 statement="s", kind="exact", name="w")
    records = [json.loads(json.dumps(claims.asdict(c))) for c in book.claims]
    s = claims.sensitivity_summary(records)
    assert [r["name"] for r in s["observations"]] == ["learned"]
    assert [r["name"] for r in s["witnesses"]] == ["w"] and s["n"] == 0
    assert s["all_inequality"]["n"] == 2  # both keep their 10 % test in the old count
    table = claims.witness_markdown(records, root=book.root, group="observations")
    assert "the rows without grayscale" in table and "| observation |" in table
    assert "trained 15 points above untrained" in table  # the claim in words, not its short name
    with pytest.raises(ValueError, match="group must be"):
        claims.witness_markdown(records, root=book.root, group="bounds")


@pytest.mark.parametrize("method, absent, accepted", [
    ("witness", "contradicted statement holds", "a witness from a case without it"),
    ("observe", "observed effect is absent", "the observed effect from a case without it")])
def test_a_check_with_a_control_refuses_what_cannot_show_it_able_to_fail(book, method, absent, accepted):
    """A control that also satisfies the relation, a control not said in words, an identity, no seeds."""
    record = getattr(book, method)
    good = dict(control_lhs=0.0, control_rhs=1.0, control="c", statement="s", kind="exact")
    with pytest.raises(ValueError, match=accepted):
        record("thm-a", 2.0, ">", 1.0, **(good | {"control_lhs": [0.5, 1.5]}), name="bad control")
    with pytest.raises(ValueError, match=absent):
        record("thm-a", 2.0, ">", 1.0, **(good | {"control": " "}), name="blank")
    with pytest.raises(ValueError, match="inequality"):
        record("thm-a", 1.0, "==", 1.0, **good, name="eq")
    with pytest.raises(ValueError, match="must list the seeds"):
        record("thm-a", 2.0, ">", 1.0, **(good | {"kind": "empirical"}), name="no seeds")
    assert book.claims == []  # nothing recorded by a refused check
