"""The paper's constants and bounds as numeric functions (float in, float out; numpy arrays broadcast).

Every function names the paper's equation, lemma or theorem it computes. Two kinds of formulas live
here and the docstrings keep them apart:

* **paper** -- the statement printed in the paper (Huang, Yi, Zhao, Jiang, ICLR 2023);
* **book** -- a reconstruction by this book, because the paper's appendix (proofs, explicit ``tau``
  and ``tau'``) was not available. Every such function or option is named ``*_book`` or
  ``coefficient="corrected"`` and says so; see ``docs/design.md``, section 2.

Scalar inputs give a Python ``float``; array inputs broadcast with numpy and give an ``ndarray``.
:mod:`cssl.symbolic` holds the sympy twin of each formula, and the tests check that both agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ._validate import check_int, check_probability_vector, check_real

__all__ = [
    "rho_l",
    "rho_max",
    "theorem1_threshold",
    "theorem1_condition",
    "theorem1_bound",
    "Theorem1Check",
    "theorem1_check",
    "eta_h",
    "eta",
    "log_eta",
    "eta_argmin",
    "eta_closed_form",
    "eta_closed_form_eps_max",
    "theorem3_rhs",
    "tau_book",
    "TAU_BOOK_EPS_MAX",
    "infonce_l2_floor",
    "theorem3_rhs_floor",
    "theorem3_rhs_jensen_floor",
    "t_infonce_l2_jensen_floor",
    "t_infonce_vacuity_alignment",
    "infonce_l2_jensen_floor",
    "theorem3_vacuity_threshold",
    "theorem4_rhs",
    "tau_prime_book",
    "infonce_err_bound",
    "cross_correlation_err_bound",
    "off_diagonal_pairs",
    "theorem3_rhs_pairs",
    "infonce_pair_sum_book",
    "infonce_pair_bound_book",
    "infonce_mean_bound_book",
    "rho_star",
    "theorem4_rhs_pairs",
    "t_infonce_phi",
    "t_infonce_pair_sum_book",
    "t_infonce_pair_bound_book",
    "t_infonce_mean_bound_book",
]

Coefficient = Literal["paper", "corrected", "improved"]

#: Largest eps for which the book's ``tau_book = 4 R_eps`` is derived (Chapter 5, step 2 needs
#: ``log(e^{1-eps} + e^{-1}) >= 0``): ``1 - log(1 - 1/e) ~= 1.4587``.
TAU_BOOK_EPS_MAX = 1.0 - math.log(1.0 - math.exp(-1.0))


# --------------------------------------------------------------------------------------- helpers
def _arr(value, name: str, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> np.ndarray:
    """``value`` as a float64 array (0-d for scalars), checked finite and inside the interval."""
    if isinstance(value, bool) or (isinstance(value, np.ndarray) and value.dtype == bool):
        raise TypeError(f"{name} must be a real number or array of reals, got a boolean")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number or array of reals, got {type(value).__name__} "
                        f"{value!r}") from None
    if a.size == 0:
        raise ValueError(f"{name} is empty; expected at least one number")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite numbers")
    bad = np.zeros(a.shape, dtype=bool)
    if low is not None:
        bad |= (a <= low) if low_open else (a < low)
    if high is not None:
        bad |= (a >= high) if high_open else (a > high)
    if np.any(bad):
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {lo}, {hi}, got {float(a[bad].flat[0]):g}")
    return a


def _ret(x):
    """A Python float for 0-d results, the array otherwise."""
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def _coefficient(coefficient: str) -> str:
    if coefficient not in ("paper", "corrected", "improved"):
        raise ValueError(f"coefficient must be 'paper', 'corrected' or 'improved', got {coefficient!r}")
    return coefficient


# ------------------------------------------------------------------------ Lemma 3.2 / Theorem 1
def rho_l(sigma, delta, eps, R_eps, p_l, L, r, *, coefficient: Coefficient = "paper"):
    r"""The concentration-alignment constant ``rho_l(sigma, delta, eps)`` of Lemma 3.2.

    With ``a = L delta / r + 2 eps / r``:

    * ``coefficient="paper"`` (Lemma 3.2 as printed)::

          rho_l = 2 (1 - sigma) + R_eps / p_l + sigma a

    * ``coefficient="corrected"`` (**the book's reconstruction**, notes 3.2 step 3; not the paper's
      word)::

          rho~_l = 2 (1 - sigma) + sigma a + (2 - a) R_eps / p_l      if a <= 2
          rho~_l = 2                                                   if a > 2

      The book's proof of Lemma 3.2 gives ``f(x)^T mu_l >= r^2 (1 - rho~_l)`` for every ``x`` in
      ``C_l^0 cap S_eps``; the paper's coefficient 1 on ``R_eps / p_l`` double-counts the main part
      and its intermediate inequality fails on simple examples. When ``a > 2`` the derivation only
      gives the trivial ``f^T mu_l >= -r^2``, i.e. ``rho = 2``, which already makes condition (2)
      unsatisfiable (threshold ``<= -3 r^2 < -r^2 <= mu_l^T mu_k``).

    * ``coefficient="improved"`` (**the book's**, thm-book-lem32-all; not the paper's word)::

          rho#_l = (1 - sigma) + R_eps / p_l + a

      The book proves Lemma 3.2 with any ``rho >= h_l + a``, where
      ``h_l = 1 - P[C_l^0 cap S_eps | C_l] <= (1 - sigma) + R_eps / p_l``; so ``rho#_l`` is admissible
      and ``rho_l - rho#_l = (1 - sigma)(1 - a) >= 0`` when ``a <= 1``. The printed ``rho_l`` is
      admissible too (for ``a > 1`` its hypothesis cannot hold), hence Lemma 3.2 holds as printed.

    Parameters: ``sigma`` in (0, 1], ``delta >= 0``, ``eps >= 0``, ``R_eps`` in [0, 1], class mass
    ``p_l`` in (0, 1], Lipschitz constant ``L > 0``, feature radius ``r > 0``.
    """
    coefficient = _coefficient(coefficient)
    sigma = _arr(sigma, "sigma", low=0, high=1, low_open=True)
    delta = _arr(delta, "delta", low=0)
    eps = _arr(eps, "eps", low=0)
    R_eps = _arr(R_eps, "R_eps", low=0, high=1)
    p_l = _arr(p_l, "p_l", low=0, high=1, low_open=True)
    L = _arr(L, "L", low=0, low_open=True)
    r = _arr(r, "r", low=0, low_open=True)
    a = L * delta / r + 2.0 * eps / r
    if coefficient == "paper":
        return _ret(2.0 * (1.0 - sigma) + R_eps / p_l + sigma * a)
    if coefficient == "improved":
        return _ret((1.0 - sigma) + R_eps / p_l + a)
    corrected = 2.0 * (1.0 - sigma) + sigma * a + (2.0 - a) * R_eps / p_l
    return _ret(np.where(a <= 2.0, corrected, 2.0))


def lemma32_key_constant(rho):
    r"""The constant that closes the case ``rho > 1/2`` of the book's proof of Lemma 3.2.

    With ``kappa = 2 rho + 2 sqrt(2 rho)`` and ``w = sqrt(2 rho)`` (the book, thm-book-lem32-all,
    step 6)::

        c(rho) = 2 (kappa - 1) / 3 - 2 rho = (2 - (w - 2)^2) / 3

    It is positive exactly for ``3 - 2 sqrt2 < rho < 3 + 2 sqrt2``: ``1/3`` at ``rho = 1/2`` and
    ``2 sqrt5 - 4`` at ``rho = 3 - sqrt5`` (where Theorem 1's threshold reaches ``-r^2``), but
    ``c(0.15) < 0``, so step 6 alone cannot cover small ``rho`` (step 5, Jensen, does). For
    ``1/2 < rho < 3 - sqrt5`` the proof gives ``||f - mu_k||^2 - ||f - mu_l||^2 > z c(rho) r^2 / (1 - h)``
    with ``z = ||mu_k - mu_l|| / r``. ``rho`` must be ``>= 0`` (a number or an array).
    """
    rho = _arr(rho, "rho", low=0)
    kappa = 2.0 * rho + 2.0 * np.sqrt(2.0 * rho)
    return _ret(2.0 * (kappa - 1.0) / 3.0 - 2.0 * rho)


def rho_max(sigma, delta, eps, R_eps, p, L, r, *, coefficient: Coefficient = "paper"):
    r"""``rho_max(sigma, delta, eps)`` of Theorem 1: ``rho_l`` evaluated at ``p_l = min_l p_l``.

    Paper (Theorem 1)::

        rho_max = 2 (1 - sigma) + R_eps / min_l p_l + sigma (L delta / r + 2 eps / r)

    ``coefficient="corrected"`` or ``"improved"`` gives the book's constants (see :func:`rho_l`). All are
    increasing in ``R_eps / p_l``, so the minimum class mass gives the largest ``rho_l``.
    ``p`` is the vector of class masses ``(p_1, ..., p_K)`` (positive, summing to 1, ``K >= 2``).
    """
    p_t = check_probability_vector(p, "p", atol=1e-6)
    if p_t.numel() < 2:
        raise ValueError(f"p must hold the masses of K >= 2 classes, got {p_t.numel()}")
    return rho_l(sigma, delta, eps, R_eps, float(p_t.min()), L, r, coefficient=coefficient)


def theorem1_threshold(rho, delta_mu, r):
    r"""Right-hand side of the divergence condition (2) of Theorem 1 (and of Lemma 3.2).

    Paper, eq. (2)::

        threshold = r^2 (1 - rho - sqrt(2 rho) - Delta_mu / 2),   Delta_mu = 1 - min_k ||mu_k||^2 / r^2

    Theorem 1 asks ``mu_l^T mu_k < threshold`` for every pair ``l != k`` (use ``rho = rho_max``).
    At the ideal point (``rho = 0``, ``Delta_mu = 0``) the threshold is ``r^2``. ``rho >= 0``,
    ``Delta_mu`` in [0, 1], ``r > 0``.
    """
    rho = _arr(rho, "rho", low=0)
    delta_mu = _arr(delta_mu, "delta_mu", low=0, high=1)
    r = _arr(r, "r", low=0, low_open=True)
    return _ret(r ** 2 * (1.0 - rho - np.sqrt(2.0 * rho) - delta_mu / 2.0))


def theorem1_condition(centre_inner_products, threshold) -> bool:
    r"""Whether the divergence condition (2) of Theorem 1 holds: ``mu_l^T mu_k < threshold`` for all ``l != k``.

    ``centre_inner_products`` is the ``K x K`` matrix ``(mu_k^T mu_l)`` (``K >= 2``); its diagonal is
    ignored. The inequality is strict, as in the paper.
    """
    g = _arr(centre_inner_products, "centre_inner_products")
    if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] < 2:
        raise ValueError(f"centre_inner_products must be a square K x K matrix with K >= 2, got shape {g.shape}")
    thr = check_real(threshold, "threshold")
    off = ~np.eye(g.shape[0], dtype=bool)
    return bool(np.all(g[off] < thr))


def theorem1_bound(sigma, R_eps):
    r"""The error bound of Theorem 1 (eq. (3)) and Lemma 3.1: ``Err(G_f) <= (1 - sigma) + R_eps``.

    ``sigma`` in (0, 1], ``R_eps = P[x not in S_eps]`` in [0, 1] (the complement; the paper's first
    definition ``P[S_eps]`` is a typo).
    """
    sigma = _arr(sigma, "sigma", low=0, high=1, low_open=True)
    R_eps = _arr(R_eps, "R_eps", low=0, high=1)
    return _ret((1.0 - sigma) + R_eps)


@dataclass(frozen=True)
class Theorem1Check:
    """Theorem 1 evaluated on a feature world (see :func:`theorem1_check`)."""

    rho_max: float
    delta_mu: float
    R_eps: float
    threshold: float
    max_centre_inner_product: float
    condition_holds: bool
    bound: float
    err: float
    coefficient: str

    @property
    def bound_holds(self) -> bool:
        """``Err <= bound``; Theorem 1 promises it only when ``condition_holds`` (and sigma is valid)."""
        return self.err <= self.bound + 1e-12


def theorem1_check(world, sigma, delta, eps, L, r, *, coefficient: Coefficient = "paper",
                   radius_rtol: float = 1e-6) -> Theorem1Check:
    r"""Evaluate Theorem 1 on a world of features ``f(views)`` (e.g. ``data_world.map(f)``).

    Computes ``R_eps`` (sup over view pairs), ``Delta_mu``, ``rho_max`` (paper or the book's corrected
    coefficient), the threshold of eq. (2), the largest ``mu_l^T mu_k`` over ``l != k``, whether (2)
    holds, the bound ``(1 - sigma) + R_eps`` of eq. (3) and the nearest-centre error ``Err(G_f)``.

    ``sigma`` and ``delta`` must describe the *data* augmentation (Definition 1, e.g. from
    :mod:`cssl.concentration`) and ``L`` must be a Lipschitz constant of ``f``: the theorem's
    guarantee ``Err <= bound`` is only as valid as these inputs. Features must lie on the sphere of
    radius ``r`` (the paper's assumption ``||f|| = r``); a ``ValueError`` says so otherwise.
    """
    from . import metrics  # lazy: metrics is a sibling module written separately

    r_val = check_real(r, "r", low=0, low_open=True)
    check_real(radius_rtol, "radius_rtol", low=0)
    norms = world.views.norm(dim=-1)
    worst = float((norms - r_val).abs().max())
    if worst > radius_rtol * r_val:
        raise ValueError(f"Theorem 1 assumes ||f|| = r = {r_val:g} for every view, but a feature norm is "
                         f"off by {worst:.3g}; normalise the features (f / ||f|| * r) first")
    R = float(metrics.r_eps(world, eps))
    dmu = float(metrics.delta_mu(world, r_val))
    dmu = min(max(dmu, 0.0), 1.0)  # round-off can push it a hair outside [0, 1]
    rho = rho_max(sigma, delta, eps, R, world.class_masses(), L, r_val, coefficient=coefficient)
    thr = theorem1_threshold(rho, dmu, r_val)
    g = np.asarray(torch.as_tensor(metrics.centre_inner_products(world)).detach().cpu(), dtype=np.float64)
    off = ~np.eye(g.shape[0], dtype=bool)
    return Theorem1Check(
        rho_max=float(rho), delta_mu=dmu, R_eps=R, threshold=float(thr),
        max_centre_inner_product=float(g[off].max()), condition_holds=theorem1_condition(g, thr),
        bound=float(theorem1_bound(sigma, R)), err=float(metrics.nearest_centre_error(world)),
        coefficient=coefficient)


# ---------------------------------------------------------------------------------- Theorem 2
def _eta_args(eps, m, n, L, M, h_max):
    eps = _arr(eps, "eps", low=0)
    m = check_int(m, "m", low=1)
    n = check_int(n, "n", low=1)
    L = check_real(L, "L", low=0, low_open=True)
    M = check_real(M, "M", low=0, low_open=True)
    if h_max is not None:
        h_max = check_real(h_max, "h_max", low=0, low_open=True)
    return eps, m, n, L, M, h_max


def eta_h(h, eps, m, n, L, M):
    r"""The expression inside the infimum of Theorem 2, at a given cube side ``h``.

    Paper, Theorem 2::

        eta_h(h) = 4 max{1, m^2 h^{2n}} / (h^{2n} (eps - 2 sqrt(n) L M h)),   0 < h < eps / (2 sqrt(n) L M)

    ``m >= 1`` discrete augmentations, ``n >= 1`` continuous parameters, ``L`` the Lipschitz constant
    of ``f``, ``M`` that of ``theta -> A_theta(x)``. Outside the admissible interval
    (``h >= eps / (2 sqrt(n) L M)``) no guarantee follows and the function returns ``+inf``. The
    book's proof also needs ``h <= 1`` (a cube of side ``h`` inside ``[0, 1]^n``); this function does
    not impose it (see :func:`eta`).
    """
    h = _arr(h, "h", low=0, low_open=True)
    eps, m, n, L, M, _ = _eta_args(eps, m, n, L, M, None)
    c = 2.0 * math.sqrt(n) * L * M
    gap = eps - c * h
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        h2n = h ** (2 * n)
        value = 4.0 * np.maximum(1.0, m ** 2 * h2n) / (h2n * gap)
    return _ret(np.where(gap > 0, value, np.inf))


def eta_argmin(eps, m, n, L, M, *, h_max: float | None = 1.0):
    r"""The minimiser ``h_opt`` of :func:`eta_h` over ``0 < h < eps / c`` (and ``h <= h_max``), ``c = 2 sqrt(n) L M``.

    On ``h <= m^{-1/n}`` (where ``m^2 h^{2n} <= 1``) ``eta_h = 4 / (h^{2n} (eps - c h))`` decreases up
    to the stationary point ``h* = 2 n eps / (c (2n + 1))`` and increases after it; on
    ``h >= m^{-1/n}`` it is ``4 m^2 / (eps - c h)``, increasing. Hence
    ``h_opt = min(h*, m^{-1/n}, h_max)``. (Derivation by the book; checked in :mod:`cssl.symbolic`.)
    """
    eps, m, n, L, M, h_max = _eta_args(eps, m, n, L, M, h_max)
    c = 2.0 * math.sqrt(n) * L * M
    h_opt = np.minimum(2.0 * n * eps / (c * (2.0 * n + 1.0)), m ** (-1.0 / n))
    if h_max is not None:
        h_opt = np.minimum(h_opt, h_max)
    return _ret(h_opt)


def log_eta(eps, m, n, L, M, *, h_max: float | None = 1.0):
    r"""``log eta(eps)`` of Theorem 2, computed in log space so that tiny ``eps`` does not overflow.

    See :func:`eta`. ``eps = 0`` gives ``+inf`` (empty admissible interval).
    """
    eps, m, n, L, M, h_max = _eta_args(eps, m, n, L, M, h_max)
    c = 2.0 * math.sqrt(n) * L * M
    h_opt = np.asarray(eta_argmin(eps, m, n, L, M, h_max=h_max), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_h = np.log(h_opt)
        log_gap = np.log(eps) + np.log1p(-c * h_opt / eps)  # log(eps - c h), exact-ish for tiny eps
        out = (math.log(4.0) + np.maximum(0.0, 2.0 * math.log(m) + 2.0 * n * log_h)
               - 2.0 * n * log_h - log_gap)
    return _ret(np.where(eps > 0, out, np.inf))


def eta(eps, m, n, L, M, *, h_max: float | None = 1.0):
    r"""``eta(eps)`` of Theorem 2: ``R_eps^2 <= eta(eps)^2 L_align(f)``.

    Paper, Theorem 2::

        eta(eps) = inf_{h in (0, eps / (2 sqrt(n) L M))} 4 max{1, m^2 h^{2n}} / (h^{2n} (eps - 2 sqrt(n) L M h))

    The book's proof (Chapter 4, which gives this expression; the same argument also
    gives half of it, errata row 17) places a cube of side
    ``h`` inside ``[0, 1]^n`` and so needs ``h <= 1``: ``h_max=1.0`` (default) is that valid reading;
    ``h_max=None`` is the paper's literal infimum. For ``m >= 1`` the two agree, because the minimiser
    ``h_opt = min(h*, m^{-1/n})`` (:func:`eta_argmin`) is already ``<= 1``; ``h_max`` only matters when
    set below 1.

    The infimum is computed exactly (no grid search): on the branch ``eps <= eta_closed_form_eps_max``
    it equals :func:`eta_closed_form`, beyond it the kink ``h = m^{-1/n}`` gives
    ``4 m^2 / (eps - 2 sqrt(n) L M m^{-1/n})``. So ``eta = Theta(eps^{-(2n+1)})`` as ``eps -> 0`` and
    ``Theta(1/eps)`` only as ``eps -> inf``: the paper's "``O(1/eps)``" is a large-``eps`` statement.
    Results too large for a float are ``inf``; use :func:`log_eta` then.
    """
    with np.errstate(over="ignore"):
        return _ret(np.exp(np.asarray(log_eta(eps, m, n, L, M, h_max=h_max))))


def eta_closed_form(eps, n, L, M):
    r"""Closed form of ``eta(eps)`` on the branch ``m^2 h*^{2n} <= 1`` (book's derivation, notes 4.2 and 11.12).

    With ``c = 2 sqrt(n) L M`` and the stationary point ``h* = 2 n eps / (c (2n + 1))``::

        eta(eps) = (4 (2n + 1) / eps) * (c (2n + 1) / (2 n eps))^{2n}

    It equals :func:`eta` exactly when ``eps <= eta_closed_form_eps_max(m, n, L, M)`` (and
    ``h* <= h_max``). For larger ``eps`` the stationary point lies past the kink ``h = m^{-1/n}``,
    the closed form is *smaller* than ``eta`` and is not a valid constant for Theorem 2: use
    :func:`eta`. ``eps > 0``.
    """
    eps = _arr(eps, "eps", low=0, low_open=True)
    n = check_int(n, "n", low=1)
    L = check_real(L, "L", low=0, low_open=True)
    M = check_real(M, "M", low=0, low_open=True)
    c = 2.0 * math.sqrt(n) * L * M
    with np.errstate(over="ignore"):
        log_value = (math.log(4.0 * (2 * n + 1)) - np.log(eps)
                     + 2 * n * (math.log(c * (2 * n + 1) / (2 * n)) - np.log(eps)))
        return _ret(np.exp(log_value))


def eta_closed_form_eps_max(m, n, L, M):
    r"""Largest ``eps`` where :func:`eta_closed_form` is exact: ``h* = m^{-1/n}``, i.e. ``eps = c (2n+1) m^{-1/n} / (2n)``.

    (Book's derivation; ``c = 2 sqrt(n) L M``.) With ``h_max < 1`` the closed form also needs
    ``h* <= h_max``.
    """
    m = check_int(m, "m", low=1)
    n = check_int(n, "n", low=1)
    L = check_real(L, "L", low=0, low_open=True)
    M = check_real(M, "M", low=0, low_open=True)
    c = 2.0 * math.sqrt(n) * L * M
    return c * (2 * n + 1) * m ** (-1.0 / n) / (2 * n)


# ---------------------------------------------------------------------------------- Theorem 3
def theorem3_rhs(L2, tau, p_k, p_l, eps):
    r"""Right-hand side of Theorem 3 (InfoNCE divergence): ``mu_k^T mu_l <= log(exp((L2 + tau)/(p_k p_l)) - exp(1 - eps))``.

    Paper, Theorem 3, with ``L2 = L_2(f)`` of eq. (5), ``tau = tau(sigma, delta, eps, R_eps) >= 0``,
    class masses ``p_k, p_l`` in (0, 1] and ``eps >= 0``. Computed without overflow as
    ``A + log1p(-exp(B - A))`` with ``A = (L2 + tau)/(p_k p_l)``, ``B = 1 - eps``.

    Returns ``-inf`` when ``A <= B`` (the argument of the log is ``<= 0``): the theorem would then
    assert the impossible ``mu_k^T mu_l <= -inf``. With a valid ``tau`` this cannot happen (its proof
    gives ``L2 + tau >= p_k p_l log(e^{1-eps} + e^{mu_k^T mu_l}) > p_k p_l (1 - eps)``), so ``-inf``
    flags inputs inconsistent with the theorem's hypotheses (e.g. ``tau`` too small).
    """
    L2 = _arr(L2, "L2")
    tau = _arr(tau, "tau", low=0)
    p_k = _arr(p_k, "p_k", low=0, high=1, low_open=True)
    p_l = _arr(p_l, "p_l", low=0, high=1, low_open=True)
    eps = _arr(eps, "eps", low=0)
    A = (L2 + tau) / (p_k * p_l)
    B = 1.0 - eps
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = A + np.log1p(-np.exp(np.minimum(B - A, 0.0)))
    return _ret(np.where(A > B, out, -np.inf))


def tau_book(R_eps, eps):
    r"""**The book's** ``tau`` for Theorem 3: ``tau_book = 4 R_eps`` (Chapter 5; not the authors' ``tau``).

    The paper's explicit ``tau(sigma, delta, eps, R_eps)`` is in its appendix, which the book did not
    have. The book proves Theorem 3's inequality with ``tau = 4 R_eps`` for
    ``0 <= eps <= 1 - log(1 - 1/e) ~= 1.4587`` (:data:`TAU_BOOK_EPS_MAX`; the notes quote the safe
    ``eps <= 1``). It is ``>= 0``, monotone in ``R_eps``, ``0`` at the ideal point, and does not depend
    on ``sigma`` or ``delta``. A ``ValueError`` is raised outside its range of validity.
    """
    R_eps = _arr(R_eps, "R_eps", low=0, high=1)
    _arr(eps, "eps", low=0, high=TAU_BOOK_EPS_MAX)
    return _ret(4.0 * R_eps)


def infonce_l2_floor(eps, *, alignment_floor: Literal["linear", "quadratic"] = "linear"):
    r"""Lower bound ``c(eps)`` on InfoNCE's ``L_2(f)`` (eq. (5)) for a unit-norm encoder with ``R_eps = 0`` (book).

    If every point is eps-aligned, each positive pair has ``a = f(x1)^T f(x2) = 1 - ||f(x1) - f(x2)||^2 / 2``
    at least ``1 - eps^2/2`` (``"quadratic"``, exact on the sphere) or ``1 - eps`` (``"linear"``, the
    weaker floor used in notes 5.3), and every negative has ``b >= -1``; ``log(e^a + e^b)`` is
    increasing, so ``L_2 >= c(eps) = log(e^{a_min} + e^{-1})``, with ``a_min`` clipped at ``-1``.
    """
    if alignment_floor not in ("linear", "quadratic"):
        raise ValueError(f"alignment_floor must be 'linear' or 'quadratic', got {alignment_floor!r}")
    eps = _arr(eps, "eps", low=0)
    a_min = 1.0 - eps if alignment_floor == "linear" else 1.0 - eps ** 2 / 2.0
    a_min = np.maximum(a_min, -1.0)
    return _ret(np.logaddexp(a_min, -1.0))


def infonce_l2_jensen_floor(L1):
    r"""**The book's** floor of ``L_2`` for every encoder on the unit sphere: ``L_2 >= log(1 + e^{-L_1})``.

    ``l(a, b) = log(e^a + e^b)`` is jointly convex and increasing in each argument, so by Jensen
    ``L_2 = E l(a, b) >= l(E a, E b)`` with ``E a = E_x ||m(x)||^2 = -L_1`` (``m(x)`` the mean feature of the
    views of ``x``) and ``E b = ||E f||^2 >= 0``; hence ``L_2 >= log(e^{-L_1} + 1) >= log 2``. ``L1`` is the
    alignment part of eq. (5) (``-1 <= L1 <= 0`` on the unit sphere); returns the floor elementwise.
    """
    L1 = _arr(L1, "L1", low=-1.0 - 1e-12, high=1e-12)
    return _ret(np.logaddexp(-L1, 0.0))


def theorem3_rhs_jensen_floor(eps, L1=0.0):
    r"""**The book's** floor of Theorem 3's right-hand side for every encoder, ``eps >= 0`` and ``tau >= 0``.

    With :func:`infonce_l2_jensen_floor`, ``L_2 + tau >= log(1 + e^{-L_1})``, and ``p_k p_l <= 1/4`` for
    two distinct classes, so the right-hand side of Theorem 3 (:func:`theorem3_rhs`) is at least

        log((1 + e^{-L_1})^4 - e^{1 - eps})  >=  log(16 - e) ~= 2.586   (at L_1 = 0, eps = 0),

    above ``1 >= mu_k^T mu_l``: the theorem is true for every encoder and never informative. A perfectly
    aligned encoder (``L_1 = -1``) has the floor ``log((1 + e)^4 - e^{1 - eps}) >= 5.238``.
    """
    eps = _arr(eps, "eps", low=0)
    c = np.asarray(infonce_l2_jensen_floor(L1))
    return _ret(np.log((np.exp(c)) ** 4 - np.exp(1.0 - eps)))


def theorem3_rhs_floor(eps, *, alignment_floor: Literal["linear", "quadratic"] = "linear"):
    r"""A floor of Theorem 3's right-hand side from a per-point argument (book's first, weaker observation).

    Superseded by :func:`theorem3_rhs_jensen_floor`, which is above 1 for every encoder and every
    ``eps >= 0``; this per-point floor falls below 1 beyond ``eps*`` only because its argument is weak.

    With ``R_eps = 0``, any ``tau >= 0`` and ``p_k p_l <= 1/4`` (two distinct classes), the
    right-hand side is at least::

        log(exp(4 c(eps)) - exp(1 - eps)),     c(eps) = infonce_l2_floor(eps)

    provided ``c(eps) >= 0`` (otherwise dividing by a small ``p_k p_l`` makes it arbitrarily
    negative and no floor exists: ``-inf`` is returned). Whenever this floor is ``>= 1`` Theorem 3 is
    vacuous, since ``mu_k^T mu_l <= ||mu_k|| ||mu_l|| <= 1`` anyway (see
    :func:`theorem3_vacuity_threshold`).
    """
    eps_a = _arr(eps, "eps", low=0)
    c = np.asarray(infonce_l2_floor(eps_a, alignment_floor=alignment_floor))
    tau0 = np.zeros_like(c)
    rhs = np.asarray(theorem3_rhs(np.maximum(c, 0.0), tau0, 0.5, 0.5, eps_a))
    return _ret(np.where(c >= 0, rhs, -np.inf))


def theorem3_vacuity_threshold(*, alignment_floor: Literal["linear", "quadratic"] = "linear") -> float:
    r"""``eps*``: for ``0 <= eps <= eps*`` Theorem 3 never beats ``mu_k^T mu_l <= 1`` when ``R_eps = 0`` (book).

    Solves ``theorem3_rhs_floor(eps) = 1``, i.e. ``4 c(eps) = log(e + e^{1-eps})``, by bracketing
    root finding. ``alignment_floor="linear"`` (Chapter 5) gives ``eps* ~= 0.97738``; the exact
    sphere floor ``"quadratic"`` gives the larger ``eps* ~= 1.4232``. This is the book's observation,
    not the paper's.
    """
    from scipy.optimize import brentq

    def gap(e: float) -> float:
        return 4.0 * float(infonce_l2_floor(e, alignment_floor=alignment_floor)) - float(np.logaddexp(1.0, 1.0 - e))

    return float(brentq(gap, 0.0, 2.0, xtol=1e-14, rtol=1e-14))


# ---------------------------------------------------------------------------------- Theorem 4
def theorem4_rhs(L2, tau_prime, d, K, p_k, p_l, *, factor: float = 2.0):
    r"""Right-hand side of Theorem 4 (cross-correlation divergence).

    Paper, Theorem 4 (``factor=2``)::

        mu_k^T mu_l <= sqrt( factor / (p_k p_l) * (L2 + tau' - (d - K) / 2) )

    with ``L2 = ||F - I||^2`` (Chapter 6), ``tau' >= ||F - sum_k p_k mu_k mu_k^T||^2``, output dimension
    ``d >= 1`` and ``K >= 2`` classes. The book's proof (Chapter 6) gives the same bound with
    ``factor=1``, i.e. a factor ``sqrt(2)`` tighter; that is the book's result, not the paper's.

    A negative radicand returns ``nan``: the proof shows ``L2 + tau' - (d - K)/2 >= p_k p_l
    (mu_k^T mu_l)^2 >= 0`` whenever ``tau'`` is a valid upper bound, so a negative value flags inputs
    that violate the hypotheses (``tau'`` too small, or features not normalised).
    """
    L2 = _arr(L2, "L2", low=0)
    tau_prime = _arr(tau_prime, "tau_prime", low=0)
    d = check_int(d, "d", low=1)
    K = check_int(K, "K", low=2)
    p_k = _arr(p_k, "p_k", low=0, high=1, low_open=True)
    p_l = _arr(p_l, "p_l", low=0, high=1, low_open=True)
    factor = check_real(factor, "factor", low=0, low_open=True)
    radicand = factor / (p_k * p_l) * (L2 + tau_prime - (d - K) / 2.0)
    with np.errstate(invalid="ignore"):
        return _ret(np.where(radicand >= 0, np.sqrt(np.maximum(radicand, 0.0)), np.nan))


def tau_prime_book(sigma, delta, eps, R_eps, p, L, d):
    r"""**The book's** ``tau'`` for Theorem 4 (Chapter 6; not the authors' ``tau'``).

    With ``r = sqrt(d)`` and the book's corrected ``rho~_k`` (:func:`rho_l` with
    ``coefficient="corrected"``, capped at 2)::

        tau'_book = ( sum_k p_k [ (eps + sqrt(2 d rho~_k))^2 + 4 d ((1 - sigma) + R_eps / p_k) ] )^2

    an upper bound on ``||F - sum_k p_k mu_k mu_k^T||^2``: on ``C_k^0 cap S_eps`` each view is within
    ``eps + sqrt(2 d rho~_k)`` of ``mu_k``, elsewhere within ``2 sqrt(d)``, and that part of ``C_k`` has
    mass at most ``(1 - sigma) + R_eps / p_k``. It is 0 at ``sigma=1, delta=eps=R_eps=0`` and grows
    with ``delta``, ``eps``, ``R_eps`` and ``1 - sigma``. ``p``: class masses (``K >= 2``), ``d >= 1``.
    """
    p_t = check_probability_vector(p, "p", atol=1e-6)
    if p_t.numel() < 2:
        raise ValueError(f"p must hold the masses of K >= 2 classes, got {p_t.numel()}")
    d = check_int(d, "d", low=1)
    sigma_v = check_real(sigma, "sigma", low=0, high=1, low_open=True)
    eps_v = check_real(eps, "eps", low=0)
    R_v = check_real(R_eps, "R_eps", low=0, high=1)
    p_np = p_t.numpy()
    rho = np.minimum(np.asarray(rho_l(sigma_v, delta, eps_v, R_v, p_np, L, math.sqrt(d),
                                      coefficient="corrected")), 2.0)
    per_class = (eps_v + np.sqrt(2.0 * d * rho)) ** 2 + 4.0 * d * ((1.0 - sigma_v) + R_v / p_np)
    return float(np.sum(p_np * per_class) ** 2)


# -------------------------------------------------------------------------------- corollaries
def infonce_err_bound(sigma, eta_value, L1):
    r"""Paper's corollary for InfoNCE (Theorem 1 + Theorem 2 + eq. (5)): ``Err <= (1 - sigma) + eta sqrt(2 + 2 L1)``.

    Uses ``R_eps <= eta(eps) sqrt(L_align)`` and ``L_align = 2 L1 + 2`` on the unit sphere. Valid
    only when the divergence condition (2) holds. ``eta_value = eta(eps, ...) > 0`` (may be ``inf``),
    ``L1 >= -1`` (the InfoNCE alignment term, ``>= -1`` on the sphere).
    """
    sigma = _arr(sigma, "sigma", low=0, high=1, low_open=True)
    eta_value = _eta_value(eta_value)
    L1 = _arr(L1, "L1", low=-1)
    with np.errstate(invalid="ignore"):
        return _ret((1.0 - sigma) + eta_value * np.sqrt(2.0 + 2.0 * L1))


def cross_correlation_err_bound(sigma, eta_value, d, L1):
    r"""Paper's corollary for cross-correlation (Theorem 1 + 2 + Lemma 4.1): ``Err <= (1 - sigma) + sqrt(2) eta d^{1/4} L1^{1/4}``.

    Uses ``R_eps <= eta sqrt(L_align)`` and ``L_align <= 2 sqrt(d L1)`` (Lemma 4.1), with
    ``L1 = sum_i (1 - F_ii)^2 >= 0``. Valid only when the divergence condition (2) holds.
    """
    sigma = _arr(sigma, "sigma", low=0, high=1, low_open=True)
    eta_value = _eta_value(eta_value)
    d = check_int(d, "d", low=1)
    L1 = _arr(L1, "L1", low=0)
    with np.errstate(invalid="ignore"):
        return _ret((1.0 - sigma) + math.sqrt(2.0) * eta_value * d ** 0.25 * L1 ** 0.25)


def _eta_value(eta_value) -> np.ndarray:
    a = np.asarray(eta_value, dtype=np.float64) if not isinstance(eta_value, torch.Tensor) \
        else eta_value.detach().cpu().numpy().astype(np.float64)
    if np.any(np.isnan(a)) or np.any(a <= 0):
        raise ValueError("eta_value must be positive (it is eta(eps) of Theorem 2; +inf allowed), "
                         f"got {a.min() if a.size else a!r}")
    return a



# ------------------------------------------------ the book's bounds over all class pairs (Ch. 5-7)
def _masses_gram(p, centre_gram) -> tuple[np.ndarray, np.ndarray]:
    """Validate class masses ``p`` (probability vector, K >= 2) and the ``(K, K)`` matrix ``mu_i^T mu_j``."""
    p_t = check_probability_vector(p.detach() if isinstance(p, torch.Tensor) else p, "p")
    p = p_t.numpy().astype(np.float64)
    if p.size < 2:
        raise ValueError(f"p must have K >= 2 class masses, got {p.size}")
    G = _arr(centre_gram, "centre_gram")
    if G.shape != (p.size, p.size):
        raise ValueError(f"centre_gram must have shape ({p.size}, {p.size}) to match p, got {G.shape}")
    return p, G


def _per_class(value, name: str, K: int, **limits) -> np.ndarray:
    """A scalar, or a length-K vector (one value per class), validated by :func:`_arr`."""
    a = _arr(value, name, **limits)
    if a.ndim not in (0, 1) or (a.ndim == 1 and a.size != K):
        raise ValueError(f"{name} must be a scalar or a vector of length K = {K}, got shape {a.shape}")
    return a


def off_diagonal_pairs(matrix) -> np.ndarray:
    r"""The entries ``matrix[k, l]`` for every ordered pair ``k != l``, in row-major order.

    This is the order of every ``*_pairs`` / pair-bound function of this module, so that
    ``off_diagonal_pairs(G)`` (with ``G = mu_k^T mu_l``) lines up with their right-hand sides.
    """
    m = _arr(matrix, "matrix")
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"matrix must be square (K, K) with K >= 2, got shape {m.shape}")
    return m[~np.eye(m.shape[0], dtype=bool)]


def _pair_masses(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k, l = np.nonzero(~np.eye(p.size, dtype=bool))
    return p[k], p[l]


def theorem3_rhs_pairs(L2, tau, p, eps) -> np.ndarray:
    r"""Theorem 3's right-hand side (paper, Sec. 4.1) for every ordered class pair ``k != l``.

    ``log(exp((L2 + tau)/(p_k p_l)) - exp(1 - eps))`` as in :func:`theorem3_rhs`, evaluated at the
    masses ``p_k, p_l`` of each ordered pair, in the order of :func:`off_diagonal_pairs`. ``p`` is the
    class-mass vector (K >= 2, sums to 1); ``L2``, ``tau >= 0`` and ``eps >= 0`` are scalars.
    """
    p = check_probability_vector(p.detach() if isinstance(p, torch.Tensor) else p, "p").numpy()
    if p.size < 2:
        raise ValueError(f"p must have K >= 2 class masses, got {p.size}")
    p_k, p_l = _pair_masses(p)
    return np.atleast_1d(theorem3_rhs(L2, tau, p_k, p_l, eps))


def infonce_pair_sum_book(p, centre_gram, alpha) -> float:
    r"""``sum_{i,j} p_i p_j log(e^{alpha_i} + e^{mu_i^T mu_j})``: the left side of **the book's** InfoNCE Jensen bounds.

    With a scalar ``alpha`` this is the left side of the book's proposition *prop-infonce-jensen*
    (Chapter 5): ``sum_ij p_i p_j g_alpha(mu_i^T mu_j) <= L2 + 4 R_eps`` for ``||f|| = 1`` and
    ``alpha <= 1 - eps^2/2``, with ``g_alpha(b) = log(e^alpha + e^b)``. With a length-K vector
    ``alpha = A`` (``A_i`` the class-wise mean positive inner product) it is the left side of the
    book's *prop-infonce-joint*: ``sum_ij p_i p_j log(e^{A_i} + e^{mu_i^T mu_j}) <= L2``.
    ``p``: class masses; ``centre_gram``: the ``(K, K)`` matrix ``mu_i^T mu_j``.
    """
    p, G = _masses_gram(p, centre_gram)
    alpha = _per_class(alpha, "alpha", p.size)
    if alpha.ndim == 1:
        alpha = alpha[:, None]
    return float((np.outer(p, p) * np.logaddexp(alpha, G)).sum())


def infonce_pair_bound_book(L2, R_eps, p, centre_gram, alpha) -> np.ndarray:
    r"""**The book's** divergence bound for one InfoNCE class pair, keeping the other pairs' floors.

    The book's theorem *thm-book-infonce-pair* (Chapter 5): for ``||f|| = 1``, ``eps >= 0``,
    ``alpha <= 1 - eps^2/2``, ``S_2 = sum_i p_i^2`` and ``k != l``::

        mu_k^T mu_l <= log(e^{Y_kl} - e^alpha),
        Y_kl = (L2 + 4 R_eps - sum_i p_i^2 g_alpha(||mu_i||^2) - (1 - S_2 - 2 p_k p_l) g_alpha(-1)) / (2 p_k p_l)

    with ``g_alpha(b) = log(e^alpha + e^b)``. Returns the bound for every ordered pair ``k != l`` in the
    order of :func:`off_diagonal_pairs` (computed stably as ``Y + log(-expm1(alpha - Y))``; ``nan``
    if ``Y <= alpha``, which a valid input cannot give). ``R_eps`` in [0, 1], ``alpha <= 1``.
    """
    p, G = _masses_gram(p, centre_gram)
    L2 = check_real(L2, "L2")
    R_eps = check_real(R_eps, "R_eps", low=0, high=1)
    alpha = check_real(alpha, "alpha", high=1)
    S2 = (p ** 2).sum()
    diagonal = (p ** 2 * np.logaddexp(alpha, np.diag(G))).sum()
    p_k, p_l = _pair_masses(p)
    Y = (L2 + 4 * R_eps - diagonal - (1 - S2 - 2 * p_k * p_l) * np.logaddexp(alpha, -1.0)) / (2 * p_k * p_l)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Y + np.log(-np.expm1(alpha - Y))


def infonce_mean_bound_book(L2, p, centre_gram, A) -> tuple[float, float]:
    r"""**The book's** InfoNCE divergence bound on average over pairs of distinct classes.

    The book's theorem *thm-book-infonce-mean* (Chapter 5): with ``S_2 = sum_i p_i^2 < 1``,
    ``G_bar = sum_{i != j} p_i p_j mu_i^T mu_j / (1 - S_2)``, ``A_bar = sum_i p_i (1 - p_i) A_i / (1 - S_2)``
    and ``D = sum_i p_i^2 log(e^{A_i} + e^{||mu_i||^2})``::

        G_bar <= log(exp((L2 - D)/(1 - S_2)) - e^{A_bar}).

    ``A_i = E_{x in C_i} E f(x1)^T f(x2)`` is the class-wise mean positive inner product (length K).
    Returns ``(G_bar, bound)``; the bound is computed stably as ``Y + log(-expm1(A_bar - Y))``.
    """
    p, G = _masses_gram(p, centre_gram)
    L2 = check_real(L2, "L2")
    A = _per_class(A, "A", p.size)
    if A.ndim == 0:
        A = np.full(p.size, float(A))
    S2, off = (p ** 2).sum(), ~np.eye(p.size, dtype=bool)
    G_bar = (np.outer(p, p) * G)[off].sum() / (1 - S2)
    A_bar = (p * (1 - p) * A).sum() / (1 - S2)
    Y = (L2 - (p ** 2 * np.logaddexp(A, np.diag(G))).sum()) / (1 - S2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(G_bar), float(Y + np.log(-np.expm1(A_bar - Y)))


def rho_star(max_mu, delta_mu):
    r"""Largest ``rho`` for which condition (2) of Theorem 1 holds on the unit sphere (the book's inversion).

    Paper, eq. (2) with ``r = 1``: ``max_{k != l} mu_k^T mu_l < 1 - rho - sqrt(2 rho) - Delta_mu / 2``.
    With ``c = 1 - Delta_mu/2 - max_mu`` and ``s = sqrt(rho)``, ``s^2 + sqrt(2) s = c`` gives::

        rho* = ((sqrt(2 + 4c) - sqrt(2)) / 2)^2   if c > 0,   else 0

    (at ``rho*`` the threshold :func:`theorem1_threshold` equals ``max_mu``). ``max_mu`` in [-1, 1],
    ``Delta_mu`` in [0, 1]; arrays broadcast.
    """
    max_mu = _arr(max_mu, "max_mu", low=-1, high=1)
    delta_mu = _arr(delta_mu, "delta_mu", low=0, high=1)
    c = 1 - delta_mu / 2 - max_mu
    root = (np.sqrt(2 + 4 * np.maximum(c, 0.0)) - math.sqrt(2)) / 2
    return _ret(np.where(c > 0, root ** 2, 0.0))


def theorem4_rhs_pairs(L2, tau_prime, d, p, *, factor: float = 2.0) -> np.ndarray:
    r"""Theorem 4's right-hand side for every ordered class pair ``k != l`` (:func:`theorem4_rhs`).

    ``sqrt(factor / (p_k p_l) (L2 + tau' - (d - K)/2))`` with ``K = len(p)``, in the order of
    :func:`off_diagonal_pairs`: ``factor=2`` is the paper's Theorem 4, ``factor=1`` the book's
    *thm-book-4* (valid for every encoder and every ``tau' >= ||F - M||^2``, see
    :func:`cssl.metrics.centre_matrix`).
    """
    p = check_probability_vector(p.detach() if isinstance(p, torch.Tensor) else p, "p").numpy()
    if p.size < 2:
        raise ValueError(f"p must have K >= 2 class masses, got {p.size}")
    p_k, p_l = _pair_masses(p)
    return np.atleast_1d(theorem4_rhs(L2, tau_prime, d, p.size, p_k, p_l, factor=factor))


def t_infonce_phi(u_plus, u_minus):
    r"""``phi(u+, u-) = log(1/(1 + u+) + 1/(1 + u-))``, the t-InfoNCE log-sum term (the book's Chapter 7).

    ``L_2^t = E phi(u+, u-)`` with ``u+ = ||f(x1) - f(x2)||^2`` and ``u- = ||f(x1) - f(x^-)||^2``;
    ``phi`` is jointly convex (the book's *lem-tinfonce-convex*). On the sphere of radius ``r``,
    ``u- = 2 r^2 - 2 t`` and ``G_eps(t) = phi(eps^2, 2 r^2 - 2 t)``. ``u+, u- >= 0``; arrays broadcast.
    """
    u_plus = _arr(u_plus, "u_plus", low=0)
    u_minus = _arr(u_minus, "u_minus", low=0)
    return _ret(np.log(1 / (1 + u_plus) + 1 / (1 + u_minus)))


def _radius_gram(G: np.ndarray, r: float) -> None:
    if np.any(2 * r ** 2 - 2 * G < -1e-9 * max(1.0, r ** 2)):
        raise ValueError(f"centre_gram has entries above r^2 = {r ** 2:g} (max {G.max():g}); "
                         "features on the sphere of radius r have |mu_i^T mu_j| <= r^2")


def t_infonce_pair_sum_book(p, centre_gram, u_plus, r) -> float:
    r"""``sum_{i,j} p_i p_j phi(u+_i, 2 r^2 - 2 mu_i^T mu_j)``: left side of **the book's** t-InfoNCE Jensen bounds.

    With the scalar ``u_plus = eps^2`` it is ``sum_ij p_i p_j G_eps(mu_i^T mu_j)``, the left side of
    the book's *prop-tinfonce-jensen* (``<= L2_t + (4 r^2 + log(1 + 4 r^2)) R_eps``); with the length-K
    vector ``u_plus = a`` (class-wise alignment ``a_i``) it is the left side of the first inequality
    of the book's *thm-book-t-mean* (``<= L2_t``). See :func:`t_infonce_phi`. ``r > 0``.
    """
    p, G = _masses_gram(p, centre_gram)
    r = check_real(r, "r", low=0, low_open=True)
    _radius_gram(G, r)
    u = _per_class(u_plus, "u_plus", p.size, low=0)
    if u.ndim == 1:
        u = u[:, None]
    return float((np.outer(p, p) * np.log(1 / (1 + u) + 1 / (1 + 2 * r ** 2 - 2 * G))).sum())


def t_infonce_pair_bound_book(L2, R_eps, p, eps, r) -> np.ndarray:
    r"""**The book's** Theorem-3-type divergence bound for t-InfoNCE, every ordered pair ``k != l``.

    The book's theorem *thm-book-t-div* (Chapter 7): for ``||f|| = r``, ``0 <= eps <= 1/(2r)``::

        mu_k^T mu_l <= r^2 + 1/2 - 1 / (2 (e^{y_kl} - 1/(1 + eps^2))),
        y_kl = (L2_t + (4 r^2 + log(1 + 4 r^2)) R_eps) / (p_k p_l).

    Returned in the order of :func:`off_diagonal_pairs` (``y`` is capped at 700 before ``exp``: the
    bound is then ``r^2 + 1/2`` to double precision). ``R_eps`` in [0, 1]; the range
    ``eps <= 1/(2r)`` is enforced.
    """
    p = check_probability_vector(p.detach() if isinstance(p, torch.Tensor) else p, "p").numpy()
    if p.size < 2:
        raise ValueError(f"p must have K >= 2 class masses, got {p.size}")
    L2 = check_real(L2, "L2")
    R_eps = check_real(R_eps, "R_eps", low=0, high=1)
    r = check_real(r, "r", low=0, low_open=True)
    eps = check_real(eps, "eps", low=0, high=1 / (2 * r))
    p_k, p_l = _pair_masses(p)
    y = (L2 + (4 * r ** 2 + math.log(1 + 4 * r ** 2)) * R_eps) / (p_k * p_l)
    return r ** 2 + 0.5 - 1 / (2 * (np.exp(np.minimum(y, 700)) - 1 / (1 + eps ** 2)))


def t_infonce_l2_jensen_floor(L_align, r):
    r"""**The book's** floor of ``L_2^t`` for every encoder on the sphere of radius ``r``.

    ``phi(a, b) = log(k(a) + k(b))``, ``k(u) = 1/(1 + u)``, is jointly convex and decreasing in each
    argument on ``[0, inf)^2`` (Chapter 7, *lem-tinfonce-convex*), so by Jensen ``L_2^t = E phi(u+, u-)
    >= phi(E u+, E u-)`` with ``E u+ = L_align`` and ``E u- = 2 r^2 - 2 ||E f||^2 <= 2 r^2``::

        L_2^t >= log(1/(1 + L_align) + 1/(1 + 2 r^2)).
    """
    L_align = _arr(L_align, "L_align", low=0)
    r = check_real(r, "r", low=0, low_open=True)
    return _ret(np.log(1.0 / (1.0 + L_align) + 1.0 / (1.0 + 2.0 * r ** 2)))


def t_infonce_vacuity_alignment(r) -> float:
    r"""**The book's** largest ``L_align`` for which *thm-book-t-div* is provably vacuous on the sphere of radius ``r``.

    The bound of :func:`t_infonce_pair_bound_book` is ``>= r^2`` (the trivial bound) as soon as
    ``exp((L_2^t + tau_t R_eps) / (p_k p_l)) >= 1 + 1/(1 + eps^2)``, which holds when ``exp(4 L_2^t) >= 2``
    (``p_k p_l <= 1/4``). By :func:`t_infonce_l2_jensen_floor` that is implied by
    ``1/(1 + L_align) + 1/(1 + 2 r^2) >= 2^{1/4}``, i.e. ``L_align <= 1/(2^{1/4} - 1/(1 + 2 r^2)) - 1``.
    Returns that value (``0.1684`` at ``r = 1``, ``0.9137`` at ``r = 1/2``), or ``-inf`` when no
    ``L_align >= 0`` qualifies (``r > 1.4638``: the argument says nothing there).
    """
    r = check_real(r, "r", low=0, low_open=True)
    gap = 2 ** 0.25 - 1.0 / (1.0 + 2.0 * r ** 2)
    value = 1.0 / gap - 1.0
    return float(value) if value >= 0 else -math.inf


def t_infonce_mean_bound_book(L2, p, centre_gram, a, r) -> tuple[float, float]:
    r"""**The book's** t-InfoNCE divergence bound on average over pairs of distinct classes.

    The book's theorem *thm-book-t-mean* (Chapter 7): with ``S_2 = sum_i p_i^2 < 1``,
    ``G_bar = sum_{i != j} p_i p_j mu_i^T mu_j / (1 - S_2)``, ``a_bar = sum_i p_i (1 - p_i) a_i / (1 - S_2)``,
    ``D_t = sum_i p_i^2 phi(a_i, 2 r^2 - 2 ||mu_i||^2)`` and ``Y = (L2_t - D_t) / (1 - S_2)``::

        G_bar <= r^2 + 1/2 - 1 / (2 (e^Y - 1/(1 + a_bar))).

    ``a_i = E_{x in C_i} E ||f(x1) - f(x2)||^2`` (length K, >= 0). Returns ``(G_bar, bound)``.
    """
    p, G = _masses_gram(p, centre_gram)
    L2 = check_real(L2, "L2")
    r = check_real(r, "r", low=0, low_open=True)
    _radius_gram(G, r)
    a = _per_class(a, "a", p.size, low=0)
    if a.ndim == 0:
        a = np.full(p.size, float(a))
    S2, off = (p ** 2).sum(), ~np.eye(p.size, dtype=bool)
    G_bar = (np.outer(p, p) * G)[off].sum() / (1 - S2)
    a_bar = (p * (1 - p) * a).sum() / (1 - S2)
    D = (p ** 2 * np.log(1 / (1 + a) + 1 / (1 + 2 * r ** 2 - 2 * np.diag(G)))).sum()
    Y = (L2 - D) / (1 - S2)
    return float(G_bar), float(r ** 2 + 0.5 - 1 / (2 * (np.exp(Y) - 1 / (1 + a_bar))))
