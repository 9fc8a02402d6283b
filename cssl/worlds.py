"""Finite latent-class worlds: the paper's setting (Sec. 2) made exact.

A *world* has ``N`` points ``x_i``, each in one latent class ``y_i in {0..K-1}`` with probability mass
``w_i`` (so ``p_k = sum_{i: y_i = k} w_i``), and each with a finite list of ``V`` equiprobable views
``A(x_i) = {v_i1, ..., v_iV}`` (a multiset: repeat a view to give it more weight). Every expectation
of the paper, e.g. the alignment

    L_align(f) = E_x E_{x1, x2 in A(x)} ||f(x1) - f(x2)||^2          (paper, eq. 4)

is then a finite weighted sum, computed exactly. ``world.map(f)`` pushes every view through an
encoder ``f`` and returns the world of features, on which :mod:`cssl.metrics` evaluates the paper's
quantities.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ._validate import as_tensor, check_int

__all__ = ["World"]


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
