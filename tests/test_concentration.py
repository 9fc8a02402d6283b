"""Tests of :mod:`cssl.concentration`: the augmented distance (eq. (1)) and Definition 1."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from cssl.concentration import (augmented_distance, estimate_sigma, greedy_weight_clique, is_clique,
                                main_parts, max_weight_clique, sample_views, sigma_curve, sigma_of_delta,
                                standardize_views)
from cssl.worlds import World, image_world, random_world


def naive_augmented_distance(a, b):
    """Loop over point pairs and view pairs: the literal eq. (1)."""
    out = torch.empty(a.shape[0], b.shape[0], dtype=torch.float64)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = min(float((a[i, s] - b[j, t]).norm()) for s in range(a.shape[1]) for t in range(b.shape[1]))
    return out


def brute_force_max_clique(adjacency, weights):
    n = len(weights)
    best = 0.0
    for r in range(1, n + 1):
        for subset in itertools.combinations(range(n), r):
            if all(adjacency[i, j] for i, j in itertools.combinations(subset, 2)):
                best = max(best, float(weights[list(subset)].sum()))
    return best


def random_graph(seed, n, density):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < density, 1)
    return upper | upper.T, rng.random(n) + 0.05


# ------------------------------------------------------------------ d_A
def test_augmented_distance_symmetric_zero_diagonal_and_zero_on_shared_views():
    g = torch.Generator().manual_seed(0)
    views = 100 * torch.randn(6, 4, 5, dtype=torch.float64, generator=g)   # large norms: hard for matmul
    views[3, 2] = views[1, 0]                                              # points 1 and 3 share a view
    for precision in ("exact", "float64", "float32"):
        d = augmented_distance(views, precision=precision)
        assert torch.equal(d, d.T)
        assert torch.equal(d.diagonal(), torch.zeros(6, dtype=torch.float64))
        assert bool((d >= 0).all())
    exact = augmented_distance(views)
    assert exact[1, 3] == 0.0 and exact[3, 1] == 0.0                       # exactly, not approximately
    assert float(augmented_distance(views, precision="float64")[1, 3]) < 1e-5
    assert float(exact[~torch.eye(6, dtype=torch.bool)].reshape(6, 5).amin(dim=1)[0]) > 1.0


@settings(max_examples=20, deadline=None)
@given(na=st.integers(1, 7), nb=st.integers(1, 6), va=st.integers(1, 4), vb=st.integers(1, 4),
       dim=st.integers(1, 5), block=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_blocked_augmented_distance_equals_naive(na, nb, va, vb, dim, block, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(na, va, dim, dtype=torch.float64, generator=g)
    b = torch.randn(nb, vb, dim, dtype=torch.float64, generator=g)
    naive = naive_augmented_distance(a, b)
    assert torch.allclose(augmented_distance(a, b, block_size=block), naive, rtol=0, atol=1e-12)
    assert torch.allclose(augmented_distance(a, b, precision="float64", block_size=block), naive, atol=1e-6)
    assert torch.allclose(augmented_distance(a, b, precision="float32", block_size=block), naive, atol=1e-3)
    self_naive = naive_augmented_distance(a, a)
    assert torch.allclose(augmented_distance(a, block_size=block), self_naive, rtol=0, atol=1e-12)
    assert torch.allclose(augmented_distance(a, precision="float32", block_size=block), self_naive, atol=1e-3)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), v=st.integers(1, 4), extra=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_richer_view_set_never_increases_augmented_distance(n, v, extra, seed):
    g = torch.Generator().manual_seed(seed)
    views = torch.randn(n, v, 3, dtype=torch.float64, generator=g)
    richer = torch.cat([views, torch.randn(n, extra, 3, dtype=torch.float64, generator=g)], dim=1)
    assert bool((augmented_distance(richer) <= augmented_distance(views)).all())
    # the best sigma at a fixed delta can only grow: cliques of the poorer graph stay cliques
    labels = torch.arange(n) % 2 if n >= 2 else None
    if labels is not None and len(set(labels.tolist())) == 2:
        delta = float(augmented_distance(views).median())
        poor = sigma_of_delta(World(views, labels), delta, method="exact")[0]
        rich = sigma_of_delta(World(richer, labels), delta, method="exact")[0]
        assert rich >= poor - 1e-12


def test_augmented_distance_is_not_a_metric_so_main_parts_are_cliques_not_balls():
    # x ~ y share the view 1, y ~ z share the view 2, but x and z are 1 apart: no triangle inequality
    views = torch.tensor([[[0.0], [1.0]], [[1.0], [2.0]], [[2.0], [3.0]], [[10.0], [10.0]]], dtype=torch.float64)
    d = augmented_distance(views)
    assert d[0, 1] == 0 and d[1, 2] == 0 and d[0, 2] == 1
    world = World(views, [0, 0, 0, 1])
    parts = main_parts(world, 0.0, method="exact")
    # the d_A-ball of radius 0 around y holds all three points, but only two form a valid main part
    assert parts.indices[0].numel() == 2
    assert parts.sigma_per_class[0] == pytest.approx(2 / 3)


# ------------------------------------------------------------------ cliques
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(1, 10), density=st.floats(0.0, 1.0))
def test_exact_max_clique_equals_brute_force_and_greedy_is_a_smaller_clique(seed, n, density):
    adjacency, weights = random_graph(seed, n, density)
    exact = max_weight_clique(adjacency, weights)
    greedy = greedy_weight_clique(adjacency, weights)
    best = brute_force_max_clique(adjacency, weights)
    assert exact.proven_optimal
    assert exact.weight == pytest.approx(best, rel=1e-12)
    assert is_clique(adjacency, exact.indices) and is_clique(adjacency, greedy.indices)
    assert float(weights[exact.indices.numpy()].sum()) == pytest.approx(exact.weight)
    assert greedy.weight <= exact.weight + 1e-12


def test_clique_search_on_larger_graphs_and_node_limit():
    adjacency, weights = random_graph(1, 60, 0.6)
    exact = max_weight_clique(adjacency, weights)
    assert exact.proven_optimal and is_clique(adjacency, exact.indices)
    assert greedy_weight_clique(adjacency, weights).weight <= exact.weight + 1e-12
    capped = max_weight_clique(adjacency, weights, node_limit=1)
    assert not capped.proven_optimal and is_clique(adjacency, capped.indices)
    assert capped.weight <= exact.weight + 1e-12
    # a complete graph: every vertex is universal and the whole graph is the clique
    full = np.ones((300, 300), dtype=bool)
    assert max_weight_clique(full).indices.numel() == 300


def test_greedy_can_be_trapped_and_an_initial_clique_rescues_it():
    # a star (centre 0, eleven independent leaves) whose centre has the largest weighted degree,
    # next to a 4-clique {12..15}: greedy from the centre finds only {centre, leaf}
    n = 16
    adjacency = np.zeros((n, n), dtype=bool)
    adjacency[0, 1:12] = adjacency[1:12, 0] = True
    adjacency[12:, 12:] = True
    np.fill_diagonal(adjacency, False)
    weights = np.array([1.0] + [0.35] * 11 + [1.0] * 4)
    trapped = greedy_weight_clique(adjacency, weights, n_starts=1)
    assert trapped.weight == pytest.approx(1.35)
    rescued = greedy_weight_clique(adjacency, weights, n_starts=1, initial=[13])
    assert rescued.indices.tolist() == [12, 13, 14, 15] and rescued.weight == pytest.approx(4.0)
    assert max_weight_clique(adjacency, weights).weight == pytest.approx(4.0)


# ------------------------------------------------------------------ main parts and sigma(delta)
@pytest.mark.parametrize("method", ["exact", "greedy", "auto"])
def test_main_parts_are_cliques_of_diameter_delta_with_the_reported_mass(method):
    world = random_world(3, [8, 10, 12], 4, 2, class_probs=[0.2, 0.3, 0.5], random_weights=True, seed=4)
    d = augmented_distance(world.views)
    delta = float(d.median())
    parts = main_parts(world, delta, method=method)
    masses = world.class_masses()
    for k, idx in enumerate(parts.indices):
        assert bool((world.labels[idx] == k).all())
        assert float(d[idx][:, idx].max()) <= delta
        assert parts.sigma_per_class[k] == pytest.approx(float(world.weights[idx].sum() / masses[k]))
    assert parts.sigma == pytest.approx(float(parts.sigma_per_class.min()))
    assert int(parts.mask.sum()) == sum(idx.numel() for idx in parts.indices)
    if method != "greedy":
        assert all(parts.proven_optimal)
    # the precomputed matrix gives the same answer
    again = main_parts(world, delta, method=method, distances=d)
    assert torch.equal(again.sigma_per_class, parts.sigma_per_class)


def test_sigma_extremes():
    world = random_world(2, 6, 3, 2, seed=0)
    assert sigma_of_delta(world, 1e6)[0] == pytest.approx(1.0)
    # distinct points never share a view at delta = 0: the main part is the heaviest single point
    weighted = random_world(2, 6, 3, 2, random_weights=True, seed=0)
    sigma_pc = sigma_of_delta(weighted, 0.0, method="exact")[1]
    for k in range(2):
        members = weighted.class_members(k)
        heaviest = float(weighted.weights[members].max() / weighted.class_masses()[k])
        assert float(sigma_pc[k]) == pytest.approx(heaviest)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(["exact", "greedy"]))
def test_sigma_is_non_decreasing_in_delta(seed, method):
    world = random_world(2, 12, 3, 2, random_weights=True, seed=seed)
    deltas = torch.linspace(0, 6, 13, dtype=torch.float64).flip(0)     # any order in, same order out
    curve = sigma_curve(world, deltas, method=method)
    ascending = curve.sigma.flip(0)
    assert bool((ascending[1:] >= ascending[:-1] - 1e-12).all())
    assert bool((curve.sigma_per_class.min(dim=1).values == curve.sigma).all())
    if method == "exact":
        # independent exact computations agree with the warm-started curve
        for i in (0, 6, 12):
            assert sigma_of_delta(world, float(deltas[i]), method="exact")[0] == pytest.approx(float(curve.sigma[i]))


# ------------------------------------------------------------------ estimator on images
def _finite_augment(transforms):
    def augment(batch, generator):
        choice = torch.randint(len(transforms), (batch.shape[0],), generator=generator)
        return torch.stack([transforms[int(c)](im) for c, im in zip(choice, batch)])
    return augment


def test_estimated_distance_is_an_upper_estimate_of_the_exact_one():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(12, 1, 4, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0] * 6 + [1] * 6)
    transforms = [lambda im: im.flip(-1), lambda im: im.flip(-2), lambda im: 0.8 * im, lambda im: im.transpose(-1, -2)]
    exact_world = image_world(images, labels, transforms)
    est = estimate_sigma(images, _finite_augment(transforms), 3, [0.5, 1.0, 2.0], labels=labels,
                         precision="float64", method="exact")
    for k in range(2):
        idx = exact_world.class_members(k)
        exact = augmented_distance(exact_world.views[idx])
        assert bool((est.distances[k] >= exact - 1e-9).all())
    # sampling fewer views can only lower sigma (greedy or exact alike)
    exact_curve = sigma_curve(exact_world, [0.5, 1.0, 2.0], method="exact")
    assert bool((est.sigma <= exact_curve.sigma + 1e-12).all())
    assert bool((est.sigma[1:] >= est.sigma[:-1]).all())
    for i, delta in enumerate([0.5, 1.0, 2.0]):
        for k in range(2):
            local = torch.searchsorted(exact_world.class_members(k), est.main_parts[i][k])
            assert float(est.distances[k][local][:, local].max()) <= delta


def test_estimate_sigma_single_class_and_determinism():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(20, 3, 6, 6, generator=g)

    def jitter(batch, generator):
        return batch + 0.05 * torch.randn(batch.shape, generator=generator)

    a = estimate_sigma(images, jitter, 4, [0.0, 1.0, 5.0, 100.0], generator=torch.Generator().manual_seed(3))
    b = estimate_sigma(images, jitter, 4, [0.0, 1.0, 5.0, 100.0], generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.sigma, b.sigma) and torch.equal(a.distances[0], b.distances[0])
    assert a.sigma[-1] == 1.0 and a.sigma[0] == pytest.approx(1 / 20)
    assert a.sigma_per_class.shape == (4, 1)


def test_sample_views_and_standardize():
    images = torch.rand(5, 2, 3, 3)
    views = sample_views(images, lambda b, g: b * 2, 3)
    assert views.shape == (5, 4, 18)
    assert torch.equal(views[:, 0], images.reshape(5, -1)) and torch.allclose(views[:, 1], 2 * views[:, 0])
    z = standardize_views(views)
    assert torch.allclose(z.mean(dim=2), torch.zeros(5, 4), atol=1e-5)
    assert torch.allclose(z.std(dim=2, unbiased=False), torch.ones(5, 4), atol=1e-3)


BAD_INPUTS = [
    (lambda: augmented_distance(torch.rand(3, 4)), ValueError, "views_a must have 3"),
    (lambda: augmented_distance(torch.rand(3, 2, 4), torch.rand(3, 2, 5)), ValueError, "same space"),
    (lambda: augmented_distance(torch.tensor([[[float("nan")]]])), ValueError, "NaN"),
    (lambda: augmented_distance(torch.rand(3, 2, 4), precision="half"), ValueError, "precision"),
    (lambda: augmented_distance(torch.rand(3, 2, 4), block_size=0), ValueError, "block_size"),
    (lambda: augmented_distance(torch.rand(0, 2, 4)), ValueError, "empty"),
    (lambda: main_parts(random_world(2, 3, 2, 2), -0.1), ValueError, "delta must lie in"),
    (lambda: main_parts(random_world(2, 3, 2, 2), float("nan")), ValueError, "delta must be finite"),
    (lambda: main_parts(random_world(2, 3, 2, 2), 1.0, method="fast"), ValueError, "method"),
    (lambda: main_parts(torch.rand(3, 2, 2), 1.0), TypeError, "cssl.World"),
    (lambda: main_parts(random_world(2, 3, 2, 2), 1.0, distances=torch.rand(5, 5)), ValueError, r"\(6, 6\)"),
    (lambda: sigma_curve(random_world(2, 3, 2, 2), [0.1, -1.0]), ValueError, "delta must be >= 0"),
    (lambda: max_weight_clique(np.ones((3, 4), dtype=bool)), ValueError, "square"),
    (lambda: max_weight_clique(np.triu(np.ones((3, 3), dtype=bool))), ValueError, "symmetric"),
    (lambda: max_weight_clique(np.ones((3, 3), dtype=bool), [1.0, 0.0, 1.0]), ValueError, "strictly positive"),
    (lambda: max_weight_clique(np.ones((3, 3), dtype=bool), [1.0, 1.0]), ValueError, "3 vertices"),
    (lambda: greedy_weight_clique(np.ones((3, 3), dtype=bool), initial=[0, 7]), ValueError, "outside"),
    (lambda: greedy_weight_clique(np.eye(3, dtype=bool), initial=[0, 1]), ValueError, "initial must be a clique"),
    (lambda: estimate_sigma(torch.rand(4, 1, 2, 2), lambda b, g: b, 2, [1.0], labels=[0, 0, 2, 2]),
     ValueError, "no images"),
    (lambda: estimate_sigma(torch.rand(4, 1, 2, 2), lambda b, g: b[:, :, :1], 2, [1.0]), ValueError, "same shape"),
    (lambda: estimate_sigma(torch.rand(4, 1, 2, 2), "crop", 2, [1.0]), TypeError, "augment must be a callable"),
    (lambda: estimate_sigma(torch.rand(4, 2, 2), lambda b, g: b, 2, [1.0]), ValueError, "images must have 4"),
    (lambda: estimate_sigma(torch.rand(4, 1, 2, 2), lambda b, g: b, 2, [1.0], view_transform=lambda v: v[:, 0]),
     ValueError, "view_transform must return"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_inputs_raise_helpful_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_sample_views_scales_uint8_images_to_unit_range():
    from cssl.augment import Augmentation

    g = torch.Generator().manual_seed(0)
    x8 = (torch.rand(6, 3, 8, 8, generator=g) * 255).to(torch.uint8)
    aug = Augmentation("ad")
    a = sample_views(x8, aug, 2, generator=torch.Generator().manual_seed(1))
    b = sample_views(x8.float() / 255, aug, 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b) and float(a.max()) <= 1.0


def test_pair_distances_pool_each_same_class_pair_once():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(7, 1, 4, 4, generator=g), torch.tensor([0, 0, 0, 1, 1, 1, 1])
    est = estimate_sigma(x, lambda b, gen: b + 0.01 * torch.randn(b.shape, generator=gen), 2, [0.5],
                         labels=y, generator=g)
    pairs = est.pair_distances()
    assert pairs.shape == (3 + 6,)
    expected = [float(est.distances[k][i, j]) for k in range(2) for i in range(len(est.distances[k]))
                for j in range(i + 1, len(est.distances[k]))]
    assert pairs.tolist() == expected


def test_sigma_estimate_at_other_deltas_reuses_the_views():
    from cssl.augment import Augmentation
    from cssl.concentration import estimate_sigma

    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, 8, 8, generator=g)
    y = torch.arange(40) % 2
    aug = Augmentation("ad")
    first = estimate_sigma(x, aug, 3, [0.0], labels=y, generator=torch.Generator().manual_seed(5))
    pooled = first.pair_distances()
    deltas = [float(torch.quantile(pooled, q)) for q in (0.2, 0.6)]
    direct = estimate_sigma(x, aug, 3, deltas, labels=y, generator=torch.Generator().manual_seed(5))
    again = first.at(deltas)
    assert torch.equal(again.sigma, direct.sigma) and torch.equal(again.sigma_per_class, direct.sigma_per_class)
    assert all(torch.equal(a, b) for pa, pb in zip(again.main_parts, direct.main_parts) for a, b in zip(pa, pb))
    with pytest.raises(ValueError, match="delta"):
        first.at([-1.0])


def test_sigma_from_distances_is_the_clique_step_of_estimate_sigma():
    from cssl.augment import Augmentation
    from cssl.concentration import estimate_sigma, sigma_from_distances

    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(30, 3, 8, 8, generator=g), torch.arange(30) % 3
    est = estimate_sigma(x, Augmentation("ad"), 2, [0.5, 2.0, 8.0], labels=y,
                         generator=torch.Generator().manual_seed(2))
    again = sigma_from_distances(est.distances, [0.5, 2.0, 8.0], members=est.members)
    assert torch.equal(again.sigma, est.sigma) and torch.equal(again.sigma_per_class, est.sigma_per_class)
    with pytest.raises(ValueError, match="square"):
        sigma_from_distances([torch.zeros(2, 3)], [1.0])
    with pytest.raises(ValueError, match="members"):
        sigma_from_distances(est.distances, [1.0], members=est.members[:1])
