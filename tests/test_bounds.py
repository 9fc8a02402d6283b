"""cssl.bounds: the paper's constants, the book's reconstructions, and the findings about them."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from cssl import bounds as B
from cssl.losses import cross_correlation_matrix_exact, info_nce_split_exact
from cssl.worlds import World

SETTINGS = settings(max_examples=40, deadline=None)


# ------------------------------------------------------------------------------------ rho
def test_rho_paper_and_corrected_by_hand():
    # a = L delta / r + 2 eps / r = 2*0.1/2 + 2*0.05/2 = 0.15
    paper = B.rho_l(0.9, 0.1, 0.05, 0.02, 0.4, 2.0, 2.0)
    corrected = B.rho_l(0.9, 0.1, 0.05, 0.02, 0.4, 2.0, 2.0, coefficient="corrected")
    assert paper == pytest.approx(2 * 0.1 + 0.02 / 0.4 + 0.9 * 0.15)
    assert corrected == pytest.approx(2 * 0.1 + 0.9 * 0.15 + (2 - 0.15) * 0.02 / 0.4)
    assert isinstance(paper, float)


def test_rho_difference_is_a_minus_one_times_R_over_p():
    """paper - corrected = (a - 1) R/p: the paper's constant is the smaller (unproven) one when a < 1."""
    sig, dl, e, R, p, L, r = 0.8, 0.2, 0.1, 0.05, 0.25, 1.5, 1.0
    a = L * dl / r + 2 * e / r
    diff = B.rho_l(sig, dl, e, R, p, L, r) - B.rho_l(sig, dl, e, R, p, L, r, coefficient="corrected")
    assert diff == pytest.approx((a - 1) * R / p)
    assert diff < 0


def test_rho_corrected_is_trivial_two_when_a_exceeds_two():
    assert B.rho_l(0.5, 3.0, 0.0, 0.9, 0.5, 1.0, 1.0, coefficient="corrected") == 2.0
    # the raw formula would give 2 + (a-2)(sigma - R/p) = 2 + 1*(0.5-1.8) < 2: a spurious non-vacuous value
    assert B.theorem1_threshold(2.0, 0.0, 1.0) < -1.0


def test_rho_vectorises():
    out = B.rho_l(np.array([0.5, 1.0]), 0.0, 0.0, 0.0, 0.5, 1.0, 1.0)
    assert isinstance(out, np.ndarray) and np.allclose(out, [1.0, 0.0])


def test_rho_max_uses_smallest_class_mass():
    p = [0.5, 0.3, 0.2]
    assert B.rho_max(0.9, 0.1, 0.1, 0.05, p, 1.0, 1.0) == pytest.approx(B.rho_l(0.9, 0.1, 0.1, 0.05, 0.2, 1.0, 1.0))
    assert B.rho_max(0.9, 0.1, 0.1, 0.05, p, 1.0, 1.0) > B.rho_l(0.9, 0.1, 0.1, 0.05, 0.3, 1.0, 1.0)


def test_lemma32_intermediate_counterexample_of_notes():
    """Notes 3.2: sigma=1, delta=eps=0, bad points with views {u} + 49 x {-u}: f^T mu = 1 - 2q + 2q/50.

    The corrected rho gives a valid lower bound; the paper's rho does not."""
    u = np.array([1.0, 0.0])
    q, n_pts, V = 0.2, 10, 50
    good = np.tile(u, (V, 1))
    bad = np.vstack([u] + [-u] * (V - 1))
    views = np.stack([bad if i < q * n_pts else good for i in range(n_pts)] + [np.tile(-u, (V, 1))] * n_pts)
    world = World(views, [0] * n_pts + [1] * n_pts)
    mu0 = world.views[world.labels == 0].mean(dim=(0, 1)).numpy()
    f_dot_mu = float(u @ mu0)
    assert f_dot_mu == pytest.approx(1 - 2 * q + 2 * q / 50)
    R_eps = q * 0.5  # only the bad points of class 0 are not 1-aligned (their views are 2 apart)
    rho_paper = B.rho_l(1.0, 0.0, 0.0, R_eps, 0.5, 1.0, 1.0)
    rho_corr = B.rho_l(1.0, 0.0, 0.0, R_eps, 0.5, 1.0, 1.0, coefficient="corrected")
    assert f_dot_mu >= 1 - rho_corr - 1e-12
    assert f_dot_mu < 1 - rho_paper


# ------------------------------------------------------------------------------ Theorem 1
def test_threshold_ideal_point_and_monotone():
    assert B.theorem1_threshold(0.0, 0.0, 3.0) == pytest.approx(9.0)
    t = B.theorem1_threshold(np.array([0.0, 0.01, 0.1, 0.5]), 0.1, 1.0)
    assert np.all(np.diff(t) < 0)
    assert B.theorem1_threshold(0.02, 0.1, 2.0) == pytest.approx(4 * (1 - 0.02 - math.sqrt(0.04) - 0.05))


def test_condition_is_strict_and_ignores_diagonal():
    g = np.array([[5.0, 0.3, 0.1], [0.3, 5.0, 0.2], [0.1, 0.2, 5.0]])
    assert B.theorem1_condition(g, 0.31)
    assert not B.theorem1_condition(g, 0.3)
    assert B.theorem1_condition(torch.tensor(g), 0.5)


def test_theorem1_bound():
    assert B.theorem1_bound(0.9, 0.05) == pytest.approx(0.15)
    assert np.allclose(B.theorem1_bound(np.array([1.0, 0.5]), 0.0), [0.0, 0.5])


def test_theorem1_check_on_world():
    metrics = pytest.importorskip("cssl.metrics")
    for fn in ("class_centres", "centre_inner_products", "delta_mu", "r_eps", "nearest_centre_error"):
        if not hasattr(metrics, fn):
            pytest.skip(f"cssl.metrics.{fn} not written yet")
    rng = np.random.default_rng(0)
    base = np.eye(3)
    views = []
    for k in range(3):
        for _ in range(4):
            v = base[k] + 0.01 * rng.standard_normal((5, 3))
            views.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    world = World(np.stack(views), np.repeat(np.arange(3), 4))
    res = B.theorem1_check(world, sigma=1.0, delta=0.02, eps=0.1, L=1.0, r=1.0)
    assert res.R_eps == 0.0 and res.rho_max == pytest.approx(0.02 + 0.2)
    assert res.condition_holds and res.err == 0.0 and res.bound_holds
    strict = B.theorem1_check(world, sigma=1.0, delta=0.02, eps=0.001, L=1.0, r=1.0, coefficient="corrected")
    assert strict.R_eps == 1.0 and not strict.condition_holds   # nothing is 0.001-aligned
    assert res.threshold == pytest.approx(B.theorem1_threshold(res.rho_max, res.delta_mu, 1.0))
    assert res.max_centre_inner_product < res.threshold
    with pytest.raises(ValueError, match="norm"):
        B.theorem1_check(world.map(lambda x: 2 * x), 1.0, 0.02, 0.1, 1.0, 1.0)


# ------------------------------------------------------------------------------ Theorem 2
def _grid_min(eps, m, n, L, M, h_max=1.0, points=20001):
    c = 2 * math.sqrt(n) * L * M
    top = eps / c if h_max is None else min(eps / c, h_max)
    hs = np.linspace(top / points, top, points, endpoint=False)
    return float(np.min(B.eta_h(hs, eps, m, n, L, M)))


@SETTINGS
@given(eps=st.floats(0.01, 50.0), m=st.integers(1, 8), n=st.integers(1, 3),
       L=st.floats(0.2, 3.0), M=st.floats(0.2, 3.0))
def test_eta_matches_dense_grid_minimum(eps, m, n, L, M):
    exact = B.eta(eps, m, n, L, M)
    grid = _grid_min(eps, m, n, L, M)
    assert grid >= exact * (1 - 1e-10)       # the infimum is below every grid value
    assert grid <= exact * (1 + 2e-3)        # and the grid gets close to it


def test_eta_h_max_never_binds_for_m_at_least_one():
    """Finding: the proof's h <= 1 is automatic, since the minimiser is <= m^(-1/n) <= 1."""
    eps = np.logspace(-2, 3, 30)
    for m, n in [(1, 1), (1, 3), (4, 2)]:
        assert np.allclose(B.eta(eps, m, n, 0.5, 0.3), B.eta(eps, m, n, 0.5, 0.3, h_max=None))
        assert np.all(B.eta_argmin(eps, m, n, 0.5, 0.3, h_max=None) <= 1.0)


def test_eta_with_small_h_max_is_the_boundary_value():
    eps, m, n, L, M = 10.0, 1, 1, 1.0, 1.0
    assert B.eta_argmin(eps, m, n, L, M, h_max=None) > 0.05
    assert B.eta(eps, m, n, L, M, h_max=0.05) == pytest.approx(B.eta_h(0.05, eps, m, n, L, M))
    assert B.eta(eps, m, n, L, M, h_max=0.05) > B.eta(eps, m, n, L, M)


def test_eta_closed_form_branch():
    m, n, L, M = 3, 2, 1.5, 0.7
    e_max = B.eta_closed_form_eps_max(m, n, L, M)
    small = np.linspace(0.01, e_max, 20)
    assert np.allclose(B.eta_closed_form(small, n, L, M), B.eta(small, m, n, L, M), rtol=1e-10)
    big = np.linspace(1.01 * e_max, 50 * e_max, 20)
    assert np.all(B.eta_closed_form(big, n, L, M) < B.eta(big, m, n, L, M))  # not a valid constant there
    kink = 4 * m ** 2 / (big - 2 * math.sqrt(n) * L * M * m ** (-1 / n))
    assert np.allclose(B.eta(big, m, n, L, M), kink, rtol=1e-10)


def test_eta_asymptotics_contradict_literal_big_o():
    """eta = Theta(eps^-(2n+1)) as eps -> 0 and ~ 4 m^2 / eps as eps -> oo."""
    m, n, L, M = 2, 2, 1.0, 1.0
    c = 2 * math.sqrt(n) * L * M
    const = 4 * (2 * n + 1) * (c * (2 * n + 1) / (2 * n)) ** (2 * n)
    for e in (1e-2, 1e-4, 1e-6):
        assert e ** (2 * n + 1) * B.eta(e, m, n, L, M) == pytest.approx(const, rel=1e-9)
    assert 1e8 * B.eta(1e8, m, n, L, M) == pytest.approx(4 * m ** 2, rel=1e-6)
    # eps * eta is unbounded as eps -> 0: not O(1/eps) there
    assert 1e-3 * B.eta(1e-3, m, n, L, M) > 1e9


def test_log_eta_for_tiny_eps():
    assert B.eta(1e-200, 2, 3, 1.0, 1.0) == math.inf
    n, c = 3, 2 * math.sqrt(3)
    expected = math.log(4 * 7) - math.log(1e-200) + 6 * (math.log(c * 7 / 6) - math.log(1e-200))
    assert B.log_eta(1e-200, 2, 3, 1.0, 1.0) == pytest.approx(expected, rel=1e-12)
    assert B.eta(0.0, 2, 3, 1.0, 1.0) == math.inf


def test_eta_h_outside_interval_is_inf():
    assert B.eta_h(1.0, 0.5, 1, 1, 1.0, 1.0) == math.inf
    assert math.isfinite(B.eta_h(0.1, 0.5, 1, 1, 1.0, 1.0))


# ------------------------------------------------------------------------------ Theorem 3
def test_theorem3_rhs_values_and_overflow():
    naive = math.log(math.exp(0.7 / 0.25) - math.exp(0.5))
    assert B.theorem3_rhs(0.6, 0.1, 0.5, 0.5, 0.5) == pytest.approx(naive)
    huge = B.theorem3_rhs(10.0, 0.0, 0.01, 0.01, 0.0)   # exp(1e5) overflows a float
    assert huge == pytest.approx(1e5)
    assert B.theorem3_rhs(0.1, 0.0, 0.5, 0.5, 0.0) == -math.inf   # 0.4 <= 1: argument of log <= 0
    out = B.theorem3_rhs(np.array([0.1, 1.0]), 0.0, 0.5, 0.5, 0.0)
    assert out[0] == -math.inf and np.isfinite(out[1])


def test_theorem3_examples_of_notes():
    L2_two = 0.5 * math.log(2 * math.e) + 0.5 * math.log(math.e + math.exp(-1))
    assert L2_two == pytest.approx(1.4100, abs=5e-5)
    assert B.theorem3_rhs(L2_two, 0.0, 0.5, 0.5, 0.0) == pytest.approx(5.63, abs=5e-3)
    L2_ten = 0.1 * math.log(2 * math.e) + 0.9 * float(np.logaddexp(1.0, -1 / 9))
    assert L2_ten == pytest.approx(1.3254, abs=5e-5)
    assert B.theorem3_rhs(L2_ten, 0.0, 0.1, 0.1, 0.0) == pytest.approx(132.5, abs=0.05)


def test_theorem3_vacuity_threshold():
    e_lin = B.theorem3_vacuity_threshold()
    assert e_lin == pytest.approx(0.9774, abs=5e-5)
    assert B.theorem3_rhs_floor(e_lin) == pytest.approx(1.0, abs=1e-9)
    eps = np.linspace(0, e_lin, 50)[:-1]
    assert np.all(B.theorem3_rhs_floor(eps) > 1.0)
    assert B.theorem3_rhs_floor(e_lin + 0.05) < 1.0
    e_quad = B.theorem3_vacuity_threshold(alignment_floor="quadratic")
    assert e_quad == pytest.approx(1.4232, abs=5e-5)
    assert B.theorem3_rhs_floor(e_quad, alignment_floor="quadratic") == pytest.approx(1.0, abs=1e-9)
    assert B.theorem3_rhs_floor(1.8) == -math.inf   # c(eps) < 0: no floor


def _random_sphere_world(rng, n_points=8, n_views=3, dim=3, K=2, spread=0.4):
    centres = rng.standard_normal((K, dim))
    labels = np.arange(n_points) % K
    views = centres[labels][:, None, :] + spread * rng.standard_normal((n_points, n_views, dim))
    views /= np.linalg.norm(views, axis=-1, keepdims=True)
    w = rng.uniform(0.5, 1.5, n_points)
    return World(views, labels, w / w.sum())


def _r_eps(world, eps):
    v = world.views
    sup = torch.cdist(v, v).amax(dim=(1, 2))
    return float(world.weights[sup > eps].sum())


def test_theorem3_with_tau_book_holds_on_random_worlds():
    rng = np.random.default_rng(1)
    worst = math.inf
    for _ in range(25):
        world = _random_sphere_world(rng, spread=rng.uniform(0.05, 1.0))
        L2 = info_nce_split_exact(world).L2
        p = world.class_masses().numpy()
        mus = np.stack([world.views[world.labels == k].mean(dim=1).T.numpy()
                        @ (world.weights[world.labels == k].numpy() / p[k]) for k in range(2)])
        for eps in (0.0, 0.3, 0.7, 1.0, 1.4):
            R = _r_eps(world, eps)
            rhs = B.theorem3_rhs(L2, B.tau_book(R, eps), p[0], p[1], eps)
            worst = min(worst, rhs - float(mus[0] @ mus[1]))
    assert worst >= 0


# ------------------------------------------------------------------------------ Theorem 4
def test_theorem4_rhs_factor_and_nan():
    two = B.theorem4_rhs(0.5, 0.1, 4, 2, 0.5, 0.5)
    one = B.theorem4_rhs(0.5, 0.1, 4, 2, 0.5, 0.5, factor=1.0)
    assert math.isnan(two)   # 0.6 - (4-2)/2 < 0: inconsistent inputs
    ok2 = B.theorem4_rhs(1.5, 0.1, 4, 2, 0.5, 0.5)
    ok1 = B.theorem4_rhs(1.5, 0.1, 4, 2, 0.5, 0.5, factor=1.0)
    assert ok2 == pytest.approx(math.sqrt(8 * 0.6)) and ok1 == pytest.approx(ok2 / math.sqrt(2))
    assert math.isnan(one)


def test_theorem4_factor_one_holds_with_exact_tau_prime():
    """The book's stronger inequality (factor 1) with tau' = ||F - M||^2 exactly, on random worlds."""
    rng = np.random.default_rng(2)
    ratios = []
    for trial in range(30):
        K, d = int(rng.integers(2, 4)), int(rng.integers(2, 5))
        n_pts = 3 * K
        labels = np.arange(n_pts) % K
        views = rng.standard_normal((K, d))[labels][:, None, :] + rng.uniform(0, 1) * rng.standard_normal((n_pts, 3, d))
        world = World(views, labels)
        Fm = cross_correlation_matrix_exact(world).numpy()
        p = world.class_masses().numpy()
        mus = np.stack([world.views[world.labels == k].mean(dim=(0, 1)).numpy() for k in range(K)])
        Mm = sum(p[k] * np.outer(mus[k], mus[k]) for k in range(K))
        L2 = float(np.sum((Fm - np.eye(d)) ** 2))
        tau_p = float(np.sum((Fm - Mm) ** 2))
        rhs = B.theorem4_rhs(L2, tau_p, d, K, p[0], p[1], factor=1.0)
        assert abs(mus[0] @ mus[1]) <= rhs + 1e-9
        ratios.append(abs(mus[0] @ mus[1]) / rhs)
    assert max(ratios) > 0.3   # the check is not vacuous


def test_tau_prime_book():
    p = [0.5, 0.5]
    assert B.tau_prime_book(1.0, 0.0, 0.0, 0.0, p, 1.0, 4) == 0.0
    base = B.tau_prime_book(0.9, 0.1, 0.1, 0.01, p, 1.0, 4)
    assert base > 0
    assert B.tau_prime_book(0.8, 0.1, 0.1, 0.01, p, 1.0, 4) > base
    assert B.tau_prime_book(0.9, 0.2, 0.1, 0.01, p, 1.0, 4) > base
    assert B.tau_prime_book(0.9, 0.1, 0.2, 0.01, p, 1.0, 4) > base
    assert B.tau_prime_book(0.9, 0.1, 0.1, 0.02, p, 1.0, 4) > base
    # sigma = 1, delta = eps = 0, R_eps = 0.1: rho~_k = 2 R/p = 0.4 (r = 2, a = 0)
    expected = (0.5 * 2 * (2 * 4 * 0.4 + 4 * 4 * 0.2)) ** 2
    assert B.tau_prime_book(1.0, 0.0, 0.0, 0.1, p, 1.0, 4) == pytest.approx(expected)


# ---------------------------------------------------------------------------- corollaries
def test_corollaries():
    assert B.infonce_err_bound(0.9, 0.5, -0.9) == pytest.approx(0.1 + 0.5 * math.sqrt(0.2))
    assert B.cross_correlation_err_bound(0.9, 0.5, 16, 0.0625) == pytest.approx(0.1 + math.sqrt(2) * 0.5 * 2 * 0.5)
    assert B.infonce_err_bound(0.9, math.inf, -0.5) == math.inf


# ------------------------------------------------------------------------------ bad input
BAD_CALLS = [
    (lambda: B.rho_l(0.0, 0, 0, 0, 0.5, 1, 1), ValueError, "sigma"),
    (lambda: B.rho_l(1.2, 0, 0, 0, 0.5, 1, 1), ValueError, "sigma"),
    (lambda: B.rho_l(0.9, -0.1, 0, 0, 0.5, 1, 1), ValueError, "delta"),
    (lambda: B.rho_l(0.9, 0, -1e-3, 0, 0.5, 1, 1), ValueError, "eps"),
    (lambda: B.rho_l(0.9, 0, 0, float("nan"), 0.5, 1, 1), ValueError, "R_eps"),
    (lambda: B.rho_l(0.9, 0, 0, 0, 0.0, 1, 1), ValueError, "p_l"),
    (lambda: B.rho_l(0.9, 0, 0, 0, 0.5, 0.0, 1), ValueError, "L"),
    (lambda: B.rho_l(0.9, 0, 0, 0, 0.5, 1, -1), ValueError, "r"),
    (lambda: B.rho_l(0.9, 0, 0, 0, 0.5, 1, 1, coefficient="tight"), ValueError, "coefficient"),
    (lambda: B.rho_l("a", 0, 0, 0, 0.5, 1, 1), TypeError, "sigma"),
    (lambda: B.rho_l(True, 0, 0, 0, 0.5, 1, 1), TypeError, "sigma"),
    (lambda: B.rho_max(0.9, 0, 0, 0, [0.5, 0.6], 1, 1), ValueError, "sum to 1"),
    (lambda: B.theorem1_threshold(-0.1, 0, 1), ValueError, "rho"),
    (lambda: B.theorem1_threshold(0.1, 1.5, 1), ValueError, "delta_mu"),
    (lambda: B.theorem1_condition(np.ones((2, 3)), 0.5), ValueError, "square"),
    (lambda: B.theorem1_condition(np.ones((2, 2)), float("nan")), ValueError, "threshold"),
    (lambda: B.eta(0.5, 0, 1, 1, 1), ValueError, "m"),
    (lambda: B.eta(0.5, 1, 0, 1, 1), ValueError, "n"),
    (lambda: B.eta(0.5, 1, 1.5, 1, 1), TypeError, "n"),
    (lambda: B.eta(0.5, 1, 1, 1, 0.0), ValueError, "M"),
    (lambda: B.eta(-0.5, 1, 1, 1, 1), ValueError, "eps"),
    (lambda: B.eta(0.5, 1, 1, 1, 1, h_max=0.0), ValueError, "h_max"),
    (lambda: B.eta_h(0.0, 0.5, 1, 1, 1, 1), ValueError, "h"),
    (lambda: B.eta_closed_form(0.0, 1, 1, 1), ValueError, "eps"),
    (lambda: B.theorem3_rhs(1.0, -0.1, 0.5, 0.5, 0.1), ValueError, "tau"),
    (lambda: B.theorem3_rhs(1.0, 0.1, 1.5, 0.5, 0.1), ValueError, "p_k"),
    (lambda: B.tau_book(0.1, 1.5), ValueError, "eps"),
    (lambda: B.tau_book(1.1, 0.5), ValueError, "R_eps"),
    (lambda: B.theorem3_vacuity_threshold(alignment_floor="cubic"), ValueError, "alignment_floor"),
    (lambda: B.theorem4_rhs(1.0, 0.1, 4, 1, 0.5, 0.5), ValueError, "K"),
    (lambda: B.theorem4_rhs(1.0, 0.1, 4, 2, 0.5, 0.5, factor=0), ValueError, "factor"),
    (lambda: B.theorem4_rhs(-1.0, 0.1, 4, 2, 0.5, 0.5), ValueError, "L2"),
    (lambda: B.tau_prime_book(0.9, 0, 0, 0, [1.0], 1, 4), ValueError, "K >= 2"),
    (lambda: B.infonce_err_bound(0.9, -1.0, 0.0), ValueError, "eta_value"),
    (lambda: B.infonce_err_bound(0.9, 1.0, -2.0), ValueError, "L1"),
    (lambda: B.cross_correlation_err_bound(0.9, 1.0, 0, 0.1), ValueError, "d"),
]


@pytest.mark.parametrize("call,exc,word", BAD_CALLS)
def test_bad_input_is_refused_with_a_clear_message(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_jensen_floors_of_l2_and_theorem3():
    """L_2 >= log(1 + e^{-L_1}) >= log 2, and Theorem 3's right-hand side >= log(16 - e) > 1."""
    assert B.infonce_l2_jensen_floor(0.0) == pytest.approx(math.log(2))
    assert B.infonce_l2_jensen_floor(-1.0) == pytest.approx(math.log(1 + math.e))
    assert B.theorem3_rhs_jensen_floor(0.0) == pytest.approx(math.log(16 - math.e))
    assert B.theorem3_rhs_jensen_floor(0.0, -1.0) == pytest.approx(math.log((1 + math.e) ** 4 - math.e))
    eps, l1 = np.meshgrid(np.linspace(0, 20, 41), np.linspace(-1, 0, 41))
    assert np.all(B.theorem3_rhs_jensen_floor(eps.ravel(), l1.ravel()) >= math.log(16 - math.e) - 1e-12)
    # the floor is the right-hand side of Theorem 3 at L2 = floor, tau = 0, p_k = p_l = 1/2
    for e_, l_ in [(0.0, 0.0), (0.7, -0.4), (3.0, -1.0)]:
        assert B.theorem3_rhs(B.infonce_l2_jensen_floor(l_), 0.0, 0.5, 0.5, e_) == pytest.approx(
            B.theorem3_rhs_jensen_floor(e_, l_))
    with pytest.raises(ValueError, match="L1"):
        B.infonce_l2_jensen_floor(0.5)


def test_t_infonce_vacuity_alignment():
    """At the returned L_align the Jensen floor of L2_t equals log(2)/4 exactly; r > 1.4638 gives -inf."""
    for r in (0.25, 0.5, 1.0, 1.4):
        a = B.t_infonce_vacuity_alignment(r)
        assert B.t_infonce_l2_jensen_floor(a, r) == pytest.approx(math.log(2) / 4)
    assert B.t_infonce_vacuity_alignment(1.0) == pytest.approx(0.1683966, abs=1e-6)
    assert B.t_infonce_vacuity_alignment(1.5) == -math.inf


# ------------------------------------------------------------ Lemma 3.2 for every rho (thm-book-lem32-all)
def test_rho_l_improved_formula_and_order():
    # rho#_l = (1 - sigma) + R_eps/p_l + a, and rho_l - rho#_l = (1 - sigma)(1 - a)
    sigma, delta, eps, R, p, L, r = 0.9, 0.1, 0.05, 0.1, 0.5, 1.0, 1.0
    a = L * delta / r + 2 * eps / r
    sharp = B.rho_l(sigma, delta, eps, R, p, L, r, coefficient="improved")
    assert sharp == pytest.approx((1 - sigma) + R / p + a)
    paper = B.rho_l(sigma, delta, eps, R, p, L, r)
    assert paper - sharp == pytest.approx((1 - sigma) * (1 - a))
    assert B.rho_max(sigma, delta, eps, R, [0.5, 0.3, 0.2], L, r, coefficient="improved") == \
        pytest.approx(B.rho_l(sigma, delta, eps, R, 0.2, L, r, coefficient="improved"))
    with pytest.raises(ValueError, match="coefficient must be 'paper', 'corrected' or 'improved'"):
        B.rho_l(sigma, delta, eps, R, p, L, r, coefficient="sharp")


def test_lemma32_key_constant_values_and_sign():
    c = B.lemma32_key_constant
    assert c(0.5) == pytest.approx(1 / 3)
    assert c(3 - math.sqrt(5)) == pytest.approx(2 * math.sqrt(5) - 4)
    grid = np.linspace(0.5, 3 - math.sqrt(5), 101)
    vals = c(grid)
    w = np.sqrt(2 * grid)
    assert np.allclose(vals, (2 - (w - 2) ** 2) / 3)
    assert vals.min() > 0.33
    # the check can fail: step 6 alone does not cover small rho
    assert c(0.15) < 0 and c(0.15) == pytest.approx(-0.0364, abs=1e-4)
    assert c(3 - 2 * math.sqrt(2)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="rho"):
        c(-0.1)
