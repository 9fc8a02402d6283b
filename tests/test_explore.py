"""Tests of :mod:`cssl.explore`: located d_A, Lipschitz constants on views, Theorem 2's affine model,
and the Theorem 1 figure/explorer."""
import itertools
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from cssl import bounds, explore, metrics
from cssl.concentration import augmented_distance
from cssl.worlds import World, random_world


# ------------------------------------------------------------------ closest_view_pair
def test_closest_view_pair_matches_augmented_distance_and_locates_the_pair():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=g, dtype=torch.float64)
    b = torch.randn(9, 5, generator=g, dtype=torch.float64)
    d, s, t = explore.closest_view_pair(a, b)
    assert d == float(augmented_distance(a[None], b[None])[0, 0])
    assert d == pytest.approx(float((a[s] - b[t]).norm()), abs=0)
    brute = min((float((a[i] - b[j]).norm()), i, j) for i in range(7) for j in range(9))
    assert (d, s, t) == pytest.approx(brute)


def test_closest_view_pair_on_images_and_shared_view():
    imgs = torch.rand(4, 3, 2, 2, dtype=torch.float64)
    other = torch.cat([torch.rand(2, 3, 2, 2, dtype=torch.float64), imgs[2:3]])
    d, s, t = explore.closest_view_pair(imgs, other)
    assert (d, s, t) == (0.0, 2, 2)


def test_closest_view_pair_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimension"):
        explore.closest_view_pair(torch.zeros(2, 3), torch.zeros(2, 4))


# ------------------------------------------------------------------ lipschitz_on_views
def test_lipschitz_of_a_linear_map_is_at_most_its_spectral_norm_and_exact_for_identity():
    w = random_world(2, 5, 4, 3, seed=0)
    assert explore.lipschitz_on_views(w, w) == pytest.approx(1.0)
    W = torch.tensor([[2.0, 0, 0], [0, 0.5, 0]], dtype=torch.float64)
    L = explore.lipschitz_on_views(w, w.map(lambda x: x @ W.T))
    assert 0.5 <= L <= 2.0 + 1e-12


def test_lipschitz_brute_force_and_blocks():
    w = random_world(2, 4, 3, 2, seed=3)
    feats = w.map(lambda x: torch.tanh(3 * x))
    x = w.views.reshape(-1, 2)
    y = feats.views.reshape(-1, 2)
    brute = max(float((y[i] - y[j]).norm() / (x[i] - x[j]).norm())
                for i, j in itertools.combinations(range(len(x)), 2) if float((x[i] - x[j]).norm()) > 0)
    assert explore.lipschitz_on_views(w, feats) == pytest.approx(brute)
    assert explore.lipschitz_on_views(w, feats, block=5) == pytest.approx(brute)


def test_lipschitz_is_infinite_when_equal_inputs_get_different_features():
    views = torch.zeros(2, 2, 1, dtype=torch.float64)
    feats = torch.tensor([[[0.0], [0.0]], [[1.0], [1.0]]], dtype=torch.float64)
    assert explore.lipschitz_on_views(World(views, [0, 1]), World(feats, [0, 1])) == math.inf


# ------------------------------------------------------------------ AffineAugmentationModel
def _model(n=1, m=2, seed=0, N=6, D=3, M=0.7):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(N, D, generator=g, dtype=torch.float64)
    off = torch.randn(N, m, D, generator=g, dtype=torch.float64)
    off[:, 0] = 0
    dirs = torch.linalg.qr(torch.randn(N, D, n, generator=g, dtype=torch.float64))[0]
    return explore.AffineAugmentationModel(pts, off, dirs, M, torch.arange(N) % 2)


@pytest.mark.parametrize("n", [1, 2])
def test_mean_world_gives_the_exact_alignment_of_the_continuous_model(n):
    model = _model(n=n)
    W = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]], dtype=torch.float64)
    exact = metrics.alignment(model.mean_world().map(lambda x: x @ W.T))
    # a fine grid converges to the continuous value (midpoint rule, error O(G^-2))
    fine = metrics.alignment(model.grid_world(200 if n == 1 else 40).map(lambda x: x @ W.T))
    assert fine == pytest.approx(exact, rel=1e-3)
    coarse = metrics.alignment(model.grid_world(3).map(lambda x: x @ W.T))
    assert abs(coarse - exact) > abs(fine - exact)


def test_mean_world_view_weights_follow_the_theorem():
    model = _model(n=2, m=3)
    world = model.mean_world()
    assert world.n_views == 2 * 3 * 4
    disc = world.views[:, :12]
    # each of the m = 3 discrete maps fills 4 of the 24 slots: weight 1/(2m)
    for gamma in range(3):
        same = (disc == (model.points + model.offsets[:, gamma])[:, None]).all(dim=2).sum(dim=1)
        assert bool((same == 4).all())


def test_sup_world_gives_the_exact_sup_and_the_grid_is_biased_low():
    model = _model(n=2)
    W = torch.tensor([[1.0, 0.0, 0.4], [0.0, 2.0, -1.0]], dtype=torch.float64)

    def f(x):
        return x @ W.T

    exact = metrics.sup_view_distance(model.sup_world().map(f))
    thetas = torch.rand(4000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    dense = torch.cat([model.points[:, None] + model.offsets, model.continuous_views(thetas)], dim=1)
    sampled = metrics.sup_view_distance(World(dense, model.labels).map(f))
    assert bool((sampled <= exact + 1e-12).all())
    assert torch.allclose(sampled, exact, atol=0.05)
    grid = metrics.sup_view_distance(model.grid_world(5).map(f))
    assert bool((grid <= exact + 1e-12).all())


def test_continuous_family_is_exactly_M_lipschitz():
    model = _model(n=2, M=1.3)
    th = torch.tensor([[0.1, 0.2], [0.9, 0.5]], dtype=torch.float64)
    v = model.continuous_views(th)
    assert torch.allclose((v[:, 0] - v[:, 1]).norm(dim=1),
                          torch.full((model.points.shape[0],), 1.3 * float((th[0] - th[1]).norm()), dtype=torch.float64))


def test_affine_model_validates():
    pts = torch.zeros(2, 3, dtype=torch.float64)
    off = torch.zeros(2, 1, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="orthonormal"):
        explore.AffineAugmentationModel(pts, off, torch.ones(2, 3, 1, dtype=torch.float64), 1.0, [0, 1])
    with pytest.raises(ValueError, match="offsets"):
        explore.AffineAugmentationModel(pts, torch.zeros(2, 1, 2), torch.zeros(2, 3, 1), 1.0, [0, 1])


# ------------------------------------------------------------------ Theorem 1 figure and explorer
def test_theorem1_figure_has_two_labelled_axes_and_matches_bounds():
    fig = explore.theorem1_threshold_figure(sigma=0.9, delta=0.1, eps=0.05, L=2.0, r=1.0, p_min=0.2,
                                            R_eps=0.03, delta_mu=0.1)
    ax1, ax2 = fig.axes[:2]
    for ax in (ax1, ax2):
        assert ax.get_xlabel() and ax.get_ylabel()
    rho = bounds.rho_max(0.9, 0.1, 0.05, 0.03, [0.2, 0.8], 2.0, 1.0)
    expected = bounds.theorem1_threshold(rho, 0.1, 1.0)
    marker = [line for line in ax1.get_lines() if len(line.get_xdata()) == 1][0]
    assert float(marker.get_ydata()[0]) == pytest.approx(expected)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_theorem1_explorer_has_the_sliders_and_redraws():
    pytest.importorskip("ipywidgets")
    box = explore.theorem1_explorer(sigma=0.8)
    controls, image = box.children
    sliders = {c.description: c for c in controls.children}
    assert set(sliders) == {"sigma", "delta", "eps", "L", "r", "p_min", "R_eps", "delta_mu"}
    assert sliders["sigma"].value == 0.8
    first = image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    sliders["eps"].value = 0.2
    assert image.value != first
    import matplotlib.pyplot as plt
    assert not plt.get_fignums()  # every rendered figure is closed
    with pytest.raises(ValueError, match="unknown"):
        explore.theorem1_explorer(bogus=1)
