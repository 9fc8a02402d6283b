"""Finite latent-class worlds: the paper's setting (Sec. 2) made exact.

A *world* has ``N`` points ``x_i``, each in one latent class ``y_i in {0..K-1}`` with probability mass
``w_i`` (so ``p_k = sum_{i: y_i = k} w_i``), and each with a finite list of ``V`` equiprobable views
``A(x_i) = {v_i1, ..., v_iV}`` (a multiset: repeat a view to give it more weight). Every expectation
of the paper, e.g. the alignment

    L_align(f) = E_x E_{x1, x2 in A(x)} ||f(x1) - f(x2)||^2          (paper, eq. 4)

is then a finite weighted sum, computed exactly. ``world.map(f)`` pushes every view through an
encoder ``f`` and returns the world of features, on which :mod:`cssl.metrics` evaluates the paper's
quantities.

**Convention: ``views[i, 0]`` is the clean point ``x_i`` itself.** The paper assumes ``x in A(x)``
(Sec. 2), so every constructor of this module stores the point as its own first view; the
nearest-centre classifier of :mod:`cssl.metrics` reads ``f(x_i)`` from ``views[i, 0]``.

Constructors
------------
* :func:`random_world`: gaussian class centres, points around them, views around the points.
* :func:`scattered_views_world`: a random world where some points of every class have their views
  scattered far away, so they leave the aligned set ``S_eps`` while staying in the main part
  (the adversary of Lemma 3.1 / Lemma 3.2).
* :func:`near_threshold_world`: classes on a sphere of radius ``r`` whose centres have a chosen
  inner product, e.g. one just below the threshold of Theorem 1, eq. (2).
* :func:`lemma32_counterexample_world`: the notes' example where the intermediate bound
  ``f(x)^T mu_l >= r^2 (1 - rho_l)`` of Lemma 3.2 with the printed ``rho_l`` fails.
* :func:`lemma32_proof_world`: the printed hypothesis of Lemma 3.2 active with ``rho_0 > 1/2``.
* :func:`lemma32_slack_world`: the printed Lemma 3.2 holds only barely: a raised threshold fails.
* :func:`image_world`: images with a finite list of deterministic transforms as the views.

:func:`sample_view_triples` draws the InfoNCE triples ``(x1, x2, x^-)`` of Sec. 2 from a world.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Callable, Sequence

import torch

from ._validate import as_tensor, check_int, check_probability_vector, check_real

__all__ = [
    "impostor_world",
    "threshold_edge_world",
    "World",
    "random_world",
    "nuisance_world",
    "scattered_views_world",
    "near_threshold_world",
    "near_threshold_triangle",
    "lemma32_counterexample_world",
    "lemma32_proof_world",
    "lemma32_slack_world",
    "LEMMA32_SLACK_CONFIGS",
    "image_world",
    "sample_view_triples",
]


@dataclass(frozen=True, eq=False)
class World:
    """A finite world: views ``(N, V, D)``, labels ``(N,)``, point masses ``(N,)`` and ``K`` classes.

    Parameters
    ----------
    views : (N, V, D) array-like
        ``views[i, j]`` is the ``j``-th equiprobable augmented view of point ``i``. By the paper's
        convention ``x in A(x)``; constructors put the clean point at ``views[i, 0]`` when there is one.
    labels : (N,) integer array-like with values in ``{0, ..., K-1}``; every class must be non-empty.
    weights : (N,) array-like, optional
        Probability of each point (strictly positive, summing to 1). Defaults to uniform ``1/N``.
    num_classes : int, optional
        ``K >= 2``. Defaults to ``labels.max() + 1``.
    """

    views: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor
    num_classes: int

    def __init__(self, views, labels, weights=None, num_classes: int | None = None):
        v = as_tensor(views, "views", ndim=3)
        if v.shape[1] < 1 or v.shape[2] < 1:
            raise ValueError(f"views must have shape (N, V, D) with V >= 1 and D >= 1, got {tuple(v.shape)}")
        y = as_tensor(labels, "labels", dtype=None, ndim=1)
        if y.dtype.is_floating_point:
            if not bool((y == y.round()).all()):
                raise ValueError("labels must be integers 0..K-1, got non-integer values")
        y = y.to(torch.int64)
        if y.shape[0] != v.shape[0]:
            raise ValueError(f"labels has {y.shape[0]} entries but views has {v.shape[0]} points; "
                             "give one label per point")
        if bool((y < 0).any()):
            raise ValueError(f"labels must be nonnegative class indices, got min {int(y.min())}")
        k = int(y.max()) + 1 if num_classes is None else check_int(num_classes, "num_classes", low=2)
        if k < 2:
            raise ValueError(f"a world needs K >= 2 classes, got labels only of class 0")
        if int(y.max()) >= k:
            raise ValueError(f"labels go up to {int(y.max())} but num_classes={k}; labels must be < K")
        counts = torch.bincount(y, minlength=k)
        if bool((counts == 0).any()):
            empty = [int(c) for c in torch.nonzero(counts == 0).flatten()]
            raise ValueError(f"class(es) {empty} have no points; every latent class must be non-empty")
        if weights is None:
            w = torch.full((v.shape[0],), 1.0 / v.shape[0], dtype=torch.float64)
        else:
            w = as_tensor(weights, "weights", ndim=1)
            if w.shape[0] != v.shape[0]:
                raise ValueError(f"weights has {w.shape[0]} entries but there are {v.shape[0]} points")
            if bool((w <= 0).any()):
                raise ValueError("weights must be strictly positive point probabilities")
            if abs(float(w.sum()) - 1.0) > 1e-9:
                raise ValueError(f"weights must sum to 1, got {float(w.sum()):.12g}; pass w / w.sum()")
        object.__setattr__(self, "views", v)
        object.__setattr__(self, "labels", y)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "num_classes", k)

    # ------------------------------------------------------------------ shape
    @property
    def n_points(self) -> int:
        """Number of points ``N``."""
        return self.views.shape[0]

    @property
    def n_views(self) -> int:
        """Number of equiprobable views per point ``V``."""
        return self.views.shape[1]

    @property
    def dim(self) -> int:
        """Dimension ``D`` of a view."""
        return self.views.shape[2]

    def class_masses(self) -> torch.Tensor:
        """``p_k = P[x in C_k] = sum_{i: y_i = k} w_i`` for ``k = 0..K-1`` (paper, Sec. 2)."""
        return torch.zeros(self.num_classes, dtype=torch.float64).index_add_(0, self.labels, self.weights)

    def class_members(self, k: int) -> torch.Tensor:
        """Indices of the points of class ``k``."""
        check_int(k, "k", low=0, high=self.num_classes - 1)
        return torch.nonzero(self.labels == k).flatten()

    # ------------------------------------------------------------ transforms
    def map(self, f: Callable, *, batch_size: int = 65536) -> "World":
        """Return the world of features ``f(v)`` for every view ``v`` (no gradients, float64).

        ``f`` is any callable from a ``(B, D)`` tensor to a ``(B, d)`` tensor, for example a
        :class:`torch.nn.Module` (evaluated in ``eval`` mode on its own device and dtype).
        """
        if not callable(f):
            raise TypeError(f"f must be callable (an encoder), got {type(f).__name__}")
        check_int(batch_size, "batch_size", low=1)
        flat = self.views.reshape(-1, self.dim)
        kwargs = {}
        if isinstance(f, torch.nn.Module):
            param = next(f.parameters(), None)
            if param is not None:
                kwargs = {"device": param.device, "dtype": param.dtype}
        was_training = isinstance(f, torch.nn.Module) and f.training
        if was_training:
            f.eval()
        try:
            with torch.no_grad():
                outs = [torch.as_tensor(f(flat[i:i + batch_size].to(**kwargs)))
                        for i in range(0, flat.shape[0], batch_size)]
        finally:
            if was_training:
                f.train()
        out = torch.cat(outs).detach().to("cpu", torch.float64)
        if out.ndim != 2 or out.shape[0] != flat.shape[0]:
            raise ValueError(f"f must map a (B, {self.dim}) batch to (B, d); it returned shape {tuple(out.shape)}")
        return World(out.reshape(self.n_points, self.n_views, -1), self.labels, self.weights, self.num_classes)

    def subset(self, index) -> "World":
        """The world restricted to the points ``index`` (a mask or indices), masses renormalised."""
        idx = torch.as_tensor(index)
        w = self.weights[idx]
        return World(self.views[idx], self.labels[idx], w / w.sum(), self.num_classes)

    def __repr__(self) -> str:
        p = ", ".join(f"{float(x):.3g}" for x in self.class_masses())
        return (f"World(N={self.n_points}, V={self.n_views}, D={self.dim}, K={self.num_classes}, "
                f"p=[{p}])")


# ------------------------------------------------------------------ constructors
def _class_sizes(points_per_class, num_classes: int) -> list[int]:
    """``points_per_class`` as one size per class (an int means the same size for every class)."""
    if isinstance(points_per_class, (list, tuple)):
        if len(points_per_class) != num_classes:
            raise ValueError(f"points_per_class has {len(points_per_class)} entries but num_classes="
                             f"{num_classes}; give one size per class or a single int")
        return [check_int(n, "points_per_class[k]", low=1) for n in points_per_class]
    return [check_int(points_per_class, "points_per_class", low=1)] * num_classes


def _point_weights(labels: torch.Tensor, sizes: list[int], class_probs, random_weights: bool,
                   generator: torch.Generator) -> torch.Tensor:
    """Point masses with class masses ``p_k`` (``class_probs``, default proportional to the sizes)."""
    num_classes = len(sizes)
    if class_probs is None:
        p = torch.tensor(sizes, dtype=torch.float64) / sum(sizes)
    else:
        p = check_probability_vector(class_probs, "class_probs")
        if p.shape[0] != num_classes:
            raise ValueError(f"class_probs has {p.shape[0]} entries but num_classes={num_classes}")
    if random_weights:
        # bounded away from 0 so that no point is negligible and every class keeps real mass
        raw = 0.2 + torch.rand(labels.shape[0], generator=generator, dtype=torch.float64)
    else:
        raw = torch.ones(labels.shape[0], dtype=torch.float64)
    per_class = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, raw)
    w = raw / per_class[labels] * p[labels]
    return w / w.sum()


def _generator(seed) -> torch.Generator:
    return torch.Generator().manual_seed(check_int(seed, "seed", low=0))


def _project_to_sphere(x: torch.Tensor, radius: float) -> torch.Tensor:
    norms = x.norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("a view is the zero vector and cannot be projected onto the sphere; "
                         "change the seed or the spreads")
    return radius * x / norms


def random_world(num_classes: int, points_per_class, n_views: int, dim: int, *,
                 class_spread: float = 3.0, point_spread: float = 1.0, view_noise: float = 0.3,
                 class_probs=None, random_weights: bool = False, radius: float | None = None,
                 seed: int = 0) -> World:
    """A gaussian world: class centres ``c_k ~ N(0, class_spread^2 I)``, points
    ``x = c_k + point_spread * g``, views ``x + view_noise * g'`` with ``views[:, 0] = x``.

    The finite version of the paper's setting (Sec. 2): ``x in A(x)`` holds because the clean point is
    its own first view. Points are stored class by class (class 0 first).

    Parameters
    ----------
    num_classes : int, ``K >= 2``.
    points_per_class : int or sequence of ``K`` ints (unequal sizes give unequal ``p_k``).
    n_views : int, ``V >= 1`` views per point, the clean point included.
    dim : int, ``D >= 1``.
    class_spread, point_spread, view_noise : float >= 0, the three gaussian scales.
    class_probs : optional (K,) probability vector ``p_k``; default proportional to the class sizes.
    random_weights : bool, draw unequal point masses within each class (still summing to ``p_k``).
    radius : optional float > 0; if given every view is projected onto the sphere ``||v|| = radius``
        (so that ``f = identity`` satisfies the paper's ``||f|| = r`` of Sec. 3).
    seed : int, the world is a deterministic function of the arguments.
    """
    k = check_int(num_classes, "num_classes", low=2)
    sizes = _class_sizes(points_per_class, k)
    v = check_int(n_views, "n_views", low=1)
    d = check_int(dim, "dim", low=1)
    class_spread = check_real(class_spread, "class_spread", low=0)
    point_spread = check_real(point_spread, "point_spread", low=0)
    view_noise = check_real(view_noise, "view_noise", low=0)
    g = _generator(seed)
    labels = torch.repeat_interleave(torch.arange(k), torch.tensor(sizes))
    centres = class_spread * torch.randn(k, d, generator=g, dtype=torch.float64)
    points = centres[labels] + point_spread * torch.randn(labels.shape[0], d, generator=g, dtype=torch.float64)
    views = points[:, None, :] + view_noise * torch.randn(labels.shape[0], v, d, generator=g, dtype=torch.float64)
    views[:, 0] = points
    if radius is not None:
        views = _project_to_sphere(views, check_real(radius, "radius", low=0, low_open=True))
    weights = _point_weights(labels, sizes, class_probs, random_weights, g)
    return World(views, labels, weights, k)


def nuisance_world(seed: int = 3, nuisance_dim: int = 6, nuisance: float = 1.0) -> World:
    """The book's *nuisance world* (Chapters 5-7): 4 classes in 2 signal coordinates plus nuisance noise.

    The signal part is ``random_world(4, 24, 8, 2, class_spread=3.0, point_spread=0.5, view_noise=0.15,
    seed=seed)``: ``K = 4`` balanced classes, 24 points each, ``V = 8`` views. Each view then gets
    ``nuisance_dim`` extra coordinates of independent ``N(0, nuisance^2)`` noise (drawn from a generator
    seeded with ``seed + 100``), except view 0, the clean point, whose extra coordinates are 0 so that
    ``x in A(x)`` still holds. An encoder that reads the nuisance coordinates is badly aligned, so
    alignment has to be learned. ``D = 2 + nuisance_dim``.
    """
    seed = check_int(seed, "seed", low=0)
    nuisance_dim = check_int(nuisance_dim, "nuisance_dim", low=0)
    nuisance = check_real(nuisance, "nuisance", low=0)
    base = random_world(4, 24, 8, 2, class_spread=3.0, point_spread=0.5, view_noise=0.15, seed=seed)
    g = _generator(seed + 100)
    extra = nuisance * torch.randn(base.n_points, base.n_views, nuisance_dim, generator=g, dtype=torch.float64)
    extra[:, 0] = 0.0  # x is its own first view
    return World(torch.cat([base.views, extra], dim=2), base.labels, base.weights, base.num_classes)


def _bad_counts(sizes: list[int], bad_fraction: float) -> list[int]:
    return [int(round(bad_fraction * n)) for n in sizes]


def _bad_index(sizes: list[int], counts: list[int]) -> torch.Tensor:
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    parts = [torch.arange(s, s + m) for s, m in zip(starts, counts)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)


def scattered_views_world(num_classes: int, points_per_class, n_views: int, dim: int, *,
                          bad_fraction: float = 0.2, scatter: float = 10.0, class_spread: float = 3.0,
                          point_spread: float = 1.0, view_noise: float = 0.3, class_probs=None,
                          random_weights: bool = False, radius: float | None = None,
                          seed: int = 0) -> World:
    """A :func:`random_world` whose "bad" points have their views scattered far away.

    In each class the **first** ``round(bad_fraction * n_k)`` points are bad: their views
    ``1..V-1`` become ``x + scatter * g`` while ``views[i, 0] = x`` stays the clean point. Their
    augmented distance ``d_A`` (eq. (1)) to the rest of the class is unchanged, so they stay in the
    main part ``C_k^0`` of Definition 1, but ``sup_{x1,x2 in A(x)} ||f(x1) - f(x2)||`` is large, so
    they leave ``S_eps`` and feed ``R_eps = P[x not in S_eps]`` -- the adversary of Lemma 3.1 and of
    Step 3 of Lemma 3.2 (the notes' "bad main-part points with scattered views").

    Parameters are those of :func:`random_world` plus ``bad_fraction in [0, 1]`` and
    ``scatter >= 0``. Needs ``n_views >= 2`` when a point is bad.
    """
    bad_fraction = check_real(bad_fraction, "bad_fraction", low=0, high=1)
    scatter = check_real(scatter, "scatter", low=0)
    world = random_world(num_classes, points_per_class, n_views, dim, class_spread=class_spread,
                         point_spread=point_spread, view_noise=view_noise, class_probs=class_probs,
                         random_weights=random_weights, radius=None, seed=seed)
    sizes = _class_sizes(points_per_class, world.num_classes)
    bad = _bad_index(sizes, _bad_counts(sizes, bad_fraction))
    if bad.numel() > 0 and world.n_views < 2:
        raise ValueError("scattered views need n_views >= 2 (view 0 is the clean point itself)")
    views = world.views.clone()
    # a fresh stream (seed + 1) so that the good points are identical to random_world(seed)
    g = _generator(check_int(seed, "seed", low=0) + 1)
    noise = torch.randn(bad.numel(), world.n_views - 1, world.dim, generator=g, dtype=torch.float64)
    views[bad, 1:] = views[bad, :1] + scatter * noise
    if radius is not None:
        views = _project_to_sphere(views, check_real(radius, "radius", low=0, low_open=True))
    return World(views, world.labels, world.weights, world.num_classes)


def _equiangular_directions(num_classes: int, cosine: float) -> torch.Tensor:
    """``K`` unit vectors in ``R^K`` with pairwise inner product ``cosine`` (needs ``cosine >= -1/(K-1)``)."""
    # v_k = a e_k + b 1 with a^2 = 1 - c and K b^2 + 2 a b = c: continuous in c (an eigen-
    # decomposition is not, its degenerate eigenvectors jump), which the bisection relies on
    a = math.sqrt(1.0 - cosine)
    b = (-a + math.sqrt(max(a * a + num_classes * cosine, 0.0))) / num_classes
    return a * torch.eye(num_classes, dtype=torch.float64) + b


def near_threshold_world(num_classes: int, points_per_class, n_views: int, dim: int, *,
                         centre_cosine: float | None = None, target_inner_product: float | None = None,
                         radius: float = 1.0, point_spread: float = 0.1, view_spread: float = 0.05,
                         bad_fraction: float = 0.0, class_probs=None, random_weights: bool = False,
                         seed: int = 0, tol: float = 1e-9) -> World:
    """A world on the sphere ``||v|| = r`` whose class centres sit at a chosen inner product.

    Class directions ``c_k`` are equiangular (``c_k^T c_l = centre_cosine`` for ``k != l``, randomly
    rotated into ``R^D``); points are ``r * normalize(c_k + point_spread * g)`` and views
    ``r * normalize(x / r + view_spread * g')``, with ``views[:, 0] = x``. The first
    ``round(bad_fraction * n_k)`` points of each class get views spread uniformly over the sphere
    (they leave ``S_eps`` but keep ``d_A = 0`` to themselves).

    With ``f = identity`` (``||f|| = r``, ``L = 1``) the quantities of Theorem 1 are exact on this world.
    The spread shrinks the class centres ``mu_k`` (Sec. 2), so ``mu_k^T mu_l`` is not
    ``r^2 * centre_cosine``; pass ``target_inner_product`` instead of ``centre_cosine`` to have the
    cosine found by bisection (same noise draws) such that, for ``f = identity``,
    ``max_{k != l} mu_k^T mu_l`` equals the target within ``tol`` -- e.g. just below or above the
    threshold ``r^2 (1 - rho_max - sqrt(2 rho_max) - Delta_mu / 2)`` of Theorem 1, eq. (2).
    Requires ``dim >= num_classes``.
    """
    k = check_int(num_classes, "num_classes", low=2)
    sizes = _class_sizes(points_per_class, k)
    v = check_int(n_views, "n_views", low=1)
    d = check_int(dim, "dim", low=k)
    r = check_real(radius, "radius", low=0, low_open=True)
    point_spread = check_real(point_spread, "point_spread", low=0)
    view_spread = check_real(view_spread, "view_spread", low=0)
    bad_fraction = check_real(bad_fraction, "bad_fraction", low=0, high=1)
    tol = check_real(tol, "tol", low=0, low_open=True)
    if (centre_cosine is None) == (target_inner_product is None):
        raise ValueError("give exactly one of centre_cosine and target_inner_product")
    lowest = -1.0 / (k - 1)
    g = _generator(seed)
    labels = torch.repeat_interleave(torch.arange(k), torch.tensor(sizes))
    n = labels.shape[0]
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    point_noise = torch.randn(n, d, generator=g, dtype=torch.float64)
    view_noise = torch.randn(n, v, d, generator=g, dtype=torch.float64)
    bad = _bad_index(sizes, _bad_counts(sizes, bad_fraction))
    if bad.numel() > 0 and v < 2:
        raise ValueError("bad points need n_views >= 2 (view 0 is the clean point itself)")
    bad_dirs = torch.randn(bad.numel(), max(v - 1, 0), d, generator=g, dtype=torch.float64)
    weights = _point_weights(labels, sizes, class_probs, random_weights, g)

    def build(cosine: float) -> torch.Tensor:
        dirs = torch.zeros(k, d, dtype=torch.float64)
        dirs[:, :k] = _equiangular_directions(k, cosine)
        dirs = dirs @ rotation.T
        points = _project_to_sphere(dirs[labels] + point_spread * point_noise, 1.0)
        views = _project_to_sphere(points[:, None, :] + view_spread * view_noise, r)
        views[:, 0] = r * points
        if bad.numel() > 0:
            views[bad, 1:] = _project_to_sphere(bad_dirs, r)
        return views

    def max_inner(views: torch.Tensor) -> float:
        means = (weights[:, None] * views.mean(dim=1))
        mu = torch.zeros(k, d, dtype=torch.float64).index_add_(0, labels, means)
        mu = mu / torch.zeros(k, dtype=torch.float64).index_add_(0, labels, weights)[:, None]
        gram = mu @ mu.T
        return float(gram[~torch.eye(k, dtype=torch.bool)].max())

    if centre_cosine is not None:
        c = check_real(centre_cosine, "centre_cosine", low=lowest, high=1)
        return World(build(c), labels, weights, k)
    target = check_real(target_inner_product, "target_inner_product")
    lo, hi = lowest, 1.0
    f_lo, f_hi = max_inner(build(lo)), max_inner(build(hi))
    if not f_lo - tol <= target <= f_hi + tol:
        raise ValueError(f"target_inner_product={target:g} is outside the range [{f_lo:.6g}, {f_hi:.6g}] "
                         "reachable with these spreads; pick a target inside it")
    best = lo if abs(f_lo - target) <= abs(f_hi - target) else hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        f_mid = max_inner(build(mid))
        if abs(f_mid - target) <= tol:
            best = mid
            break
        if f_mid < target:
            lo = mid
        else:
            hi = mid
        best = mid
    views = build(best)
    if abs(max_inner(views) - target) > tol:
        raise ValueError(f"bisection could not reach target_inner_product={target:g} within tol={tol:g} "
                         "(the max inner product is not monotone in the cosine here); use centre_cosine")
    return World(views, labels, weights, k)


def impostor_world(world: World, *, point: int = 0, rival_class: int = 1, offset: float = 0.02) -> World:
    """``world`` with the clean view of ``point`` moved next to (not onto) the first point of ``rival_class``.

    View 0 of ``point`` becomes ``r * normalize(v + offset * roll(v))`` with ``v`` the rival's clean
    view, so the point is misclassified by the nearest centre, leaves ``S_eps`` (its other views stay in
    its own class) and keeps ``d_A = 0`` to its own class's main part: on a world with ``sigma = 1``
    Theorem 1's bound ``(1 - sigma) + R_eps`` is then attained, ``Err(G_f) = R_eps``. The augmented
    sets of different classes stay disjoint for ``offset > 0``.
    """
    n = check_int(point, "point", low=0)
    if n >= world.views.shape[0]:
        raise ValueError(f"point={n} is not a point of the world (it has {world.views.shape[0]})")
    rival_class = check_int(rival_class, "rival_class", low=0)
    if rival_class >= world.num_classes or rival_class == int(world.labels[n]):
        raise ValueError(f"rival_class={rival_class} must be another class of the world than the point's")
    offset = check_real(offset, "offset", low=0, low_open=True)
    views = world.views.clone()
    rival = views[int(world.class_members(rival_class)[0]), 0]
    radius = float(rival.norm())
    views[n, 0] = radius * torch.nn.functional.normalize(rival + offset * rival.roll(1), dim=0)
    return World(views, world.labels, world.weights, world.num_classes)


def threshold_edge_world(num_classes: int, points_per_class, n_views: int, dim: int, *, delta: float,
                         eps: float, slack: float = 0.01, coefficient: str = "paper",
                         impostor: bool = True, point_spread: float = 0.005, view_spread: float = 0.002,
                         seed: int = 0, iterations: int = 8):
    r"""A world where condition (2) of Theorem 1 holds with a chosen small slack (identity encoder).

    Builds :func:`near_threshold_world` with ``target_inner_product`` and iterates
    ``target <- target + (threshold - max_{k != l} mu_k^T mu_l) - slack`` (the threshold
    ``r^2 (1 - rho_max - sqrt(2 rho_max) - Delta_mu / 2)`` of eq. (2) moves with the world) until the
    slack of (2) is ``slack`` within 1e-3 (``r = L = 1``). With ``impostor`` the result goes through
    :func:`impostor_world`, so that ``Err(G_f)`` equals the bound ``(1 - sigma) + R_eps`` while (2)
    barely holds: the worlds on which a check of Theorem 1 is tightest. Returns ``(world, check)`` with
    ``check`` the :func:`cssl.bounds.theorem1_check` of the world at ``(delta, eps)`` with the exact
    ``sigma`` of :func:`cssl.concentration.main_parts`. Raises ``ValueError`` when the threshold is out
    of reach of the centres (below ``-1/(K-1)`` and the spreads' floor).
    """
    from .bounds import theorem1_check
    from .concentration import main_parts

    slack = check_real(slack, "slack", low=0, low_open=True)
    iterations = check_int(iterations, "iterations", low=1)
    k = check_int(num_classes, "num_classes", low=2)
    target, chk = -1.0 / (k - 1) + 0.05, None
    for _ in range(iterations):
        world = near_threshold_world(k, points_per_class, n_views, dim, target_inner_product=target,
                                     point_spread=point_spread, view_spread=view_spread, seed=seed)
        if impostor:
            world = impostor_world(world)
        sigma = main_parts(world, delta, method="exact").sigma
        chk = theorem1_check(world, sigma, delta, eps, 1.0, 1.0, coefficient=coefficient)
        gap = chk.threshold - chk.max_centre_inner_product
        if abs(gap - slack) <= 1e-3:
            return world, chk
        target += gap - slack
    raise ValueError(f"condition (2) could not be brought to slack {slack:g} (last slack "
                     f"{chk.threshold - chk.max_centre_inner_product:.3g}, threshold {chk.threshold:.3g}); "
                     "the threshold may be below the reachable centre inner products")


def near_threshold_triangle(spread: float, *, seed: int = 0) -> World:
    """The near-threshold worlds of Chapter 12: three equiangular classes on the unit sphere of ``R^3``.

    ``near_threshold_world(3, 20, 5, 3, centre_cosine=-1/2, point_spread=spread,
    view_spread=spread/2, bad_fraction=0.05, seed=seed)``: class directions at cosine ``-1/2`` (a
    triangle, ``c_k^T c_l = -1/(K - 1)``), 20 points per class spread by ``spread`` around them, five
    views each (the clean point and four at ``spread / 2``), and 5 % of the points with views scattered
    over the sphere, so ``R_eps >= 0.05``. With the identity encoder (``L = 1``) condition (2) of
    Theorem 1 holds at some ``(delta, eps)`` for the tightest spreads (0.01 and 0.02) and at none from
    0.05 on (Chapter 12, Observation "Theorem 1 on near-threshold worlds"); Chapter 11 uses the tightest
    one as the control of "condition (2) fails on every trained encoder".
    """
    return near_threshold_world(3, 20, 5, 3, centre_cosine=-0.5, point_spread=spread,
                                view_spread=spread / 2, bad_fraction=0.05, seed=seed)


def lemma32_counterexample_world(q: float, *, n_views: int = 50, num_classes: int = 2,
                                 class_mass: float | None = None) -> World:
    """The notes' counterexample (§3.2) to the intermediate bound of Lemma 3.2 with the printed ``rho_l``.

    World in ``R^K`` with ``u = e_0``. Class 0 (mass ``p_0``, default ``1/K``) has a good point whose
    ``V`` views are all ``u`` (mass ``(1 - q) p_0``) and, when ``q > 0``, a bad point with views
    ``{u} ∪ {-u}^{x(V-1)}`` (mass ``q p_0``). Class ``k >= 1`` is one point with all views ``e_k``.

    With ``f = identity`` (``r = 1``, ``L = 1``): every two class-0 points share the view ``u``, so
    ``sigma = 1`` at ``delta = 0`` (Definition 1); at ``eps = 0`` only the bad point leaves ``S_eps``,
    ``R_0 = q p_0``. The class centre is ``mu_0 = (1 - 2q + 2q/V) u``, so every class-0 point has

        f(x)^T mu_0 = 1 - 2q + 2q/V        (= 1 - 2q + 2q/50 for V = 50),

    below the paper's ``1 - rho_0 = 1 - q`` (``rho_0`` of Lemma 3.2 with ``R_eps/p_0 = q``) for every
    ``q in (0, 1)`` when ``V >= 3`` (``V = 2`` gives equality), and above the corrected
    ``1 - tilde rho_0 = 1 - 2q`` (coefficient ``2 - a``).

    ``q in [0, 1)``; ``q = 0`` drops the bad point.
    """
    q = check_real(q, "q", low=0, high=1, high_open=True)
    v = check_int(n_views, "n_views", low=2)
    k = check_int(num_classes, "num_classes", low=2)
    p0 = 1.0 / k if class_mass is None else check_real(class_mass, "class_mass", low=0, high=1,
                                                        low_open=True, high_open=True)
    eye = torch.eye(k, dtype=torch.float64)
    u = eye[0]
    views = [u.expand(v, k)]
    labels = [0]
    weights = [p0 * (1 - q)]
    if q > 0:
        if p0 * q == 0.0:
            raise ValueError(f"q={q:g} is so small that the bad point's mass q * p_0 underflows to 0; "
                             "use q = 0 (no bad point) or a larger q")
        views.append(torch.cat([u[None], (-u).expand(v - 1, k)]))
        labels.append(0)
        weights.append(p0 * q)
    for c in range(1, k):
        views.append(eye[c].expand(v, k))
        labels.append(c)
        weights.append((1 - p0) / (k - 1))
    w = torch.tensor(weights, dtype=torch.float64)
    return World(torch.stack(views).clone(), torch.tensor(labels), w / w.sum(), k)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def lemma32_proof_world(h: float, *, eps: float = 0.01, spread: float = 2.0,
                        direction: float = 0.0) -> World:
    """A world where the printed hypothesis of Lemma 3.2 holds for class 0 with ``rho_0 = h + 2 eps > 1/2``.

    In ``R^3`` with ``u = e_2`` and the tangent direction ``d = (cos phi, sin phi, 0)``,
    ``phi = direction``. Class 0 (mass 2/3) has two aligned good points (views ``u`` and ``u`` tilted
    by ``0.4 eps`` towards ``d``; mass ``(1 - h)/2`` of the class each) and three points of the main part
    that are not aligned (views ``u`` and ``u`` tilted by ``spread * eps * (1, 2, -1)`` towards ``d``;
    mass ``h/3`` of the class each). Class 1 (mass 1/3) is two points with all views ``-u``.

    With ``f = identity`` (``r = L = 1``): every point of class 0 has the view ``u``, so ``sigma = 1``
    at ``delta = 0``; at this ``eps`` only the three spread points leave ``S_eps``, so
    ``R_eps / p_0 = h`` and the printed ``rho_0 = h + 2 eps`` (Lemma 3.2). A mass fraction ``h`` of
    class 0 lies outside ``C_0^0 cap S_eps``: the regime ``rho_0 > 1/2`` that the book's first proof
    does not cover (thm-book-lem32-all covers it). ``h`` in (0, 1), ``eps > 0``, ``spread > 1/2``
    (so that the spread points are not aligned) and small enough that the hypothesis holds.
    """
    h = check_real(h, "h", low=0, high=1, low_open=True, high_open=True)
    eps = check_real(eps, "eps", low=0, low_open=True)
    spread = check_real(spread, "spread", low=0.5, low_open=True)
    phi = check_real(direction, "direction")
    u = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    d = torch.tensor([math.cos(phi), math.sin(phi), 0.0], dtype=torch.float64)

    def tilt(x: float) -> torch.Tensor:
        return _unit(u + x * d)

    views = [[u, u, u, u], [u, tilt(0.4 * eps), u, u]]
    views += [[u, tilt(spread * eps), tilt(2 * spread * eps), tilt(-spread * eps)]] * 3
    views += [[-u, -u, -u, -u]] * 2
    weights = [(1 - h) / 2 * 2 / 3] * 2 + [h / 3 * 2 / 3] * 3 + [1 / 6] * 2
    w = torch.tensor(weights, dtype=torch.float64)
    stacked = torch.stack([torch.stack(v) for v in views])
    return World(stacked, [0] * 5 + [1] * 2, w / w.sum())


#: Configurations found by minimising, in the relaxation of the book's proof of Lemma 3.2 (a = 0,
#: sigma = 1), the violation of the hypothesis over configurations whose good point is misclassified by
#: a margin 0.02 (SLSQP, 30 random starts, seed 7): h -> (mean of the bad views B, rival centre n).
LEMMA32_SLACK_CONFIGS = {
    0.55: ((0.8884038771566941, 0.07169162743408967, -0.4534301066413711),
           (-0.818749010423584, -0.06607054087697083, 0.5703373927410218)),
    0.65: ((-0.4402759611487872, 0.8217689528531505, -0.3617359066517288),
           (0.42530997251032426, -0.7938365020591565, 0.43466657943963233)),
    0.75: ((0.3061278385684544, -0.9150014360466886, -0.2627891135041258),
           (-0.3026965805756769, 0.9047463756104341, 0.29968112374040345)),
}


def lemma32_slack_world(h: float, bad_mean=None, rival_centre=None, *, n_views: int = 201,
                        rival_mass: float = 1e-3) -> World:
    """A world where the conclusion of Lemma 3.2 fails for class 0 and the printed hypothesis barely fails.

    In ``R^3`` with ``u = e_2``: class 0 has a good point with all views ``u`` (mass ``(1 - h) p_0``)
    and a point of the main part that is not aligned, with views ``u, b, ..., b`` where
    ``b = (V B - u)/|V B - u|`` (mass ``h p_0``), so its views average to about ``B`` (``bad_mean``);
    class 1 is one light point (mass ``rival_mass``) whose views alternate between two unit vectors
    averaging to ``n`` (``rival_centre``, ``|n| <= 1``; for odd ``V`` one extra view ``n/|n|``, so the
    average is about ``n``). ``p_0 = 1 - rival_mass``.

    With ``f = identity`` (``r = L = 1``), ``delta = eps = 0``: ``sigma = 1``, ``rho_0 = h`` (printed).
    The defaults take ``(B, n)`` from :data:`LEMMA32_SLACK_CONFIGS` (``h`` in 0.55, 0.65, 0.75): there
    the good point is nearer the rival centre, so Lemma 3.2 forces its hypothesis to fail; it fails by
    ``c*`` only (about ``0.55 - 0.68 r^2``), and the lemma with its threshold raised by more than ``c*``
    is false on this world (thm-book-lem32-all, sharpness).
    """
    h = check_real(h, "h", low=0, high=1, low_open=True, high_open=True)
    v = check_int(n_views, "n_views", low=3)
    p1 = check_real(rival_mass, "rival_mass", low=0, high=1, low_open=True, high_open=True)
    if bad_mean is None or rival_centre is None:
        key = next((k for k in LEMMA32_SLACK_CONFIGS if abs(k - h) < 1e-12), None)
        if key is None:
            raise ValueError(f"no stored configuration for h={h:g}; give bad_mean and rival_centre, or use "
                             f"h in {sorted(LEMMA32_SLACK_CONFIGS)}")
        bad_mean, rival_centre = LEMMA32_SLACK_CONFIGS[key]
    B = as_tensor(bad_mean, "bad_mean").to(torch.float64).reshape(-1)
    n = as_tensor(rival_centre, "rival_centre").to(torch.float64).reshape(-1)
    if B.numel() != 3 or n.numel() != 3:
        raise ValueError("bad_mean and rival_centre must be vectors of R^3")
    rn = float(n.norm())
    if rn > 1 or rn == 0:
        raise ValueError(f"rival_centre must have norm in (0, 1], got {rn:g}")
    u = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    b = _unit(v * B - u)
    good = u.expand(v, 3)
    bad = torch.cat([u[None], b.expand(v - 1, 3)])
    perp = _unit(torch.linalg.cross(n, u + torch.tensor([0.3, 0.1, 0.0], dtype=torch.float64)))
    side = math.sqrt(max(1 - rn * rn, 0.0))
    n_plus, n_minus = _unit(n) * rn + perp * side, _unit(n) * rn - perp * side
    rival = [n_plus, n_minus] * (v // 2) + ([_unit(n)] if v % 2 else [])
    views = torch.stack([good, bad, torch.stack(rival)])
    p0 = 1 - p1
    w = torch.tensor([(1 - h) * p0, h * p0, p1], dtype=torch.float64)
    return World(views, [0, 0, 1], w)


def image_world(images, labels, transforms: Sequence[Callable], *, weights=None,
                num_classes: int | None = None) -> World:
    """A world of images whose views are a **finite** list of deterministic transforms.

    ``A(x) = {x, t_1(x), ..., t_m(x)}``: each transform maps one image ``(C, H, W)`` to an image of
    the same shape; the views are flattened to ``D = C * H * W``. So that ``x in A(x)`` (Sec. 2) the
    identity is prepended as view 0 unless ``transforms[0]`` already returns every image unchanged.
    Views are equiprobable, so a repeated transform counts twice.

    Parameters
    ----------
    images : (N, C, H, W) array-like.
    labels : (N,) class indices; every class non-empty.
    transforms : sequence of callables ``image -> image`` (may be empty: then ``A(x) = {x}``).
    weights, num_classes : as in :class:`World`.
    """
    x = as_tensor(images, "images", ndim=4)
    if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
        raise TypeError(f"transforms must be a list of callables image -> image, got {type(transforms).__name__}")
    outs = []
    for j, t in enumerate(transforms):
        if not callable(t):
            raise TypeError(f"transforms[{j}] is a {type(t).__name__}, not a callable image -> image")
        out = torch.stack([torch.as_tensor(t(img)).to(torch.float64) for img in x])
        if out.shape != x.shape:
            raise ValueError(f"transforms[{j}] changed the image shape from {tuple(x.shape[1:])} to "
                             f"{tuple(out.shape[1:])}; views must be comparable images of one shape")
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"transforms[{j}] produced NaN or infinite pixels")
        outs.append(out)
    if not outs or not torch.equal(outs[0], x):
        outs.insert(0, x)
    views = torch.stack(outs, dim=1).reshape(x.shape[0], len(outs), -1)
    return World(views, labels, weights, num_classes)


def sample_view_triples(world: World, batch_size: int, generator: torch.Generator | None = None):
    """Draw the InfoNCE triples of Sec. 2: ``x ~ w``, ``x1, x2 ~ U(A(x))`` independently, ``x^- ~ U(A(x'))``.

    ``x'`` is an independent draw from the point masses ``w`` (it may equal ``x``, as in the paper's
    expectation ``E_{x, x'}``), and the two positives may be the same view. Returns
    ``(x1, x2, x_neg, y)`` with three ``(B, D)`` tensors in the world's dtype (float64) and the labels
    ``y`` of ``x``, shape ``(B,)``. Deterministic given ``generator``.
    """
    if not isinstance(world, World):
        raise TypeError(f"world must be a cssl.World, got {type(world).__name__}")
    b = check_int(batch_size, "batch_size", low=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    idx = torch.multinomial(world.weights, b, replacement=True, generator=generator)
    idx_neg = torch.multinomial(world.weights, b, replacement=True, generator=generator)
    j1, j2, j_neg = torch.randint(world.n_views, (3, b), generator=generator)
    views = world.views
    return views[idx, j1], views[idx, j2], views[idx_neg, j_neg], world.labels[idx]
