"""Contrastive losses (differentiable, torch) and their exact population versions on finite worlds.

Batch losses take embeddings ``z1, z2`` (and ``z_neg``) of shape ``(N, d)``: row ``i`` of ``z1`` and
``z2`` are two views of the same sample, row ``i`` of ``z_neg`` a view of an independent sample. They
are plain functions, one concept each, usable as training objectives (any float dtype, any device).
Inputs must be finite, and so must the result: a batch loss that overflows to NaN or inf (huge
embeddings, a tiny temperature, a constant dimension with ``eps = 0``) raises ``FloatingPointError``
saying what to change, instead of returning a silent NaN.

The ``*_exact`` functions evaluate the paper's *population* losses on a world of features
(:class:`cssl.worlds.World`, e.g. ``world.map(f)``): ``x`` and ``x'`` are independent draws with the
point weights, views are uniform over each point's list, and every expectation is an exact weighted
sum (no sampling). They return Python floats and :class:`LossSplit` tuples.

Paper references: InfoNCE and its split, Sec. 2 and eq. (5) (Sec. 4.1); cross-correlation and its
split, Sec. 2 and Sec. 4.2; the linear ("simple") loss, Sec. 4.1. NT-Xent is SimCLR's batch loss
(Chen et al. 2020), the spectral loss is HaoChen et al. (2021), t-InfoNCE is the book's reading of
Hu et al. (2022) (the paper's t-InfoNCE appendix was not available).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._validate import check_real
from .worlds import World

__all__ = [
    "info_nce",
    "info_nce_split",
    "nt_xent",
    "cross_correlation",
    "cross_correlation_split",
    "linear_contrastive",
    "spectral_contrastive",
    "t_info_nce",
    "t_info_nce_split",
    "LossSplit",
    "info_nce_exact",
    "info_nce_split_exact",
    "cross_correlation_matrix_exact",
    "cross_correlation_exact",
    "cross_correlation_split_exact",
    "linear_loss_exact",
    "linear_loss_split_exact",
]


class LossSplit(NamedTuple):
    """A population loss and its two parts: ``total``, ``L1`` (alignment part), ``L2`` (divergence part)."""

    total: float
    L1: float
    L2: float


# ------------------------------------------------------------------------------- validation
def _batch(z, name: str, *, min_rows: int = 1) -> torch.Tensor:
    """Check a batch of embeddings without detaching it (gradients must flow)."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, d), got {type(z).__name__}")
    if not z.dtype.is_floating_point:
        raise TypeError(f"{name} must have a floating dtype, got {z.dtype}; call .float() first")
    if z.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d) (a batch of embeddings), got shape {tuple(z.shape)}")
    if z.shape[0] < min_rows or z.shape[1] < 1:
        raise ValueError(f"{name} must have at least {min_rows} row(s) and 1 column, got shape {tuple(z.shape)}")
    if not bool(torch.isfinite(z.detach()).all()):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite embeddings")
    return z


def _batches(names_and_tensors, *, min_rows: int = 1):
    out = [_batch(z, name, min_rows=min_rows) for name, z in names_and_tensors]
    (first_name, _), ref = names_and_tensors[0], out[0]
    for (name, _), z in zip(names_and_tensors[1:], out[1:]):
        if z.shape != ref.shape:
            raise ValueError(f"{name} has shape {tuple(z.shape)} but {first_name} has {tuple(ref.shape)}; "
                             "all inputs must be (N, d) with the same N and d")
        if z.dtype != ref.dtype or z.device != ref.device:
            raise ValueError(f"{name} is {z.dtype} on {z.device} but {first_name} is {ref.dtype} on "
                             f"{ref.device}; use one dtype and device")
    return out


def _check_unit_norm(z: torch.Tensor, name: str, atol: float) -> None:
    dev = float((z.detach().norm(dim=1) - 1.0).abs().max())
    if dev > atol:
        raise ValueError(f"{name} must be unit-norm rows (the paper's ||f|| = 1, Sec. 4.1), but a row norm is "
                         f"off by {dev:.3g} > atol={atol:g}; the split L = L1 + L2 holds only on the unit "
                         "sphere. Normalise with F.normalize(z, dim=1) or pass check_unit_norm=False")


def _finite_output(value: torch.Tensor, name: str, advice: str) -> torch.Tensor:
    """Return ``value`` after checking it is finite: its inputs were, so a NaN or inf is an overflow."""
    if not bool(torch.isfinite(value.detach()).all()):
        raise FloatingPointError(f"{name} came out {float(value.detach().flatten()[0])} from finite inputs: "
                                 f"{advice}")
    return value


_TOO_LARGE = ("the embeddings are too large for {dtype} (largest |z| = {big:.3g}); normalise them "
              "(F.normalize(z, dim=1)) or scale them down")


def _too_large(*zs) -> str:
    big = max(float(z.detach().abs().max()) for z in zs)
    return _TOO_LARGE.format(dtype=str(zs[0].dtype).replace("torch.", ""), big=big)


def _lam(lam) -> float:
    return check_real(lam, "lam", low=0)


# ------------------------------------------------------------------------------- InfoNCE
def info_nce(z1: torch.Tensor, z2: torch.Tensor, z_neg: torch.Tensor) -> torch.Tensor:
    r"""The paper's InfoNCE with one negative and no temperature (Sec. 2 and 4.1), batch estimate.

    ::

        L = mean_i -log( e^{a_i} / (e^{a_i} + e^{b_i}) ),   a_i = z1_i . z2_i,   b_i = z1_i . zneg_i

    computed stably as ``mean softplus(b_i - a_i)``. The paper takes ``||f|| = 1`` (not enforced
    here; see :func:`info_nce_split`). Inputs ``(N, d)`` of one shape.
    """
    z1, z2, z_neg = _batches([("z1", z1), ("z2", z2), ("z_neg", z_neg)])
    a = (z1 * z2).sum(dim=1)
    b = (z1 * z_neg).sum(dim=1)
    loss = F.softplus(b - a).mean()
    if not bool(torch.isfinite(loss.detach())):
        _finite_output(loss, "info_nce", _too_large(z1, z2, z_neg))
    return loss


def info_nce_split(z1: torch.Tensor, z2: torch.Tensor, z_neg: torch.Tensor, *,
                   check_unit_norm: bool = True, atol: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The split of InfoNCE into alignment and divergence parts, eq. (5), batch estimate: returns ``(L1, L2)``.

    ::

        L1 = 1/2 mean_i ||z1_i - z2_i||^2 - 1
        L2 = mean_i log(e^{z1_i . z2_i} + e^{z1_i . zneg_i})

    ``info_nce(z1, z2, z_neg) == L1 + L2`` **only on the unit sphere** (it uses
    ``-u^T v = ||u - v||^2 / 2 - 1`` for ``||u|| = ||v|| = 1``). With ``check_unit_norm=True`` a
    ``ValueError`` is raised if any row of the inputs has norm off 1 by more than ``atol``; pass
    ``check_unit_norm=False`` to compute the two terms anyway (then ``L1 + L2`` is not InfoNCE).
    """
    z1, z2, z_neg = _batches([("z1", z1), ("z2", z2), ("z_neg", z_neg)])
    check_real(atol, "atol", low=0)
    if check_unit_norm:
        for name, z in (("z1", z1), ("z2", z2), ("z_neg", z_neg)):
            _check_unit_norm(z, name, atol)
    L1 = 0.5 * (z1 - z2).pow(2).sum(dim=1).mean() - 1.0
    L2 = torch.logaddexp((z1 * z2).sum(dim=1), (z1 * z_neg).sum(dim=1)).mean()
    if not bool(torch.isfinite(L1.detach()) & torch.isfinite(L2.detach())):
        _finite_output(L1 + L2, "info_nce_split", _too_large(z1, z2, z_neg))
    return L1, L2


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    r"""SimCLR's NT-Xent loss (normalised temperature-scaled cross entropy), symmetric over both views.

    Stack the ``2N`` L2-normalised embeddings ``u = normalize([z1; z2])``; for each anchor ``i``::

        l_i = -log( exp(u_i . u_{j(i)} / t) / sum_{k != i} exp(u_i . u_k / t) )

    where ``j(i)`` is the other view of the same sample; ``L = mean over the 2N anchors``. This is
    lightly's ``NTXentLoss`` without memory bank (the authors' SimCLR uses ``t = 0.5``). It is
    invariant to positive rescaling of each row and symmetric in ``z1 <-> z2``. Oracle: if all ``2N``
    embeddings are equal, ``L = log(2N - 1)``. ``N >= 2`` (with one pair the only other embedding is
    the positive and ``L = 0`` whatever the encoder), ``temperature > 0``; zero rows raise.
    """
    z1, z2 = _batches([("z1", z1), ("z2", z2)], min_rows=2)
    t = check_real(temperature, "temperature", low=0, low_open=True)
    z = torch.cat([z1, z2], dim=0)
    if bool((z.detach().norm(dim=1) == 0).any()):
        raise ValueError("nt_xent normalises each embedding, but a row of z1 or z2 is the zero vector")
    u = F.normalize(z, dim=1)
    n = z1.shape[0]
    logits = u @ u.T / t
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    loss = F.cross_entropy(logits, targets)
    if not bool(torch.isfinite(loss.detach())):
        _finite_output(loss, "nt_xent", f"temperature={t:g} is too small for {str(z.dtype).replace('torch.', '')}: "
                       f"the logits u.u / t reach {1 / t:.3g}; raise the temperature (SimCLR uses 0.5)")
    return loss


# ------------------------------------------------------------------------ cross-correlation
def _cross_correlation_batch(z1, z2, eps):
    z1, z2 = _batches([("z1", z1), ("z2", z2)], min_rows=2)
    eps = check_real(eps, "eps", low=0)
    n = z1.shape[0]

    def standardise(z):
        centred = z - z.mean(dim=0, keepdim=True)
        return centred / torch.sqrt(centred.pow(2).mean(dim=0, keepdim=True) + eps)

    return standardise(z1).T @ standardise(z2) / n


def _cc_advice(z1, z2, eps) -> str:
    constant = int(((z1.detach().var(dim=0) == 0) | (z2.detach().var(dim=0) == 0)).sum())
    if constant and float(eps) == 0.0:
        return (f"{constant} dimension(s) of z1 or z2 are constant over the batch and eps=0 divides by their zero "
                "variance; pass eps > 0 (default 1e-8)")
    return _too_large(z1, z2)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, lam: float = 5e-3, eps: float = 1e-8) -> torch.Tensor:
    r"""Barlow Twins' cross-correlation loss (the paper's ``L_Cross-Corr``, Sec. 2), batch estimate.

    Each view is standardised per dimension over the batch, ``zn = (z - mean) / sqrt(var + eps)``
    with the *biased* variance (so the batch satisfies the paper's normalisation ``E f_i = 0``,
    ``E f_i^2 = 1``, Sec. 4.2); then ``C = zn1^T zn2 / N`` and::

        L = sum_i (1 - C_ii)^2 + lam sum_{i != j} C_ij^2

    ``eps >= 0`` is a numerical stabiliser for constant dimensions (not the paper's epsilon).
    lightly 1.0.8 divides by the unbiased std instead, which rescales ``C`` by ``(N-1)/N``.
    The authors use ``lam = 5e-3``. Invariant to per-dimension maps ``a z + b``, ``a > 0`` (up to
    ``eps``). Needs ``N >= 2`` rows.
    """
    lam = _lam(lam)
    C = _cross_correlation_batch(z1, z2, eps)
    diag = torch.diagonal(C)
    loss = (1.0 - diag).pow(2).sum() + lam * (C.pow(2).sum() - diag.pow(2).sum())
    if not bool(torch.isfinite(loss.detach())):
        _finite_output(loss, "cross_correlation", _cc_advice(z1, z2, eps))
    return loss


def cross_correlation_split(z1: torch.Tensor, z2: torch.Tensor, lam: float = 5e-3,
                            eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The split of the cross-correlation loss (Sec. 4.2, notes 6.1), batch estimate: returns ``(L1, L2)``.

    ::

        L1 = sum_i (1 - C_ii)^2,     L2 = ||C - I||_F^2,     L = (1 - lam) L1 + lam L2

    with ``C`` as in :func:`cross_correlation` (the identity holds for every matrix ``C``). ``lam`` is
    only validated here, since ``L1`` and ``L2`` do not depend on it.
    """
    _lam(lam)
    C = _cross_correlation_batch(z1, z2, eps)
    eye = torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
    L1, L2 = (1.0 - torch.diagonal(C)).pow(2).sum(), (C - eye).pow(2).sum()
    if not bool(torch.isfinite(L1.detach()) & torch.isfinite(L2.detach())):
        _finite_output(L1 + L2, "cross_correlation_split", _cc_advice(z1, z2, eps))
    return L1, L2


# ------------------------------------------------------------------------- other losses
def linear_contrastive(z1: torch.Tensor, z2: torch.Tensor, z_neg: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    r"""The paper's "simple" linear contrastive loss (Sec. 4.1, notes 5.4), batch estimate.

    ::

        L' = mean_i [ -z1_i . z2_i + lam z1_i . zneg_i ]   (= L1 + lam L2' on the unit sphere)

    Its population divergence part ``L2' = ||E f||^2`` only forces zero mean, so minimisers can
    collapse classes (the paper's counterexample). ``lam >= 0``.
    """
    z1, z2, z_neg = _batches([("z1", z1), ("z2", z2), ("z_neg", z_neg)])
    lam = _lam(lam)
    loss = (-(z1 * z2).sum(dim=1) + lam * (z1 * z_neg).sum(dim=1)).mean()
    if not bool(torch.isfinite(loss.detach())):
        _finite_output(loss, "linear_contrastive", _too_large(z1, z2, z_neg))
    return loss


def spectral_contrastive(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""HaoChen et al. (2021) spectral contrastive loss, batch estimate.

    Population loss: ``-2 E_{x; x1,x2 in A(x)}[f(x1)^T f(x2)] + E_{x, x' indep}[(f(x1)^T f(x'_2))^2]``.
    Estimator used here (a U-statistic, unbiased when the batch rows are i.i.d.): positives are the
    matched rows, negatives every other row of the batch::

        L = -2/N sum_i z1_i . z2_i + 1/(N (N-1)) sum_{i != j} (z1_i . z2_j)^2

    Needs ``N >= 2``.
    """
    z1, z2 = _batches([("z1", z1), ("z2", z2)], min_rows=2)
    n = z1.shape[0]
    gram = z1 @ z2.T
    pos = torch.diagonal(gram)
    neg_sq = gram.pow(2).sum() - pos.pow(2).sum()
    loss = -2.0 * pos.mean() + neg_sq / (n * (n - 1))
    if not bool(torch.isfinite(loss.detach())):
        _finite_output(loss, "spectral_contrastive", _too_large(z1, z2))
    return loss


def t_info_nce(z1: torch.Tensor, z2: torch.Tensor, z_neg: torch.Tensor) -> torch.Tensor:
    r"""t-InfoNCE with a Cauchy kernel, one negative: **the book's reading** of Hu et al. (2022) (Chapter 7).

    With ``k(u) = 1 / (1 + u)`` and squared distances ``u+ = ||z1 - z2||^2``, ``u- = ||z1 - zneg||^2``::

        L_t = mean -log( k(u+) / (k(u+) + k(u-)) ) = mean softplus(log(1 + u+) - log(1 + u-))

    The paper only mentions t-InfoNCE (its appendix theorem was not available); Hu et al.'s kernel
    has ``t_df`` degrees of freedom and its normalisation is not reproduced here (``t_df = 1``).
    """
    z1, z2, z_neg = _batches([("z1", z1), ("z2", z2), ("z_neg", z_neg)])
    log_pos = torch.log1p((z1 - z2).pow(2).sum(dim=1))
    log_neg = torch.log1p((z1 - z_neg).pow(2).sum(dim=1))
    loss = F.softplus(log_pos - log_neg).mean()
    if not bool(torch.isfinite(loss.detach())):
        _finite_output(loss, "t_info_nce", _too_large(z1, z2, z_neg))
    return loss


def t_info_nce_split(z1: torch.Tensor, z2: torch.Tensor, z_neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Split of :func:`t_info_nce` (book, notes 7): returns ``(L1_t, L2_t)`` with ``L_t = L1_t + L2_t`` exactly.

    ::

        L1_t = mean log(1 + ||z1 - z2||^2)                                   (alignment)
        L2_t = mean log( (1 + ||z1 - z2||^2)^{-1} + (1 + ||z1 - zneg||^2)^{-1} )   (divergence)

    The identity holds for any inputs (no unit-sphere assumption).
    """
    z1, z2, z_neg = _batches([("z1", z1), ("z2", z2), ("z_neg", z_neg)])
    log_pos = torch.log1p((z1 - z2).pow(2).sum(dim=1))
    log_neg = torch.log1p((z1 - z_neg).pow(2).sum(dim=1))
    L1, L2 = log_pos.mean(), torch.logaddexp(-log_pos, -log_neg).mean()
    if not bool(torch.isfinite(L1.detach()) & torch.isfinite(L2.detach())):
        _finite_output(L1 + L2, "t_info_nce_split", _too_large(z1, z2, z_neg))
    return L1, L2


# ------------------------------------------------------------------- exact world versions
_BLOCK_ELEMENTS = 1 << 21  # ~16 MB of float64 per block of the (B, V, V, N*V) tensor


def _feature_world(world) -> World:
    if not isinstance(world, World):
        raise TypeError(f"world must be a cssl.worlds.World of features (e.g. data_world.map(f)), "
                        f"got {type(world).__name__}")
    return world


def _unit_norm_world(world: World, atol: float) -> None:
    dev = float((world.views.norm(dim=-1) - 1.0).abs().max())
    if dev > atol:
        raise ValueError(f"the InfoNCE split L = L1 + L2 (eq. 5) assumes ||f|| = 1, but a feature norm is off "
                         f"by {dev:.3g} > atol={atol:g}; normalise the features or pass check_unit_norm=False")


def _infonce_terms_exact(world: World) -> tuple[float, float, float]:
    """``(E[-a], E||f1 - f2||^2, L2)`` with ``a = f(x1)^T f(x2)`` over ``x``; ``x1, x2`` uniform i.i.d. views."""
    v, w = world.views, world.weights
    n, V, _ = v.shape
    means = v.mean(dim=1)
    neg_a = -float((w * means.pow(2).sum(dim=1)).sum())
    align = 2.0 * float((w * (v.pow(2).sum(dim=2).mean(dim=1) - means.pow(2).sum(dim=1))).sum())
    flat = v.reshape(n * V, -1)
    col_w = (w / V).repeat_interleave(V)  # probability of each (x', view) negative
    block = max(1, _BLOCK_ELEMENTS // (V * V * n * V))
    L2 = 0.0
    for start in range(0, n, block):
        vb = v[start:start + block]
        a = torch.einsum("bsd,btd->bst", vb, vb)
        b = torch.einsum("bsd,jd->bsj", vb, flat)
        lse = torch.logaddexp(a.unsqueeze(-1), b.unsqueeze(2))          # (B, V, V, N*V)
        per_point = (lse * col_w).sum(dim=-1).mean(dim=(1, 2))
        L2 += float((w[start:start + block] * per_point).sum())
    return neg_a, align, L2


def info_nce_exact(world: World) -> float:
    r"""The paper's population InfoNCE (Sec. 2) on a feature world, exactly.

    ::

        L = E_{x, x'} E_{x1, x2 in A(x), x^- in A(x')} -log( e^{f(x1)^T f(x2)} / (e^{f(x1)^T f(x2)} + e^{f(x1)^T f(x^-)}) )

    with ``x, x'`` independent (``x' = x`` possible), ``x1, x2, x^-`` independent uniform views.
    Valid for any features (no norm assumption). Cost ``O(N^2 V^3 d)``, blocked over points.
    """
    neg_a, _, L2 = _infonce_terms_exact(_feature_world(world))
    return neg_a + L2


def info_nce_split_exact(world: World, *, check_unit_norm: bool = True, atol: float = 1e-6) -> LossSplit:
    r"""Population InfoNCE and its split, eq. (5): ``LossSplit(total=L, L1, L2)``, exactly.

    ::

        L1 = 1/2 E_x E_{x1, x2} ||f(x1) - f(x2)||^2 - 1,     L2 = E log(e^{f(x1)^T f(x2)} + e^{f(x1)^T f(x^-)})

    ``total`` is :func:`info_nce_exact` computed directly, so ``total == L1 + L2`` is a check of the
    paper's identity, which needs ``||f|| = 1`` (raises otherwise unless ``check_unit_norm=False``).
    Also ``L_align = 2 L1 + 2``.
    """
    world = _feature_world(world)
    check_real(atol, "atol", low=0)
    if check_unit_norm:
        _unit_norm_world(world, atol)
    neg_a, align, L2 = _infonce_terms_exact(world)
    return LossSplit(neg_a + L2, 0.5 * align - 1.0, L2)


def _standardised_views(world: World, eps: float) -> torch.Tensor:
    v, w = world.views, world.weights
    mean = torch.einsum("n,nvd->d", w, v) / v.shape[1]
    centred = v - mean
    var = torch.einsum("n,nvd->d", w, centred.pow(2)) / v.shape[1]
    return centred / torch.sqrt(var + eps)


def cross_correlation_matrix_exact(world: World, *, standardize: bool = False, eps: float = 0.0) -> torch.Tensor:
    r"""The paper's cross-correlation matrix ``F`` (Sec. 2), exactly: ``F_ij = E_x E_{x1, x2 in A(x)} f_i(x1) f_j(x2)``.

    With independent uniform views, ``F = sum_x w_x m_x m_x^T`` where ``m_x`` is the mean feature
    over ``A(x)``. The paper *assumes* the normalisation ``E f_i = 0``, ``E f_i^2 = 1`` (expectation
    over ``x`` and one view); ``standardize=True`` first applies the per-dimension affine map that
    enforces it on this world (the population analogue of Barlow Twins' batch standardisation),
    dividing by ``sqrt(var + eps)``. Returns a ``(d, d)`` float64 tensor.
    """
    world = _feature_world(world)
    eps = check_real(eps, "eps", low=0)
    v = _standardised_views(world, eps) if standardize else world.views
    if standardize and not bool(torch.isfinite(v).all()):
        raise ValueError("a feature dimension is constant over the world, so it cannot be standardised; "
                         "pass eps > 0")
    means = v.mean(dim=1)
    return torch.einsum("n,ni,nj->ij", world.weights, means, means)


def cross_correlation_split_exact(world: World, lam: float = 5e-3, *, standardize: bool = False,
                                  eps: float = 0.0) -> LossSplit:
    r"""Population cross-correlation loss and its split (Sec. 4.2, notes 6.1), exactly.

    ::

        L = sum_i (1 - F_ii)^2 + lam sum_{i != j} F_ij^2 = (1 - lam) L1 + lam L2,
        L1 = sum_i (1 - F_ii)^2,   L2 = ||F - I||_F^2

    ``total`` is computed from the definition, so ``total == (1 - lam) L1 + lam L2`` checks the split.
    """
    lam = _lam(lam)
    Fm = cross_correlation_matrix_exact(world, standardize=standardize, eps=eps)
    diag = torch.diagonal(Fm)
    total = float((1.0 - diag).pow(2).sum() + lam * (Fm.pow(2).sum() - diag.pow(2).sum()))
    L1 = float((1.0 - diag).pow(2).sum())
    L2 = float((Fm - torch.eye(Fm.shape[0], dtype=Fm.dtype)).pow(2).sum())
    return LossSplit(total, L1, L2)


def cross_correlation_exact(world: World, lam: float = 5e-3, *, standardize: bool = False,
                            eps: float = 0.0) -> float:
    r"""Population cross-correlation loss ``sum_i (1 - F_ii)^2 + lam sum_{i != j} F_ij^2`` (Sec. 2), exactly.

    See :func:`cross_correlation_matrix_exact` for ``F`` and ``standardize``.
    """
    return cross_correlation_split_exact(world, lam, standardize=standardize, eps=eps).total


def linear_loss_split_exact(world: World, lam: float = 1.0) -> LossSplit:
    r"""Population linear ("simple") loss of Sec. 4.1 and its split, exactly.

    ::

        L' = E[-f(x1)^T f(x2) + lam f(x1)^T f(x^-)] = L1 + lam L2',
        L1 = -E f(x1)^T f(x2) = -sum_x w_x ||m_x||^2     (= the InfoNCE L1 on the unit sphere)
        L2' = E f(x1)^T f(x^-) = ||E f||^2 = ||sum_x w_x m_x||^2     (x, x' independent)

    ``m_x`` is the mean feature over ``A(x)``. ``lam >= 0``.
    """
    world = _feature_world(world)
    lam = _lam(lam)
    means = world.views.mean(dim=1)
    L1 = -float((world.weights * means.pow(2).sum(dim=1)).sum())
    L2 = float((world.weights @ means).pow(2).sum())
    return LossSplit(L1 + lam * L2, L1, L2)


def linear_loss_exact(world: World, lam: float = 1.0) -> float:
    r"""Population linear loss ``E[-f(x1)^T f(x2) + lam f(x1)^T f(x^-)]`` (Sec. 4.1), exactly."""
    return linear_loss_split_exact(world, lam).total
