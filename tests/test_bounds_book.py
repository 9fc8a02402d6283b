"""cssl.bounds: the book's InfoNCE / cross-correlation / t-InfoNCE bounds over all class pairs (Chapters 5-7)."""
import math

import numpy as np
import pytest
import torch

from cssl import bounds as B
from cssl.losses import info_nce_split_exact
from cssl.metrics import centre_inner_products, r_eps
from cssl.tracking import class_alignment, t_info_nce_split_exact
from cssl.worlds import World, random_world


def _lse(a, b):
    return math.log(math.exp(a) + math.exp(b))


def _antipodal():
    u = torch.tensor([1.0, 0.0], dtype=torch.float64)
    return World(torch.stack([u.expand(3, 2), (-u).expand(3, 2)]).clone(), torch.tensor([0, 1]))


def _describe(w):
    _, L1, L2 = info_nce_split_exact(w)
    return L2, w.class_masses().numpy(), centre_inner_products(w).numpy(), 1 - class_alignment(w).numpy() / 2


SPHERE_WORLDS = [random_world(k, [2 + (s % 3)] * k, 3, 3, class_spread=1.5, point_spread=0.6, view_noise=0.4,
                              radius=1.0, random_weights=True, seed=s) for s, k in enumerate([2, 3, 4, 3, 5])]


# ------------------------------------------------------------------------------ order of the pairs
def test_off_diagonal_pairs_row_major():
    m = np.arange(9.0).reshape(3, 3)
    assert B.off_diagonal_pairs(m).tolist() == [1, 2, 3, 5, 6, 7]


def test_theorem3_rhs_pairs_matches_scalar_function():
    p = np.array([0.2, 0.3, 0.5])
    out = B.theorem3_rhs_pairs(1.2, 0.1, p, 0.5)
    ref = [B.theorem3_rhs(1.2, 0.1, p[k], p[l], 0.5) for k in range(3) for l in range(3) if k != l]
    np.testing.assert_allclose(out, ref, rtol=0, atol=0)


def test_theorem4_rhs_pairs_matches_scalar_function():
    p = np.array([0.25, 0.25, 0.5])
    for factor in (1.0, 2.0):
        out = B.theorem4_rhs_pairs(0.7, 0.2, 4, p, factor=factor)
        ref = [B.theorem4_rhs(0.7, 0.2, 4, 3, p[k], p[l], factor=factor) for k in range(3) for l in range(3) if k != l]
        np.testing.assert_allclose(out, ref, rtol=0, atol=0)


# ------------------------------------------------------------------------------------ InfoNCE
def test_infonce_pair_sum_by_hand():
    p, G = [0.5, 0.5], [[1.0, -1.0], [-1.0, 1.0]]
    want = 0.5 * _lse(0.3, 1.0) + 0.5 * _lse(0.3, -1.0)
    assert B.infonce_pair_sum_book(p, G, 0.3) == pytest.approx(want, abs=1e-15)
    # per-class alpha (the joint version): row i uses alpha_i
    want = 0.25 * (_lse(0.2, 1) + _lse(0.2, -1) + _lse(0.9, -1) + _lse(0.9, 1))
    assert B.infonce_pair_sum_book(p, G, [0.2, 0.9]) == pytest.approx(want, abs=1e-15)


def test_infonce_pair_bound_matches_loop_formula():
    p, G, L2, R, alpha = np.array([0.2, 0.3, 0.5]), np.array([[0.9, 0.1, -0.2], [0.1, 0.8, 0.3], [-0.2, 0.3, 0.7]]), 1.3, 0.05, 0.6
    S2, diag = (p ** 2).sum(), sum(p[i] ** 2 * _lse(alpha, G[i, i]) for i in range(3))
    ref = []
    for k in range(3):
        for l in range(3):
            if k != l:
                Y = (L2 + 4 * R - diag - (1 - S2 - 2 * p[k] * p[l]) * _lse(alpha, -1.0)) / (2 * p[k] * p[l])
                ref.append(math.log(math.exp(Y) - math.exp(alpha)))
    np.testing.assert_allclose(B.infonce_pair_bound_book(L2, R, p, G, alpha), ref, rtol=1e-12)


def test_infonce_bounds_exact_at_antipodal_world():
    L2, p, G, A = _describe(_antipodal())
    assert B.infonce_pair_bound_book(L2, 0.0, p, G, 1.0) == pytest.approx([-1.0, -1.0], abs=1e-9)
    G_bar, bound = B.infonce_mean_bound_book(L2, p, G, A)
    assert G_bar == pytest.approx(-1.0) and bound == pytest.approx(-1.0, abs=1e-9)


@pytest.mark.parametrize("w", SPHERE_WORLDS)
def test_infonce_bounds_hold_on_sphere_worlds(w):
    L2, p, G, A = _describe(w)
    assert B.infonce_pair_sum_book(p, G, A) <= L2 + 1e-12  # prop-infonce-joint
    G_bar, bound = B.infonce_mean_bound_book(L2, p, G, A)
    assert G_bar <= bound
    for eps in (0.0, 0.5, 1.0):
        R = r_eps(w, eps)
        for alpha in (1 - eps, 1 - eps ** 2 / 2):  # prop-infonce-jensen
            assert B.infonce_pair_sum_book(p, G, alpha) <= L2 + 4 * R + 1e-12
        assert np.all(B.off_diagonal_pairs(G) <= B.infonce_pair_bound_book(L2, R, p, G, 1 - eps ** 2 / 2))
        assert np.all(B.off_diagonal_pairs(G) <= B.theorem3_rhs_pairs(L2, B.tau_book(R, eps), p, eps))


def test_rho_star_inverts_the_threshold():
    for max_mu, delta_mu in [(-0.1, 0.02), (0.5, 0.0), (0.9, 0.1)]:
        rho = B.rho_star(max_mu, delta_mu)
        assert rho > 0 and B.theorem1_threshold(rho, delta_mu, 1.0) == pytest.approx(max_mu, abs=1e-12)
    assert B.rho_star(0.99, 0.1) == 0.0  # c = 1 - 0.05 - 0.99 < 0: condition (2) holds for no rho
    assert B.rho_star(0.0, 0.0) == pytest.approx(((math.sqrt(6) - math.sqrt(2)) / 2) ** 2)
    np.testing.assert_allclose(B.rho_star(np.array([0.0, 0.99]), 0.1), [B.rho_star(0.0, 0.1), 0.0])


# ---------------------------------------------------------------------------------- t-InfoNCE
def test_t_infonce_phi_by_hand():
    assert B.t_infonce_phi(0.0, 0.0) == pytest.approx(math.log(2))
    assert B.t_infonce_phi(1.0, 3.0) == pytest.approx(math.log(0.5 + 0.25))
    np.testing.assert_allclose(B.t_infonce_phi([0.0, 1.0], 1.0), [math.log(1.5), math.log(1.0)])


def test_t_infonce_pair_sum_matches_loops():
    p, G, r = np.array([0.3, 0.7]), np.array([[3.5, -1.0], [-1.0, 2.0]]), 2.0
    for u in (0.25, np.array([0.1, 0.4])):
        uu = np.broadcast_to(u, (2,))
        ref = sum(p[i] * p[j] * math.log(1 / (1 + uu[i]) + 1 / (1 + 2 * r ** 2 - 2 * G[i, j])) for i in range(2) for j in range(2))
        assert B.t_infonce_pair_sum_book(p, G, u, r) == pytest.approx(ref, rel=1e-14)


def test_t_infonce_pair_bound_by_hand():
    p, r, L2, R, eps = np.array([0.5, 0.5]), 1.0, 0.4, 0.1, 0.25
    y = (L2 + (4 + math.log(5)) * R) / 0.25
    want = 1 + 0.5 - 1 / (2 * (math.exp(y) - 1 / (1 + eps ** 2)))
    np.testing.assert_allclose(B.t_infonce_pair_bound_book(L2, R, p, eps, r), [want, want], rtol=1e-14)


def test_t_infonce_bounds_hold_on_sphere_worlds():
    for r in (1.0, 2.0):
        w = random_world(3, [3, 2, 4], 3, 3, class_spread=2.0, point_spread=0.5, view_noise=0.3, radius=r,
                         random_weights=True, seed=7)
        s = t_info_nce_split_exact(w)
        p, G, a = w.class_masses().numpy(), centre_inner_products(w).numpy(), class_alignment(w).numpy()
        assert B.t_infonce_pair_sum_book(p, G, a, r) <= s.L2 + 1e-12
        G_bar, bound = B.t_infonce_mean_bound_book(s.L2, p, G, a, r)
        assert G_bar <= bound
        for eps in (0.0, 1 / (2 * r)):
            R = min(r_eps(w, eps), 1.0)
            assert B.t_infonce_pair_sum_book(p, G, eps ** 2, r) <= s.L2 + (4 * r ** 2 + math.log(1 + 4 * r ** 2)) * R
            assert np.all(B.off_diagonal_pairs(G) <= B.t_infonce_pair_bound_book(s.L2, R, p, eps, r))


# ------------------------------------------------------------------------------------ bad input
def test_bad_inputs_raise():
    G = np.eye(2)
    with pytest.raises(ValueError, match="sum to 1"):
        B.infonce_pair_sum_book([0.5, 0.6], G, 0.0)
    with pytest.raises(ValueError, match="shape"):
        B.infonce_mean_bound_book(1.0, [0.5, 0.5], np.eye(3), [1.0, 1.0])
    with pytest.raises(ValueError, match="alpha"):
        B.infonce_pair_bound_book(1.0, 0.0, [0.5, 0.5], G, 1.5)
    with pytest.raises(ValueError, match="R_eps"):
        B.infonce_pair_bound_book(1.0, 1.5, [0.5, 0.5], G, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        B.infonce_pair_sum_book([0.5, 0.5], [[1.0, np.nan], [0.0, 1.0]], 0.0)
    with pytest.raises(ValueError, match="length K"):
        B.infonce_pair_sum_book([0.5, 0.5], G, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="eps"):
        B.t_infonce_pair_bound_book(1.0, 0.0, [0.5, 0.5], 0.6, 1.0)  # eps > 1/(2r)
    with pytest.raises(ValueError, match="r\\^2"):
        B.t_infonce_pair_sum_book([0.5, 0.5], 2 * G, 0.0, 1.0)  # ||mu||^2 > r^2
    with pytest.raises(ValueError, match="max_mu"):
        B.rho_star(1.5, 0.0)
    with pytest.raises(ValueError, match="square"):
        B.off_diagonal_pairs(np.ones((2, 3)))
    with pytest.raises(TypeError):
        B.theorem3_rhs_pairs(1.0, 0.0, "p", 0.0)
