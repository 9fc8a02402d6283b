"""Small tools the theory chapters use to look at the paper's objects: pictures, constants, models.

* :func:`closest_view_pair`: the pair of views that attains the augmented distance ``d_A`` of eq. (1)
  between two points (for a picture of *where* two images meet under augmentation);
* :func:`lipschitz_on_views`: the smallest Lipschitz constant of an encoder on the finite set of views
  of a world (what the proofs of Lemma 3.2 and Theorem 2 actually use);
* :func:`lemma32_check`: Lemma 3.2 evaluated point by point on a world (hypothesis, conclusion and the
  intermediate quantities of its proof), for exact checks and adversarial searches;
* :func:`lemma32_proof_steps`: each inequality of the book's proof of Lemma 3.2 for every ``rho``
  (thm-book-lem32-all) evaluated on a class of a world, with its margin;
* :class:`AffineAugmentationModel`: the augmentation model of Theorem 2 (``m`` discrete maps and an
  ``n``-parameter ``M``-Lipschitz family, each half of the view distribution) with affine continuous
  part, for which ``R_eps`` and ``L_align`` of a **linear** encoder are computed *exactly* by finite
  worlds (the cube's corners for the sup, a Gauss-Legendre rule for the mean);
* :func:`theorem1_threshold_figure` and :func:`theorem1_explorer`: the threshold of condition (2) of
  Theorem 1 and the bound (3) as functions of the paper's parameters, as a static figure and as
  ``ipywidgets`` sliders around the same figure.

Everything computed here calls :mod:`cssl.bounds`, :mod:`cssl.concentration` and :mod:`cssl.metrics`;
nothing re-derives their formulas.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import bounds
from ._validate import as_tensor, check_int, check_real
from .worlds import World

__all__ = [
    "closest_view_pair",
    "lipschitz_on_views",
    "AffineAugmentationModel",
    "Lemma32Check",
    "lemma32_check",
    "theorem1_threshold_figure",
    "theorem1_explorer",
]


# ------------------------------------------------------------------ d_A, located
def closest_view_pair(views_a, views_b) -> tuple[float, int, int]:
    """The views attaining ``d_A(a, b) = min_{s, t} ||views_a[s] - views_b[t]||`` (eq. (1)) of two points.

    ``views_a``: ``(Va, D)``, ``views_b``: ``(Vb, D)`` (or images ``(V, C, H, W)``, flattened). Returns
    ``(distance, s, t)`` with float64 differences computed directly, so the distance equals
    :func:`cssl.concentration.augmented_distance` of the two points exactly; ties go to the smallest
    ``(s, t)`` in row-major order.
    """
    a = as_tensor(views_a, "views_a")
    b = as_tensor(views_b, "views_b")
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"views must have shape (V, D) (or (V, C, H, W)), got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"views_a have dimension {a.shape[1]} but views_b have {b.shape[1]}")
    dist = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    flat = int(torch.argmin(dist))
    s, t = divmod(flat, b.shape[0])
    return float(dist[s, t]), s, t


# ------------------------------------------------------------------ Lipschitz constant on a finite set
def lipschitz_on_views(inputs: World, features: World, *, block: int = 2048) -> float:
    """``max ||f(u) - f(v)|| / ||u - v||`` over all pairs of views ``u != v`` of a world (0 for one view).

    ``inputs`` is a world and ``features = inputs.map(f)``. The proofs of Lemma 3.2 (step 1) and of
    Theorem 2 use the Lipschitz property of ``f`` only between views of the world, so on a finite world
    this number is a valid ``L`` for them (and the smallest one). Two equal input views with different
    features give ``inf`` (``f`` is then not a function of its input). Exact float64 differences.
    """
    if not isinstance(inputs, World) or not isinstance(features, World):
        raise TypeError("inputs and features must be cssl Worlds (features = inputs.map(f))")
    if inputs.views.shape[:2] != features.views.shape[:2]:
        raise ValueError(f"features must have one feature per view of inputs: {tuple(inputs.views.shape[:2])} "
                         f"vs {tuple(features.views.shape[:2])}")
    block = check_int(block, "block", low=1)
    x = inputs.views.reshape(-1, inputs.dim)
    y = features.views.reshape(-1, features.dim)
    best = 0.0
    for i0 in range(0, x.shape[0], block):
        dx = torch.cdist(x[i0:i0 + block], x, compute_mode="donot_use_mm_for_euclid_dist")
        dy = torch.cdist(y[i0:i0 + block], y, compute_mode="donot_use_mm_for_euclid_dist")
        if bool(((dx == 0) & (dy > 0)).any()):
            return math.inf
        mask = dx > 0
        if bool(mask.any()):
            best = max(best, float((dy[mask] / dx[mask]).max()))
    return best


# ------------------------------------------------------------------ Theorem 2's augmentation model
def _gauss_legendre_01(order: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return (nodes + 1.0) / 2.0, weights / 2.0


@dataclass(frozen=True, eq=False)
class AffineAugmentationModel:
    """The augmentation model of Theorem 2 with an affine continuous family.

    Point ``x_i`` (``points[i]``) has

    * ``m`` discrete views ``A_gamma(x_i) = x_i + offsets[i, gamma]`` (``offsets[:, 0] = 0`` makes
      ``A_0`` the identity, so ``x in A(x)``), each drawn with probability ``1 / (2m)``;
    * the continuous views ``A_theta(x_i) = x_i + M * directions[i] @ theta`` for ``theta`` uniform on
      ``[0, 1]^n`` (total probability ``1/2``). ``directions[i]`` is ``(D, n)`` with orthonormal
      columns, so ``||A_theta1(x) - A_theta2(x)|| = M ||theta1 - theta2||``: exactly ``M``-Lipschitz.

    These are the hypotheses of Theorem 2 (Sec. 3 of the paper), met exactly. For a **linear** encoder
    ``f(x) = W x`` (``L = ||W||_2``), ``f(A_theta(x))`` is affine in ``theta``, and two finite worlds
    give the theorem's quantities exactly:

    * :meth:`sup_world`: the discrete views and the ``2^n`` corners of the cube. The distance between
      two views is convex in each of them, so ``sup_{x1, x2 in A(x)} ||f(x1) - f(x2)||`` is attained at
      these views: ``metrics.r_eps(sup_world().map(f), eps)`` is the exact ``R_eps``.
    * :meth:`mean_world`: equiprobable views with the discrete maps at weight ``1/(2m)`` and the
      tensor Gauss-Legendre nodes (2 per axis, exact for polynomials of degree <= 3 in each
      coordinate) at total weight ``1/2``. ``||f(x1) - f(x2)||^2`` is quadratic in each ``theta``, so
      ``metrics.alignment(mean_world().map(f))`` is the exact ``L_align`` of eq. (4).
    * :meth:`grid_world`: the continuous half on a cell-centred ``G^n`` grid, the naive discretisation:
      its sup misses the cube's corners (``R_eps`` biased low) and its ``L_align`` is only approximate.
    """

    points: torch.Tensor
    offsets: torch.Tensor
    directions: torch.Tensor
    M: float
    labels: torch.Tensor
    weights: torch.Tensor | None = None

    def __init__(self, points, offsets, directions, M: float, labels, weights=None):
        x = as_tensor(points, "points", ndim=2)
        off = as_tensor(offsets, "offsets", ndim=3)
        u = as_tensor(directions, "directions", ndim=3)
        n_pts, dim = x.shape
        if off.shape[0] != n_pts or off.shape[2] != dim:
            raise ValueError(f"offsets must have shape (N, m, D) = ({n_pts}, m, {dim}), got {tuple(off.shape)}")
        if u.shape[0] != n_pts or u.shape[1] != dim:
            raise ValueError(f"directions must have shape (N, D, n) = ({n_pts}, {dim}, n), got {tuple(u.shape)}")
        n = u.shape[2]
        if n > dim:
            raise ValueError(f"n = {n} orthonormal directions do not fit in dimension D = {dim}")
        gram = u.transpose(1, 2) @ u
        if float((gram - torch.eye(n, dtype=torch.float64)).abs().max()) > 1e-9:
            raise ValueError("directions[i] must have orthonormal columns (then A_theta is exactly M-Lipschitz)")
        M = check_real(M, "M", low=0, low_open=True)
        y = as_tensor(labels, "labels", dtype=torch.int64, ndim=1)
        if y.shape[0] != n_pts:
            raise ValueError(f"labels has {y.shape[0]} entries but there are {n_pts} points")
        object.__setattr__(self, "points", x)
        object.__setattr__(self, "offsets", off)
        object.__setattr__(self, "directions", u)
        object.__setattr__(self, "M", M)
        object.__setattr__(self, "labels", y)
        object.__setattr__(self, "weights", None if weights is None else as_tensor(weights, "weights", ndim=1))
        self._world(torch.zeros(0, n, dtype=torch.float64), 1, 1)  # validates labels / weights now

    @property
    def m(self) -> int:
        """Number of discrete maps."""
        return self.offsets.shape[1]

    @property
    def n(self) -> int:
        """Number of continuous parameters."""
        return self.directions.shape[2]

    def continuous_views(self, thetas) -> torch.Tensor:
        """``A_theta(x_i)`` for each row ``theta`` of ``thetas`` ``(T, n)``: shape ``(N, T, D)``."""
        th = as_tensor(thetas, "thetas", ndim=2)
        if th.shape[1] != self.n:
            raise ValueError(f"thetas must have n = {self.n} columns, got {th.shape[1]}")
        return self.points[:, None, :] + self.M * torch.einsum("idn,tn->itd", self.directions, th)

    def _world(self, thetas: torch.Tensor, rep_discrete: int, rep_continuous: int) -> World:
        discrete = (self.points[:, None, :] + self.offsets).repeat_interleave(rep_discrete, dim=1)
        parts = [discrete]
        if thetas.shape[0]:
            parts.append(self.continuous_views(thetas).repeat_interleave(rep_continuous, dim=1))
        return World(torch.cat(parts, dim=1), self.labels, self.weights)

    def sup_world(self) -> World:
        """Discrete views then the ``2^n`` corner views: the exact sup over ``A(x)`` for a linear ``f``."""
        corners = torch.tensor(list(itertools.product((0.0, 1.0), repeat=self.n)), dtype=torch.float64)
        return self._world(corners, 1, 1)

    def mean_world(self) -> World:
        """Equiprobable views reproducing the model's view distribution on quadratics exactly (see class doc)."""
        nodes, w = _gauss_legendre_01(2)
        thetas = torch.tensor(list(itertools.product(nodes, repeat=self.n)), dtype=torch.float64)
        # 2^n nodes with equal weights 2^-n: repeat each discrete view 2^n times and each node m times,
        # so each half holds m 2^n of the 2 m 2^n equiprobable slots
        assert np.allclose(w, 0.5)
        return self._world(thetas, 2 ** self.n, self.m)

    def grid_world(self, points_per_axis: int) -> World:
        """The continuous half on the cell-centred grid ``((j + 1/2) / G)^n``, each half of the mass."""
        g = check_int(points_per_axis, "points_per_axis", low=1)
        axis = (np.arange(g) + 0.5) / g
        thetas = torch.tensor(list(itertools.product(axis, repeat=self.n)), dtype=torch.float64)
        k = thetas.shape[0]
        lcm = math.lcm(self.m, k)
        return self._world(thetas, lcm // self.m, lcm // k)


# ------------------------------------------------------------------ Lemma 3.2, point by point
@dataclass(frozen=True)
class Lemma32Check:
    """Lemma 3.2 evaluated class by class on a world (see :func:`lemma32_check`); arrays are per class ``l``.

    * ``sigma``, ``R_eps``, ``delta_mu``: the world's Definition 1 / Sec. 3 quantities (one each);
    * ``rho[l]``: ``rho_l`` with the requested coefficient; ``threshold[l] = r^2 (1 - rho_l - sqrt(2 rho_l)
      - Delta_mu / 2)``; ``max_inner[l] = max_{k != l} mu_l^T mu_k``; ``hypothesis[l]``: the lemma's
      condition ``max_inner[l] < threshold[l]``;
    * ``good``: mask of ``(C_1^0 ∪ ... ∪ C_K^0) ∩ S_eps`` (main parts of :func:`cssl.concentration.main_parts`);
    * ``worst_gap[l] = max_{x in C_l^0 ∩ S_eps} (||f(x) - mu_l||^2 - min_{k != l} ||f(x) - mu_k||^2)``
      (``-inf`` when the set is empty): the lemma's conclusion holds for ``l`` iff it is ``< 0``;
    * ``min_inner_own[l] = min_{x in C_l^0 ∩ S_eps} f(x)^T mu_l`` (the quantity of step 3 of the proof)
      and ``max_dist_own[l] = max_{x in C_l^0 ∩ S_eps} ||f(x) - mu_l||`` (its Jensen form).
    """

    sigma: float
    R_eps: float
    delta_mu: float
    rho: np.ndarray
    threshold: np.ndarray
    max_inner: np.ndarray
    hypothesis: np.ndarray
    good: torch.Tensor
    worst_gap: np.ndarray
    min_inner_own: np.ndarray
    max_dist_own: np.ndarray
    coefficient: str

    @property
    def conclusion(self) -> np.ndarray:
        """Per class: every ``x in C_l^0 ∩ S_eps`` is strictly nearer its own centre than any other."""
        return self.worst_gap < 0

    @property
    def counterexample(self) -> np.ndarray:
        """Per class: the hypothesis holds but the conclusion does not (a counterexample to the lemma)."""
        return self.hypothesis & ~self.conclusion


def lemma32_check(inputs: World, features: World, delta: float, eps: float, L: float, r: float, *,
                  coefficient: str = "paper", distances=None, method: str = "exact") -> Lemma32Check:
    """Evaluate Lemma 3.2 for every class ``l`` of a world: hypothesis, conclusion and the proof's quantities.

    ``inputs`` is the input-space world (Definition 1: main parts at ``delta`` from
    :func:`cssl.concentration.main_parts`, ``sigma`` the minimum over classes) and
    ``features = inputs.map(f)`` with ``||f|| = r`` (checked). ``L`` must be a Lipschitz constant of
    ``f`` on the views (e.g. :func:`lipschitz_on_views`). ``R_eps``, centres and ``Delta_mu`` come from
    :mod:`cssl.metrics`, ``rho_l`` and the threshold from :mod:`cssl.bounds` (``coefficient`` "paper"
    or the book's "corrected"). ``distances``: optional precomputed input ``d_A`` matrix.
    """
    from . import concentration, metrics

    if not isinstance(inputs, World) or not isinstance(features, World):
        raise TypeError("inputs and features must be cssl Worlds (features = inputs.map(f))")
    if inputs.views.shape[:2] != features.views.shape[:2] or not torch.equal(inputs.labels, features.labels):
        raise ValueError("features must be inputs.map(f): same points, views and labels")
    r = check_real(r, "r", low=0, low_open=True)
    norms = features.views.norm(dim=-1)
    if float((norms - r).abs().max()) > 1e-6 * r:
        raise ValueError(f"Lemma 3.2 assumes ||f|| = r = {r:g}; normalise the features first")
    parts = concentration.main_parts(inputs, delta, distances=distances, method=method)
    sigma = float(parts.sigma)
    aligned = metrics.aligned_mask(features, eps)
    R = min(float(features.weights[~aligned].sum()), 1.0)  # a sum of masses may round a hair above 1
    dmu = min(max(float(metrics.delta_mu(features, r)), 0.0), 1.0)
    p = features.class_masses().numpy()
    rho = np.asarray(bounds.rho_l(sigma, delta, eps, R, p, L, r, coefficient=coefficient), dtype=np.float64)
    thr = np.asarray(bounds.theorem1_threshold(rho, dmu, r), dtype=np.float64)
    mu = metrics.class_centres(features)
    gram = (mu @ mu.T).numpy()
    K = features.num_classes
    off = ~np.eye(K, dtype=bool)
    max_inner = np.array([gram[l][off[l]].max() for l in range(K)])
    good = parts.mask & aligned
    f0 = features.views[:, 0]
    dist2 = (f0[:, None, :] - mu[None, :, :]).square().sum(dim=2)
    worst = np.full(K, -np.inf)
    min_inner = np.full(K, np.inf)
    max_dist = np.full(K, -np.inf)
    for l in range(K):
        idx = torch.nonzero(good & (features.labels == l)).flatten()
        if idx.numel() == 0:
            continue
        own = dist2[idx, l]
        rivals = dist2[idx][:, [k for k in range(K) if k != l]].min(dim=1).values
        worst[l] = float((own - rivals).max())
        min_inner[l] = float((f0[idx] @ mu[l]).min())
        max_dist[l] = float(own.sqrt().max())
    return Lemma32Check(sigma, R, dmu, rho, thr, max_inner, max_inner < thr, good, worst, min_inner, max_dist,
                        coefficient)


@dataclass(frozen=True)
class Lemma32Steps:
    """Each inequality of the book's proof of Lemma 3.2 for every ``rho`` (thm-book-lem32-all) on a class.

    ``margins[name]`` is the smallest margin of the step over the good points ``x`` and rivals ``k``
    (in units of ``r`` or ``r^2``; the step holds iff the margin is ``>= 0``, or ``> 0`` for the strict
    steps, see :data:`LEMMA32_STRICT_STEPS`); ``steps[name]`` says whether it holds. ``rho``, ``h``,
    ``a``, ``R`` are the proof's quantities (``r = 1`` units), ``e_norm = max_x |mu_l - (1 - h) f(x)| / r``.
    ``gap`` is the smallest ``(||f(x) - mu_k||^2 - ||f(x) - mu_l||^2) / r^2``, the conclusion's margin.
    """

    rho: float
    h: float
    a: float
    R: float
    e_norm: float
    case: str
    margins: dict
    steps: dict
    gap: float

    @property
    def holds(self) -> bool:
        """Every step of the proof and its conclusion hold on this class."""
        return all(self.steps.values())


#: Steps of :func:`lemma32_proof_steps` that the proof states as strict inequalities.
LEMMA32_STRICT_STEPS = ("step 4: z^2 > max(s, t)^2 + kappa - 1", "step 6: z > 2(kappa - 1)/3",
                        "step 6: case bound > c(rho) > 0", "conclusion: gap > 0")


def lemma32_proof_steps(inputs: World, features: World, delta: float, eps: float, L: float, r: float,
                        l: int, *, coefficient: str = "paper", rho: float | None = None,
                        distances=None, tol: float = 1e-9) -> Lemma32Steps:
    r"""Evaluate every inequality of the proof of thm-book-lem32-all on class ``l`` of a world.

    ``rho`` defaults to ``rho_l`` of :func:`cssl.bounds.rho_l` with ``coefficient`` (the printed constant
    by default); the class's hypothesis ``max_{k != l} mu_l^T mu_k < r^2 (1 - rho - sqrt(2 rho) -
    Delta_mu / 2)`` must hold (``ValueError`` otherwise). With ``u = f(x)/r``, ``m = mu_l/r``,
    ``n = mu_k/r``, ``t = |m|``, ``s = |n|``, ``z = |n - m|``, ``a = L delta / r + 2 eps / r``,
    ``h = 1 - P[C_l^0 cap S_eps | C_l]``, ``R = (1 - h) a + h``, ``e = m - (1 - h) u``,
    ``kappa = 2 rho + 2 sqrt(2 rho)``, ``Phi = z^2 - 2 R z + h (t^2 - s^2)`` the steps are

    * step 1: ``h + a <= rho``;
    * step 3: ``|u - f(x'')/r| <= a`` for all views ``x''`` of good points ``x'``, and ``|e| <= R``;
    * step 4: ``z^2 > max(s, t)^2 + kappa - 1``;
    * step 5 (``rho <= 1/2``): ``|u - m| <= 2 rho``;
    * step 6 (``rho > 1/2``): the key identity ``(1 - h)(|u - n|^2 - |u - m|^2) = z^2 + h (t^2 - s^2)
      + 2 e.(n - m)``, ``(1 - h) gap >= Phi``, ``z > 2(kappa - 1)/3``, and the case bound
      (``z - 2R`` if ``t >= s``, else ``g = (1 + h) z - 2R - 2hs``) ``> c(rho) > 0``
      (:func:`cssl.bounds.lemma32_key_constant`) with ``Phi >= z`` times it;
    * the conclusion: ``|u - n|^2 - |u - m|^2 > 0``.

    ``tol`` absorbs floating-point round-off in the non-strict steps and the identity.
    """
    from . import concentration, metrics

    if not isinstance(inputs, World) or not isinstance(features, World):
        raise TypeError("inputs and features must be cssl Worlds (features = inputs.map(f))")
    r = check_real(r, "r", low=0, low_open=True)
    L = check_real(L, "L", low=0, low_open=True)
    delta = check_real(delta, "delta", low=0)
    eps = check_real(eps, "eps", low=0)
    l = check_int(l, "l", low=0)
    K = features.num_classes
    if l >= K:
        raise ValueError(f"l must be a class index in 0..{K - 1}, got {l}")
    parts = concentration.main_parts(inputs, delta, distances=distances)
    aligned = metrics.aligned_mask(features, eps)
    good = parts.mask & aligned & (features.labels == l)
    if not bool(good.any()):
        raise ValueError(f"class {l} has no good point (C_l^0 cap S_eps is empty); nothing to prove")
    p = features.class_masses().numpy()
    R_eps = min(float(features.weights[~aligned].sum()), 1.0)
    if rho is None:
        rho = float(bounds.rho_l(float(parts.sigma), delta, eps, R_eps, p[l], L, r, coefficient=coefficient))
    rho = check_real(rho, "rho", low=0)
    mu = metrics.class_centres(features).numpy().astype(np.float64) / r
    F = features.views.numpy().astype(np.float64) / r
    norms = np.linalg.norm(mu, axis=1)
    delta_mu = 1 - float(np.min(norms**2))
    T = 1 - rho - math.sqrt(2 * rho)
    rivals = [k for k in range(K) if k != l]
    if not all(mu[l] @ mu[k] < T - delta_mu / 2 for k in rivals):
        raise ValueError(f"the hypothesis of Lemma 3.2 does not hold for class {l} with rho = {rho:.4g}; "
                         "the proof says nothing there")
    idx = torch.nonzero(good).flatten().numpy()
    h = 1 - float(features.weights[good].sum()) / p[l]
    a = L * delta / r + 2 * eps / r
    R = (1 - h) * a + h
    kappa = 2 * rho + 2 * math.sqrt(2 * rho)
    c = float(bounds.lemma32_key_constant(rho))
    good_views = F[idx].reshape(-1, F.shape[-1])
    m = mu[l]
    rows: dict[str, list[float]] = {}

    def add(name, value):
        rows.setdefault(name, []).append(float(value))

    add("step 1: h + a <= rho", rho - (h + a))
    for i in idx:
        u = F[i, 0]
        e = m - (1 - h) * u
        add("step 3: views of good points within a", a - np.linalg.norm(good_views - u, axis=1).max())
        add("step 3: |e| <= R", R - np.linalg.norm(e))
        for k in rivals:
            n = mu[k]
            t, s_, z = norms[l], norms[k], float(np.linalg.norm(n - m))
            gap = float((u - n) @ (u - n) - (u - m) @ (u - m))
            add("step 4: z^2 > max(s, t)^2 + kappa - 1", z * z - (max(s_, t) ** 2 + kappa - 1))
            if rho <= 0.5:
                add("step 5: |u - m| <= 2 rho", 2 * rho - np.linalg.norm(u - m))
            else:
                Phi = z * z - 2 * R * z + h * (t * t - s_ * s_)
                ident = (1 - h) * gap - (z * z + h * (t * t - s_ * s_) + 2 * e @ (n - m))
                add("step 6: key identity, |residual| <= tol", -abs(ident))
                add("step 6: (1 - h) gap >= Phi", (1 - h) * gap - Phi)
                add("step 6: z > 2(kappa - 1)/3", z - 2 * (kappa - 1) / 3)
                bound = z - 2 * R if t >= s_ else (1 + h) * z - 2 * R - 2 * h * s_
                add("step 6: case bound > c(rho) > 0", min(bound - c, c))
                add("step 6: Phi >= z (case bound)", Phi - z * bound)
            add("conclusion: gap > 0", gap)
    margins = {name: min(vals) for name, vals in rows.items()}
    steps = {name: (mg > 0 if name in LEMMA32_STRICT_STEPS else mg >= -tol) for name, mg in margins.items()}
    e_norm = max(float(np.linalg.norm(m - (1 - h) * F[i, 0])) for i in idx)
    return Lemma32Steps(rho=float(rho), h=h, a=a, R=R, e_norm=e_norm,
                        case="rho <= 1/2 (step 5)" if rho <= 0.5 else "rho > 1/2 (step 6)",
                        margins=margins, steps={k: bool(v) for k, v in steps.items()},
                        gap=margins["conclusion: gap > 0"])


# ------------------------------------------------------------------ Theorem 1: threshold and bound
def theorem1_threshold_figure(sigma: float = 0.95, delta: float = 0.05, eps: float = 0.05, L: float = 1.0,
                              r: float = 1.0, p_min: float = 0.25, R_eps: float = 0.02, delta_mu: float = 0.05,
                              *, eps_max: float | None = None, fig=None):
    """The threshold of condition (2) and the bound (3) of Theorem 1 around one parameter point.

    Top: ``threshold / r^2 = 1 - rho_max - sqrt(2 rho_max) - Delta_mu / 2`` against ``eps`` (with
    ``R_eps`` held at the given value), for the paper's ``rho_max`` and the book's corrected one
    (:func:`cssl.bounds.rho_max`), with the current ``eps`` marked; below ``-1`` no encoder can meet
    condition (2), since ``mu_l^T mu_k >= -r^2``. Bottom: the error bound ``(1 - sigma) + R_eps`` against
    ``sigma``, shaded where condition (2) is satisfiable at all (threshold above ``-r^2``) for each
    constant. Returns the matplotlib figure (two axes).
    """
    import matplotlib.pyplot as plt

    sigma = check_real(sigma, "sigma", low=0, high=1, low_open=True)
    delta = check_real(delta, "delta", low=0)
    eps = check_real(eps, "eps", low=0)
    L = check_real(L, "L", low=0, low_open=True)
    r = check_real(r, "r", low=0, low_open=True)
    p_min = check_real(p_min, "p_min", low=0, high=0.5, low_open=True)
    R_eps = check_real(R_eps, "R_eps", low=0, high=1)
    delta_mu = check_real(delta_mu, "delta_mu", low=0, high=1)
    if eps_max is None:
        eps_max = max(2.0 * eps, 0.5 * r)
    eps_max = check_real(eps_max, "eps_max", low=0, low_open=True)
    p = [p_min, 1.0 - p_min]  # rho_max only reads min p

    def thr(s, e, coefficient):
        rho = bounds.rho_max(s, delta, e, R_eps, p, L, r, coefficient=coefficient)
        return np.asarray(bounds.theorem1_threshold(rho, delta_mu, r)) / r ** 2

    if fig is None:
        fig = plt.figure(figsize=(6.6, 7.6))
    ax1, ax2 = fig.subplots(2, 1)
    grid = np.linspace(0.0, eps_max, 200)
    styles = {"paper": dict(color="#0072B2", label="paper's $\\rho_{max}$"),
              "corrected": dict(color="#D55E00", ls="--", label="book's corrected $\\tilde\\rho_{max}$")}
    for coefficient, style in styles.items():
        ax1.plot(grid, thr(sigma, grid, coefficient), **style)
        ax1.plot([eps], [thr(sigma, eps, coefficient)], "o", color=style["color"])
    ax1.axhline(-1.0, color="gray", lw=0.8, ls=":")
    ax1.text(eps_max, -1.0, "no encoder can satisfy (2) below this line ", ha="right", va="bottom", fontsize=9,
             color="gray")
    ax1.set_xlabel(r"alignment radius $\varepsilon$ (feature-space units)")
    ax1.set_ylabel(r"threshold of (2) divided by $r^2$")
    ax1.set_title(f"threshold of condition (2) ($R_\\varepsilon$ = {R_eps:.3g} held fixed)")
    ax1.legend(loc="upper right", fontsize=9)

    sig = np.linspace(0.5, 1.0, 201)
    bound = np.asarray(bounds.theorem1_bound(sig, R_eps))
    ax2.plot(sig, bound, color="black", label=r"bound $(1-\sigma)+R_\varepsilon$")
    for coefficient, style in styles.items():
        ok = thr(sig, eps, coefficient) > -1.0
        ax2.fill_between(sig, 0, 1, where=ok, color=style["color"], alpha=0.12, transform=ax2.get_xaxis_transform(),
                         label=f"(2) satisfiable, {style['label']}")
    ax2.plot([sigma], [float(bounds.theorem1_bound(sigma, R_eps))], "ko")
    ax2.set_xlabel(r"concentration $\sigma$ (mass fraction of the main parts)")
    ax2.set_ylabel("upper bound on Err$(G_f)$ (probability)")
    rho_p = float(bounds.rho_max(sigma, delta, eps, R_eps, p, L, r))
    ax2.set_title(f"bound {float(bounds.theorem1_bound(sigma, R_eps)):.3f} at the dot; paper's threshold "
                  f"{float(thr(sigma, eps, 'paper')):.3f} $r^2$ ($\\rho_{{\\max}}$ = {rho_p:.3f})", fontsize=10)
    ax2.set_ylim(0, max(0.6, float(bound.max()) * 1.1))
    ax2.legend(loc="upper right", fontsize=9)
    return fig


def theorem1_explorer(**initial):
    """``ipywidgets`` sliders over sigma, delta, eps, L, r, p_min, R_eps and Delta_mu that redraw
    :func:`theorem1_threshold_figure` on every change. Needs a running Jupyter kernel: saved widget
    state does not render on a static page. ``initial`` overrides the starting values.

    The figure is rendered to PNG in the kernel and shown in an ``ipywidgets.Image``; no ``Output``
    widget and no ``interact`` are used, because capturing output into an ``Output`` widget can hang
    headless notebook execution (nbclient/nbconvert, e.g. jupyter/nbconvert#1921, jupyter/nbclient#312)
    and the book executes every cell when it is built. Returns an ``ipywidgets.VBox`` (sliders, image);
    display it as the last expression of a cell.
    """
    import io

    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    start = dict(sigma=0.95, delta=0.05, eps=0.05, L=1.0, r=1.0, p_min=0.25, R_eps=0.02, delta_mu=0.05)
    unknown = set(initial) - set(start)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; use {sorted(start)}")
    start.update(initial)
    spec = dict(sigma=(0.5, 1.0, 0.005), delta=(0.0, 0.5, 0.005), eps=(0.0, 0.5, 0.005), L=(0.1, 5.0, 0.05),
                r=(0.5, 4.0, 0.05), p_min=(0.01, 0.5, 0.01), R_eps=(0.0, 0.5, 0.005), delta_mu=(0.0, 1.0, 0.01))
    sliders = {k: widgets.FloatSlider(value=float(start[k]), min=lo, max=hi, step=st, description=k,
                                      continuous_update=False, readout_format=".3f")
               for k, (lo, hi, st) in spec.items()}
    image = widgets.Image(format="png")

    def render(_change=None):
        fig = theorem1_threshold_figure(**{k: s.value for k, s in sliders.items()})
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        image.value = buffer.getvalue()

    for slider in sliders.values():
        slider.observe(render, names="value")
    render()
    controls = widgets.GridBox(list(sliders.values()),
                               layout=widgets.Layout(grid_template_columns="repeat(4, 240px)"))
    return widgets.VBox([controls, image])
