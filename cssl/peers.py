"""Peer theories of contrastive learning, computed on the same feature worlds as the paper's quantities.

Chapter 11 puts the generalisation theory of Huang et al. (2023) next to four others and evaluates
every one of them on the same trained encoders (feature worlds of :func:`cssl.study.encoder_world`):

* **Arora et al. (2019)**, *A theoretical analysis of contrastive unsupervised representation
  learning*: the collision probability ``tau`` (:func:`collision_probability`), the logistic loss
  (:func:`logistic_loss`), the mean-classifier loss ``L_sup^mu`` (:func:`mean_classifier_loss`), the
  unsupervised loss ``L_un`` with its split over ``c+ = c-`` / ``c+ != c-``
  (:func:`contrastive_unsupervised_loss`) and the bound of their Lemma 4.3 (:func:`arora_bound`);
* **Wang and Isola (2020)**: alignment and uniformity live in :mod:`cssl.metrics`;
* **HaoChen et al. (2021)**: the exact population spectral contrastive loss of a feature world
  (:func:`spectral_loss_exact`), the augmentation graph of a world whose views repeat
  (:func:`view_ids`, :func:`augmentation_graph`, :func:`normalized_adjacency`,
  :func:`laplacian_eigenvalues`), the label noise of augmentation ``alpha``
  (:func:`augmentation_label_noise`), the population minimiser of the spectral loss
  (:func:`spectral_minimiser`) and the ratio ``alpha / lambda_{k+1}`` of their bound
  (:func:`haochen_ratio`); :func:`token_world` is a small world whose augmentation graph is exact;
* **Wang et al. (2022)**, *Chaos is a ladder*: the book's reading of their confusion measure of
  augmented views (:func:`confusion_ratio`).

``cssl.study.run_grid(..., keep_worlds=True)`` keeps the feature worlds it measures, so that every
quantity above can be computed on the very encoders whose kNN accuracy the grid reports.

All expectations over a world are exact finite sums in float64 (``E_x`` weights point ``i`` by ``w_i``
and views are equiprobable), except :func:`contrastive_unsupervised_loss`, a Monte Carlo estimate that
returns its standard error.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ._validate import as_tensor, check_int, check_real
from .metrics import _check_world, class_centres
from .worlds import World

__all__ = [
    "collision_probability",
    "logistic_loss",
    "mean_classifier_loss",
    "mean_classifier_pair_error",
    "UnsupervisedLoss",
    "contrastive_unsupervised_loss",
    "arora_bound",
    "spectral_loss_exact",
    "view_ids",
    "shared_views",
    "augmentation_graph",
    "normalized_adjacency",
    "laplacian_eigenvalues",
    "augmentation_label_noise",
    "spectral_minimiser",
    "haochen_ratio",
    "token_world",
    "confusion_ratio",
]


# ------------------------------------------------------------------------------- Arora et al. 2019
def collision_probability(p) -> float:
    """``tau = P_{c+, c- ~ rho^2}[c+ = c-] = sum_c rho_c^2`` (Arora et al. 2019, Sec. 4, used in Lemma 4.3).

    ``p`` is the vector of class masses ``rho_c`` (nonnegative, summing to 1, at least one entry).
    ``tau`` lies in ``[1/K, 1]``: it is ``1/K`` for balanced classes and 1 for a single class.
    """
    t = as_tensor(p, "p", ndim=1)
    if bool((t < 0).any()):
        raise ValueError(f"p must have nonnegative entries, got min {float(t.min()):g}")
    if abs(float(t.sum()) - 1.0) > 1e-9:
        raise ValueError(f"p must sum to 1, got {float(t.sum()):.12g}; normalise it first (p / p.sum())")
    return float(t.square().sum())


def logistic_loss(v):
    """Arora et al.'s logistic loss with one negative, ``l(v) = log2(1 + exp(-v))`` (Sec. 2).

    Base 2 makes ``l(0) = 1``, which gives the ``tau`` term of Lemma 4.3 exactly; ``l`` is convex and
    decreasing, and ``l(v) >= 1[v <= 0]``, so the loss upper-bounds the 0-1 error. Accepts a number,
    numpy array or tensor (finite values); returns the same kind (float64).
    """
    if isinstance(v, torch.Tensor):
        t = as_tensor(v, "v")
        return torch.nn.functional.softplus(-t) / math.log(2.0)
    a = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("v contains NaN or infinite values; expected finite numbers")
    out = np.logaddexp(0.0, -a) / math.log(2.0)
    return float(out) if out.ndim == 0 else out


def _pair_margins(world: World) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``f(x)^T (mu_y - mu_c)`` for every view and class ``c`` (N, V, K), the pair weights and ``tau``."""
    mu = class_centres(world)
    p = world.class_masses()
    tau = float(p.square().sum())
    if tau >= 1.0 - 1e-12:
        raise ValueError("Arora et al.'s tasks need two classes with positive mass (tau < 1)")
    scores = world.views @ mu.T  # (N, V, K)
    own = scores.gather(2, world.labels[:, None, None].expand(-1, world.n_views, 1))
    margins = own - scores
    # weight of (point i, rival class c): w_i p_c / (1 - tau), rival != own class
    pair_w = world.weights[:, None] * p[None, :] / (1.0 - tau)
    pair_w = pair_w.scatter(1, world.labels[:, None], 0.0)
    return margins, pair_w, torch.tensor(tau, dtype=torch.float64)


def mean_classifier_loss(world: World) -> float:
    """The mean-classifier loss ``L_sup^mu(f)`` of Arora et al. (2019), Sec. 2.1 and 4, exactly.

    Tasks are pairs of classes ``(c+, c-) ~ rho^2`` conditioned on ``c+ != c-`` (uniform over the two
    classes of a task), the mean classifier has rows ``mu_c = E_{x ~ D_c} f(x)`` and::

        L_sup^mu(f) = E_{(c+, c-) ~ rho^2 | c+ != c-} E_{x ~ D_c+} l(f(x)^T (mu_c+ - mu_c-))

    with the logistic loss ``l`` of :func:`logistic_loss`. Here ``D_c`` is the distribution of a random
    view of a random point of class ``c`` (all ``V`` views, masses ``w_i``), so ``mu_c`` are the class
    centres of :func:`cssl.metrics.class_centres` -- the same centres as the paper's ``G_f``.
    Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    margins, pair_w, _ = _pair_margins(world)
    per = logistic_loss(margins).mean(dim=1)  # (N, K): mean over the equiprobable views
    return float((pair_w * per).sum())


def mean_classifier_pair_error(world: World) -> float:
    """0-1 error of the mean classifier averaged over Arora et al.'s binary tasks (ties count as errors).

    ``E_{(c+, c-) ~ rho^2 | c+ != c-} P_{x ~ D_c+}[f(x)^T mu_c+ - ... <= f(x)^T mu_c- ...]`` with the margin
    ``f(x)^T (mu_c+ - mu_c-) <= 0`` counted as an error. Since ``l(v) >= 1[v <= 0]``, it is at most
    :func:`mean_classifier_loss`. Takes a feature world.
    """
    world = _check_world(world)
    margins, pair_w, _ = _pair_margins(world)
    per = (margins <= 0).to(torch.float64).mean(dim=1)
    return float((pair_w * per).sum())


_CHUNK = 16384


class UnsupervisedLoss(NamedTuple):
    """Monte Carlo estimate of Arora et al.'s ``L_un`` and its split (see :func:`contrastive_unsupervised_loss`)."""

    L_un: float
    L_un_neq: float
    L_un_eq: float
    se: float
    se_neq: float
    frac_eq: float
    n_samples: int
    positives: str


def contrastive_unsupervised_loss(world: World, *, positives: str = "class", n_samples: int = 200_000,
                                  generator: torch.Generator | None = None) -> UnsupervisedLoss:
    """Arora et al.'s unsupervised loss ``L_un(f) = E l(f(x)^T (f(x+) - f(x-)))`` (Sec. 2), by Monte Carlo.

    Each sample draws an anchor point ``i ~ w`` and a uniform view ``x`` of it, a negative point
    ``i- ~ w`` (any class, possibly ``i``) and a uniform view ``x-`` of it, and a positive ``x+``:

    * ``positives="class"`` -- **Arora et al.'s assumption**: ``x+`` is an independent draw from the
      anchor's class, ``i+ ~ w`` restricted to ``C_y(i)``, uniform view. Then ``(x, x+) ~ D_sim`` and
      ``x, x+`` are independent given the class, which Lemma 4.3 needs;
    * ``positives="augmentation"`` -- SimCLR's positives: ``x+`` is an independent uniform view of the
      **same** point ``i``. ``x`` and ``x+`` are then not independent given the class, and Lemma 4.3's
      Jensen step (``E[f(x+) | x] = mu_c``) no longer applies.

    Returns :class:`UnsupervisedLoss`: ``L_un``, ``L_un_neq = E[l | c+ != c-]``, ``L_un_eq = E[l | c+ = c-]``,
    their standard errors ``se``, ``se_neq`` (sample std / sqrt(n)), the fraction of samples with
    ``c+ = c-`` (an estimate of ``tau``), ``n_samples`` and ``positives``. Deterministic given
    ``generator`` (default seed 0). Takes a feature world; ``n_samples >= 2``.
    """
    world = _check_world(world)
    if positives not in ("class", "augmentation"):
        raise ValueError(f"positives must be 'class' (Arora et al.'s D_sim) or 'augmentation', got {positives!r}")
    n = check_int(n_samples, "n_samples", low=2)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    w, y, views = world.weights, world.labels, world.views
    v = world.n_views
    i = torch.multinomial(w, n, replacement=True, generator=generator)
    i_neg = torch.multinomial(w, n, replacement=True, generator=generator)
    if positives == "augmentation":
        i_pos = i
    else:
        order = torch.argsort(y, stable=True)
        cum = torch.cumsum(w[order], 0)
        masses = world.class_masses()
        start = torch.cumsum(masses, 0) - masses  # mass before each class in the sorted order
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        target = start[y[i]] + u * masses[y[i]]
        pos = torch.searchsorted(cum, target).clamp_max(len(order) - 1)
        # guard the rounding at a class boundary: stay inside the anchor's class
        members_end = torch.cumsum(torch.bincount(y, minlength=world.num_classes), 0) - 1
        members_start = members_end - torch.bincount(y, minlength=world.num_classes) + 1
        pos = torch.maximum(torch.minimum(pos, members_end[y[i]]), members_start[y[i]])
        i_pos = order[pos]
    j, j_pos, j_neg = torch.randint(v, (3, n), generator=generator)
    margins = torch.empty(n, dtype=torch.float64)
    for s in range(0, n, _CHUNK):  # blocks keep memory at O(_CHUNK d) whatever n_samples is
        b = slice(s, s + _CHUNK)
        margins[b] = (views[i[b], j[b]] * (views[i_pos[b], j_pos[b]] - views[i_neg[b], j_neg[b]])).sum(dim=1)
    loss = logistic_loss(margins)
    eq = y[i_neg] == y[i]
    neq_loss = loss[~eq]
    if neq_loss.numel() < 2:
        raise ValueError("fewer than two samples with c+ != c-; use more samples or a world with more classes")
    eq_loss = loss[eq]
    sd = lambda t: float(t.std(unbiased=True) / math.sqrt(t.numel())) if t.numel() > 1 else float("nan")
    return UnsupervisedLoss(L_un=float(loss.mean()), L_un_neq=float(neq_loss.mean()),
                            L_un_eq=float(eq_loss.mean()) if eq_loss.numel() else float("nan"),
                            se=sd(loss), se_neq=sd(neq_loss), frac_eq=float(eq.double().mean()),
                            n_samples=n, positives=positives)


def arora_bound(L_un, tau):
    """The bound of Arora et al. (2019), Lemma 4.3: ``L_sup^mu(f) <= (L_un(f) - tau) / (1 - tau)``.

    Valid for every ``f`` when ``L_un`` uses positives drawn independently from the anchor's latent
    class (their ``D_sim``) and ``l(0) = 1``; their Theorem 4.1 adds a generalisation term for the
    empirical minimiser. ``L_un`` finite, ``tau`` in ``[0, 1)``. Numbers or numpy arrays.
    """
    L_un = np.asarray(L_un, dtype=np.float64)
    if not np.all(np.isfinite(L_un)):
        raise ValueError("L_un must be finite")
    tau = check_real(tau, "tau", low=0, high=1, high_open=True)
    out = (L_un - tau) / (1.0 - tau)
    return float(out) if out.ndim == 0 else out


# ------------------------------------------------------------------------------- HaoChen et al. 2021
def spectral_loss_exact(world: World) -> float:
    """Population spectral contrastive loss of HaoChen et al. (2021), eq. (4), on a feature world, exactly::

        L(f) = -2 E_x E_{x1, x2 in A(x)} f(x1)^T f(x2) + E_{x, x'} E_{x1 in A(x), x2 in A(x')} (f(x1)^T f(x2))^2

    with ``x, x'`` independent draws from the masses (``x' = x`` allowed) and views independent and
    uniform, as in :func:`cssl.losses.spectral_contrastive` (its batch estimator). Computed as
    ``-2 sum_i w_i ||m_i||^2 + ||C||_F^2`` with ``m_i`` the mean view feature of point ``i`` and
    ``C = sum_i w_i mean_j f_ij f_ij^T``, since ``E (u^T v)^2 = tr(E uu^T E vv^T)`` for independent
    ``u, v``. Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    v, w = world.views, world.weights
    m = v.mean(dim=1)
    second = torch.einsum("i,ijd,ije->de", w, v, v) / world.n_views
    return float(-2.0 * (w * m.square().sum(dim=1)).sum() + second.square().sum())


def view_ids(world: World) -> tuple[torch.Tensor, int]:
    """Identify the distinct views of a world: ``(ids (N, V) in 0..M-1, M)``, equal views get equal ids.

    Views are compared exactly (bitwise equal vectors). The augmentation graph of HaoChen et al. is
    defined on this set of distinct augmented data. On sampled continuous augmentations no two
    points share a view, and every point is its own connected component.
    """
    world = _check_world(world)
    flat = world.views.reshape(-1, world.dim)
    uniq, inverse = torch.unique(flat, dim=0, return_inverse=True)
    return inverse.reshape(world.n_points, world.n_views), int(uniq.shape[0])


def shared_views(world: World) -> int:
    """Number of distinct views (:func:`view_ids`) that belong to two or more points of the world.

    It is 0 exactly when the augmentation graph has one connected component per point (no edge joins
    two natural points), as for sampled continuous augmentations of distinct images.
    """
    ids, m = view_ids(world)
    owner = torch.arange(world.n_points)[:, None].expand_as(ids)
    pairs = torch.unique(torch.stack([ids.reshape(-1), owner.reshape(-1)], dim=1), dim=0)
    return int((torch.bincount(pairs[:, 0], minlength=m) >= 2).sum())


def _view_probabilities(world: World) -> tuple[torch.Tensor, torch.Tensor]:
    ids, m = view_ids(world)
    probs = torch.zeros(world.n_points, m, dtype=torch.float64)
    probs.scatter_add_(1, ids, torch.full(ids.shape, 1.0 / world.n_views, dtype=torch.float64))
    return probs, ids


def augmentation_graph(world: World) -> torch.Tensor:
    """Adjacency of the population augmentation graph (HaoChen et al. 2021, Sec. 3.1), ``(M, M)``::

        w(u, u') = E_x [A(u | x) A(u' | x)] = sum_i w_i P(u | x_i) P(u' | x_i)

    over the ``M`` distinct views of :func:`view_ids` (``P(u | x_i)`` = multiplicity of ``u`` among the
    ``V`` views of ``x_i`` over ``V``). Symmetric, nonnegative, total mass 1; the degree
    ``w_u = sum_u' w(u, u')`` is the probability of view ``u``.
    """
    world = _check_world(world)
    probs, _ = _view_probabilities(world)
    return probs.T @ (world.weights[:, None] * probs)


def _check_adjacency(adjacency) -> torch.Tensor:
    a = as_tensor(adjacency, "adjacency", ndim=2)
    if a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise ValueError(f"adjacency must be a square matrix, got shape {tuple(a.shape)}")
    if bool((a < 0).any()):
        raise ValueError("adjacency must have nonnegative weights")
    if not torch.allclose(a, a.T, atol=1e-12, rtol=0):
        raise ValueError("adjacency must be symmetric (an undirected graph)")
    if bool((a.sum(dim=1) <= 0).any()):
        raise ValueError("every vertex needs a positive degree (no isolated vertex)")
    return a


def normalized_adjacency(adjacency) -> torch.Tensor:
    """``A_bar = D^{-1/2} A D^{-1/2}`` with ``D = diag(degrees)`` (HaoChen et al. 2021, Sec. 3.1)."""
    a = _check_adjacency(adjacency)
    s = a.sum(dim=1).rsqrt()
    return s[:, None] * a * s[None, :]


def laplacian_eigenvalues(adjacency) -> torch.Tensor:
    """Eigenvalues ``0 = lambda_1 <= ... <= lambda_M <= 2`` of the normalised Laplacian ``I - A_bar``, ascending.

    The multiplicity of 0 is the number of connected components; HaoChen et al.'s bound involves
    ``lambda_{k+1}`` (the ``(k+1)``-th smallest), for features of dimension ``k``.
    """
    a_bar = normalized_adjacency(adjacency)
    return torch.linalg.eigvalsh(torch.eye(a_bar.shape[0], dtype=torch.float64) - a_bar)


def augmentation_label_noise(world: World) -> float:
    """``alpha`` of HaoChen et al. (2021), Assumption 3.5: the smallest probability of a wrong label on views.

    ``alpha = min_yhat E_x P_{u ~ A(.|x)}[yhat(u) != y(x)]``; the minimum over labelings ``yhat`` of the
    distinct views is attained by the mass majority, so ``alpha = 1 - sum_u max_c sum_{i in C_c} w_i P(u | x_i)``.
    It is 0 when no view is shared by two classes.
    """
    world = _check_world(world)
    probs, _ = _view_probabilities(world)
    per_class = torch.zeros(world.num_classes, probs.shape[1], dtype=torch.float64)
    per_class.index_add_(0, world.labels, world.weights[:, None] * probs)
    return float(max(0.0, 1.0 - float(per_class.max(dim=0).values.sum())))


def spectral_minimiser(world: World, k: int) -> tuple[World, float]:
    """A population minimiser of the spectral loss with ``k``-dimensional features, and the minimum.

    HaoChen et al. (2021), Lemma 3.2: with ``F`` the ``(M, k)`` matrix of rows ``sqrt(w_u) f(u)``,
    ``L(f) = ||A_bar - F F^T||_F^2 - ||A_bar||_F^2``. By Eckart-Young the minimum is
    ``-sum_{j <= k} max(nu_j, 0)^2`` over the ``k`` largest eigenvalues ``nu_j`` of ``A_bar``, attained by
    ``f(u) = (sqrt(max(nu_j, 0)) e_j(u) / sqrt(w_u))_{j <= k}`` (``e_j`` unit eigenvectors). Returns the
    feature world of that ``f`` (every view mapped through it) and the minimum value. ``1 <= k <= M``.
    """
    world = _check_world(world)
    probs, ids = _view_probabilities(world)
    a = probs.T @ (world.weights[:, None] * probs)
    m = a.shape[0]
    k = check_int(k, "k", low=1, high=m)
    nu, vecs = torch.linalg.eigh(normalized_adjacency(a))
    nu, vecs = nu.flip(0)[:k], vecs.flip(1)[:, :k]
    scale = nu.clamp_min(0).sqrt()
    f = vecs * scale[None, :] / a.sum(dim=1).sqrt()[:, None]
    return World(f[ids], world.labels, world.weights, world.num_classes), float(-(nu.clamp_min(0) ** 2).sum())


def haochen_ratio(alpha, eigenvalue):
    """The quantity ``alpha / lambda_{k+1}`` that drives HaoChen et al.'s bound (their Theorem 3.8 reads
    ``error <~ alpha / lambda_{k+1}`` up to constants and a small additive ``O(alpha)`` term).

    ``alpha`` in [0, 1]; ``eigenvalue = lambda_{k+1}`` in [0, 2]. Returns ``inf`` when ``lambda_{k+1} = 0``
    and ``alpha > 0``; raises when both are 0 (the ratio is undefined: the graph has more than ``k``
    components and no view is mislabelled).
    """
    alpha = check_real(alpha, "alpha", low=0, high=1)
    lam = check_real(eigenvalue, "eigenvalue", low=0, high=2 + 1e-9)
    if lam == 0:
        if alpha == 0:
            raise ValueError("alpha / lambda_{k+1} is 0/0: the graph has more than k components and alpha = 0")
        return math.inf
    return alpha / lam


def token_world(num_classes: int = 3, tokens_per_class: int = 6, n_views: int = 4, leak_points: int = 1) -> World:
    """A world whose views repeat, so that its augmentation graph is exact (HaoChen et al.'s setting).

    Views are one-hot vectors (tokens) in ``R^(K m)``, ``m = tokens_per_class``. Point ``j`` of class
    ``c`` (``j = 0..m-1``) has its own token ``(c, j)`` as view 0 (``x in A(x)``) and the token
    ``(c, j+1 mod m)``: the tokens of a class form a cycle, one connected component per class. The
    ``V = n_views`` views alternate own / next token. In each class the first ``leak_points`` points
    replace their last view by token ``(c+1 mod K, 0)`` of the next class: augmentations that leak
    across classes, which connect the graph and make ``alpha > 0``. Equal point masses.
    """
    k = check_int(num_classes, "num_classes", low=2)
    m = check_int(tokens_per_class, "tokens_per_class", low=2)
    v = check_int(n_views, "n_views", low=2)
    leak = check_int(leak_points, "leak_points", low=0, high=m)
    eye = torch.eye(k * m, dtype=torch.float64)
    views, labels = [], []
    for c in range(k):
        for j in range(m):
            tokens = [c * m + (j if s % 2 == 0 else (j + 1) % m) for s in range(v)]
            if j < leak:
                tokens[-1] = ((c + 1) % k) * m
            views.append(eye[tokens])
            labels.append(c)
    return World(torch.stack(views), torch.tensor(labels), num_classes=k)


# ------------------------------------------------------------------------------- Wang et al. 2022
def confusion_ratio(features, anchor_ids, k: int = 1) -> float:
    """Fraction of augmented views whose ``k`` nearest neighbours contain no other view of their own anchor.

    **The book's reading** of the augmentation-overlap measure of Wang et al. (2022), *Chaos is a
    ladder* (their "average confusion ratio"; the exact definition in their paper may differ): the
    views ``features[r]`` of anchors ``anchor_ids[r]`` are compared by cosine similarity; for each view
    the ``k`` most similar *other* views are found (ties: lowest index), and the view is *confused*
    when none of them shares its anchor id. High values mean that views of different images overlap
    more than views of the same image -- the "chaos" that Wang et al. argue lets augmentation bridge
    the samples of a class.

    ``features`` ``(n, d)``; ``anchor_ids`` ``(n,)`` integers, every anchor with at least two views;
    ``1 <= k <= n - 1``.
    """
    z = as_tensor(features, "features", ndim=2)
    ids = as_tensor(anchor_ids, "anchor_ids", dtype=None, ndim=1)
    if ids.dtype.is_floating_point and not bool((ids == ids.round()).all()):
        raise ValueError("anchor_ids must be integers")
    ids = ids.to(torch.int64)
    n = z.shape[0]
    if ids.shape[0] != n:
        raise ValueError(f"anchor_ids has {ids.shape[0]} entries but features has {n} rows")
    _, counts = torch.unique(ids, return_counts=True)
    if bool((counts < 2).any()):
        raise ValueError("every anchor needs at least two views (a view and a positive)")
    k = check_int(k, "k", low=1, high=n - 1)
    z = torch.nn.functional.normalize(z, dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-math.inf)
    # stable top-k: sort by (-similarity, index)
    order = torch.argsort(-sim, dim=1, stable=True)[:, :k]
    hit = (ids[order] == ids[:, None]).any(dim=1)
    return float((~hit).double().mean())

