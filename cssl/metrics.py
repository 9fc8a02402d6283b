"""The paper's quantities on a world of features, and the evaluation protocols of its experiments.

**Every function taking a world takes a feature world** ``world.map(f)``: its views are the features
``f(x')`` of the augmented views ``x'``, and ``f(x_i)`` of the clean point is ``views[i, 0]`` (the
convention of :mod:`cssl.worlds`). All expectations are exact finite weighted sums in float64:
``E_x`` weights point ``i`` by ``w_i`` and ``E_{x1 in A(x)}`` averages the ``V`` views uniformly.

* alignment ``L_align`` (eq. (4)) and Wang & Isola's uniformity;
* class centres ``mu_k``, their inner products (the *divergence* of Theorem 1), ``Delta_mu``;
* ``sup_{x1, x2 in A(x)} ||f(x1) - f(x2)||``, the aligned set ``S_eps`` and ``R_eps = P[x not in S_eps]``;
* the nearest-centre classifier ``G_f`` and its error ``Err(G_f)`` (Sec. 2);
* the kNN monitor of the authors' code (k = 200, t = 0.1) and a linear probe.
"""
from __future__ import annotations

import math

import torch

from ._validate import as_tensor, check_int, check_real
from .worlds import World

__all__ = [
    "alignment",
    "uniformity",
    "class_centres",
    "centre_inner_products",
    "max_centre_inner_product",
    "delta_mu",
    "centre_matrix",
    "participation_ratio",
    "sup_view_distance",
    "aligned_mask",
    "r_eps",
    "nearest_centre_predict",
    "nearest_centre_error",
    "knn_predict",
    "knn_accuracy",
    "linear_probe",
]

_BLOCK_ELEMENTS = 1 << 22


def _check_world(world) -> World:
    if not isinstance(world, World):
        raise TypeError(f"world must be a cssl.World of features (world.map(f)), got {type(world).__name__}")
    return world


# ------------------------------------------------------------------ alignment and uniformity
def alignment(world: World) -> float:
    """Alignment ``L_align(f) = E_x E_{x1, x2 in A(x)} ||f(x1) - f(x2)||^2`` (paper, eq. (4)), exactly.

    ``x1, x2`` are independent uniform draws from the ``V`` views of ``x`` (so pairs with ``x1 = x2``
    are included, contributing 0). Computed per point as ``2 (mean_j ||f_j||^2 - ||mean_j f_j||^2)``,
    the identity ``(1/V^2) sum_{j,l} ||a_j - a_l||^2 = 2 (mean ||a||^2 - ||mean a||^2)``.
    Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    v = world.views
    per_point = 2.0 * (v.square().sum(dim=2).mean(dim=1) - v.mean(dim=1).square().sum(dim=1))
    return float((world.weights * per_point.clamp_min(0.0)).sum())


def uniformity(world: World, t: float = 2.0) -> float:
    """Uniformity of Wang & Isola (2020): ``log E_{x, x'} E_{x1 in A(x), x1' in A(x')} exp(-t ||f(x1) - f(x1')||^2)``.

    Pairing used here (exact): ``x`` and ``x'`` are **independent** draws from the point masses ``w``
    (so ``x' = x`` has probability ``sum_i w_i^2``, and then two independent views of the same point
    are compared), and each takes one independent uniform view. That is
    ``log sum_{i,j} w_i w_j (1/V^2) sum_{a,b} exp(-t ||v_ia - v_jb||^2)``, computed with a log-sum-exp.
    Wang & Isola's batch estimator instead averages over distinct samples of a batch. ``t > 0``.
    Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    t = check_real(t, "t", low=0, low_open=True)
    n, v, d = world.views.shape
    flat = world.views.reshape(-1, d)
    log_w = (world.weights.log() - math.log(v)).repeat_interleave(v)
    step = max(1, _BLOCK_ELEMENTS // flat.shape[0])
    partial = []
    for i0 in range(0, flat.shape[0], step):
        dist2 = torch.cdist(flat[i0:i0 + step], flat, compute_mode="donot_use_mm_for_euclid_dist").square()
        partial.append(torch.logsumexp(log_w[i0:i0 + step, None] + log_w[None, :] - t * dist2, dim=(0, 1)))
    return float(torch.logsumexp(torch.stack(partial), dim=0))


# ------------------------------------------------------------------ class centres
def class_centres(world: World) -> torch.Tensor:
    """Class centres ``mu_k = E_{x in C_k} E_{x' in A(x)} f(x')`` (Sec. 2), shape ``(K, d)``.

    Mass-weighted: ``mu_k = sum_{i in C_k} w_i mean_j v_ij / p_k``. Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    per_point = world.weights[:, None] * world.views.mean(dim=1)
    sums = torch.zeros(world.num_classes, world.dim, dtype=torch.float64).index_add_(0, world.labels, per_point)
    return sums / world.class_masses()[:, None]


def _centres(world_or_centres) -> torch.Tensor:
    if isinstance(world_or_centres, World):
        return class_centres(world_or_centres)
    mu = as_tensor(world_or_centres, "centres", ndim=2)
    if mu.shape[0] < 2:
        raise ValueError(f"centres must have K >= 2 rows (one per class), got shape {tuple(mu.shape)}")
    return mu


def centre_inner_products(world_or_centres) -> torch.Tensor:
    """The ``(K, K)`` matrix ``mu_k^T mu_l`` (the divergence terms of Lemma 3.2 / Theorem 1, eq. (2)).

    Accepts a feature world (centres from :func:`class_centres`) or a ``(K, d)`` centre matrix.
    """
    mu = _centres(world_or_centres)
    return mu @ mu.T


def max_centre_inner_product(world_or_centres) -> float:
    """``max_{k != l} mu_k^T mu_l``, the left side of Theorem 1's condition (2) for the worst pair."""
    gram = centre_inner_products(world_or_centres)
    off = ~torch.eye(gram.shape[0], dtype=torch.bool)
    return float(gram[off].max())


def delta_mu(world_or_centres, r: float) -> float:
    """``Delta_mu = 1 - min_k ||mu_k||^2 / r^2`` (Lemma 3.2 / Theorem 1), for an encoder with ``||f|| = r``.

    By Jensen ``||mu_k|| <= r`` when ``||f|| = r``, so ``Delta_mu in [0, 1]``; a negative value means
    the features are not on the sphere of radius ``r``. ``r > 0``.
    """
    r = check_real(r, "r", low=0, low_open=True)
    mu = _centres(world_or_centres)
    return float(1.0 - mu.square().sum(dim=1).min() / r ** 2)


def centre_matrix(world: World) -> torch.Tensor:
    """The ``(d, d)`` matrix ``M = sum_k p_k mu_k mu_k^T`` of class masses and class centres.

    Theorem 4 of the paper (Sec. 4.2) compares the cross-correlation matrix ``F = E f(x1) f(x2)^T`` with
    ``M``: its ``tau'`` bounds ``||F - M||^2``, and the book's *lem-cc-core* / *thm-book-4* (Chapter 6)
    use ``||F - I||^2 >= ||M - I||^2 / 2 - ||F - M||^2``. Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    mu, p = class_centres(world), world.class_masses()
    return torch.einsum("k,ki,kj->ij", p, mu, mu)


def participation_ratio(world: World) -> float:
    """Participation ratio ``(sum_i lambda_i)^2 / sum_i lambda_i^2`` of the feature covariance (all views).

    ``lambda_i`` are the eigenvalues of the covariance of ``f(x_j)`` over points (weighted by their
    masses) and their equiprobable views. It is 1 when the features lie on a line and ``d`` when they
    fill ``R^d`` evenly: the book's measure of dimensional collapse (Chapter 5, *obs-linear-collapse*).
    Raises if every feature is the same point (zero covariance, ratio undefined).
    """
    world = _check_world(world)
    flat = world.views.reshape(-1, world.dim)
    weights = world.weights.repeat_interleave(world.n_views) / world.n_views
    centred = flat - weights @ flat
    eigenvalues = torch.linalg.eigvalsh((centred.T * weights) @ centred).clamp_min(0)
    denominator = eigenvalues.square().sum()
    if float(denominator) == 0.0:
        raise ValueError("participation_ratio is undefined: the features have zero covariance (all views equal)")
    return float(eigenvalues.sum() ** 2 / denominator)


# ------------------------------------------------------------------ S_eps and R_eps
def sup_view_distance(world: World) -> torch.Tensor:
    """Per point ``sup_{x1, x2 in A(x)} ||f(x1) - f(x2)||`` (the quantity defining ``S_eps``, Sec. 3), shape ``(N,)``.

    Exact: a maximum over all ``V^2`` view pairs, differences computed directly in float64 (identical
    views give exactly 0). Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    n, v, _ = world.views.shape
    step = max(1, _BLOCK_ELEMENTS // (v * v))
    out = [torch.cdist(world.views[i:i + step], world.views[i:i + step],
                       compute_mode="donot_use_mm_for_euclid_dist").amax(dim=(1, 2))
           for i in range(0, n, step)]
    return torch.cat(out)


def aligned_mask(world: World, eps: float) -> torch.Tensor:
    """Mask of ``S_eps = {x : ||f(x1) - f(x2)|| <= eps for all x1, x2 in A(x)}`` (Sec. 3), shape ``(N,)``.

    ``eps >= 0``. Takes a feature world ``world.map(f)``.
    """
    eps = check_real(eps, "eps", low=0)
    return sup_view_distance(world) <= eps


def r_eps(world: World, eps: float) -> float:
    """``R_eps = P[x not in S_eps] = P[sup_{x1, x2 in A(x)} ||f(x1) - f(x2)|| > eps]`` (Sec. 3).

    The paper's text first writes ``R_eps := P[S_eps]``; that is a typo, the same text then defines it
    as the probability of the **complement** (Chapter 1 of the book; errata page), which is what Lemma 3.1 needs. It is a
    probability of a **sup** over views, not of an expectation. ``eps >= 0``; non-increasing in ``eps``.
    Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    # A sum of point masses can exceed 1 by a rounding error; a probability cannot.
    return min(1.0, float(world.weights[~aligned_mask(world, eps)].sum()))


# ------------------------------------------------------------------ nearest-centre classifier
def _check_centres_for(world: World, centres) -> torch.Tensor:
    if centres is None:
        return class_centres(world)
    mu = as_tensor(centres, "centres", ndim=2)
    if tuple(mu.shape) != (world.num_classes, world.dim):
        raise ValueError(f"centres must have shape (K, d) = ({world.num_classes}, {world.dim}), "
                         f"got {tuple(mu.shape)}")
    return mu


def _centre_sq_distances(world: World, centres) -> torch.Tensor:
    mu = _check_centres_for(world, centres)
    # direct differences: exact ties (equidistant centres) stay exact ties
    return (world.views[:, 0, None, :] - mu[None, :, :]).square().sum(dim=2)


def nearest_centre_predict(world: World, centres=None) -> torch.Tensor:
    """``G_f(x) = argmin_k ||f(x) - mu_k||`` (Sec. 2) for every point, with ``f(x) = views[:, 0]``.

    ``centres`` defaults to :func:`class_centres` of the world. **Ties** go to the smallest class index
    (``torch.argmin`` returns the first minimum); :func:`nearest_centre_error` with ``ties="error"``
    counts ties as errors instead. Takes a feature world ``world.map(f)``. Returns ``(N,)`` int64.
    """
    world = _check_world(world)
    return torch.argmin(_centre_sq_distances(world, centres), dim=1)


def nearest_centre_error(world: World, centres=None, *, ties: str = "first", tie_tol: float = 0.0) -> float:
    """``Err(G_f) = sum_i w_i 1[G_f(x_i) != y_i]`` (Sec. 2), the overall misclassification probability.

    The paper writes ``sum_k P[G_f(x) != k, forall x in C_k]``; the "forall" is a slip for
    ``x in C_k`` (Chapter 1), which gives this sum.

    ``ties="first"``: ``G_f`` of :func:`nearest_centre_predict` (smallest index wins a tie).
    ``ties="error"``: a point is also an error when some other class is within ``tie_tol`` of its own
    class in squared distance, ``||f - mu_k||^2 <= ||f - mu_y||^2 + tie_tol`` -- the pessimistic reading
    for adversarial checks of Theorem 1, which should hold for *any* tie rule. ``tie_tol >= 0``.
    Takes a feature world ``world.map(f)``.
    """
    world = _check_world(world)
    if ties not in ("first", "error"):
        raise ValueError(f"ties must be 'first' or 'error', got {ties!r}")
    tie_tol = check_real(tie_tol, "tie_tol", low=0)
    dist2 = _centre_sq_distances(world, centres)
    if ties == "first":
        wrong = torch.argmin(dist2, dim=1) != world.labels
    else:
        own = dist2.gather(1, world.labels[:, None])
        rivals = dist2 <= own + tie_tol
        rivals.scatter_(1, world.labels[:, None], False)
        wrong = rivals.any(dim=1)
    return float(world.weights[wrong].sum())


# ------------------------------------------------------------------ kNN and linear probe
def _features(x, name: str) -> torch.Tensor:
    t = as_tensor(x, name, ndim=2)
    if t.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with d >= 1, got {tuple(t.shape)}")
    return t


def _labels(y, name: str, n: int, num_classes: int | None = None) -> torch.Tensor:
    t = as_tensor(y, name, dtype=None, ndim=1)
    if t.dtype.is_floating_point:
        if not bool((t == t.round()).all()):
            raise ValueError(f"{name} must be integer class indices, got non-integer values")
    elif t.dtype == torch.bool:
        raise TypeError(f"{name} must be integer class indices, got booleans")
    t = t.to(torch.int64)
    if t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} entries but there are {n} feature rows; give one label per row")
    if bool((t < 0).any()):
        raise ValueError(f"{name} must be nonnegative class indices, got min {int(t.min())}")
    if num_classes is not None and int(t.max()) >= num_classes:
        raise ValueError(f"{name} go up to {int(t.max())} but num_classes={num_classes}; labels must be < K")
    return t


def knn_predict(bank_feats, bank_labels, query_feats, *, num_classes: int, k: int = 200,
                temperature: float = 0.1, batch_size: int = 1024, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Weighted kNN labels, exactly the authors' monitor (Wu et al. 2018, via the MoCo CIFAR-10 demo).

    For each query: L2-normalise query and bank features (``F.normalize``, so a zero vector stays 0),
    cosine similarities ``s = q^T b``, the top-``k`` bank entries, weights ``exp(s / temperature)``,
    score of class ``c`` = sum of the weights of the neighbours labelled ``c``, prediction
    ``argmax_c score`` (ties: smallest class index; the demo's descending argsort leaves ties unspecified).
    The weights are computed as ``exp((s - s_max) / temperature)`` with ``s_max`` the query's largest
    similarity: the same ratios (so the same prediction), but no overflow at small temperatures,
    where the plain ``exp(s / t)`` reaches ``inf`` (at ``t = 1e-3`` in float64) and the scores ``nan``.
    The paper's numbers use ``k = 200``, ``temperature = 0.1`` and the 50k training images as the bank.

    Parameters
    ----------
    bank_feats : (n, d); bank_labels : (n,) in ``0..num_classes-1``; query_feats : (m, d).
    num_classes : int >= 2; k : int in ``[1, n]``; temperature : float > 0.
    batch_size : queries per block (memory ``batch_size x n``). dtype : compute dtype (float64 default).
    Returns ``(m,)`` int64 predictions.
    """
    bank = _features(bank_feats, "bank_feats")
    query = _features(query_feats, "query_feats")
    if bank.shape[1] != query.shape[1]:
        raise ValueError(f"bank_feats has dimension {bank.shape[1]} but query_feats has {query.shape[1]}")
    num_classes = check_int(num_classes, "num_classes", low=2)
    labels = _labels(bank_labels, "bank_labels", bank.shape[0], num_classes)
    k = check_int(k, "k", low=1)
    if k > bank.shape[0]:
        raise ValueError(f"k={k} exceeds the bank size {bank.shape[0]}; use k <= number of bank features")
    temperature = check_real(temperature, "temperature", low=0, low_open=True)
    batch_size = check_int(batch_size, "batch_size", low=1)
    bank = torch.nn.functional.normalize(bank.to(dtype), dim=1)
    query = torch.nn.functional.normalize(query.to(dtype), dim=1)
    preds = []
    for i in range(0, query.shape[0], batch_size):
        sim = query[i:i + batch_size] @ bank.T
        top_sim, top_idx = sim.topk(k, dim=1)  # sorted: column 0 holds each row's maximum
        weight = ((top_sim - top_sim[:, :1]) / temperature).exp()  # in (0, 1], the largest exactly 1
        scores = torch.zeros(sim.shape[0], num_classes, dtype=dtype, device=sim.device)
        scores.scatter_add_(1, labels.to(sim.device)[top_idx], weight)
        preds.append(scores.argmax(dim=1))
    return torch.cat(preds)


def knn_accuracy(bank_feats, bank_labels, query_feats, query_labels, *, num_classes: int, k: int = 200,
                 temperature: float = 0.1, batch_size: int = 1024) -> float:
    """Top-1 accuracy of :func:`knn_predict` on ``(query_feats, query_labels)`` (the paper's Tables 1-2 metric)."""
    pred = knn_predict(bank_feats, bank_labels, query_feats, num_classes=num_classes, k=k,
                       temperature=temperature, batch_size=batch_size)
    y = _labels(query_labels, "query_labels", pred.shape[0], num_classes)
    return float((pred == y).double().mean())


def linear_probe(train_feats, train_labels, test_feats, test_labels, *, num_classes: int | None = None,
                 steps: int = 100, weight_decay: float = 1e-4, seed: int = 0) -> float:
    """Test accuracy of a multinomial logistic regression on frozen features (the linear-evaluation protocol).

    Features are standardised with the training mean and standard deviation; ``W, b`` minimise
    ``mean_i CE(W x_i + b, y_i) + (weight_decay / 2) ||W||_F^2`` by full-batch L-BFGS (``steps``
    iterations, strong-Wolfe line search) in float64 from ``W = 0``, so the result is deterministic
    (``seed`` fixes torch's RNG for any tie in the solver). Returns accuracy on the test set.
    """
    xtr = _features(train_feats, "train_feats")
    xte = _features(test_feats, "test_feats")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train_feats has dimension {xtr.shape[1]} but test_feats has {xte.shape[1]}")
    ytr = _labels(train_labels, "train_labels", xtr.shape[0])
    yte = _labels(test_labels, "test_labels", xte.shape[0])
    present = int(torch.unique(ytr).numel())
    if present < 2:
        raise ValueError(f"train_labels hold a single class ({int(ytr[0])}); a linear probe needs at least two "
                         "classes to separate (its accuracy would be 1.0 whatever the features)")
    k = int(max(ytr.max(), yte.max())) + 1 if num_classes is None else check_int(num_classes, "num_classes", low=2)
    if int(ytr.max()) >= k or int(yte.max()) >= k:
        raise ValueError(f"labels go up to {int(max(ytr.max(), yte.max()))} but num_classes={k}")
    steps = check_int(steps, "steps", low=1)
    weight_decay = check_real(weight_decay, "weight_decay", low=0)
    check_int(seed, "seed", low=0)
    mean = xtr.mean(dim=0)
    std = xtr.std(dim=0, unbiased=False).clamp_min(1e-12)
    ztr, zte = (xtr - mean) / std, (xte - mean) / std
    weight = torch.zeros(k, xtr.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ztr @ weight.T + bias, ytr)
            loss = loss + 0.5 * weight_decay * weight.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
    with torch.no_grad():
        pred = (zte @ weight.T + bias).argmax(dim=1)
    return float((pred == yte).double().mean())
