"""Tests of the world constructors of :mod:`cssl.worlds` (the finite version of the paper's Sec. 2)."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from cssl.worlds import (World, image_world, lemma32_counterexample_world, near_threshold_world,
                         random_world, sample_view_triples, scattered_views_world)
from cssl.metrics import class_centres, max_centre_inner_product, r_eps, sup_view_distance
from cssl.concentration import sigma_of_delta


def test_random_world_shapes_masses_and_determinism():
    w = random_world(3, [4, 5, 6], 7, 2, class_probs=[0.5, 0.3, 0.2], random_weights=True, seed=3)
    assert (w.n_points, w.n_views, w.dim, w.num_classes) == (15, 7, 2, 3)
    assert torch.allclose(w.class_masses(), torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    assert not torch.allclose(w.weights[:4], w.weights[:1].expand(4))   # unequal within a class
    again = random_world(3, [4, 5, 6], 7, 2, class_probs=[0.5, 0.3, 0.2], random_weights=True, seed=3)
    assert torch.equal(w.views, again.views) and torch.equal(w.weights, again.weights)
    other = random_world(3, [4, 5, 6], 7, 2, seed=4)
    assert not torch.equal(w.views, other.views)


def test_view_zero_is_the_clean_point():
    # with no view noise every view is the point itself, so the point is stored as view 0
    w = random_world(2, 5, 4, 3, view_noise=0.0, seed=1)
    assert torch.equal(w.views, w.views[:, :1].expand_as(w.views))
    noisy = random_world(2, 5, 4, 3, view_noise=0.5, seed=1)
    assert torch.equal(noisy.views[:, 0], w.views[:, 0])


def test_radius_projects_onto_sphere():
    w = random_world(2, 5, 3, 4, radius=2.5, seed=0)
    assert torch.allclose(w.views.norm(dim=2), torch.full((10, 3), 2.5, dtype=torch.float64))


def test_scattered_views_world_bad_points_leave_s_eps_and_good_points_unchanged():
    base = random_world(2, 10, 5, 3, seed=7)
    w = scattered_views_world(2, 10, 5, 3, bad_fraction=0.3, scatter=50.0, seed=7)
    bad = torch.zeros(20, dtype=torch.bool)
    bad[[0, 1, 2, 10, 11, 12]] = True
    assert torch.equal(w.views[~bad], base.views[~bad])
    assert torch.equal(w.views[:, 0], base.views[:, 0])          # the clean points are untouched
    sup = sup_view_distance(w)
    assert bool((sup[bad] > 20).all()) and bool((sup[~bad] < 5).all())
    assert r_eps(w, 10.0) == pytest.approx(0.3)


def test_near_threshold_world_reaches_target_and_lives_on_sphere():
    w = near_threshold_world(3, 8, 4, 5, target_inner_product=0.25, radius=1.0, bad_fraction=0.25, seed=2)
    assert max_centre_inner_product(w) == pytest.approx(0.25, abs=1e-8)
    assert torch.allclose(w.views.norm(dim=2), torch.ones(24, 4, dtype=torch.float64))
    fixed = near_threshold_world(3, 8, 4, 5, centre_cosine=0.0, seed=2)
    assert max_centre_inner_product(fixed) < max_centre_inner_product(
        near_threshold_world(3, 8, 4, 5, centre_cosine=0.5, seed=2))


@settings(max_examples=25, deadline=None)
@given(q=st.just(0.0) | st.floats(1e-6, 0.95), n_views=st.integers(2, 60))
def test_lemma32_counterexample_value(q, n_views):
    w = lemma32_counterexample_world(q, n_views=n_views)
    mu = class_centres(w)
    expected = 1 - 2 * q + 2 * q / n_views
    # every class-0 point is u = e_0, so f(x)^T mu_0 is the first coordinate of mu_0
    f_dot_mu = w.views[w.labels == 0, 0] @ mu[0]
    assert torch.allclose(f_dot_mu, torch.full_like(f_dot_mu, expected), atol=1e-12)
    sigma, _ = sigma_of_delta(w, 0.0, method="exact")
    assert sigma == pytest.approx(1.0)
    p0 = float(w.class_masses()[0])
    assert r_eps(w, 0.0) == pytest.approx(q * p0)
    # rho_0 of Lemma 3.2 as printed: 2(1 - sigma) + R/p_0 + sigma (L delta + 2 eps)/r = q
    assert expected <= 1 - q + 1e-12
    if q > 0 and n_views >= 3:
        assert expected < 1 - q                      # the printed intermediate bound fails
    assert expected >= 1 - 2 * q - 1e-12             # the corrected one (coefficient 2 - a = 2) holds


def test_lemma32_counterexample_default_is_the_notes_example():
    q = 0.3
    w = lemma32_counterexample_world(q)
    assert w.n_views == 50
    assert float(class_centres(w)[0, 0]) == pytest.approx(1 - 2 * q + 2 * q / 50, abs=1e-14)


def test_image_world_prepends_identity_only_when_needed():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 5, 5, generator=g)
    labels = torch.tensor([0, 0, 1, 1])
    flip = lambda im: im.flip(-1)                       # noqa: E731
    w = image_world(images, labels, [flip, lambda im: 0.5 * im])
    assert w.n_views == 3 and w.dim == 75
    assert torch.equal(w.views[:, 0], images.double().reshape(4, -1))
    assert torch.equal(w.views[:, 1], images.double().flip(-1).reshape(4, -1))
    w2 = image_world(images, labels, [lambda im: im.clone(), flip])
    assert w2.n_views == 2 and torch.equal(w2.views[:, 0], images.double().reshape(4, -1))
    w3 = image_world(images, labels, [])
    assert w3.n_views == 1


def test_sample_view_triples_follows_the_infonce_sampling():
    # view (i, j) is the vector (i, j): the draws can be decoded
    n, v = 4, 3
    views = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(v), indexing="ij"), dim=-1).double()
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    w = World(views, torch.tensor([0, 0, 1, 1]), weights)
    g = torch.Generator().manual_seed(0)
    x1, x2, x_neg, y = sample_view_triples(w, 40000, g)
    assert torch.equal(x1[:, 0], x2[:, 0])                         # both positives come from x
    assert torch.equal(y, w.labels[x1[:, 0].long()])
    point_freq = torch.bincount(x1[:, 0].long(), minlength=n).double() / 40000
    assert torch.allclose(point_freq, weights, atol=0.01)
    neg_freq = torch.bincount(x_neg[:, 0].long(), minlength=n).double() / 40000
    assert torch.allclose(neg_freq, weights, atol=0.01)
    assert float((x1[:, 1] == x2[:, 1]).double().mean()) == pytest.approx(1 / v, abs=0.01)
    same_point = float((x1[:, 0] == x_neg[:, 0]).double().mean())
    assert same_point == pytest.approx(float(weights.square().sum()), abs=0.01)   # x' independent of x
    again = sample_view_triples(w, 40000, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip((x1, x2, x_neg, y), again))


BAD_INPUTS = [
    (lambda: random_world(1, 5, 3, 2), ValueError, "num_classes"),
    (lambda: random_world(2, 0, 3, 2), ValueError, "points_per_class"),
    (lambda: random_world(2, [3], 3, 2), ValueError, "one size per class"),
    (lambda: random_world(2, 3, 3, 2, point_spread=-1.0), ValueError, "point_spread"),
    (lambda: random_world(2, 3, 3, 2, class_probs=[0.7, 0.7]), ValueError, "class_probs must sum to 1"),
    (lambda: random_world(2, 3, 3, 2, view_noise=float("nan")), ValueError, "view_noise must be finite"),
    (lambda: scattered_views_world(2, 3, 1, 2, bad_fraction=0.5), ValueError, "n_views >= 2"),
    (lambda: scattered_views_world(2, 3, 3, 2, bad_fraction=1.5), ValueError, "bad_fraction"),
    (lambda: near_threshold_world(3, 3, 3, 2, centre_cosine=0.0), ValueError, "dim"),
    (lambda: near_threshold_world(3, 3, 3, 4), ValueError, "exactly one"),
    (lambda: near_threshold_world(3, 3, 3, 4, centre_cosine=-0.9), ValueError, "centre_cosine"),
    (lambda: near_threshold_world(2, 3, 3, 4, target_inner_product=5.0), ValueError, "outside the range"),
    (lambda: lemma32_counterexample_world(1.0), ValueError, "q must lie in"),
    (lambda: lemma32_counterexample_world(-0.1), ValueError, "q must lie in"),
    (lambda: lemma32_counterexample_world(5e-324), ValueError, "underflows"),
    (lambda: image_world(torch.rand(2, 3, 4), [0, 1], []), ValueError, "images must have 4"),
    (lambda: image_world(torch.rand(2, 1, 4, 4), [0, 1], [lambda im: im[:, :2]]), ValueError, "changed the image shape"),
    (lambda: image_world(torch.rand(2, 1, 4, 4), [0, 1], ["flip"]), TypeError, "not a callable"),
    (lambda: image_world(torch.rand(2, 1, 4, 4), [0, 0], [], num_classes=2), ValueError, "no points"),
    (lambda: sample_view_triples("world", 4), TypeError, "cssl.World"),
    (lambda: sample_view_triples(random_world(2, 3, 2, 2), 0), ValueError, "batch_size"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_inputs_raise_helpful_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_nuisance_world_structure_and_determinism():
    from cssl.worlds import nuisance_world
    w = nuisance_world()
    assert (w.n_points, w.n_views, w.dim, w.num_classes) == (96, 8, 8, 4)
    base = random_world(4, 24, 8, 2, class_spread=3.0, point_spread=0.5, view_noise=0.15, seed=3)
    assert torch.equal(w.views[:, :, :2], base.views)
    assert torch.equal(w.views[:, 0, 2:], torch.zeros(96, 6, dtype=torch.float64))
    assert torch.equal(nuisance_world().views, w.views)
    assert nuisance_world(nuisance_dim=0).dim == 2
    assert torch.equal(nuisance_world(nuisance=0.0).views[:, :, 2:], torch.zeros(96, 8, 6, dtype=torch.float64))
    with pytest.raises(ValueError):
        nuisance_world(nuisance=-1.0)
    with pytest.raises(TypeError):
        nuisance_world(seed=1.5)


def test_impostor_world_attains_theorem1_bound():
    from cssl.worlds import impostor_world
    from cssl import metrics
    w = near_threshold_world(2, 8, 4, 3, centre_cosine=-0.8, point_spread=0.005, view_spread=0.002, seed=0)
    imp = impostor_world(w)
    assert imp.views[0, 0].norm() == pytest.approx(1.0)
    assert metrics.nearest_centre_error(imp) == pytest.approx(float(imp.weights[0]))
    with pytest.raises(ValueError, match="rival_class"):
        impostor_world(w, rival_class=0)


def test_threshold_edge_world_has_small_slack_and_err_equal_bound():
    from cssl.worlds import threshold_edge_world
    _, chk = threshold_edge_world(2, 8, 4, 3, delta=0.02, eps=0.01, slack=0.01, seed=0)
    assert chk.condition_holds
    assert chk.threshold - chk.max_centre_inner_product == pytest.approx(0.01, abs=1e-3)
    assert chk.err == pytest.approx(chk.bound)
    with pytest.raises(ValueError, match="slack"):
        threshold_edge_world(2, 8, 4, 3, delta=0.02, eps=0.01, slack=0.0)


def test_near_threshold_triangle_is_chapter_12s_world():
    """One constructor for the worlds Chapters 11 and 12 share: the same draws as the general one."""
    from cssl.worlds import near_threshold_triangle

    for spread in (0.01, 0.4):
        w = near_threshold_triangle(spread, seed=3)
        ref = near_threshold_world(3, 20, 5, 3, centre_cosine=-0.5, point_spread=spread,
                                   view_spread=spread / 2, bad_fraction=0.05, seed=3)
        assert torch.equal(w.views, ref.views) and torch.equal(w.labels, ref.labels)
    with pytest.raises(ValueError, match="point_spread"):
        near_threshold_triangle(-0.1)

