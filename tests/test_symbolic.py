"""cssl.symbolic: sympy proofs of the paper's algebra, and numeric twins that agree with cssl.bounds."""
import math

import pytest
import sympy as sp
from hypothesis import assume, given, settings, strategies as st

from cssl import bounds as B
from cssl import symbolic as S

SETTINGS = settings(max_examples=30, deadline=None)


# ------------------------------------------------------------------------------- proofs
@pytest.mark.parametrize("make", [
    lambda: S.prove_nn_classifier_is_linear(),
    lambda: S.prove_nn_classifier_is_linear(3),
    lambda: S.prove_sphere_inner_product_identity(3),
    lambda: S.prove_sphere_inner_product_identity(5),
    S.prove_infonce_log_split,
    S.prove_align_equals_2l1_plus_2,
    lambda: S.prove_cross_correlation_split(3),
    S.prove_linear_loss_independence,
    lambda: S.prove_linear_loss_independence(3, 2, 2),
    S.linear_loss_collapse_example,
    S.temperature_series,
    S.prove_lemma32_final_algebra,
    S.prove_lemma41_identity,
    S.ideal_point,
    lambda: S.prove_eta_closed_form(),
    lambda: S.prove_eta_closed_form(2),
    lambda: S.eta_small_eps_limit(),
    lambda: S.eta_small_eps_limit(1),
    lambda: S.eta_small_eps_limit(2),
    lambda: S.eta_small_eps_limit(3),
    S.eta_large_eps_limit,
    lambda: S.prove_theorem4_core(2, 2),
    lambda: S.prove_theorem4_core(3, 2, 0, 2),
], ids=lambda f: getattr(f, "__name__", "proof"))
def test_proof_holds(make):
    proof = make()
    assert isinstance(proof, S.Proof)
    assert proof.holds is True and bool(proof)
    assert isinstance(proof.lhs, sp.Basic) and isinstance(proof.rhs, sp.Basic)
    assert "proved" in proof._repr_latex_() and "NOT" not in proof._repr_latex_()


def test_sphere_identity_fails_off_the_sphere():
    proof = S.prove_sphere_inner_product_identity(3, on_sphere=False)
    assert not proof
    assert proof.details["gap_at_counterexample"] == -1
    assert "NOT proved" in proof._repr_latex_()


def test_truncated_temperature_series_is_not_proved():
    """A proof helper must be able to fail: two terms do not match the three-term expansion."""
    assert not S.temperature_series(order=2)


def test_closed_form_certificates_are_the_expected_expressions():
    lemma = S.prove_lemma32_final_algebra()
    s1, s2, s3, s4 = sp.symbols("s1:5", nonnegative=True)
    assert sp.expand(lemma.residual - (2 * s1 + s2 + s3 + 2 * s4)) == 0
    core = S.prove_theorem4_core(2, 2)
    assert core.details["triangle_step_gap"] == 0
    ideal = S.ideal_point()
    assert ideal.details["rho_paper"] == 0 and ideal.details["rho_corrected"] == 0 and ideal.details["tau_book"] == 0
    collapse = S.linear_loss_collapse_example()
    assert collapse.details["L1"] == -1 and collapse.details["L2_prime"] == 0 and collapse.details["mu1_dot_mu2"] == 1


def test_eta_argmin_solves_the_stationarity_equation():
    g = S.eta_branch_expr()
    sol = sp.solve(sp.diff(sp.log(g), S.h), S.h)
    assert len(sol) == 1 and sp.simplify(sol[0] - S.eta_argmin_expr()) == 0


# --------------------------------------------------------------------- numeric twins
def _f(expr, *symbols):
    return sp.lambdify(symbols, expr, "numpy")


sigmas = st.floats(0.05, 1.0)
small = st.floats(0.0, 0.3)
probs = st.floats(0.05, 0.95)
positive = st.floats(0.2, 3.0)


@SETTINGS
@given(sg=sigmas, dl=small, e=st.floats(0.01, 0.3), R=st.floats(0.0, 0.2), p=probs, L=positive, r=positive)
def test_rho_twins(sg, dl, e, R, p, L, r):
    args = (S.sigma, S.delta, S.epsilon, S.R_eps, S.p_l, S.L, S.r)
    assert B.rho_l(sg, dl, e, R, p, L, r) == pytest.approx(_f(S.rho_expr("paper"), *args)(sg, dl, e, R, p, L, r))
    assume(L * dl / r + 2 * e / r <= 2)   # the corrected formula's domain
    assert B.rho_l(sg, dl, e, R, p, L, r, coefficient="corrected") == pytest.approx(
        _f(S.rho_expr("corrected"), *args)(sg, dl, e, R, p, L, r))


@SETTINGS
@given(rho=st.floats(0.0, 3.0), dmu=st.floats(0.0, 1.0), r=positive, sg=sigmas, R=st.floats(0, 1))
def test_theorem1_twins(rho, dmu, r, sg, R):
    assert B.theorem1_threshold(rho, dmu, r) == pytest.approx(
        _f(S.theorem1_threshold_expr(), S.rho, S.Delta_mu, S.r)(rho, dmu, r))
    assert B.theorem1_bound(sg, R) == pytest.approx(_f(S.theorem1_bound_expr(), S.sigma, S.R_eps)(sg, R))


@SETTINGS
@given(frac=st.floats(0.01, 0.99), e=st.floats(0.05, 5.0), m=st.integers(1, 6), n=st.integers(1, 3),
       L=positive, M=positive)
def test_eta_twins(frac, e, m, n, L, M):
    c = 2 * math.sqrt(n) * L * M
    hv = frac * e / c
    args = (S.h, S.epsilon, S.m, S.n, S.L, S.M)
    assert B.eta_h(hv, e, m, n, L, M) == pytest.approx(_f(S.eta_h_expr(), *args)(hv, e, m, n, L, M), rel=1e-9)
    closed = _f(S.eta_closed_form_expr(), S.epsilon, S.n, S.L, S.M)(e, n, L, M)
    assert B.eta_closed_form(e, n, L, M) == pytest.approx(closed, rel=1e-9)
    if e <= B.eta_closed_form_eps_max(m, n, L, M):
        assert B.eta(e, m, n, L, M) == pytest.approx(closed, rel=1e-9)
    h_star = _f(S.eta_argmin_expr(), S.epsilon, S.n, S.L, S.M)(e, n, L, M)
    assert B.eta_argmin(e, m, n, L, M, h_max=None) == pytest.approx(min(h_star, m ** (-1 / n)))


@SETTINGS
@given(L2=st.floats(0.0, 2.0), tau=st.floats(0.0, 1.0), pk=st.floats(0.1, 0.9), pl=st.floats(0.1, 0.9),
       e=st.floats(0.0, 1.4))
def test_theorem3_twins(L2, tau, pk, pl, e):
    sym = _f(S.theorem3_rhs_expr(), S.L2, S.tau, S.p_k, S.p_l, S.epsilon)
    A = (L2 + tau) / (pk * pl)
    assume(A > 1 - e + 1e-6 and A < 600)
    assert B.theorem3_rhs(L2, tau, pk, pl, e) == pytest.approx(sym(L2, tau, pk, pl, e), rel=1e-9, abs=1e-9)
    R = tau / 4
    assert B.tau_book(R, e) == pytest.approx(_f(S.tau_book_expr(), S.R_eps)(R))
    for floor in ("linear", "quadratic"):
        assert B.infonce_l2_floor(e, alignment_floor=floor) == pytest.approx(
            _f(S.infonce_l2_floor_expr(floor), S.epsilon)(e))
        if float(B.infonce_l2_floor(e, alignment_floor=floor)) >= 0:
            assert B.theorem3_rhs_floor(e, alignment_floor=floor) == pytest.approx(
                _f(S.theorem3_rhs_floor_expr(floor), S.epsilon)(e), rel=1e-9)


@SETTINGS
@given(L2=st.floats(0.0, 20.0), tp=st.floats(0.0, 5.0), d=st.integers(1, 12), K=st.integers(2, 12),
       pk=st.floats(0.05, 0.9), pl=st.floats(0.05, 0.9), factor=st.sampled_from([1.0, 2.0]))
def test_theorem4_twins(L2, tp, d, K, pk, pl, factor):
    assume(L2 + tp - (d - K) / 2 >= 0)
    sym = _f(S.theorem4_rhs_expr(factor), S.L2, S.tau_prime, S.d, S.K, S.p_k, S.p_l)
    assert B.theorem4_rhs(L2, tp, d, K, pk, pl, factor=factor) == pytest.approx(sym(L2, tp, d, K, pk, pl))


@SETTINGS
@given(sg=sigmas, eta_v=st.floats(0.01, 100.0), L1_info=st.floats(-1.0, 3.0), L1_cc=st.floats(0.0, 5.0),
       d=st.integers(1, 64))
def test_corollary_twins(sg, eta_v, L1_info, L1_cc, d):
    info = _f(S.infonce_err_bound_expr(), S.sigma, S.eta_sym, S.L1)
    cc = _f(S.cross_correlation_err_bound_expr(), S.sigma, S.eta_sym, S.d, S.L1)
    assert B.infonce_err_bound(sg, eta_v, L1_info) == pytest.approx(info(sg, eta_v, L1_info))
    assert B.cross_correlation_err_bound(sg, eta_v, d, L1_cc) == pytest.approx(cc(sg, eta_v, d, L1_cc))


def test_bad_arguments():
    with pytest.raises(ValueError, match="coefficient"):
        S.rho_expr("tight")
    with pytest.raises(ValueError, match="alignment_floor"):
        S.infonce_l2_floor_expr("cubic")
    with pytest.raises(ValueError, match="dim"):
        S.prove_cross_correlation_split(0)
    with pytest.raises(ValueError, match="different"):
        S.prove_theorem4_core(2, 2, 1, 1)
    with pytest.raises(TypeError, match="n"):
        S.eta_small_eps_limit(1.5)


def test_lemma32_final_algebra_derives_cauchy_schwarz():
    """s4 >= 0 is derived (Lagrange's identity), not a hypothesis: its gap is checked to vanish."""
    proof = S.prove_lemma32_final_algebra(dim=3)
    assert proof.details["lagrange_gap"] == 0 and proof.details["s4_is_r2_sqrt2rho_minus_xTy"] == 0
    assert proof.holds


def test_prove_lemma32_all_rho_every_step():
    proof = S.prove_lemma32_all_rho()
    assert proof.holds and proof.residual == 0
    res = proof.details["residuals"]
    assert len(res) >= 15 and all(v == 0 for v in res.values())
    assert "step 6, key identity" in res and "step 1, printed rho_l" in res
    ends = proof.details["constant_at_ends"]
    assert ends["w = 1"] == sp.Rational(1, 3)
    assert sp.simplify(ends["w = sqrt5 - 1"] - (2 * sp.sqrt(5) - 4)) == 0
    assert proof.details["curvature"] == sp.Rational(-2, 3)


def test_prove_lemma32_all_rho_identities_can_fail():
    # the key identity is a real check: a wrong coefficient on h leaves a nonzero residual
    h = sp.Symbol("h")
    u, m, n = (sp.Matrix(sp.symbols(f"{c}1:3", real=True)) for c in "umn")
    dot = lambda x, y: (x.T * y)[0]  # noqa: E731
    e = m - (1 - h) * u
    wrong = ((1 - h) * (dot(u - n, u - n) - dot(u - m, u - m))
             - (dot(n - m, n - m) + 2 * h * (dot(m, m) - dot(n, n)) + 2 * dot(e, n - m)))
    assert sp.simplify(sp.expand(wrong)) != 0
    # and the printed rho_l is not the same as rho# + h-independent slack without the (1 - sigma)(1 - a) term
    sig_l, q = sp.symbols("sigma_l q")
    a = S.L * S.delta / S.r + 2 * S.epsilon / S.r
    gap = S.rho_expr("paper") - ((1 - sig_l + q) + a) - ((sig_l - S.sigma) + (S.R_eps / S.p_l - q))
    assert sp.simplify(gap) != 0
