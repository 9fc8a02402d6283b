"""Concentration of augmented data: the augmented distance and the (sigma, delta)-measure.

The paper measures how well an augmentation set ``A`` concentrates each latent class with

    d_A(x1, x2) = min_{x1' in A(x1), x2' in A(x2)} ||x1' - x2'||                  (paper, eq. (1))

and calls ``A`` a ``(sigma, delta)``-augmentation (Definition 1) when every class ``C_k`` has a
*main part* ``C_k^0`` with ``P[C_k^0] >= sigma p_k`` and ``sup_{x1, x2 in C_k^0} d_A(x1, x2) <= delta``.

``d_A`` is a minimum over view pairs, **not a metric**: the triangle inequality can fail (two points
can each share a view with a third point and still be far apart). So a main part is a **clique** of
the graph ``{(x1, x2): d_A(x1, x2) <= delta}``, not a ball, and the best ``sigma`` for a given
``delta`` is the mass of a maximum-weight clique per class, divided by ``p_k``, minimised over ``k``.
This module computes

* :func:`augmented_distance`: exact ``d_A`` matrices, blocked (and symmetric-aware) so large sets fit;
* :func:`max_weight_clique` (exact branch and bound) and :func:`greedy_weight_clique` (fast lower
  bound): both return a valid clique, so both give a valid main part and a lower bound on the best
  ``sigma``; only the exact one proves optimality;
* :func:`main_parts`, :func:`sigma_of_delta`, :func:`sigma_curve` on a finite :class:`~cssl.worlds.World`
  (computed in **input space**: Definition 1 is a property of the augmentation, not of an encoder);
* :func:`estimate_sigma` for images, with ``T`` sampled views per image (an upper estimate of ``d_A``).

Monotonicity (Chapter 2): if ``A' ⊇ A`` then ``d_{A'} <= d_A`` pointwise (a minimum over a superset),
so richer augmentation can only raise the best ``sigma`` at a fixed ``delta``.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ._validate import as_tensor, check_int, check_memory, check_real
from .worlds import World

__all__ = [
    "augmented_distance",
    "CliqueResult",
    "is_clique",
    "max_weight_clique",
    "greedy_weight_clique",
    "MainParts",
    "main_parts",
    "sigma_of_delta",
    "SigmaCurve",
    "sigma_curve",
    "sample_views",
    "standardize_views",
    "SigmaEstimate",
    "estimate_sigma",
    "sigma_from_distances",
]

_PRECISIONS = ("exact", "float64", "float32")
_METHODS = ("auto", "exact", "greedy")
# elements of one (rows x cols) block of view-pair distances; ~64-128 MB, large enough for BLAS
_BLOCK_ELEMENTS = {"exact": 1 << 22, "float64": 1 << 23, "float32": 1 << 24}
_AUTO_MAX_EXACT = 150       # class size up to which method="auto" tries the exact search
_AUTO_NODE_LIMIT = 20_000   # search nodes after which method="auto" keeps the best clique found


# ------------------------------------------------------------------ d_A
def _views_tensor(views, name: str) -> torch.Tensor:
    t = as_tensor(views, name, dtype=None, ndim=3)
    if t.dtype == torch.bool or not (t.dtype.is_floating_point or t.dtype in
                                     (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.shape[1] < 1 or t.shape[2] < 1:
        raise ValueError(f"{name} must have shape (N, V, D) with V >= 1 and D >= 1, got {tuple(t.shape)}")
    return t


def _block_points(block_size, v_a: int, v_b: int, precision: str) -> int:
    if block_size is not None:
        return check_int(block_size, "block_size", low=1)
    return max(1, int(math.isqrt(_BLOCK_ELEMENTS[precision] // max(1, v_a * v_b))))


def augmented_distance(views_a, views_b=None, *, precision: str = "exact",
                       block_size: int | None = None) -> torch.Tensor:
    """The augmented distance matrix ``d_A(a_i, b_j) = min_{s, t} ||views_a[i, s] - views_b[j, t]||`` (eq. (1)).

    Parameters
    ----------
    views_a : (Na, Va, D) array-like, the views ``A(a_i)`` of each point (``views[i, 0]`` is the point).
    views_b : (Nb, Vb, D) array-like or None. ``None`` means ``views_a`` against itself: only the upper
        triangle of blocks is computed (half the work), the result is exactly symmetric and its diagonal
        is exactly 0 (a point shares all its views with itself).
    precision : ``"exact"`` (default), ``"float64"`` or ``"float32"``.
        * ``"exact"``: float64 differences ``||a - b||`` computed directly (no matmul trick), so two
          points that share a view get exactly ``0`` -- what Definition 1 at ``delta = 0`` needs.
          Cost ``O(Na Va Nb Vb D)`` without BLAS: for worlds, not for large image sets.
        * ``"float64"`` / ``"float32"``: ``||a||^2 + ||b||^2 - 2 a^T b`` by matrix products (BLAS) after
          subtracting the mean view (which shrinks the cancellation error), clamped at 0 before the
          square root. ``"float32"`` is the fast choice for images; its absolute error on ``d_A^2``
          is about ``1e-7 * max ||v - mean||^2``, so shared views give a small number, not 0.
    block_size : points per block (default: chosen so a block of view-pair distances is ~64 MB).
        The minimum over view pairs is reduced block by block, so the full ``(Na Va) x (Nb Vb)``
        matrix is never held in memory.

    Returns
    -------
    (Na, Nb) float64 tensor of ``d_A``. Richer view sets never increase it: ``A' ⊇ A`` gives
    ``d_{A'} <= d_A`` (the minimum runs over more pairs).
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    a = _views_tensor(views_a, "views_a")
    symmetric = views_b is None
    b = a if symmetric else _views_tensor(views_b, "views_b")
    if a.shape[2] != b.shape[2]:
        raise ValueError(f"views_a has dimension D={a.shape[2]} but views_b has D={b.shape[2]}; "
                         "views must live in the same space")
    n_a, v_a, dim = a.shape
    n_b, v_b, _ = b.shape
    dtype = torch.float32 if precision == "float32" else torch.float64
    width = 4 if precision == "float32" else 8
    check_memory(width * (n_a * n_b + (n_a * v_a + (0 if symmetric else n_b * v_b)) * dim),
                 f"d_A of {n_a} x {n_b} points ({precision})", "use fewer points (views_a, views_b)")
    if precision == "exact":
        flat_a = a.reshape(-1, dim).to(torch.float64)
        flat_b = flat_a if symmetric else b.reshape(-1, dim).to(torch.float64)
    else:
        # centring leaves every difference unchanged and shrinks ||v||^2, hence the rounding error
        centre = a.reshape(-1, dim).mean(dim=0, dtype=torch.float64).to(dtype)
        flat_a = a.reshape(-1, dim).to(dtype) - centre
        flat_b = flat_a if symmetric else b.reshape(-1, dim).to(dtype) - centre
        sq_a = flat_a.square().sum(dim=1)
        sq_b = sq_a if symmetric else flat_b.square().sum(dim=1)
    step = _block_points(block_size, v_a, v_b, precision)
    out = torch.empty(n_a, n_b, dtype=dtype)
    for i0 in range(0, n_a, step):
        i1 = min(n_a, i0 + step)
        rows = flat_a[i0 * v_a:i1 * v_a]
        for j0 in range(i0 if symmetric else 0, n_b, step):
            j1 = min(n_b, j0 + step)
            cols = flat_b[j0 * v_b:j1 * v_b]
            if precision == "exact":
                block = torch.cdist(rows, cols, compute_mode="donot_use_mm_for_euclid_dist")
            else:
                block = torch.addmm(sq_b[j0 * v_b:j1 * v_b][None, :], rows, cols.T, beta=1.0, alpha=-2.0)
                block += sq_a[i0 * v_a:i1 * v_a][:, None]
            # two single-axis reductions run ~3x faster than one over dims (1, 3)
            reduced = block.view(i1 - i0, v_a, j1 - j0, v_b).amin(dim=3).amin(dim=1)
            if symmetric and j0 == i0 and precision != "exact":
                # the matmul rounds a^T b and b^T a differently; d_A must come out symmetric
                reduced = torch.minimum(reduced, reduced.T)
            out[i0:i1, j0:j1] = reduced
            if symmetric and j0 != i0:
                out[j0:j1, i0:i1] = reduced.T
    out = out.to(torch.float64)
    if precision != "exact":
        out = out.clamp_min_(0.0).sqrt_()
    if symmetric:
        out.fill_diagonal_(0.0)
    return out


# ------------------------------------------------------------------ cliques
@dataclass(frozen=True)
class CliqueResult:
    """A clique of a graph: its vertex ``indices`` (sorted), total ``weight``, and whether it is
    ``proven_optimal`` (a maximum-weight clique) or only a valid clique (a lower bound)."""

    indices: torch.Tensor
    weight: float
    proven_optimal: bool
    nodes: int = 0


def _check_adjacency(adjacency) -> np.ndarray:
    t = as_tensor(adjacency, "adjacency", dtype=None, ndim=2)
    if t.shape[0] != t.shape[1]:
        raise ValueError(f"adjacency must be a square (n, n) matrix, got shape {tuple(t.shape)}")
    if t.dtype != torch.bool:
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError("adjacency must be boolean (or 0/1) entries")
        t = t != 0
    a = t.numpy().copy()
    if not np.array_equal(a, a.T):
        raise ValueError("adjacency must be symmetric (an undirected graph); got a[i, j] != a[j, i]")
    np.fill_diagonal(a, False)
    return a


def _check_vertex_weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = as_tensor(weights, "weights", ndim=1)
    if w.shape[0] != n:
        raise ValueError(f"weights has {w.shape[0]} entries but the graph has {n} vertices")
    if bool((w <= 0).any()):
        raise ValueError("vertex weights must be strictly positive (point masses)")
    return w.numpy().astype(np.float64)


def _check_members(members, n: int, name: str) -> np.ndarray:
    m = np.unique(np.asarray(torch.as_tensor(members).reshape(-1).to(torch.int64)))
    if m.size and (m.min() < 0 or m.max() >= n):
        raise ValueError(f"{name} has vertex indices outside [0, {n - 1}]")
    return m


def is_clique(adjacency, members) -> bool:
    """True if every two distinct vertices of ``members`` are adjacent (the empty set is a clique).

    A main part ``C_k^0`` of Definition 1 is exactly a clique of the graph ``d_A <= delta`` on ``C_k``.
    """
    a = _check_adjacency(adjacency)
    m = _check_members(members, a.shape[0], "members")
    sub = a[np.ix_(m, m)]
    np.fill_diagonal(sub, True)
    return bool(sub.all())


def greedy_weight_clique(adjacency, weights=None, *, n_starts: int = 16, initial=None) -> CliqueResult:
    """A heavy clique found greedily: a valid clique, hence a **lower bound** on the maximum weight.

    From each start (``initial`` if given, then the ``n_starts`` vertices of largest weighted degree
    ``w_v + sum_{u ~ v} w_u``) the clique grows by the candidate ``v`` (adjacent to every member) that
    keeps the most candidate weight, ``w_v + sum_{u ~ v, u candidate} w_u``; ties go to the smallest
    index. Each start costs ``O(n^2)``. The heaviest clique over the starts is returned, with
    ``proven_optimal=False``. Used by :func:`main_parts` for large classes: a clique of the graph
    ``d_A <= delta`` is a valid main part (Definition 1), so the resulting ``sigma`` is achievable.

    Parameters
    ----------
    adjacency : (n, n) symmetric boolean matrix (the diagonal is ignored).
    weights : (n,) strictly positive vertex weights (default 1).
    n_starts : int >= 1.
    initial : optional clique to extend (e.g. the main part at a smaller ``delta``).
    """
    a = _check_adjacency(adjacency)
    n = a.shape[0]
    w = _check_vertex_weights(weights, n)
    n_starts = check_int(n_starts, "n_starts", low=1)
    af = a.astype(np.float64)
    degree = af @ w + w
    starts: list[np.ndarray] = []
    if initial is not None:
        init = _check_members(initial, n, "initial")
        if not is_clique(a, init):
            raise ValueError("initial must be a clique of the graph (every two members adjacent)")
        if init.size:
            starts.append(init)
    order = np.argsort(-degree, kind="stable")
    starts.extend(np.array([v]) for v in order[:n_starts])
    best, best_w = np.zeros(0, dtype=np.int64), -np.inf
    for start in starts:
        clique = list(start)
        cand_mask = a[clique].all(axis=0)
        cand_mask[clique] = False
        cand = np.flatnonzero(cand_mask)
        # score only the candidates and shrink with them: O(n^2) per start, decreasing as it goes
        score = af[np.ix_(cand, cand)] @ w[cand]
        while cand.size:
            j = int(np.argmax(w[cand] + score))
            v = int(cand[j])
            clique.append(v)
            keep = a[v, cand]          # v itself is dropped too: the diagonal is False
            removed = cand[~keep]
            cand, score = cand[keep], score[keep]
            if cand.size and removed.size:
                score -= af[np.ix_(cand, removed)] @ w[removed]
        total = float(w[clique].sum())
        if total > best_w:
            best, best_w = np.sort(np.asarray(clique, dtype=np.int64)), total
    return CliqueResult(torch.from_numpy(best), best_w, False, len(starts))


class _NodeLimit(Exception):
    pass


def max_weight_clique(adjacency, weights=None, *, initial=None, node_limit: int | None = None) -> CliqueResult:
    """A maximum-weight clique by branch and bound (exact; exponential in the worst case).

    Vertices adjacent to all others belong to every maximum-weight clique (weights are positive) and are
    taken first. On the rest, a depth-first search over bitsets extends the current clique by each
    candidate in turn and prunes with a weighted colouring bound (a greedy colouring splits the
    candidates into independent sets; a clique takes at most one vertex from each, so
    ``sum_c max_{v in c} w_v`` bounds what can still be added -- Tomita-style MCQ with weights). The
    search starts from the greedy clique (and ``initial``), so it only has to prove or improve it.

    Returns a :class:`CliqueResult` with ``proven_optimal=True``, unless ``node_limit`` search nodes
    were exhausted: then the best clique found so far (at least the greedy one) with
    ``proven_optimal=False``. Checked against brute-force enumeration in the tests.

    Parameters
    ----------
    adjacency : (n, n) symmetric boolean matrix (the diagonal is ignored).
    weights : (n,) strictly positive vertex weights (default 1).
    initial : optional known clique (a lower bound that speeds the pruning).
    node_limit : optional int >= 1, budget of search nodes.
    """
    a = _check_adjacency(adjacency)
    n = a.shape[0]
    w_all = _check_vertex_weights(weights, n)
    if node_limit is not None:
        node_limit = check_int(node_limit, "node_limit", low=1)
    greedy = greedy_weight_clique(a, w_all, n_starts=min(n, 8), initial=initial)
    universal = a.sum(axis=1) == n - 1
    base = np.flatnonzero(universal)
    rest = np.flatnonzero(~universal)
    base_w = float(w_all[base].sum())
    if rest.size == 0:
        return CliqueResult(torch.from_numpy(base.astype(np.int64)), base_w, True, 0)
    # relabel the rest by decreasing weighted degree: the colouring then meets the dense core first
    sub = a[np.ix_(rest, rest)]
    w_sub = w_all[rest]
    order = np.argsort(-(sub.astype(np.float64) @ w_sub + w_sub), kind="stable")
    rest = rest[order]
    sub = sub[np.ix_(order, order)]
    w = [float(x) for x in w_all[rest]]
    m = rest.size
    adj = [int("".join("1" if x else "0" for x in row[::-1]), 2) for row in sub]
    position = {int(v): i for i, v in enumerate(rest)}
    greedy_rest = [position[int(v)] for v in greedy.indices.tolist() if int(v) in position]
    state = {"best_w": sum(w[i] for i in greedy_rest), "best": list(greedy_rest), "nodes": 0}

    def colour_sort(p: int):
        order_, bounds = [], []
        total = 0.0
        uncoloured = p
        while uncoloured:
            q = uncoloured
            heaviest = 0.0
            start = len(order_)
            while q:
                low = q & -q
                v = low.bit_length() - 1
                q &= ~adj[v]
                q ^= low
                uncoloured ^= low
                order_.append(v)
                if w[v] > heaviest:
                    heaviest = w[v]
            total += heaviest
            bounds.extend([total] * (len(order_) - start))
        return order_, bounds

    def expand(p: int, current_w: float, clique: list[int]) -> None:
        state["nodes"] += 1
        if node_limit is not None and state["nodes"] > node_limit:
            raise _NodeLimit
        order_, bounds = colour_sort(p)
        for i in range(len(order_) - 1, -1, -1):
            if current_w + bounds[i] <= state["best_w"]:
                return
            v = order_[i]
            new_w = current_w + w[v]
            new_p = p & adj[v]
            clique.append(v)
            if new_p:
                expand(new_p, new_w, clique)
            elif new_w > state["best_w"]:
                state["best_w"], state["best"] = new_w, list(clique)
            clique.pop()
            p &= ~(1 << v)

    proven = True
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, m + 1000))
    try:
        expand((1 << m) - 1, 0.0, [])
    except _NodeLimit:
        proven = False
    finally:
        sys.setrecursionlimit(old_limit)
    members = np.sort(np.concatenate([base, rest[state["best"]]]).astype(np.int64))
    return CliqueResult(torch.from_numpy(members), float(w_all[members].sum()), proven, state["nodes"])


# ------------------------------------------------------------------ main parts on worlds
@dataclass(frozen=True)
class MainParts:
    """Main parts ``C_k^0`` of Definition 1 at one ``delta``.

    ``indices[k]`` are the (world) indices of ``C_k^0``; ``sigma_per_class[k] = P[C_k^0] / p_k``;
    ``sigma = min_k sigma_per_class[k]`` (the largest ``sigma`` these main parts certify);
    ``proven_optimal[k]`` says whether ``C_k^0`` is a maximum-mass clique (else ``sigma`` is a lower
    bound on the best achievable one).
    """

    delta: float
    indices: tuple
    sigma_per_class: torch.Tensor
    sigma: float
    proven_optimal: tuple
    n_points: int

    @property
    def mask(self) -> torch.Tensor:
        """(N,) boolean mask of ``C_1^0 ∪ ... ∪ C_K^0``."""
        m = torch.zeros(self.n_points, dtype=torch.bool)
        for idx in self.indices:
            m[idx] = True
        return m


def _check_world(world) -> World:
    if not isinstance(world, World):
        raise TypeError(f"world must be a cssl.World, got {type(world).__name__}")
    return world


def _check_method(method: str) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return method


def _class_distances(world: World, precision: str, block_size) -> list[torch.Tensor]:
    """Within-class ``d_A`` matrices: main parts never mix classes, so cross-class pairs are skipped."""
    return [augmented_distance(world.views[world.class_members(k)], precision=precision, block_size=block_size)
            for k in range(world.num_classes)]


def _split_distances(world: World, distances) -> list[torch.Tensor]:
    d = as_tensor(distances, "distances", ndim=2)
    if tuple(d.shape) != (world.n_points, world.n_points):
        raise ValueError(f"distances must be the ({world.n_points}, {world.n_points}) d_A matrix of the world, "
                         f"got shape {tuple(d.shape)}")
    if bool((d < 0).any()):
        raise ValueError("distances must be nonnegative (d_A is a minimum of norms)")
    out = []
    for k in range(world.num_classes):
        idx = world.class_members(k)
        out.append(d[idx][:, idx])
    return out


def _clique(adjacency: np.ndarray, weights: np.ndarray, method: str, initial, n_starts: int) -> CliqueResult:
    n = adjacency.shape[0]
    if method == "greedy" or (method == "auto" and n > _AUTO_MAX_EXACT):
        return greedy_weight_clique(adjacency, weights, n_starts=min(n, n_starts), initial=initial)
    limit = _AUTO_NODE_LIMIT if method == "auto" else None
    return max_weight_clique(adjacency, weights, initial=initial, node_limit=limit)


def _main_parts_from(world: World, class_distances: list[torch.Tensor], delta: float, method: str,
                     previous: MainParts | None, n_starts: int) -> MainParts:
    masses = world.class_masses()
    indices, sigmas, proven = [], [], []
    for k, d in enumerate(class_distances):
        members = world.class_members(k)
        w = world.weights[members].numpy()
        adjacency = (d <= delta).numpy()
        initial = None
        if previous is not None:
            # the main part at a smaller delta stays a clique: warm start, and sigma(delta) cannot drop
            position = {int(v): i for i, v in enumerate(members.tolist())}
            initial = np.array([position[int(v)] for v in previous.indices[k].tolist()], dtype=np.int64)
        result = _clique(adjacency, w, method, initial, n_starts)
        indices.append(members[result.indices])
        sigmas.append(float(world.weights[members[result.indices]].sum()) / float(masses[k]))
        proven.append(result.proven_optimal)
    sigma_per_class = torch.tensor(sigmas, dtype=torch.float64).clamp_max(1.0)
    return MainParts(delta, tuple(indices), sigma_per_class, float(sigma_per_class.min()), tuple(proven),
                     world.n_points)


def main_parts(world: World, delta: float, *, method: str = "auto", precision: str = "exact",
               distances=None, block_size: int | None = None, n_starts: int = 16) -> MainParts:
    """Main parts ``C_k^0`` of Definition 1: per class a maximum-mass clique of ``{d_A <= delta}``.

    ``sigma_k = P[C_k^0] / p_k`` (mass-weighted with the world's point masses) and
    ``sigma = min_k sigma_k``: the world's augmentation is a ``(sigma, delta)``-augmentation with these
    main parts, and no larger ``sigma`` is possible when every class is ``proven_optimal``.

    Takes the **input-space** world (``d_A`` of eq. (1) is measured on the augmented inputs).

    Parameters
    ----------
    world : :class:`~cssl.worlds.World`.
    delta : float >= 0.
    method : ``"exact"`` (branch and bound, :func:`max_weight_clique`), ``"greedy"``
        (:func:`greedy_weight_clique`, a lower bound on sigma) or ``"auto"`` (exact with a budget of
        20000 search nodes for classes up to 150 points, greedy above; the flag says which held).
    precision : passed to :func:`augmented_distance` (``"exact"`` keeps shared views at distance 0).
    distances : optional precomputed ``(N, N)`` matrix ``augmented_distance(world.views)``.
    block_size, n_starts : passed to :func:`augmented_distance` / :func:`greedy_weight_clique`.
    """
    world = _check_world(world)
    delta = check_real(delta, "delta", low=0)
    method = _check_method(method)
    n_starts = check_int(n_starts, "n_starts", low=1)
    class_d = (_class_distances(world, precision, block_size) if distances is None
               else _split_distances(world, distances))
    return _main_parts_from(world, class_d, delta, method, None, n_starts)


def sigma_of_delta(world: World, delta: float, **kwargs) -> tuple[float, torch.Tensor]:
    """``(sigma, sigma_per_class)`` of Definition 1 at ``delta``: ``sigma = min_k P[C_k^0] / p_k``.

    A shortcut for :func:`main_parts` (same keyword arguments).
    """
    parts = main_parts(world, delta, **kwargs)
    return parts.sigma, parts.sigma_per_class


@dataclass(frozen=True)
class SigmaCurve:
    """``sigma(delta)`` of Definition 1 over several ``deltas`` (in the order given).

    ``sigma[i] = min_k sigma_per_class[i, k]``; ``parts[i]`` are the :class:`MainParts` at ``deltas[i]``.
    """

    deltas: torch.Tensor
    sigma: torch.Tensor
    sigma_per_class: torch.Tensor
    parts: tuple


def _check_deltas(deltas) -> torch.Tensor:
    d = as_tensor(deltas, "deltas")
    d = d.reshape(-1) if d.ndim == 0 else d
    if d.ndim != 1:
        raise ValueError(f"deltas must be a 1-D list of thresholds, got shape {tuple(d.shape)}")
    if bool((d < 0).any()):
        raise ValueError(f"every delta must be >= 0, got min {float(d.min()):g}")
    return d


def _curve_from(world: World, class_d: list[torch.Tensor], deltas: torch.Tensor, method: str,
                n_starts: int) -> SigmaCurve:
    parts: list = [None] * deltas.shape[0]
    previous = None
    for i in torch.argsort(deltas, stable=True).tolist():
        previous = _main_parts_from(world, class_d, float(deltas[i]), method, previous, n_starts)
        parts[i] = previous
    sigma_pc = torch.stack([p.sigma_per_class for p in parts])
    return SigmaCurve(deltas, sigma_pc.min(dim=1).values, sigma_pc, tuple(parts))


def sigma_curve(world: World, deltas, *, method: str = "auto", precision: str = "exact",
                distances=None, block_size: int | None = None, n_starts: int = 16) -> SigmaCurve:
    """``sigma(delta) = min_k max_{C_k^0 clique of d_A <= delta} P[C_k^0] / p_k`` for each delta (Definition 1).

    ``d_A`` is computed once. Deltas are processed in increasing order and each main part warm-starts
    the next (a clique at ``delta`` stays a clique at ``delta' > delta``), so the returned curve is
    non-decreasing in ``delta`` even when the greedy search is used. Same keywords as :func:`main_parts`.
    """
    world = _check_world(world)
    method = _check_method(method)
    n_starts = check_int(n_starts, "n_starts", low=1)
    d = _check_deltas(deltas)
    class_d = (_class_distances(world, precision, block_size) if distances is None
               else _split_distances(world, distances))
    return _curve_from(world, class_d, d, method, n_starts)


# ------------------------------------------------------------------ estimator for images
def sample_views(images, augment: Callable, n_views: int, *, generator: torch.Generator | None = None,
                 include_original: bool = True, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sample ``T = n_views`` augmented views of every image: ``(N, T + 1, C*H*W)`` with the original first.

    ``augment(batch, generator) -> batch`` maps an ``(N, C, H, W)`` batch to an augmented batch of the same
    shape (one independent draw per image, e.g. from :mod:`cssl.augment`); it is called ``T`` times.
    ``uint8`` images are scaled to [0, 1] first (the range :mod:`cssl.augment` expects).
    With ``include_original`` the clean image is view 0 (the paper's ``x in A(x)``), which makes the
    estimate of ``d_A`` closer to the truth and never worse. ``generator`` defaults to seed 0.
    """
    x = as_tensor(images, "images", dtype=None, ndim=4)
    if x.dtype == torch.uint8:  # 0..255 pixels: the augmentations of cssl.augment work on [0, 1]
        x = x.to(dtype).div_(255)
    elif not x.dtype.is_floating_point:
        x = x.to(dtype)
    if not callable(augment):
        raise TypeError(f"augment must be a callable (batch, generator) -> batch, got {type(augment).__name__}")
    t = check_int(n_views, "n_views", low=0 if include_original else 1)
    check_memory(x.shape[0] * (t + int(include_original)) * x[0].numel() * torch.empty((), dtype=dtype).element_size(),
                 f"{t} views of {x.shape[0]} images", "lower n_views or pass fewer images")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    views = torch.empty(x.shape[0], t + int(include_original), x[0].numel(), dtype=dtype)
    if include_original:
        views[:, 0] = x.reshape(x.shape[0], -1)
    for j in range(t):
        out = torch.as_tensor(augment(x, generator))
        if out.shape != x.shape:
            raise ValueError(f"augment returned shape {tuple(out.shape)} for a batch of shape {tuple(x.shape)}; "
                             "it must return one augmented image per input, same shape")
        if out.dtype.is_floating_point and not bool(torch.isfinite(out).all()):
            raise ValueError("augment returned NaN or infinite pixels")
        views[:, j + int(include_original)] = out.reshape(x.shape[0], -1)
    return views


def standardize_views(views, eps: float = 1e-6) -> torch.Tensor:
    """Per-view contrast normalisation ``(v - mean(v)) / std(v)`` over the ``D`` coordinates of each view.

    Not part of the paper (its ``d_A``, eq. (1), is on raw inputs); a choice of input space for it.
    Optional pre-processing for :func:`estimate_sigma`: brightness/contrast jitter pulls raw-pixel views of
    every class toward flat images, which blurs the within/between-class contrast of ``d_A``
    (``docs/design.md``, section 3).
    ``eps`` guards constant views (they map to 0).
    """
    v = as_tensor(views, "views", dtype=None, ndim=3)
    eps = check_real(eps, "eps", low=0, low_open=True)
    v = v if v.dtype.is_floating_point else v.to(torch.float32)
    mean = v.mean(dim=2, keepdim=True)
    std = v.std(dim=2, keepdim=True, unbiased=False)
    return (v - mean) / (std + eps)


@dataclass(frozen=True)
class SigmaEstimate:
    """Estimated ``sigma(delta)`` of Definition 1 from sampled views.

    ``sigma[i] = min_k sigma_per_class[i, k]`` at ``deltas[i]``; ``main_parts[i][k]`` are the image indices
    (within the input) of the main part of class ``k``; ``distances[k]`` is the ``(n_k, n_k)`` estimate
    ``hat d_A`` of class ``k``; ``proven_optimal[i][k]`` flags exact cliques.
    """

    deltas: torch.Tensor
    sigma: torch.Tensor
    sigma_per_class: torch.Tensor
    main_parts: tuple
    distances: tuple
    proven_optimal: tuple
    n_views: int
    members: tuple = ()  # members[k]: indices (within the input) of the images of class k

    def at(self, deltas, *, method: str = "greedy", n_starts: int = 8) -> "SigmaEstimate":
        """The estimate at other ``deltas`` from the same sampled views: the clique search of
        :func:`estimate_sigma` re-run on the stored distances ``hat d_A`` (no new views, no new distances).
        ``estimate_sigma(..., deltas=D).at(D2)`` equals ``estimate_sigma(..., deltas=D2)`` with the same
        generator."""
        if not self.members:
            raise ValueError("this estimate does not record its class members; recompute it with estimate_sigma")
        return _sigma_from_distances(self.distances, self.members, _check_deltas(deltas), _check_method(method),
                                     check_int(n_starts, "n_starts", low=1), self.n_views)

    def pair_distances(self) -> torch.Tensor:
        """``hat d_A(x_i, x_j)`` of every pair ``i < j`` of distinct images of the same class, pooled over the
        classes (class by class, row-major upper triangle): the sample from which the chapters take ``delta``
        as a quantile."""
        return torch.cat([d[tuple(torch.triu_indices(len(d), len(d), 1))] for d in self.distances])


def estimate_sigma(images, augment: Callable, n_views: int, deltas, *, labels=None,
                   generator: torch.Generator | None = None, view_transform: Callable | None = None,
                   precision: str = "float32", method: str = "greedy", block_size: int | None = None,
                   n_starts: int = 8) -> SigmaEstimate:
    """Estimate ``sigma(delta)`` (Definition 1) of an image augmentation from ``T`` sampled views per image.

    For each image, ``T = n_views`` random views plus the original are drawn (:func:`sample_views`), and

        hat d_A(x1, x2) = min over the sampled views of ||x1' - x2'||          (eq. (1) on a subset)

    is computed within each class (:func:`augmented_distance`). Since fewer views are seen than the full
    ``A(x)``, ``hat d_A >= d_A``: an **upper** estimate, so the graph ``hat d_A <= delta`` is a subgraph of
    the true one and every main part found is a true main part. With the greedy clique search (default)
    both effects bias ``hat sigma`` **downward**: it is a lower bound on the empirical distribution's
    best ``sigma`` (up to float32 rounding of the distances). Images of a class are equiprobable.

    Parameters
    ----------
    images : (N, C, H, W) images.
    augment : callable ``(batch, generator) -> batch``.
    n_views : int ``T >= 0``.
    deltas : thresholds ``delta >= 0`` (1-D).
    labels : optional (N,) class indices; default: all images form one class.
    generator : torch.Generator for the augmentation draws (default seed 0).
    view_transform : optional callable on the ``(N, T+1, D)`` views before distances, e.g.
        :func:`standardize_views`.
    precision, block_size : passed to :func:`augmented_distance` (float32 matrix products by default).
    method, n_starts : clique search, as in :func:`main_parts` (default greedy).

    Cost: the ``(N (T+1))^2 D / 2`` flops of the symmetric distance blocks dominate (about 5 s for
    ``N = 1000``, ``T = 16``, ``D = 3072`` on 2 CPU cores; see ``bench/bench_sigma.py``).
    """
    x = as_tensor(images, "images", dtype=None, ndim=4)
    method = _check_method(method)
    n_starts = check_int(n_starts, "n_starts", low=1)
    d = _check_deltas(deltas)
    if labels is None:
        y = torch.zeros(x.shape[0], dtype=torch.int64)
    else:
        y = as_tensor(labels, "labels", dtype=None, ndim=1)
        if y.dtype.is_floating_point and not bool((y == y.round()).all()):
            raise ValueError("labels must be integer class indices")
        y = y.to(torch.int64)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"labels has {y.shape[0]} entries but there are {x.shape[0]} images")
        if bool((y < 0).any()):
            raise ValueError("labels must be nonnegative class indices")
    num_classes = int(y.max()) + 1
    counts = torch.bincount(y, minlength=num_classes)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"class(es) {empty} have no images; relabel the classes 0..K-1 without gaps")
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    views = sample_views(x, augment, n_views, generator=generator,
                         dtype=torch.float32 if precision == "float32" else torch.float64)
    if view_transform is not None:
        if not callable(view_transform):
            raise TypeError("view_transform must be a callable on (N, V, D) views")
        shape = tuple(views.shape)
        views = torch.as_tensor(view_transform(views))
        if tuple(views.shape[:2]) != shape[:2] or views.ndim != 3:
            raise ValueError(f"view_transform must return (N, V, D') views for input {shape}, "
                             f"got shape {tuple(views.shape)}")
    members = [torch.nonzero(y == k).flatten() for k in range(num_classes)]
    class_d = [augmented_distance(views[m], precision=precision, block_size=block_size) for m in members]
    return _sigma_from_distances(tuple(class_d), tuple(members), d, method, n_starts,
                                 check_int(n_views, "n_views", low=0))


def sigma_from_distances(class_distances, deltas, *, members=None, method: str = "greedy", n_starts: int = 8,
                         n_views: int = 0) -> "SigmaEstimate":
    """``hat sigma(delta)`` from given within-class distance matrices: the clique step of :func:`estimate_sigma`.

    ``class_distances[k]`` is the ``(n_k, n_k)`` matrix ``hat d_A`` of class ``k`` (e.g. from
    :func:`augmented_distance` on views sampled once and reused in several input spaces); ``members[k]``
    the indices of those images in the caller's input (default ``0..n_k-1``). Same cliques, warm starts
    and ``sigma = min_k sigma_k`` as :func:`estimate_sigma`.
    """
    class_d = tuple(torch.as_tensor(d) for d in class_distances)
    if not class_d or any(d.ndim != 2 or d.shape[0] != d.shape[1] for d in class_d):
        raise ValueError("class_distances must be a non-empty sequence of square distance matrices")
    members = tuple(torch.arange(len(d)) for d in class_d) if members is None else tuple(members)
    if len(members) != len(class_d):
        raise ValueError(f"members has {len(members)} entries for {len(class_d)} classes")
    return _sigma_from_distances(class_d, members, _check_deltas(deltas), _check_method(method),
                                 check_int(n_starts, "n_starts", low=1), check_int(n_views, "n_views", low=0))


def _sigma_from_distances(class_d: tuple, members: tuple, d: torch.Tensor, method: str, n_starts: int,
                          n_views: int) -> "SigmaEstimate":
    """Main parts (cliques of ``hat d_A <= delta``) of every class at every delta, from the class distances."""
    num_classes = len(class_d)
    sigma_pc = torch.empty(d.shape[0], num_classes, dtype=torch.float64)
    parts: list = [None] * d.shape[0]
    proven: list = [None] * d.shape[0]
    previous = [None] * num_classes
    for i in torch.argsort(d, stable=True).tolist():
        idx_i, proven_i = [], []
        for k in range(num_classes):
            adjacency = (class_d[k] <= float(d[i])).numpy()
            result = _clique(adjacency, np.ones(adjacency.shape[0]), method, previous[k], n_starts)
            previous[k] = result.indices
            idx_i.append(members[k][result.indices])
            proven_i.append(result.proven_optimal)
            sigma_pc[i, k] = result.indices.numel() / adjacency.shape[0]
        parts[i], proven[i] = tuple(idx_i), tuple(proven_i)
    return SigmaEstimate(d, sigma_pc.min(dim=1).values, sigma_pc, tuple(parts), tuple(class_d), tuple(proven),
                         n_views, members)
