"""Tests of :mod:`cssl.metrics` on feature worlds: exact quantities against brute-force loops."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from cssl.concentration import main_parts
from cssl.metrics import (aligned_mask, alignment, centre_inner_products, class_centres, delta_mu,
                          knn_accuracy, knn_predict, linear_probe, max_centre_inner_product,
                          nearest_centre_error, nearest_centre_predict, r_eps, sup_view_distance, uniformity)
from cssl.worlds import World, near_threshold_world, random_world, scattered_views_world


def normalised_linear(dim_in, dim_out, seed, radius=1.0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(dim_in, dim_out, dtype=torch.float64, generator=g)
    return lambda x: radius * torch.nn.functional.normalize(x.double() @ weight, dim=1)


@pytest.fixture
def world():
    return random_world(3, [4, 5, 6], 4, 3, class_probs=[0.2, 0.3, 0.5], random_weights=True, seed=11)


# ------------------------------------------------------------------ alignment, uniformity, centres
def test_alignment_equals_brute_force_loop(world):
    total = 0.0
    for i in range(world.n_points):
        pair_sum = sum(float((world.views[i, a] - world.views[i, b]).square().sum())
                       for a in range(world.n_views) for b in range(world.n_views))
        total += float(world.weights[i]) * pair_sum / world.n_views ** 2
    assert alignment(world) == pytest.approx(total, rel=1e-12)
    collapsed = World(world.views[:, :1].expand_as(world.views), world.labels, world.weights)
    assert alignment(collapsed) == 0.0


def test_uniformity_equals_brute_force_loop(world):
    t = 1.5
    flat = world.views.reshape(-1, world.dim)
    w_view = (world.weights / world.n_views).repeat_interleave(world.n_views)
    total = 0.0
    for a in range(flat.shape[0]):
        for b in range(flat.shape[0]):
            total += float(w_view[a] * w_view[b]) * math.exp(-t * float((flat[a] - flat[b]).square().sum()))
    assert uniformity(world, t) == pytest.approx(math.log(total), rel=1e-10)


def test_class_centres_and_inner_products_brute_force(world):
    mu = class_centres(world)
    for k in range(world.num_classes):
        idx = world.class_members(k)
        expected = sum(world.weights[i] * world.views[i].mean(dim=0) for i in idx.tolist()) / world.weights[idx].sum()
        assert torch.allclose(mu[k], expected, atol=1e-12)
    gram = centre_inner_products(world)
    assert torch.allclose(gram, mu @ mu.T) and torch.equal(gram, gram.T)
    off = [float(gram[k, l]) for k in range(3) for l in range(3) if k != l]
    assert max_centre_inner_product(world) == pytest.approx(max(off))
    assert max_centre_inner_product(mu) == pytest.approx(max(off))


def test_delta_mu_on_the_sphere():
    feats = random_world(3, 6, 5, 4, seed=2).map(normalised_linear(4, 3, seed=0, radius=2.0))
    value = delta_mu(feats, 2.0)
    mu = class_centres(feats)
    assert value == pytest.approx(1 - float(mu.square().sum(dim=1).min()) / 4.0)
    assert 0.0 <= value <= 1.0                       # Jensen: ||mu_k|| <= r
    collapsed = World(feats.views[:, :1].expand_as(feats.views), feats.labels, feats.weights)
    one_point_per_class = collapsed.subset(torch.tensor([0, 6, 12]))
    assert delta_mu(one_point_per_class, 2.0) == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ S_eps, R_eps
def test_sup_view_distance_brute_force(world):
    sup = sup_view_distance(world)
    for i in range(world.n_points):
        expected = max(float((world.views[i, a] - world.views[i, b]).norm())
                       for a in range(world.n_views) for b in range(world.n_views))
        assert float(sup[i]) == pytest.approx(expected, rel=1e-12)
    identical = World(world.views[:, :1].expand_as(world.views), world.labels, world.weights)
    assert bool(aligned_mask(identical, 0.0).all()) and r_eps(identical, 0.0) == 0.0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.lists(st.floats(0, 10), min_size=2, max_size=6))
def test_r_eps_is_non_increasing_in_eps_and_is_the_complement_mass(seed, eps):
    world = scattered_views_world(2, 6, 4, 3, bad_fraction=0.5, scatter=4.0, random_weights=True, seed=seed)
    values = [r_eps(world, e) for e in sorted(eps)]
    assert all(b <= a for a, b in zip(values, values[1:]))
    e = eps[0]
    assert values[sorted(eps).index(e)] == pytest.approx(1.0 - float(world.weights[aligned_mask(world, e)].sum()))


# ------------------------------------------------------------------ nearest centre
def test_nearest_centre_predict_brute_force_and_linear_form(world):
    mu = class_centres(world)
    pred = nearest_centre_predict(world)
    for i in range(world.n_points):
        dists = [float((world.views[i, 0] - mu[k]).norm()) for k in range(3)]
        assert int(pred[i]) == int(np.argmin(dists))
    linear = (world.views[:, 0] @ mu.T - 0.5 * mu.square().sum(dim=1)).argmax(dim=1)   # NN = linear
    assert torch.equal(pred, linear)
    err = nearest_centre_error(world)
    assert err == pytest.approx(float(world.weights[pred != world.labels].sum()))


def test_ties_first_index_versus_counted_as_errors():
    # f(x) = 0 is equidistant from mu_0 = (1, 0) and mu_1 = (-1, 0): a tie
    views = torch.tensor([[[1.0, 0.0]], [[-1.0, 0.0]], [[0.0, 0.0]]], dtype=torch.float64)
    world = World(views, [0, 1, 1], [0.4, 0.4, 0.2])
    centres = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert nearest_centre_predict(world, centres).tolist() == [0, 1, 0]       # argmin takes the first index
    assert nearest_centre_error(world, centres) == pytest.approx(0.2)
    world_first = World(views, [0, 1, 0], [0.4, 0.4, 0.2])
    assert nearest_centre_error(world_first, centres) == 0.0
    assert nearest_centre_error(world_first, centres, ties="error") == pytest.approx(0.2)


# ------------------------------------------------------------------ Lemma 3.1
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), bad=st.floats(0.0, 0.6), eps=st.floats(0.05, 1.5),
       method=st.sampled_from(["exact", "greedy"]))
def test_lemma_31_on_random_worlds(seed, bad, eps, method):
    world = scattered_views_world(3, 7, 4, 3, bad_fraction=bad, scatter=3.0, point_spread=1.5,
                                  random_weights=True, seed=seed)
    feats = world.map(normalised_linear(3, 3, seed))
    d_within = torch.cat([torch.cdist(world.views[world.labels == k, 0], world.views[world.labels == k, 0]).flatten()
                          for k in range(3)])
    delta = float(d_within.quantile(0.3))
    parts = main_parts(world, delta, method=method)
    good = parts.mask & aligned_mask(feats, eps)
    bound = (1 - parts.sigma) + r_eps(feats, eps)
    g = torch.Generator().manual_seed(seed)
    # any classifier that is right on the good set: arbitrary (random) labels elsewhere
    guess = torch.where(good, world.labels, torch.randint(3, (world.n_points,), generator=g))
    err = float(world.weights[guess != world.labels].sum())
    assert err <= bound + 1e-12
    # the worst such classifier is wrong on every point outside the good set
    assert float(world.weights[~good].sum()) <= bound + 1e-12
    if bool((nearest_centre_predict(feats) == world.labels)[good].all()):
        assert nearest_centre_error(feats) <= bound + 1e-12


def test_theorem1_setting_on_a_near_threshold_world():
    # on the sphere with f = identity, Jensen gives Delta_mu in [0, 1] and ||mu_k|| <= r
    world = near_threshold_world(3, 6, 4, 4, target_inner_product=0.1, radius=1.0, bad_fraction=0.3, seed=5)
    assert max_centre_inner_product(world) == pytest.approx(0.1, abs=1e-8)
    assert 0.0 <= delta_mu(world, 1.0) <= 1.0
    assert r_eps(world, 0.5) >= 0.3 * 0.999 * float(world.class_masses().min())


# ------------------------------------------------------------------ kNN and linear probe
def knn_numpy(bank, bank_labels, query, num_classes, k, t):
    bank = bank / np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12)
    query = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    preds = []
    for q in query:
        sims = bank @ q
        top = np.argsort(-sims, kind="stable")[:k]
        scores = np.zeros(num_classes)
        for j in top:
            scores[bank_labels[j]] += math.exp(sims[j] / t)
        preds.append(int(np.argmax(scores)))
    return np.array(preds)


@settings(max_examples=15, deadline=None)
# d >= 2: in one dimension normalised features are +-1, so top-k has ties and no unique answer
@given(seed=st.integers(0, 10_000), n=st.integers(5, 60), m=st.integers(1, 20), d=st.integers(2, 6),
       classes=st.integers(2, 5), k_frac=st.floats(0.01, 1.0), t=st.floats(0.05, 1.0))
def test_knn_matches_brute_force_numpy(seed, n, m, d, classes, k_frac, t):
    rng = np.random.default_rng(seed)
    bank, query = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    labels = rng.integers(0, classes, size=n)
    k = max(1, int(round(k_frac * n)))
    pred = knn_predict(torch.from_numpy(bank), torch.from_numpy(labels), torch.from_numpy(query),
                       num_classes=classes, k=k, temperature=t, batch_size=7)
    assert pred.tolist() == knn_numpy(bank, labels, query, classes, k, t).tolist()


def test_knn_accuracy_defaults_and_scale_invariance():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 3
    labels = rng.integers(0, 4, size=400)
    feats = centres[labels] + rng.normal(size=(400, 8))
    acc = knn_accuracy(feats[:300], labels[:300], feats[300:], labels[300:], num_classes=4)
    assert acc > 0.9                                              # k = 200, t = 0.1 by default
    assert knn_accuracy(5 * feats[:300], labels[:300], feats[300:], labels[300:], num_classes=4) == acc


def test_linear_probe_separable_and_deterministic():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 5)) * 4
    y = rng.integers(0, 3, size=300)
    x = centres[y] + rng.normal(size=(300, 5))
    a = linear_probe(x[:200], y[:200], x[200:], y[200:], steps=50, seed=0)
    b = linear_probe(x[:200], y[:200], x[200:], y[200:], steps=50, seed=0)
    assert a == b and a > 0.95
    noise = rng.normal(size=(300, 5))
    assert linear_probe(noise[:200], y[:200], noise[200:], y[200:], steps=50) < 0.6


BAD_INPUTS = [
    (lambda w: r_eps(w, -0.1), ValueError, "eps must lie in"),
    (lambda w: aligned_mask(w, float("nan")), ValueError, "eps must be finite"),
    (lambda w: uniformity(w, 0.0), ValueError, "t must lie in"),
    (lambda w: delta_mu(w, 0.0), ValueError, "r must lie in"),
    (lambda w: delta_mu(torch.rand(1, 3), 1.0), ValueError, "K >= 2"),
    (lambda w: alignment(w.views), TypeError, "cssl.World"),
    (lambda w: nearest_centre_predict(w, torch.rand(2, 3)), ValueError, r"centres must have shape \(K, d\)"),
    (lambda w: nearest_centre_error(w, ties="random"), ValueError, "ties"),
    (lambda w: knn_predict(torch.rand(5, 3), [0, 1, 0, 1, 0], torch.rand(2, 3), num_classes=2, k=0), ValueError, "k must"),
    (lambda w: knn_predict(torch.rand(5, 3), [0, 1, 0, 1, 0], torch.rand(2, 3), num_classes=2, k=6), ValueError, "exceeds the bank"),
    (lambda w: knn_predict(torch.rand(5, 3), [0, 1, 0, 1, 0], torch.rand(2, 3), num_classes=2, k=2, temperature=0.0),
     ValueError, "temperature must lie in"),
    (lambda w: knn_predict(torch.rand(5, 3), [0, 1, 0, 1, 0], torch.rand(2, 4), num_classes=2, k=2), ValueError, "dimension"),
    (lambda w: knn_predict(torch.rand(5, 3), [0, 1, 0], torch.rand(2, 3), num_classes=2, k=2), ValueError, "one label per row"),
    (lambda w: knn_predict(torch.rand(5, 3), [0, 1, 0, 1, 2], torch.rand(2, 3), num_classes=2, k=2), ValueError, "labels must be < K"),
    (lambda w: knn_predict(torch.tensor([[float("nan")] * 3] * 5), [0, 1, 0, 1, 0], torch.rand(2, 3), num_classes=2, k=2),
     ValueError, "NaN"),
    (lambda w: knn_predict(torch.rand(5, 3), [0, 1, 0, 1, 0], torch.rand(2, 3), num_classes=1), ValueError, "num_classes"),
    (lambda w: linear_probe(torch.rand(5, 3), [0.5, 1, 0, 1, 0], torch.rand(2, 3), [0, 1]), ValueError, "integer class"),
    (lambda w: linear_probe(torch.rand(5, 3), [0, 1, 0, 1, 0], torch.rand(2, 3), [0, 1], steps=0), ValueError, "steps"),
    (lambda w: linear_probe(torch.rand(5, 3), [0, 1, 0, 1, 0], torch.rand(2, 3), [0, 1], weight_decay=-1.0),
     ValueError, "weight_decay"),
    (lambda w: World(torch.rand(3, 2, 2), [0, 0, 0], num_classes=2), ValueError, "no points"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_inputs_raise_helpful_errors(world, call, error, message):
    with pytest.raises(error, match=message):
        call(world)
