"""cssl.metrics: centre_matrix (Theorem 4's M) and participation_ratio (the book's collapse measure)."""
import math

import numpy as np
import pytest
import torch

from cssl import metrics
from cssl.worlds import World, random_world


def test_centre_matrix_is_weighted_sum_of_outer_products():
    w = random_world(3, [2, 3, 4], 3, 4, random_weights=True, seed=1)
    mu, p = metrics.class_centres(w), w.class_masses()
    want = sum(p[k] * torch.outer(mu[k], mu[k]) for k in range(3))
    torch.testing.assert_close(metrics.centre_matrix(w), want, rtol=1e-12, atol=1e-14)
    assert metrics.centre_matrix(w).shape == (4, 4)


def test_centre_matrix_of_orthogonal_collapsed_classes():
    K = 4  # centres 2 e_k with p_k = 1/4: M = sum_k (1/4) 4 e_k e_k^T = I
    w = World(2.0 * torch.eye(K, dtype=torch.float64)[:, None, :].expand(K, 3, K).clone(), torch.arange(K))
    torch.testing.assert_close(metrics.centre_matrix(w), torch.eye(K, dtype=torch.float64))


def test_participation_ratio_line_and_isotropic():
    v = torch.tensor([[1.0, 2.0]], dtype=torch.float64)  # features on a line through 0
    line = World(torch.cat([v.expand(2, 2, 2), (-v).expand(2, 2, 2), (0.5 * v).expand(2, 2, 2)]).clone(),
                 torch.tensor([0, 0, 1, 1, 2, 2]))
    assert metrics.participation_ratio(line) == pytest.approx(1.0)
    d = 3  # +-e_i with equal masses: covariance I/d, ratio d
    pts = torch.cat([torch.eye(d), -torch.eye(d)]).to(torch.float64)
    iso = World(pts[:, None, :].expand(2 * d, 2, d).clone(), torch.arange(2 * d) % 2)
    assert metrics.participation_ratio(iso) == pytest.approx(d)


def test_participation_ratio_by_eigenvalues():
    w = random_world(3, 4, 3, 5, random_weights=True, seed=2)
    flat = w.views.reshape(-1, w.dim).numpy()
    wt = np.repeat(w.weights.numpy(), w.n_views) / w.n_views
    c = flat - wt @ flat
    ev = np.linalg.eigvalsh((c.T * wt) @ c)
    assert metrics.participation_ratio(w) == pytest.approx(ev.sum() ** 2 / (ev ** 2).sum(), rel=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(TypeError):
        metrics.centre_matrix(np.zeros((2, 3)))
    with pytest.raises(TypeError):
        metrics.participation_ratio(torch.zeros(4, 2))
    same = World(torch.ones(4, 2, 3, dtype=torch.float64), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="zero covariance"):
        metrics.participation_ratio(same)
