"""cssl.losses: closed-form oracles, invariances, split identities, exact world versions, gradients."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from cssl import losses as Ls
from cssl.worlds import World

SETTINGS = settings(max_examples=25, deadline=None)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=_gen(seed), dtype=torch.float64)


def _unit(*shape, seed=0):
    return F.normalize(_randn(*shape, seed=seed), dim=-1)


# ------------------------------------------------------------------------------ InfoNCE
def test_info_nce_matches_its_definition():
    z1, z2, zn = _randn(7, 4, seed=1), _randn(7, 4, seed=2), _randn(7, 4, seed=3)
    a, b = (z1 * z2).sum(1), (z1 * zn).sum(1)
    expected = (-torch.log(torch.exp(a) / (torch.exp(a) + torch.exp(b)))).mean()
    assert torch.allclose(Ls.info_nce(z1, z2, zn), expected)


def test_info_nce_is_stable_for_large_logits():
    z = torch.tensor([[30.0, 0.0]], dtype=torch.float64)
    loss = Ls.info_nce(z, -z, z)   # a = -900, b = 900: loss ~ 1800
    assert torch.isfinite(loss) and loss.item() == pytest.approx(1800.0)


def test_info_nce_split_identity_on_the_sphere():
    z1, z2, zn = _unit(9, 5, seed=4), _unit(9, 5, seed=5), _unit(9, 5, seed=6)
    L1, L2 = Ls.info_nce_split(z1, z2, zn)
    assert torch.allclose(L1 + L2, Ls.info_nce(z1, z2, zn))
    # L_align = 2 L1 + 2 (the alignment of eq. (4) on the batch)
    assert torch.allclose((z1 - z2).pow(2).sum(1).mean(), 2 * L1 + 2)


def test_info_nce_split_refuses_and_differs_off_the_sphere():
    z1, z2, zn = 2 * _unit(6, 3, seed=7), _unit(6, 3, seed=8), _unit(6, 3, seed=9)
    with pytest.raises(ValueError, match="unit-norm"):
        Ls.info_nce_split(z1, z2, zn)
    L1, L2 = Ls.info_nce_split(z1, z2, zn, check_unit_norm=False)
    assert not torch.allclose(L1 + L2, Ls.info_nce(z1, z2, zn))


# ------------------------------------------------------------------------------ NT-Xent
def _nt_xent_loop(z1, z2, t):
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = u.shape[0]
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denom = sum(math.exp(float(u[i] @ u[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(u[i] @ u[j]) / t) / denom)
    return total / n2


def test_nt_xent_refuses_one_pair():
    # one pair has no negatives: the loss would be 0 for every encoder
    with pytest.raises(ValueError, match="at least 2 row"):
        Ls.nt_xent(torch.ones(1, 3), torch.ones(1, 3))


@pytest.mark.parametrize("n", [2, 5, 16])
def test_nt_xent_equal_embeddings_give_log_2n_minus_1(n):
    z = torch.ones(n, 3, dtype=torch.float64)
    assert Ls.nt_xent(z, z).item() == pytest.approx(math.log(2 * n - 1))
    assert Ls.nt_xent(z, 3 * z, temperature=0.1).item() == pytest.approx(math.log(2 * n - 1))


def test_nt_xent_orthonormal_inputs():
    n, t = 4, 0.5
    e = torch.eye(n, 6, dtype=torch.float64)
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / t))
    assert Ls.nt_xent(e, e, t).item() == pytest.approx(expected)


def test_nt_xent_matches_brute_force_and_is_symmetric():
    z1, z2 = _randn(6, 4, seed=10), _randn(6, 4, seed=11)
    for t in (0.1, 0.5, 2.0):
        assert Ls.nt_xent(z1, z2, t).item() == pytest.approx(_nt_xent_loop(z1, z2, t))
    assert torch.allclose(Ls.nt_xent(z1, z2), Ls.nt_xent(z2, z1))


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 8), t=st.floats(0.05, 5.0))
def test_nt_xent_is_invariant_to_positive_row_scaling(seed, n, t):
    z1, z2 = _randn(n, 3, seed=seed), _randn(n, 3, seed=seed + 1)
    s1 = torch.rand(n, 1, generator=_gen(seed + 2), dtype=torch.float64) * 10 + 0.1
    s2 = torch.rand(n, 1, generator=_gen(seed + 3), dtype=torch.float64) * 10 + 0.1
    assert torch.allclose(Ls.nt_xent(z1, z2, t), Ls.nt_xent(s1 * z1, s2 * z2, t))


# --------------------------------------------------------------------- cross-correlation
def test_cross_correlation_matches_numpy():
    z1, z2 = _randn(10, 3, seed=12), _randn(10, 3, seed=13)
    a, b = z1.numpy(), z2.numpy()
    an, bn = (a - a.mean(0)) / a.std(0), (b - b.mean(0)) / b.std(0)   # numpy std is biased (ddof=0)
    C = an.T @ bn / 10
    lam = 0.3
    expected = np.sum((1 - np.diag(C)) ** 2) + lam * (np.sum(C ** 2) - np.sum(np.diag(C) ** 2))
    assert Ls.cross_correlation(z1, z2, lam, eps=0.0).item() == pytest.approx(expected)


@SETTINGS
@given(seed=st.integers(0, 10_000), lam=st.floats(0.0, 2.0))
def test_cross_correlation_is_invariant_to_per_dimension_affine_maps(seed, lam):
    z1, z2 = _randn(12, 4, seed=seed), _randn(12, 4, seed=seed + 1)
    a = torch.rand(4, generator=_gen(seed + 2), dtype=torch.float64) * 5 + 0.2
    b = torch.randn(4, generator=_gen(seed + 3), dtype=torch.float64) * 10
    c = torch.rand(4, generator=_gen(seed + 4), dtype=torch.float64) * 5 + 0.2
    base = Ls.cross_correlation(z1, z2, lam, eps=0.0)
    assert torch.allclose(base, Ls.cross_correlation(a * z1 + b, c * z2 - b, lam, eps=0.0))
    assert torch.allclose(base, Ls.cross_correlation(a * z1 + b, c * z2 - b, lam), rtol=1e-6)


def test_cross_correlation_diagonal_reaches_one_for_identical_views():
    z = _randn(16, 5, seed=14)
    L1, L2 = Ls.cross_correlation_split(z, z, eps=0.0)
    assert L1.item() == pytest.approx(0.0, abs=1e-20)
    assert L2.item() > 0   # off-diagonal correlations of a random batch remain
    assert Ls.cross_correlation(z, z, 0.0, eps=0.0).item() == pytest.approx(0.0, abs=1e-20)


@SETTINGS
@given(seed=st.integers(0, 10_000), lam=st.floats(0.0, 1.0))
def test_cross_correlation_split_identity(seed, lam):
    z1, z2 = _randn(9, 3, seed=seed), _randn(9, 3, seed=seed + 1)
    L1, L2 = Ls.cross_correlation_split(z1, z2, lam)
    assert torch.allclose(Ls.cross_correlation(z1, z2, lam), (1 - lam) * L1 + lam * L2)


# ---------------------------------------------------------------------- other losses
def test_linear_and_spectral_match_loops():
    z1, z2, zn = _randn(5, 3, seed=15), _randn(5, 3, seed=16), _randn(5, 3, seed=17)
    lin = sum(-float(z1[i] @ z2[i]) + 0.7 * float(z1[i] @ zn[i]) for i in range(5)) / 5
    assert Ls.linear_contrastive(z1, z2, zn, lam=0.7).item() == pytest.approx(lin)
    pos = sum(float(z1[i] @ z2[i]) for i in range(5)) / 5
    neg = sum(float(z1[i] @ z2[j]) ** 2 for i in range(5) for j in range(5) if i != j) / 20
    assert Ls.spectral_contrastive(z1, z2).item() == pytest.approx(-2 * pos + neg)


def test_t_info_nce_definition_and_split():
    z1, z2, zn = _randn(8, 3, seed=18), _randn(8, 3, seed=19), _randn(8, 3, seed=20)
    kp = 1 / (1 + (z1 - z2).pow(2).sum(1))
    kn = 1 / (1 + (z1 - zn).pow(2).sum(1))
    assert torch.allclose(Ls.t_info_nce(z1, z2, zn), (-torch.log(kp / (kp + kn))).mean())
    L1, L2 = Ls.t_info_nce_split(z1, z2, zn)
    assert torch.allclose(L1 + L2, Ls.t_info_nce(z1, z2, zn))
    assert torch.allclose(L1, torch.log1p((z1 - z2).pow(2).sum(1)).mean())


# ------------------------------------------------------------------------ gradients
GRAD_CASES = [
    ("info_nce", lambda a, b, c: Ls.info_nce(a, b, c)),
    ("info_nce_split", lambda a, b, c: sum(Ls.info_nce_split(a, b, c, check_unit_norm=False))),
    ("nt_xent", lambda a, b, c: Ls.nt_xent(a, b, 0.3)),
    ("cross_correlation", lambda a, b, c: Ls.cross_correlation(a, b, 0.2)),
    ("cross_correlation_split", lambda a, b, c: Ls.cross_correlation_split(a, b)[0] + 0.5 * Ls.cross_correlation_split(a, b)[1]),
    ("linear_contrastive", lambda a, b, c: Ls.linear_contrastive(a, b, c, 0.5)),
    ("spectral_contrastive", lambda a, b, c: Ls.spectral_contrastive(a, b)),
    ("t_info_nce", lambda a, b, c: Ls.t_info_nce(a, b, c)),
    ("t_info_nce_split", lambda a, b, c: Ls.t_info_nce_split(a, b, c)[1]),
]


@pytest.mark.parametrize("name,fn", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(name, fn):
    inputs = tuple(_randn(5, 3, seed=30 + i).requires_grad_(True) for i in range(3))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


def test_losses_keep_float32_and_gradients():
    z1 = torch.randn(8, 4, generator=_gen(40)).requires_grad_(True)
    z2 = torch.randn(8, 4, generator=_gen(41))
    loss = Ls.nt_xent(z1, z2) + Ls.cross_correlation(z1, z2)
    assert loss.dtype == torch.float32
    loss.backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all()


# ------------------------------------------------------------------ exact world versions
def _tiny_world(seed=0, unit=True, n_points=3, n_views=2, dim=2):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n_points, n_views, dim))
    if unit:
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
    w = rng.uniform(0.3, 1.0, n_points)
    return World(v, np.arange(n_points) % 2, w / w.sum())


def _brute_infonce(world):
    v, w = world.views.numpy(), world.weights.numpy()
    N, V, _ = v.shape
    L = L1 = L2 = 0.0
    for i, j in itertools.product(range(N), range(N)):
        for s, t, u in itertools.product(range(V), range(V), range(V)):
            prob = w[i] * w[j] / V ** 3
            a, b = v[i, s] @ v[i, t], v[i, s] @ v[j, u]
            L += prob * -math.log(math.exp(a) / (math.exp(a) + math.exp(b)))
            L1 += prob * (0.5 * np.sum((v[i, s] - v[i, t]) ** 2) - 1)
            L2 += prob * math.log(math.exp(a) + math.exp(b))
    return L, L1, L2


def _brute_F(world):
    v, w = world.views.numpy(), world.weights.numpy()
    N, V, d = v.shape
    Fm = np.zeros((d, d))
    for i in range(N):
        for s, t in itertools.product(range(V), range(V)):
            Fm += w[i] / V ** 2 * np.outer(v[i, s], v[i, t])
    return Fm


def test_info_nce_exact_equals_brute_force_loop():
    world = _tiny_world(0)
    L, L1, L2 = _brute_infonce(world)
    split = Ls.info_nce_split_exact(world)
    assert split.total == pytest.approx(L) and split.L1 == pytest.approx(L1) and split.L2 == pytest.approx(L2)
    assert split.total == pytest.approx(split.L1 + split.L2)   # eq. (5) on the sphere
    assert Ls.info_nce_exact(world) == pytest.approx(L)
    off = _tiny_world(1, unit=False)
    assert Ls.info_nce_exact(off) == pytest.approx(_brute_infonce(off)[0])
    with pytest.raises(ValueError, match="norm"):
        Ls.info_nce_split_exact(off)


def test_info_nce_exact_blocking_does_not_change_the_value(monkeypatch):
    world = _tiny_world(2, n_points=9, n_views=3, dim=3)
    full = Ls.info_nce_split_exact(world)
    monkeypatch.setattr(Ls, "_BLOCK_ELEMENTS", 1)   # one point per block
    blocked = Ls.info_nce_split_exact(world)
    assert blocked == pytest.approx(full)


def test_info_nce_exact_agrees_with_sampled_batches():
    world = _tiny_world(3, n_points=4, n_views=3, dim=3)
    g = torch.Generator().manual_seed(5)
    n = 200_000
    x = torch.multinomial(world.weights, n, replacement=True, generator=g)
    xp = torch.multinomial(world.weights, n, replacement=True, generator=g)
    s, t, u = (torch.randint(0, 3, (n,), generator=g) for _ in range(3))
    z1, z2, zn = world.views[x, s], world.views[x, t], world.views[xp, u]
    assert Ls.info_nce(z1, z2, zn).item() == pytest.approx(Ls.info_nce_exact(world), abs=5e-3)


def test_cross_correlation_exact_equals_brute_force():
    world = _tiny_world(4, unit=False, dim=3)
    Fm = Ls.cross_correlation_matrix_exact(world).numpy()
    assert np.allclose(Fm, _brute_F(world))
    lam = 0.25
    split = Ls.cross_correlation_split_exact(world, lam)
    expected = np.sum((1 - np.diag(Fm)) ** 2) + lam * (np.sum(Fm ** 2) - np.sum(np.diag(Fm) ** 2))
    assert split.total == pytest.approx(expected)
    assert split.total == pytest.approx((1 - lam) * split.L1 + lam * split.L2)
    assert Ls.cross_correlation_exact(world, lam) == pytest.approx(expected)


def test_cross_correlation_exact_standardisation():
    world = _tiny_world(5, unit=False, n_points=5, n_views=3, dim=3)
    v = Ls._standardised_views(world, 0.0)
    w = world.weights
    mean = torch.einsum("n,nvd->d", w, v) / 3
    second = torch.einsum("n,nvd->d", w, v ** 2) / 3
    assert torch.allclose(mean, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(second, torch.ones(3, dtype=torch.float64))
    std_world = World(v, world.labels, world.weights)
    assert torch.allclose(Ls.cross_correlation_matrix_exact(world, standardize=True),
                          torch.tensor(_brute_F(std_world)))
    # Lemma 4.1 identity under the normalisation: L_align = 2 sum_i (1 - F_ii)
    align = 2 * float((w * (v.pow(2).sum(2).mean(1) - v.mean(1).pow(2).sum(1))).sum())
    Fs = Ls.cross_correlation_matrix_exact(world, standardize=True)
    assert align == pytest.approx(2 * float((1 - torch.diagonal(Fs)).sum()))


def test_linear_loss_exact_equals_brute_force():
    world = _tiny_world(6, n_points=4, n_views=2, dim=3)
    v, w = world.views.numpy(), world.weights.numpy()
    lam, total = 0.6, 0.0
    for i, j in itertools.product(range(4), range(4)):
        for s, t, u in itertools.product(range(2), range(2), range(2)):
            total += w[i] * w[j] / 8 * (-(v[i, s] @ v[i, t]) + lam * (v[i, s] @ v[j, u]))
    split = Ls.linear_loss_split_exact(world, lam)
    assert split.total == pytest.approx(total) and Ls.linear_loss_exact(world, lam) == pytest.approx(total)
    assert split.total == pytest.approx(split.L1 + lam * split.L2)
    # on the sphere the linear loss's L1 is InfoNCE's L1
    assert split.L1 == pytest.approx(Ls.info_nce_split_exact(world).L1)


def test_linear_loss_collapse_world():
    """K = 4 balanced classes sent to +v, +v, -v, -v reach L' = -1 although mu_1 = mu_2."""
    v = np.array([0.6, 0.8])
    views = np.stack([np.tile(s * v, (2, 1)) for s in (1, 1, -1, -1)])
    world = World(views, [0, 1, 2, 3])
    split = Ls.linear_loss_split_exact(world, 1.0)
    assert split.total == pytest.approx(-1.0) and split.L1 == pytest.approx(-1.0) and split.L2 == pytest.approx(0.0)


# ------------------------------------------------------------------------------ bad input
_z = _randn(4, 3, seed=50)
_u = _unit(4, 3, seed=51)

BAD_CALLS = [
    ("mismatched shapes", lambda: Ls.info_nce(_z, _randn(5, 3), _z), ValueError, "same N and d"),
    ("mismatched dims", lambda: Ls.nt_xent(_z, _randn(4, 2)), ValueError, "same N and d"),
    ("NaN", lambda: Ls.info_nce(_z, _z.clone().fill_(float("nan")), _z), ValueError, "NaN"),
    ("inf", lambda: Ls.cross_correlation(_z, torch.full_like(_z, float("inf"))), ValueError, "infinite"),
    ("temperature 0", lambda: Ls.nt_xent(_z, _z, 0.0), ValueError, "temperature"),
    ("temperature < 0", lambda: Ls.nt_xent(_z, _z, -1.0), ValueError, "temperature"),
    ("temperature nan", lambda: Ls.nt_xent(_z, _z, float("nan")), ValueError, "temperature"),
    ("lam < 0", lambda: Ls.cross_correlation(_z, _z, -0.1), ValueError, "lam"),
    ("lam < 0 linear", lambda: Ls.linear_contrastive(_z, _z, _z, -1.0), ValueError, "lam"),
    ("batch of 1", lambda: Ls.cross_correlation(_z[:1], _z[:1]), ValueError, "at least 2"),
    ("batch of 1 spectral", lambda: Ls.spectral_contrastive(_z[:1], _z[:1]), ValueError, "at least 2"),
    ("1-D input", lambda: Ls.info_nce(_z[0], _z[0], _z[0]), ValueError, r"\(N, d\)"),
    ("3-D input", lambda: Ls.nt_xent(_z[None], _z[None]), ValueError, r"\(N, d\)"),
    ("non-unit split", lambda: Ls.info_nce_split(3 * _u, _u, _u), ValueError, "unit-norm"),
    ("numpy input", lambda: Ls.info_nce(_z.numpy(), _z, _z), TypeError, "torch.Tensor"),
    ("integer tensor", lambda: Ls.nt_xent(torch.ones(3, 2, dtype=torch.int64), torch.ones(3, 2, dtype=torch.int64)),
     TypeError, "floating"),
    ("dtype mismatch", lambda: Ls.info_nce(_z, _z.float(), _z), ValueError, "dtype"),
    ("zero row", lambda: Ls.nt_xent(torch.zeros(2, 3, dtype=torch.float64), _z[:2]), ValueError, "zero vector"),
    ("eps < 0", lambda: Ls.cross_correlation(_z, _z, eps=-1e-3), ValueError, "eps"),
    ("not a world", lambda: Ls.info_nce_exact(_z), TypeError, "World"),
    ("lam < 0 exact", lambda: Ls.cross_correlation_exact(_tiny_world(), -0.5), ValueError, "lam"),
    ("constant dim", lambda: Ls.cross_correlation_matrix_exact(
        World(np.ones((2, 2, 2)), [0, 1]), standardize=True), ValueError, "constant"),
]


@pytest.mark.parametrize("name,call,exc,word", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_refused_with_a_clear_message(name, call, exc, word):
    with pytest.raises(exc, match=word):
        call()
