"""cssl.peers: Arora et al.'s mean-classifier bound, HaoChen et al.'s spectral loss and augmentation graph,
the confusion ratio, and the grid hook -- closed forms, brute-force numpy oracles and bad input."""
import itertools
import math

import numpy as np
import pytest
import torch

from cssl import losses, metrics, peers
from cssl.worlds import World, random_world


def unit_world(seed=0, n_classes=3, per_class=4, n_views=3, dim=5, weights=False):
    return random_world(n_classes, per_class, n_views, dim, radius=1.0, random_weights=weights, seed=seed)


# ------------------------------------------------------------------ Arora et al.
def test_collision_probability_closed_forms_and_bad_input():
    assert peers.collision_probability([0.25] * 4) == pytest.approx(0.25)
    assert peers.collision_probability([1.0]) == 1.0
    assert peers.collision_probability(np.array([0.5, 0.3, 0.2])) == pytest.approx(0.38)
    with pytest.raises(ValueError, match="sum to 1"):
        peers.collision_probability([0.5, 0.6])
    with pytest.raises(ValueError, match="nonnegative"):
        peers.collision_probability([1.5, -0.5])
    with pytest.raises(ValueError, match="dimension"):
        peers.collision_probability([[0.5, 0.5]])


def test_logistic_loss_values_and_kinds():
    assert peers.logistic_loss(0.0) == pytest.approx(1.0)
    assert peers.logistic_loss(1.0) == pytest.approx(math.log2(1 + math.exp(-1)))
    v = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(peers.logistic_loss(v), np.log2(1 + np.exp(-v)))
    t = peers.logistic_loss(torch.tensor([-2.0, 3.0], dtype=torch.float64))
    np.testing.assert_allclose(t.numpy(), np.log2(1 + np.exp(-np.array([-2.0, 3.0]))))
    assert peers.logistic_loss(-1000.0) == pytest.approx(1000 / math.log(2))  # no overflow
    assert np.all(peers.logistic_loss(v) >= (v <= 0))  # upper-bounds the 0-1 loss
    with pytest.raises(ValueError, match="finite"):
        peers.logistic_loss(np.nan)


def brute_mean_classifier(world, loss=True):
    views, y, w = world.views.numpy(), world.labels.numpy(), world.weights.numpy()
    K = world.num_classes
    p = np.array([w[y == c].sum() for c in range(K)])
    mu = np.stack([(w[y == c, None] * views[y == c].mean(axis=1)).sum(axis=0) / p[c] for c in range(K)])
    tau = (p ** 2).sum()
    total = 0.0
    for cp, cm in itertools.product(range(K), range(K)):
        if cp == cm:
            continue
        pair = p[cp] * p[cm] / (1 - tau)
        for i in np.flatnonzero(y == cp):
            for a in range(world.n_views):
                m = views[i, a] @ (mu[cp] - mu[cm])
                val = np.log2(1 + np.exp(-m)) if loss else float(m <= 0)
                total += pair * (w[i] / p[cp]) / world.n_views * val
    return total


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_classifier_loss_and_error_match_brute_force(seed):
    world = unit_world(seed, weights=True)
    assert peers.mean_classifier_loss(world) == pytest.approx(brute_mean_classifier(world), rel=1e-12)
    err = peers.mean_classifier_pair_error(world)
    assert err == pytest.approx(brute_mean_classifier(world, loss=False), abs=1e-12)
    assert err <= peers.mean_classifier_loss(world)


def test_mean_classifier_collapsed_features_give_loss_one():
    views = torch.ones(6, 2, 3, dtype=torch.float64) / math.sqrt(3)
    world = World(views, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert peers.mean_classifier_loss(world) == pytest.approx(1.0)  # every margin is 0, l(0) = 1
    assert peers.mean_classifier_pair_error(world) == pytest.approx(1.0)  # ties count as errors


def test_unsupervised_loss_monte_carlo_matches_exact_enumeration():
    world = unit_world(2, n_classes=2, per_class=2, n_views=2, dim=3, weights=True)
    v, y, w = world.views.numpy(), world.labels.numpy(), world.weights.numpy()
    p = np.array([w[y == c].sum() for c in range(2)])
    exact = {"class": 0.0, "augmentation": 0.0}
    n, V = world.n_points, world.n_views
    for i, ip, im in itertools.product(range(n), repeat=3):
        for a, b, c in itertools.product(range(V), repeat=3):
            val = np.log2(1 + np.exp(-(v[i, a] @ (v[ip, b] - v[im, c]))))
            base = w[i] * w[im] / V ** 3
            if y[ip] == y[i]:
                exact["class"] += base * w[ip] / p[y[i]] * val
            if ip == i:
                exact["augmentation"] += base * val
    for positives, value in exact.items():
        est = peers.contrastive_unsupervised_loss(world, positives=positives, n_samples=400_000,
                                                  generator=torch.Generator().manual_seed(1))
        assert abs(est.L_un - value) < 5 * est.se
        assert est.frac_eq == pytest.approx((p ** 2).sum(), abs=0.01)
        # the split recombines
        assert est.L_un == pytest.approx(est.frac_eq * est.L_un_eq + (1 - est.frac_eq) * est.L_un_neq, rel=1e-9)


def test_class_positives_stay_in_class_and_lemma_4_3_holds():
    world = unit_world(3, n_classes=4, per_class=5, n_views=4, dim=6, weights=True)
    tau = peers.collision_probability(world.class_masses())
    est = peers.contrastive_unsupervised_loss(world, positives="class", n_samples=200_000)
    msup = peers.mean_classifier_loss(world)
    # Lemma 4.3 (Jensen): L_sup^mu <= L_un^neq and L_sup^mu <= (L_un - tau) / (1 - tau), up to MC error
    assert msup <= est.L_un_neq + 4 * est.se_neq
    assert msup <= peers.arora_bound(est.L_un, tau) + 4 * est.se / (1 - tau)
    assert est.L_un_eq >= 1.0 - 4 * est.se  # E l over same-class negatives >= l(0) = 1 (Jensen)


def test_unsupervised_loss_bad_input():
    world = unit_world()
    with pytest.raises(ValueError, match="positives"):
        peers.contrastive_unsupervised_loss(world, positives="views")
    with pytest.raises(ValueError, match="n_samples"):
        peers.contrastive_unsupervised_loss(world, n_samples=1)
    with pytest.raises(TypeError, match="World"):
        peers.contrastive_unsupervised_loss(np.zeros((3, 2, 2)))


def test_arora_bound_closed_form_and_bad_input():
    assert peers.arora_bound(1.0, 0.2) == pytest.approx(1.0)  # L_un = 1 gives bound 1
    assert peers.arora_bound(0.6, 0.25) == pytest.approx(0.35 / 0.75)
    np.testing.assert_allclose(peers.arora_bound(np.array([0.5, 1.5]), 0.5), [0.0, 2.0])
    with pytest.raises(ValueError, match="tau"):
        peers.arora_bound(0.5, 1.0)
    with pytest.raises(ValueError, match="finite"):
        peers.arora_bound(np.inf, 0.1)


# ------------------------------------------------------------------ HaoChen et al.
def brute_spectral(world):
    v, w = world.views.numpy(), world.weights.numpy()
    n, V, _ = v.shape
    pos = sum(w[i] / V ** 2 * v[i, a] @ v[i, b] for i in range(n) for a in range(V) for b in range(V))
    neg = sum(w[i] * w[j] / V ** 2 * (v[i, a] @ v[j, b]) ** 2
              for i in range(n) for j in range(n) for a in range(V) for b in range(V))
    return -2 * pos + neg


@pytest.mark.parametrize("seed", [0, 4])
def test_spectral_loss_exact_matches_brute_force_and_batch_estimator(seed):
    world = random_world(2, 3, 3, 4, random_weights=True, seed=seed)  # not on the sphere: any f works
    assert peers.spectral_loss_exact(world) == pytest.approx(brute_spectral(world), rel=1e-12)
    # the batch estimator of cssl.losses is unbiased for i.i.d. rows (x != x' in the batch, so compare
    # with the population loss of the independent-pair expectation on a uniform world, Monte Carlo)
    uni = random_world(3, 20, 2, 4, seed=seed)
    g = torch.Generator().manual_seed(0)
    vals = []
    for _ in range(300):
        idx = torch.randint(uni.n_points, (64,), generator=g)
        a, b = torch.randint(uni.n_views, (2, 64), generator=g)
        vals.append(float(losses.spectral_contrastive(uni.views[idx, a], uni.views[idx, b])))
    assert np.mean(vals) == pytest.approx(peers.spectral_loss_exact(uni), abs=4 * np.std(vals) / np.sqrt(300))


def test_augmentation_graph_of_token_world():
    world = peers.token_world(3, 4, 4, leak_points=0)
    ids, m = peers.view_ids(world)
    assert m == 12 and ids.shape == (12, 4)
    a = peers.augmentation_graph(world)
    assert float(a.sum()) == pytest.approx(1.0)
    assert torch.allclose(a, a.T)
    # degree of a view = its probability; each token is used by two points, half of their views each
    assert torch.allclose(a.sum(dim=1), torch.full((12,), 1 / 12, dtype=torch.float64))
    lam = peers.laplacian_eigenvalues(a)
    assert int((lam.abs() < 1e-10).sum()) == 3  # one component per class
    assert float(lam.min()) > -1e-12 and float(lam.max()) <= 2 + 1e-12
    assert peers.augmentation_label_noise(world) == 0.0
    leaky = peers.token_world(3, 4, 4, leak_points=1)
    lam_leaky = peers.laplacian_eigenvalues(peers.augmentation_graph(leaky))
    assert int((lam_leaky.abs() < 1e-10).sum()) == 1  # the leaks connect the classes
    # one of the 4 views of one point in each class of 4 points is mislabelled: alpha = 1/16
    assert peers.augmentation_label_noise(leaky) == pytest.approx(1 / 16)


def test_normalized_laplacian_of_path_graph_closed_form():
    # path on 3 vertices: normalised Laplacian eigenvalues 0, 1, 2
    a = torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=torch.float64)
    np.testing.assert_allclose(peers.laplacian_eigenvalues(a).numpy(), [0, 1, 2], atol=1e-12)
    with pytest.raises(ValueError, match="symmetric"):
        peers.normalized_adjacency(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="nonnegative"):
        peers.normalized_adjacency(torch.tensor([[0.0, -1.0], [-1.0, 0.0]]))
    with pytest.raises(ValueError, match="isolated"):
        peers.normalized_adjacency(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="square"):
        peers.normalized_adjacency(torch.zeros(2, 3))


@pytest.mark.parametrize("leak", [0, 1, 2])
def test_spectral_minimiser_reaches_eckart_young_minimum(leak):
    world = peers.token_world(3, 5, 4, leak_points=leak)
    a = peers.augmentation_graph(world)
    a_bar = peers.normalized_adjacency(a)
    for k in [1, 3, 4]:
        feats, minimum = peers.spectral_minimiser(world, k)
        assert feats.dim == k
        assert peers.spectral_loss_exact(feats) == pytest.approx(minimum, abs=1e-12)
        # Lemma 3.2 of HaoChen et al.: L(f) = ||A_bar - F F^T||^2 - ||A_bar||^2 for any f
        g = torch.Generator().manual_seed(k)
        ids, m = peers.view_ids(world)
        f = torch.randn(m, k, generator=g, dtype=torch.float64)
        rand_world = World(f[ids], world.labels, world.weights, world.num_classes)
        F = f * a.sum(dim=1).sqrt()[:, None]
        matrix_form = float((a_bar - F @ F.T).square().sum() - a_bar.square().sum())
        assert peers.spectral_loss_exact(rand_world) == pytest.approx(matrix_form, abs=1e-12)
        assert peers.spectral_loss_exact(rand_world) >= minimum - 1e-12
    with pytest.raises(ValueError, match="k"):
        peers.spectral_minimiser(world, 0)


def test_haochen_ratio():
    assert peers.haochen_ratio(0.1, 0.5) == pytest.approx(0.2)
    assert peers.haochen_ratio(0.1, 0.0) == math.inf
    with pytest.raises(ValueError, match="0/0"):
        peers.haochen_ratio(0.0, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        peers.haochen_ratio(1.5, 0.5)


def test_token_world_bad_input():
    with pytest.raises(ValueError, match="leak_points"):
        peers.token_world(3, 4, 4, leak_points=5)
    with pytest.raises(ValueError, match="num_classes"):
        peers.token_world(1)


def test_view_ids_on_continuous_views_are_all_distinct():
    world = random_world(2, 5, 3, 4, seed=0)
    ids, m = peers.view_ids(world)
    assert m == world.n_points * world.n_views
    lam = peers.laplacian_eigenvalues(peers.augmentation_graph(world))
    assert int((lam.abs() < 1e-10).sum()) == world.n_points  # every point its own component
    assert peers.shared_views(world) == 0
    # a view repeated inside one point is not shared; the token world's cycles share every token
    views = world.views.clone()
    views[:, 1] = views[:, 0]
    assert peers.shared_views(World(views, world.labels)) == 0
    assert peers.shared_views(peers.token_world(3, 4, 4, leak_points=0)) == 12


# ------------------------------------------------------------------ confusion ratio
def brute_confusion(z, ids, k):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sim = z @ z.T
    out = 0
    for r in range(len(z)):
        others = [c for c in range(len(z)) if c != r]
        nn = sorted(others, key=lambda c: (-sim[r, c], c))[:k]
        out += not any(ids[c] == ids[r] for c in nn)
    return out / len(z)


@pytest.mark.parametrize("k", [1, 3])
def test_confusion_ratio_matches_brute_force(k):
    rng = np.random.default_rng(k)
    z = rng.normal(size=(30, 4))
    ids = np.repeat(np.arange(15), 2)
    assert peers.confusion_ratio(z, ids, k) == pytest.approx(brute_confusion(z, ids, k))


def test_confusion_ratio_closed_forms_and_bad_input():
    # two well-separated pairs: no confusion; identical features everywhere: ties go to the lowest index
    z = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1]], dtype=float)
    assert peers.confusion_ratio(z, [0, 0, 1, 1]) == 0.0
    assert peers.confusion_ratio(z, [0, 1, 0, 1]) == 1.0
    with pytest.raises(ValueError, match="two views"):
        peers.confusion_ratio(z, [0, 0, 1, 2])
    with pytest.raises(ValueError, match="entries"):
        peers.confusion_ratio(z, [0, 0, 1])
    with pytest.raises(ValueError, match="k must"):
        peers.confusion_ratio(z, [0, 0, 1, 1], k=4)
