"""Follow the paper's quantities while an encoder trains on a finite world (the book's tool).

The paper's Section 4 explains *why* contrastive losses produce good features by splitting each loss
into an alignment part ``L1`` and a divergence part ``L2`` (InfoNCE, eq. (5); cross-correlation, Sec. 4.2)
and by bounding the class-centre inner products ``mu_k^T mu_l`` (Theorems 3 and 4), the fraction
``R_eps`` of badly aligned points (Sec. 3) and hence the nearest-centre error ``Err(G_f)`` (Theorem 1).
This module records all of them, **exactly** (finite weighted sums, float64), at regular steps of a
training run:

* :func:`snapshot` -- the quantities of one feature world ``world.map(f)``;
* :func:`fit_tracked` -- training with :func:`cssl.train.fit_on_world` (so the same weights for the
  same seed), with a :func:`snapshot` before training, every ``every`` steps and at the end;
* :func:`t_info_nce_split_exact` -- the population version of :func:`cssl.losses.t_info_nce_split`.

Paper references: ``L1``/``L2`` of InfoNCE, eq. (5) (Sec. 4.1); linear loss, Sec. 4.1; cross-correlation
split, Sec. 4.2; ``mu_k``, ``Err``, Sec. 2; ``R_eps = P[x not in S_eps]``, Sec. 3. t-InfoNCE is the book's
reading of Hu et al. (2022) (Chapter 7), not a formula of the paper.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from . import losses as _losses
from . import metrics as _metrics
from ._validate import check_int, check_real
from .train import WORLD_LOSSES, fit_on_world
from .worlds import World

__all__ = [
    "TRACKED_LOSSES",
    "t_info_nce_split_exact",
    "class_alignment",
    "normalise_coordinates",
    "snapshot",
    "Trace",
    "fit_tracked",
]

#: Losses :func:`fit_tracked` trains with: those of :func:`cssl.train.fit_on_world`.
TRACKED_LOSSES = WORLD_LOSSES
_BLOCK_ELEMENTS = 1 << 21


def _feature_world(world) -> World:
    if not isinstance(world, World):
        raise TypeError(f"world must be a cssl.World of features (e.g. data_world.map(f)), got {type(world).__name__}")
    return world


# ------------------------------------------------------------------------------ t-InfoNCE
def t_info_nce_split_exact(world: World) -> _losses.LossSplit:
    r"""Population t-InfoNCE and its split (the book's reading of Hu et al. 2022, notes 7), exactly.

    With the Cauchy kernel ``k(u) = 1 / (1 + u)``, ``u+ = ||f(x1) - f(x2)||^2`` and
    ``u- = ||f(x1) - f(x^-)||^2``, where ``x, x'`` are independent points (point masses ``w``),
    ``x1, x2`` independent uniform views of ``x`` and ``x^-`` a uniform view of ``x'``::

        L_t   = E -log( k(u+) / (k(u+) + k(u-)) )               (the population t_info_nce)
        L1_t  = E log(1 + u+)                                   (alignment part)
        L2_t  = E log( k(u+) + k(u-) )                          (divergence part)

    ``total`` is computed from its own definition, so ``total == L1 + L2`` is a check of the split
    (it holds for any features; no sphere is needed). This is the expectation that
    :func:`cssl.losses.t_info_nce` and :func:`cssl.losses.t_info_nce_split` estimate on a batch of
    triples drawn by :func:`cssl.worlds.sample_view_triples`. Cost ``O(N^2 V^3 d)``, blocked.
    """
    world = _feature_world(world)
    v, w = world.views, world.weights
    n, V, _ = v.shape
    flat = v.reshape(n * V, -1)
    col_w = (w / V).repeat_interleave(V)                       # probability of each negative (x', view)
    block = max(1, _BLOCK_ELEMENTS // (V * V * n * V))
    total = l1 = l2 = 0.0
    for start in range(0, n, block):
        vb = v[start:start + block]
        log_pos = torch.log1p(torch.cdist(vb, vb, compute_mode="donot_use_mm_for_euclid_dist").square())
        d_neg = torch.cdist(vb.reshape(-1, vb.shape[-1]), flat, compute_mode="donot_use_mm_for_euclid_dist")
        log_neg = torch.log1p(d_neg.square()).reshape(vb.shape[0], V, 1, n * V)   # (B, V, 1, N*V)
        lp = log_pos.unsqueeze(-1)                                                  # (B, V, V, 1)
        per_l2 = (torch.logaddexp(-lp, -log_neg) @ col_w).mean(dim=(1, 2))
        per_tot = (torch.nn.functional.softplus(lp - log_neg) @ col_w).mean(dim=(1, 2))
        wb = w[start:start + block]
        total += float((wb * per_tot).sum())
        l1 += float((wb * log_pos.mean(dim=(1, 2))).sum())
        l2 += float((wb * per_l2).sum())
    return _losses.LossSplit(total, l1, l2)


# ------------------------------------------------------------------------------ per-class alignment
def class_alignment(world: World) -> torch.Tensor:
    r"""Alignment of each latent class: ``a_k = E_{x in C_k} E_{x1, x2 in A(x)} ||f(x1) - f(x2)||^2``, shape ``(K,)``.

    The class-conditional version of ``L_align`` (eq. (4)), so ``sum_k p_k a_k = L_align`` (the
    equality is a test). Per point, ``E_{x1, x2} ||f(x1) - f(x2)||^2 = 2 (mean_j ||v_j||^2 - ||mean_j v_j||^2)``
    over the ``V`` equiprobable views; on the unit sphere ``1 - a_k / 2 = E_{x in C_k} f(x1)^T f(x2)``,
    the mean positive inner product of class ``k`` used in the book's bounds of Chapter 5.
    Takes a feature world ``world.map(f)``; exact, float64.
    """
    world = _feature_world(world)
    v = world.views
    per_point = 2.0 * (v.square().sum(dim=2).mean(dim=1) - v.mean(dim=1).square().sum(dim=1))
    sums = torch.zeros(world.num_classes, dtype=torch.float64).index_add_(
        0, world.labels, world.weights * per_point.clamp_min(0.0))
    return sums / world.class_masses()


def _coordinate_map(world: World, centre: bool, clean_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c, s)`` of :func:`normalise_coordinates` for ``world``."""
    v = world.views[:, :1] if clean_only else world.views
    c = (torch.einsum("n,nvd->d", world.weights, v) / v.shape[1]) if centre else torch.zeros(world.dim, dtype=v.dtype)
    s2 = torch.einsum("n,nvd->d", world.weights, (v - c).square()) / v.shape[1]
    if bool((s2 <= 0).any()):
        raise ValueError("a feature coordinate is constant on this world, so it cannot be normalised")
    return c, s2.sqrt()


def normalise_coordinates(world: World, *, centre: bool = True, clean_only: bool = False,
                          apply_to: World | None = None) -> World:
    r"""The feature world with every coordinate normalised as the cross-correlation loss assumes (Sec. 4.2).

    Returns ``f~_i = (f_i - c_i) / s_i`` with, by default, ``c_i = E_x E_{x1 in A(x)} f_i(x1)`` and
    ``s_i^2 = E_x E_{x1 in A(x)} (f_i(x1) - c_i)^2``, so that the paper's normalisation
    ``E f~_i = 0`` and ``E f~_i^2 = 1`` holds **over the view distribution** (``x`` by its mass, one
    uniform view) -- the population analogue of Barlow Twins' batch standardisation and of
    ``cross_correlation_matrix_exact(..., standardize=True)``.

    * ``centre=False``: ``c_i = 0``, only ``E f~_i^2 = 1`` (all that Lemma 4.1 uses).
    * ``clean_only=True``: the moments are taken over the clean points ``views[:, 0]`` instead of the
      views -- the *wrong* distribution, kept to show that Lemma 4.1 can then fail (Chapter 6).
    * ``apply_to``: fit ``c, s`` on ``world`` but return ``apply_to`` mapped with them (e.g. held-out
      features normalised with the training statistics).

    A coordinate that is constant (``s_i = 0``) raises ``ValueError``.
    """
    world = _feature_world(world)
    c, s = _coordinate_map(world, centre, clean_only)
    target = world if apply_to is None else _feature_world(apply_to)
    if target.dim != world.dim:
        raise ValueError(f"apply_to has dimension {target.dim} but world has {world.dim}")
    return World((target.views - c) / s, target.labels, target.weights, target.num_classes)


# ------------------------------------------------------------------------------ snapshots
def _eps_list(eps) -> list[float]:
    if isinstance(eps, (int, float)) and not isinstance(eps, bool):
        eps = [eps]
    if isinstance(eps, (str, bytes)) or not isinstance(eps, Sequence) or len(eps) == 0:
        raise TypeError(f"eps must be a number >= 0 or a non-empty sequence of them, got {eps!r}")
    return [check_real(e, "eps", low=0) for e in eps]


def _split(world: World, loss: str, lam: float, radius: float | None) -> dict:
    if loss == "info_nce":
        s = _losses.info_nce_split_exact(world)
    elif loss == "linear":
        s = _losses.linear_loss_split_exact(world, lam)
    elif loss == "t_info_nce":
        s = t_info_nce_split_exact(world)
    elif loss == "cross_correlation":
        s = _losses.cross_correlation_split_exact(world, lam, standardize=True)
    else:
        return {}
    return {"loss": s.total, "L1": s.L1, "L2": s.L2}


def snapshot(world: World, *, loss: str = "info_nce", eps=0.5, radius: float | None = None, lam: float | None = None,
             test_world: World | None = None, standardize: bool = False) -> dict:
    r"""The paper's quantities on one feature world ``world.map(f)``, exactly: a ``dict`` of floats.

    Keys (all exact population values, float64):

    * ``loss``, ``L1``, ``L2`` -- the population loss and its split for ``loss``: InfoNCE, eq. (5)
      (needs ``||f|| = 1``); ``linear`` (Sec. 4.1, ``L2 = ||E f||^2``, ``lam`` default 1);
      ``t_info_nce`` (:func:`t_info_nce_split_exact`); ``cross_correlation`` (Sec. 4.2, on the
      standardised features ``E f_i = 0, E f_i^2 = 1``, ``lam`` default 5e-3). Absent for
      ``nt_xent`` and ``spectral``, whose exact splits the book does not use.
    * ``align`` -- ``L_align`` of eq. (4); ``max_mu`` -- ``max_{k != l} mu_k^T mu_l``;
      ``mean_mu`` -- the ``p_k p_l``-weighted mean of ``mu_k^T mu_l`` over ordered pairs ``k != l``;
    * ``delta_mu`` -- ``1 - min_k ||mu_k||^2 / r^2`` when ``radius = r`` is given;
    * ``R_eps@<eps>`` -- ``R_eps = P[x not in S_eps]`` (Sec. 3, sup over view pairs) for each ``eps``;
    * ``err`` -- the nearest-centre error ``Err(G_f)`` of Sec. 2; with ``test_world`` (features of
      held-out points) also ``test_err``, the error of the *training* centres on the test points.

    ``standardize=True`` first applies :func:`normalise_coordinates` (fitted on ``world``, applied with
    the same affine map to ``test_world``), so that every quantity refers to the normalised features
    the cross-correlation loss sees; ``radius`` must then be ``None`` (the norm is no longer constant).
    """
    world = _feature_world(world)
    if loss not in TRACKED_LOSSES:
        raise ValueError(f"loss must be one of {list(TRACKED_LOSSES)}, got {loss!r}")
    eps_values = _eps_list(eps)
    if radius is not None:
        radius = check_real(radius, "radius", low=0, low_open=True)
    if lam is None:
        lam = 5e-3 if loss == "cross_correlation" else 1.0
    lam = check_real(lam, "lam", low=0)
    if standardize:
        if radius is not None:
            raise ValueError("standardize=True changes the feature norms; pass radius=None")
        if test_world is not None:
            test_world = normalise_coordinates(world, apply_to=test_world)
        world = normalise_coordinates(world)
    out = _split(world, loss, lam, radius)
    gram = _metrics.centre_inner_products(world)
    p = world.class_masses()
    off = ~torch.eye(world.num_classes, dtype=torch.bool)
    pp = (p[:, None] * p[None, :])[off]
    out["align"] = _metrics.alignment(world)
    out["max_mu"] = float(gram[off].max())
    out["mean_mu"] = float((pp * gram[off]).sum() / pp.sum())
    if radius is not None:
        out["delta_mu"] = _metrics.delta_mu(world, radius)
    sup = _metrics.sup_view_distance(world)
    for e in eps_values:
        out[f"R_eps@{e:g}"] = float(world.weights[sup > e].sum())
    out["err"] = _metrics.nearest_centre_error(world)
    if test_world is not None:
        test_world = _feature_world(test_world)
        if test_world.dim != world.dim or test_world.num_classes != world.num_classes:
            raise ValueError("test_world must hold features of the same encoder (same d and K) as world")
        out["test_err"] = _metrics.nearest_centre_error(test_world, _metrics.class_centres(world))
    return out


# ------------------------------------------------------------------------------ training
@dataclass
class Trace:
    """What :func:`fit_tracked` recorded.

    ``steps[i]`` is the number of optimizer steps taken before snapshot ``i`` (0 = initialisation);
    ``values[key][i]`` the value of :func:`snapshot`'s ``key`` there; ``batch_losses`` the training loss
    of every step (as :func:`cssl.train.fit_on_world` returns them). ``trace["L1"]`` gives a numpy
    array; ``trace.final`` the last snapshot.
    """

    loss: str
    steps: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    batch_losses: list = field(default_factory=list)

    def __getitem__(self, key: str) -> np.ndarray:
        if key == "step":
            return np.asarray(self.steps)
        if key not in self.values:
            raise KeyError(f"{key!r} was not recorded; recorded keys: {sorted(self.values)}")
        return np.asarray(self.values[key], dtype=np.float64)

    def keys(self) -> list[str]:
        return list(self.values)

    @property
    def final(self) -> dict:
        return {k: v[-1] for k, v in self.values.items()}

    def _add(self, step: int, snap: dict) -> None:
        if self.steps and set(snap) != set(self.values):
            raise RuntimeError("snapshots recorded different keys")  # pragma: no cover - internal
        self.steps.append(step)
        for k, v in snap.items():
            self.values.setdefault(k, []).append(float(v))


def _check_encoder_width(encoder: nn.Module, world: World) -> None:
    """Raise a ``ValueError`` naming both widths when ``encoder`` cannot take the world's points."""
    probe = copy.deepcopy(encoder).to(device="cpu", dtype=torch.float64).eval()
    try:
        with torch.no_grad():
            probe(world.views[:2, 0])
    except RuntimeError as err:
        raise ValueError(f"encoder does not accept the world's points of dimension d = {world.dim} "
                         f"({' '.join(str(err).split())[:120]}); build it with input width {world.dim}") from None


def fit_tracked(encoder: nn.Module, world: World, *, loss: str = "info_nce", steps: int = 200, every: int = 20,
                batch_size: int = 64, lr: float = 1e-2, seed: int = 0, eps=0.5, radius: float | None = None,
                test_world: World | None = None, standardize: bool = False, progress: bool = False,
                **loss_kwargs) -> Trace:
    r"""Train ``encoder`` on ``world`` with :func:`cssl.train.fit_on_world` and record :func:`snapshot`\ s.

    The training is ``fit_on_world``'s own loop (same sampling, optimiser, losses and seed, so the same
    weights and per-step losses); ``loss`` is one of :data:`TRACKED_LOSSES` and ``loss_kwargs`` are
    passed on (e.g. ``lam`` or ``temperature``).

    Snapshots of the *input* world pushed through the encoder (``world.map`` of a float64 copy, so the
    exact identities hold to rounding) are taken at step 0, every ``every`` steps and after the last
    step; ``eps``, ``radius``, ``standardize`` and ``test_world`` (an input world of held-out points)
    go to :func:`snapshot` (``lam`` too, for the linear and cross-correlation splits). ``progress=True``
    prints a progress bar to **stdout** (never stderr). Returns a :class:`Trace`.
    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be an nn.Module, got {type(encoder).__name__}")
    if not isinstance(world, World):
        raise TypeError(f"world must be a cssl.World (the input world), got {type(world).__name__}")
    if loss not in TRACKED_LOSSES:
        raise ValueError(f"loss must be one of {list(TRACKED_LOSSES)}, got {loss!r}")
    steps = check_int(steps, "steps", low=1)
    every = check_int(every, "every", low=1)
    check_int(batch_size, "batch_size", low=2)
    check_real(lr, "lr", low=0, low_open=True)
    check_int(seed, "seed", low=0)
    eps_values = _eps_list(eps)
    if test_world is not None and not isinstance(test_world, World):
        raise TypeError(f"test_world must be a cssl.World or None, got {type(test_world).__name__}")
    _check_encoder_width(encoder, world)
    lam = loss_kwargs.get("lam")
    trace = Trace(loss)

    def record(step: int) -> None:
        f64 = copy.deepcopy(encoder).to(device="cpu", dtype=torch.float64)
        test = test_world.map(f64) if test_world is not None else None
        trace._add(step, snapshot(world.map(f64), loss=loss, eps=eps_values, radius=radius, lam=lam,
                                  test_world=test, standardize=standardize))

    def after_step(step: int, value: float) -> None:
        if step % every == 0 or step == steps:
            record(step)

    record(0)
    trace.batch_losses.extend(fit_on_world(encoder, world, loss=loss, steps=steps, batch_size=batch_size, lr=lr,
                                           seed=seed, progress=progress, callback=after_step, **loss_kwargs))
    return trace
