"""Tests of :mod:`cssl.tracking`: exact t-InfoNCE, class alignment, normalisation, snapshots and tracked training."""
import math

import numpy as np
import pytest
import torch

from cssl import losses, metrics, tracking
from cssl.models import MLP, SphereEncoder
from cssl.train import fit_on_world
from cssl.worlds import World, random_world


@pytest.fixture
def world():
    return random_world(3, [4, 5, 6], 4, 3, class_probs=[0.2, 0.3, 0.5], random_weights=True, seed=11)


# ------------------------------------------------------------------ t-InfoNCE, exact
def _t_brute_force(w: World):
    total = l1 = l2 = 0.0
    V = w.n_views
    for i in range(w.n_points):
        for j in range(w.n_points):
            for a in range(V):
                for b in range(V):
                    for c in range(V):
                        up = float((w.views[i, a] - w.views[i, b]).square().sum())
                        un = float((w.views[i, a] - w.views[j, c]).square().sum())
                        kp, kn = 1 / (1 + up), 1 / (1 + un)
                        prob = float(w.weights[i] * w.weights[j]) / V ** 3
                        total += prob * -math.log(kp / (kp + kn))
                        l1 += prob * math.log(1 + up)
                        l2 += prob * math.log(kp + kn)
    return total, l1, l2


def test_t_info_nce_exact_equals_brute_force_with_unequal_weights():
    w = random_world(2, [2, 3], 3, 2, random_weights=True, seed=4)
    got = tracking.t_info_nce_split_exact(w)
    assert np.allclose(list(got), _t_brute_force(w), rtol=1e-12, atol=1e-14)
    assert got.total == pytest.approx(got.L1 + got.L2, abs=1e-12)


def test_t_info_nce_exact_is_the_mean_of_the_batch_loss_over_all_triples():
    w = random_world(3, 2, 3, 2, seed=5)  # uniform point masses: every triple equally likely
    n, V = w.n_points, w.n_views
    idx = torch.cartesian_prod(torch.arange(n), torch.arange(V), torch.arange(V), torch.arange(n), torch.arange(V))
    z1, z2, zn = w.views[idx[:, 0], idx[:, 1]], w.views[idx[:, 0], idx[:, 2]], w.views[idx[:, 3], idx[:, 4]]
    exact = tracking.t_info_nce_split_exact(w)
    assert float(losses.t_info_nce(z1, z2, zn)) == pytest.approx(exact.total, rel=1e-12)
    l1, l2 = losses.t_info_nce_split(z1, z2, zn)
    assert (float(l1), float(l2)) == pytest.approx((exact.L1, exact.L2), rel=1e-12)


def test_t_info_nce_exact_blocks_agree(monkeypatch, world):
    whole = tracking.t_info_nce_split_exact(world)
    monkeypatch.setattr(tracking, "_BLOCK_ELEMENTS", 1)  # one point per block
    assert np.allclose(list(tracking.t_info_nce_split_exact(world)), list(whole), rtol=1e-13)


def test_t_info_nce_exact_rejects_non_worlds():
    with pytest.raises(TypeError, match="World"):
        tracking.t_info_nce_split_exact(torch.zeros(3, 2, 2))


# ------------------------------------------------------------------ class alignment and normalisation
def test_class_alignment_brute_force_and_sums_to_alignment(world):
    a = tracking.class_alignment(world)
    for k in range(world.num_classes):
        idx = world.class_members(k).tolist()
        mass = float(world.weights[idx].sum())
        expected = sum(float(world.weights[i]) * float((world.views[i, s] - world.views[i, t]).square().sum())
                       for i in idx for s in range(world.n_views) for t in range(world.n_views)) / world.n_views ** 2 / mass
        assert float(a[k]) == pytest.approx(expected, rel=1e-12)
    assert float((world.class_masses() * a).sum()) == pytest.approx(metrics.alignment(world), rel=1e-12)


def _moments(w: World, clean_only=False):
    v = w.views[:, :1] if clean_only else w.views
    m1 = torch.einsum("n,nvd->d", w.weights, v) / v.shape[1]
    m2 = torch.einsum("n,nvd->d", w.weights, v.square()) / v.shape[1]
    return m1, m2


def test_normalise_coordinates_gives_the_papers_normalisation(world):
    f = tracking.normalise_coordinates(world)
    m1, m2 = _moments(f)
    assert torch.allclose(m1, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(m2, torch.ones(3, dtype=torch.float64), atol=1e-12)
    # the same matrix F as losses' own standardisation
    assert torch.allclose(losses.cross_correlation_matrix_exact(f),
                          losses.cross_correlation_matrix_exact(world, standardize=True), atol=1e-12)
    g = tracking.normalise_coordinates(world, centre=False)
    _, m2 = _moments(g)
    assert torch.allclose(m2, torch.ones(3, dtype=torch.float64), atol=1e-12)
    h = tracking.normalise_coordinates(world, clean_only=True)
    m1, m2 = _moments(h, clean_only=True)
    assert torch.allclose(m1, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(m2, torch.ones(3, dtype=torch.float64), atol=1e-12)


def test_normalise_coordinates_apply_to_and_errors(world):
    other = random_world(3, 3, 4, 3, seed=2)
    mapped = tracking.normalise_coordinates(world, apply_to=other)
    c, s2 = _moments(world)
    s = (s2 - c.square()).sqrt()
    assert torch.allclose(mapped.views, (other.views - c) / s, atol=1e-12)
    with pytest.raises(ValueError, match="dimension"):
        tracking.normalise_coordinates(world, apply_to=random_world(3, 3, 4, 2, seed=2))
    flat = World(torch.ones(4, 2, 2, dtype=torch.float64), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="constant"):
        tracking.normalise_coordinates(flat)


# ------------------------------------------------------------------ snapshot
def test_snapshot_matches_the_cssl_functions(world):
    sphere = World(torch.nn.functional.normalize(world.views, dim=-1), world.labels, world.weights)
    snap = tracking.snapshot(sphere, loss="info_nce", eps=[0.1, 0.5], radius=1.0, test_world=sphere)
    total, l1, l2 = losses.info_nce_split_exact(sphere)
    assert (snap["loss"], snap["L1"], snap["L2"]) == pytest.approx((total, l1, l2))
    assert snap["align"] == pytest.approx(metrics.alignment(sphere))
    assert snap["max_mu"] == pytest.approx(metrics.max_centre_inner_product(sphere))
    assert snap["delta_mu"] == pytest.approx(metrics.delta_mu(sphere, 1.0))
    assert snap["R_eps@0.1"] == pytest.approx(metrics.r_eps(sphere, 0.1))
    assert snap["R_eps@0.5"] == pytest.approx(metrics.r_eps(sphere, 0.5))
    assert snap["err"] == pytest.approx(metrics.nearest_centre_error(sphere)) == pytest.approx(snap["test_err"])
    p, gram = sphere.class_masses(), metrics.centre_inner_products(sphere)
    off = [(k, l) for k in range(3) for l in range(3) if k != l]
    mean = sum(float(p[k] * p[l] * gram[k, l]) for k, l in off) / sum(float(p[k] * p[l]) for k, l in off)
    assert snap["mean_mu"] == pytest.approx(mean)


def test_snapshot_splits_of_each_loss(world):
    lin = tracking.snapshot(world, loss="linear", lam=0.5)
    assert (lin["loss"], lin["L1"], lin["L2"]) == pytest.approx(tuple(losses.linear_loss_split_exact(world, 0.5)))
    t = tracking.snapshot(world, loss="t_info_nce")
    assert (t["loss"], t["L1"], t["L2"]) == pytest.approx(tuple(tracking.t_info_nce_split_exact(world)))
    cc = tracking.snapshot(world, loss="cross_correlation", lam=0.1, standardize=True)
    assert (cc["loss"], cc["L1"], cc["L2"]) == pytest.approx(
        tuple(losses.cross_correlation_split_exact(world, 0.1, standardize=True)))
    assert cc["align"] == pytest.approx(metrics.alignment(tracking.normalise_coordinates(world)))
    assert "L1" not in tracking.snapshot(world, loss="nt_xent")


def test_snapshot_validates(world):
    with pytest.raises(ValueError, match="loss must be one of"):
        tracking.snapshot(world, loss="mse")
    with pytest.raises(ValueError, match="eps"):
        tracking.snapshot(world, loss="linear", eps=-1.0)
    with pytest.raises(TypeError, match="eps"):
        tracking.snapshot(world, loss="linear", eps=[])
    with pytest.raises(ValueError, match="radius=None"):
        tracking.snapshot(world, loss="cross_correlation", radius=1.0, standardize=True)
    with pytest.raises(ValueError, match="unit sphere|\\|\\|f\\|\\| = 1"):
        tracking.snapshot(world, loss="info_nce")  # the InfoNCE split needs ||f|| = 1
    with pytest.raises(ValueError, match="same d and K"):
        tracking.snapshot(world, loss="linear", test_world=random_world(3, 3, 4, 2, seed=0))


# ------------------------------------------------------------------ tracked training
@pytest.mark.parametrize("loss, kwargs", [("info_nce", {}), ("linear", {"lam": 1.0}),
                                          ("cross_correlation", {"lam": 0.1}), ("nt_xent", {"temperature": 0.5})])
def test_fit_tracked_trains_exactly_like_fit_on_world(loss, kwargs):
    w = random_world(3, 4, 3, 4, seed=1)
    torch.manual_seed(0)
    a = SphereEncoder(MLP(4, 16, 4))
    b = SphereEncoder(MLP(4, 16, 4))
    b.load_state_dict(a.state_dict())
    expected = fit_on_world(a, w, loss=loss, steps=12, batch_size=16, seed=3, **kwargs)
    trace = tracking.fit_tracked(b, w, loss=loss, steps=12, every=5, batch_size=16, seed=3, radius=1.0, **kwargs)
    assert trace.batch_losses == expected
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert trace.steps == [0, 5, 10, 12]
    assert all(len(v) == 4 for v in trace.values.values())


def test_fit_tracked_records_the_trained_encoder():
    w = random_world(3, 4, 3, 4, seed=1)
    torch.manual_seed(0)
    encoder = SphereEncoder(MLP(4, 16, 4))
    trace = tracking.fit_tracked(encoder, w, loss="t_info_nce", steps=6, every=3, batch_size=8, seed=0, eps=[0.2, 1.0],
                                 radius=1.0, test_world=w)
    final = tracking.snapshot(w.map(encoder.double()), loss="t_info_nce", eps=[0.2, 1.0], radius=1.0,
                              test_world=w.map(encoder))
    assert trace.final == pytest.approx(final)
    assert np.array_equal(trace["step"], [0, 3, 6])
    assert trace["L1"].shape == (3,) and set(trace.keys()) >= {"L1", "L2", "R_eps@0.2", "R_eps@1", "test_err"}
    with pytest.raises(KeyError, match="recorded keys"):
        trace["nope"]


def test_fit_tracked_progress_goes_to_stdout(capsys):
    w = random_world(2, 3, 2, 2, seed=0)
    torch.manual_seed(0)
    tracking.fit_tracked(SphereEncoder(MLP(2, 8, 2)), w, loss="linear", steps=3, every=3, batch_size=4, progress=True)
    assert capsys.readouterr().err == ""


def test_fit_tracked_validates():
    w = random_world(2, 3, 2, 2, seed=0)
    enc = SphereEncoder(MLP(2, 8, 2))
    with pytest.raises(TypeError, match="nn.Module"):
        tracking.fit_tracked(lambda x: x, w)
    with pytest.raises(TypeError, match="input world"):
        tracking.fit_tracked(enc, w.views)
    with pytest.raises(ValueError, match="loss must be one of"):
        tracking.fit_tracked(enc, w, loss="spectral_norm")
    with pytest.raises(ValueError, match="every"):
        tracking.fit_tracked(enc, w, every=0)
    with pytest.raises(TypeError, match="test_world"):
        tracking.fit_tracked(enc, w, test_world=3)


def test_fit_tracked_names_a_wrong_encoder_width(world):
    with pytest.raises(ValueError, match=f"dimension d = {world.dim}.*input width {world.dim}"):
        tracking.fit_tracked(torch.nn.Linear(world.dim + 2, 3), world, steps=1)
