"""Lipschitz constants of encoders: certified upper bounds from the weights, lower bounds from pairs of inputs.

Theorem 1 of the paper assumes an ``L``-Lipschitz encoder, ``||f(x) - f(x')|| <= L ||x - x'||``, and its
constant ``rho_max`` carries the term ``sigma L delta / r``. This module brackets ``L`` for the book's
encoders from both sides, with the direction of every estimate stated:

* **upper bounds** (certified): :func:`network_lipschitz_upper` walks a network layer by layer and
  multiplies the operator norms ``||A||_2`` of its linear parts (convolutions with their input shape,
  eval-mode BatchNorm as a diagonal scale, the input normalisation ``(x - m) / s``, average pooling,
  linear layers); ReLU and non-overlapping max-pooling are 1-Lipschitz. Affine pieces between two
  nonlinearities can be merged into one linear map whose norm is computed exactly (tighter, still an
  upper bound, since ``||A B|| <= ||A|| ||B||``). :func:`operator_norm` computes one norm, exactly from
  the explicit matrix (:func:`linear_matrix`) or by power iteration (which converges from *below*).
  :func:`normalised_lipschitz_upper` adds the final normalisation ``f = r g / ||g||``, which is only
  ``r / min ||g||``-Lipschitz: finite on a set where ``||g||`` stays away from 0, not globally.
* **lower bounds** (certified: the exact ratio of an actual pair): :func:`pairwise_lipschitz_lower` takes
  the largest ``||f(u) - f(v)|| / ||u - v||`` over all pairs of a finite set of inputs (e.g. the views of
  a world), and :func:`refine_lipschitz_lower` pushes chosen pairs uphill by projected gradient ascent on
  the ratio, inside a box of valid inputs.

Every true Lipschitz constant lies between the two: ``lower <= L <= upper``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ._validate import as_tensor, check_int, check_real

__all__ = [
    "linear_matrix",
    "operator_norm",
    "batchnorm_scale",
    "channel_scale",
    "LayerFactor",
    "NetworkBound",
    "network_lipschitz_upper",
    "normalised_lipschitz_upper",
    "PairBound",
    "pairwise_lipschitz_lower",
    "RefinedPairs",
    "refine_lipschitz_lower",
]

#: Largest number of matrix entries :func:`linear_matrix` builds (float64: 400 MB).
MAX_MATRIX_ENTRIES = 50_000_000
_METHODS = ("exact", "power", "auto")


# ------------------------------------------------------------------ one linear map
def _check_shape(input_shape, name: str = "input_shape") -> tuple[int, ...]:
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise TypeError(f"{name} must be a non-empty tuple of positive ints (no batch dimension), got {input_shape!r}")
    return tuple(check_int(s, f"{name}[{i}]", low=1) for i, s in enumerate(input_shape))


def _apply(fn: Callable, x: torch.Tensor) -> torch.Tensor:
    out = fn(x)
    if not isinstance(out, torch.Tensor) or out.shape[0] != x.shape[0]:
        raise ValueError("fn must map a batch (B, *input_shape) to a batch (B, ...) of the same size B")
    return out.reshape(x.shape[0], -1)


def _check_linear(fn: Callable, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    zero = _apply(fn, torch.zeros((1, *shape), dtype=dtype))
    if float(zero.abs().max()) > 1e-9:
        raise ValueError("fn is not linear: fn(0) != 0. Pass the linear part of an affine map "
                         "(x -> fn(x) - fn(0)), which has the same Lipschitz constant")


def linear_matrix(fn: Callable, input_shape, *, dtype: torch.dtype = torch.float64, batch_size: int = 512) -> torch.Tensor:
    """The explicit matrix ``A`` (``out_dim x in_dim``) of a linear map ``fn`` on inputs of ``input_shape``.

    Column ``j`` is ``fn(e_j)`` for the ``j``-th standard basis tensor ``e_j`` of shape ``input_shape``
    (no batch dimension); ``fn`` maps a batch ``(B, *input_shape)`` to ``(B, ...)`` and is evaluated in
    ``dtype`` on ``batch_size`` basis tensors at a time. ``fn(0) = 0`` is checked (an affine map must be
    passed as its linear part). At most :data:`MAX_MATRIX_ENTRIES` entries.
    """
    shape = _check_shape(input_shape)
    check_int(batch_size, "batch_size", low=1)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    n = math.prod(shape)
    with torch.no_grad():
        _check_linear(fn, shape, dtype)
        first = _apply(fn, torch.zeros((1, *shape), dtype=dtype))
        if n * first.shape[1] > MAX_MATRIX_ENTRIES:
            raise ValueError(f"the matrix would have {n} x {first.shape[1]} entries (> {MAX_MATRIX_ENTRIES}); "
                             "use operator_norm(..., method='power')")
        cols = []
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            basis = torch.zeros((m, n), dtype=dtype)
            basis[torch.arange(m), torch.arange(i, i + m)] = 1.0
            cols.append(_apply(fn, basis.reshape(m, *shape)))
    return torch.cat(cols).T.contiguous()


def operator_norm(fn: Callable, input_shape, *, method: str = "auto", iters: int = 1000, tol: float = 1e-12,
                  seed: int = 0, dtype: torch.dtype = torch.float64) -> float:
    r"""The spectral norm ``||A||_2 = sup_x ||A x|| / ||x||`` of a linear map ``fn`` on inputs of ``input_shape``.

    ``||A||_2`` is the Lipschitz constant of ``A`` (and of ``x -> A x + b``) in the Euclidean norm.

    * ``method="exact"``: the largest singular value of the explicit matrix (:func:`linear_matrix`),
      ``sqrt(lambda_max(A^T A))`` by a symmetric eigensolver in float64 (or of ``A A^T``, the smaller one).
    * ``method="power"``: power iteration on ``A^T A``, with ``A^T y`` obtained by automatic
      differentiation (``A^T y = grad_x <A x, y>``), from a seeded random start; stops when the estimate
      changes by less than ``tol`` (relative) or after ``iters`` steps. It returns ``||A v|| / ||v||``
      for the last iterate ``v``: a **lower** estimate that converges to ``||A||_2`` (linearly, at the
      rate ``(s_2 / s_1)^2`` of the top two singular values).
    * ``method="auto"``: exact when the matrix has at most :data:`MAX_MATRIX_ENTRIES` entries.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    shape = _check_shape(input_shape)
    check_int(iters, "iters", low=1)
    check_real(tol, "tol", low=0)
    check_int(seed, "seed", low=0)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    n = math.prod(shape)
    if method == "auto":
        with torch.no_grad():
            out_dim = _apply(fn, torch.zeros((1, *shape), dtype=dtype)).shape[1]
        method = "exact" if n * out_dim <= MAX_MATRIX_ENTRIES else "power"
    if method == "exact":
        a = linear_matrix(fn, shape, dtype=dtype)
        gram = a.T @ a if a.shape[1] <= a.shape[0] else a @ a.T
        return float(torch.linalg.eigvalsh(gram).max().clamp_min(0).sqrt())
    with torch.no_grad():
        _check_linear(fn, shape, dtype)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn((1, *shape), generator=g, dtype=dtype)
    v = v / v.norm()
    estimate = 0.0
    for _ in range(iters):
        x = v.clone().requires_grad_(True)
        y = _apply(fn, x)
        new = float(y.detach().norm())
        (w,) = torch.autograd.grad(y, x, grad_outputs=y.detach())  # A^T A v
        w_norm = float(w.norm())
        if w_norm == 0.0:
            return new  # A v = 0 on this start; the estimate is 0 only for A = 0 (almost surely)
        v = (w / w_norm).detach()
        if abs(new - estimate) <= tol * max(new, 1e-300):
            estimate = new
            break
        estimate = new
    with torch.no_grad():
        return float(_apply(fn, v).norm())


# ------------------------------------------------------------------ diagonal pieces
def batchnorm_scale(bn: nn.Module) -> torch.Tensor:
    r"""The per-channel scale of an eval-mode BatchNorm: ``gamma / sqrt(running_var + eps)``.

    In eval mode BatchNorm is the affine map ``x -> scale * (x - running_mean) + beta`` per channel, so
    its Lipschitz constant is ``max_c |scale_c|``. Needs running statistics (``track_running_stats``).
    """
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise TypeError(f"bn must be a torch BatchNorm module, got {type(bn).__name__}")
    if bn.running_var is None:
        raise ValueError("this BatchNorm has no running statistics (track_running_stats=False): in eval mode it "
                         "normalises by batch statistics and is not a fixed map")
    var = bn.running_var.detach().to(torch.float64)
    scale = 1.0 / torch.sqrt(var + bn.eps)
    if bn.affine and bn.weight is not None:
        scale = scale * bn.weight.detach().to(torch.float64)
    return scale


def channel_scale(transform: Callable, image_shape, *, seed: int = 0, rtol: float = 1e-5) -> torch.Tensor:
    r"""The per-channel multiplier ``1 / s_c`` of a per-channel affine input map ``x -> (x - m_c) / s_c``.

    Probed, not read from the closure: ``transform(1) - transform(0)`` gives ``1 / s_c`` per channel, and a
    random batch checks that ``transform(x) - transform(0) = x / s`` (otherwise ``ValueError``: the map is
    not a per-channel diagonal affine map). Its Lipschitz constant is ``max_c 1 / s_c = 1 / min_c s_c``,
    e.g. for :func:`cssl.train.input_normaliser`. ``image_shape`` is ``(C, H, W)``.
    """
    shape = _check_shape(image_shape, "image_shape")
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {shape}")
    if not callable(transform):
        raise TypeError(f"transform must be callable, got {type(transform).__name__}")
    zero = transform(torch.zeros((1, *shape))).double()
    one = transform(torch.ones((1, *shape))).double()
    scale = (one - zero)[0].mean(dim=(1, 2))
    x = torch.rand((4, *shape), generator=torch.Generator().manual_seed(seed))
    got = transform(x).double() - zero
    want = x.double() * scale.view(1, -1, 1, 1)
    if not torch.allclose(got, want, rtol=rtol, atol=rtol * float(scale.abs().max())):
        raise ValueError("transform is not a per-channel affine map x -> (x - m) / s")
    return scale


# ------------------------------------------------------------------ a whole network
@dataclass(frozen=True)
class LayerFactor:
    """One factor of :func:`network_lipschitz_upper`: ``name``, the input shape it acts on, its norm and how."""

    name: str
    input_shape: tuple
    norm: float
    how: str


@dataclass(frozen=True)
class NetworkBound:
    """A certified upper bound on the Lipschitz constant of a network: ``upper = prod(layer norms)``."""

    layers: tuple
    upper: float
    merged: bool

    def table(self) -> str:
        """The factors as aligned text lines."""
        rows = [f"{'factor':<34} {'input shape':<14} {'norm':>11}  how"]
        for f in self.layers:
            rows.append(f"{f.name:<34} {str(tuple(f.input_shape)):<14} {f.norm:>11.4g}  {f.how}")
        rows.append(f"{'product (upper bound on L)':<34} {'':<14} {self.upper:>11.4g}")
        return "\n".join(rows)


class _Mean(nn.Module):
    """Global average pooling over the spatial axes (the last step of ``SmallCNN``)."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class _Scale(nn.Module):
    def __init__(self, scale: torch.Tensor, name: str):
        super().__init__()
        self.scale, self.label = scale, name

    def forward(self, x):
        return x * self.scale.to(x.dtype).view(1, -1, *([1] * (x.ndim - 2)))


def _stages(model: nn.Module) -> list[nn.Module]:
    from .models import MLP, SmallCNN

    if isinstance(model, SmallCNN):
        return list(model.features) + [_Mean(), model.fc]
    if isinstance(model, MLP):
        return list(model.net)
    if isinstance(model, nn.Sequential):
        return list(model)
    if isinstance(model, (nn.Linear, nn.Conv2d)):
        return [model]
    raise TypeError(f"network_lipschitz_upper supports SmallCNN, MLP, nn.Sequential, nn.Linear and nn.Conv2d, "
                    f"got {type(model).__name__}")


def _out_shape(module: nn.Module, shape: tuple) -> tuple:
    with torch.no_grad():
        return tuple(module(torch.zeros((1, *shape), dtype=torch.float64)).shape[1:])


def _linear_part(module: nn.Module) -> tuple[nn.Module, str]:
    """The linear part of an affine module (bias and shifts dropped), in float64, and its name."""
    if isinstance(module, nn.Conv2d):
        lin = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                        padding=module.padding, dilation=module.dilation, groups=module.groups, bias=False,
                        padding_mode=module.padding_mode).to(torch.float64)
        lin.weight.data.copy_(module.weight.detach().to(torch.float64))
        return lin, f"Conv2d {module.in_channels}->{module.out_channels} k{module.kernel_size[0]}"
    if isinstance(module, nn.Linear):
        lin = nn.Linear(module.in_features, module.out_features, bias=False).to(torch.float64)
        lin.weight.data.copy_(module.weight.detach().to(torch.float64))
        return lin, f"Linear {module.in_features}->{module.out_features}"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return _Scale(batchnorm_scale(module), "BN"), f"{type(module).__name__}({module.num_features}) eval"
    if isinstance(module, _Mean):
        return module, "global average pool"
    if isinstance(module, _Scale):
        return module, module.label
    raise TypeError(f"no linear part known for {type(module).__name__}")


def _is_one_lipschitz(module: nn.Module) -> str | None:
    if isinstance(module, (nn.ReLU, nn.Identity)):
        return type(module).__name__
    if isinstance(module, nn.MaxPool2d):
        k = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
        s = module.stride if isinstance(module.stride, tuple) else (module.stride,) * 2
        p = module.padding if isinstance(module.padding, tuple) else (module.padding,) * 2
        d = module.dilation if isinstance(module.dilation, tuple) else (module.dilation,) * 2
        if tuple(k) == tuple(s) and tuple(p) == (0, 0) and tuple(d) == (1, 1):
            return f"MaxPool2d {k[0]}x{k[1]} (disjoint windows)"
        raise ValueError(f"overlapping max-pooling {module} is not 1-Lipschitz in the l2 norm; only "
                         "kernel_size == stride, no padding or dilation is supported")
    return None


def network_lipschitz_upper(model: nn.Module, input_shape, *, input_scale=None, merge: bool = True,
                            method: str = "auto") -> NetworkBound:
    r"""A certified upper bound on the l2 Lipschitz constant of a network (before any output normalisation).

    For ``g = A_n o s_{n-1} o ... o s_1 o A_1`` with linear (or affine) maps ``A_i`` and 1-Lipschitz
    nonlinearities ``s_i``,

        Lip(g) <= prod_i ||A_i||_2 ,

    because ``||A x - A y|| <= ||A||_2 ||x - y||`` and composition multiplies Lipschitz constants.
    Pieces: ``Conv2d`` (norm of the convolution operator **on its actual input shape**, zero padding
    included), eval-mode ``BatchNorm`` (diagonal, :func:`batchnorm_scale`), ``Linear``, the global average
    pool of ``SmallCNN`` (``1 / sqrt(H W)``), and ``input_scale``: the per-channel multiplier ``1 / s`` of
    an input normalisation ``(x - m) / s`` (:func:`channel_scale`), applied first. ReLU and max-pooling
    with disjoint windows are 1-Lipschitz; anything else raises. Biases and shifts do not change a
    Lipschitz constant and are dropped. BatchNorm is taken **as in eval mode** (running statistics): put
    the model in eval mode to evaluate the function this bounds.

    ``merge=True`` multiplies out every run of linear pieces between two nonlinearities and takes the norm
    of the product (``||A B|| <= ||A|| ||B||``: tighter, still certified); ``merge=False`` gives the plain
    product of per-piece norms. Norms come from :func:`operator_norm` (``method``; ``"exact"`` and
    ``"auto"`` on small layers give certified values; ``"power"`` converges from below, so the product
    is then an estimate).

    ``model``: :class:`cssl.models.SmallCNN`, :class:`cssl.models.MLP`, ``nn.Sequential`` of supported
    pieces, ``nn.Linear`` or ``nn.Conv2d``; ``input_shape`` without the batch dimension.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    shape = _check_shape(input_shape)
    stages = _stages(model)
    if input_scale is not None:
        scale = as_tensor(input_scale, "input_scale", ndim=1)
        if scale.shape[0] != shape[0]:
            raise ValueError(f"input_scale has {scale.shape[0]} entries but the input has {shape[0]} channels")
        stages = [_Scale(scale, "input normalisation (x - m) / s")] + stages
    factors: list[LayerFactor] = []
    pending: list[tuple[nn.Module, str]] = []
    pending_shape = shape
    cur = shape

    def flush():
        nonlocal pending, pending_shape
        if not pending:
            return
        seq = nn.Sequential(*[m for m, _ in pending])
        name = " + ".join(n for _, n in pending)
        if len(pending) == 1 and isinstance(pending[0][0], _Scale):
            norm = float(pending[0][0].scale.abs().max())
            how = "max |diagonal|"
        elif len(pending) == 1 and isinstance(pending[0][0], _Mean):
            norm = 1.0 / math.sqrt(pending_shape[1] * pending_shape[2])
            how = "1 / sqrt(H W)"
        else:
            norm = operator_norm(seq, pending_shape, method=method)
            how = f"operator norm ({'exact' if method != 'power' else 'power iteration'})"
        factors.append(LayerFactor(name, pending_shape, norm, how))
        pending = []

    for module in stages:
        one = _is_one_lipschitz(module)
        if one is not None:
            flush()
            cur = _out_shape(module, cur) if not isinstance(module, nn.Identity) else cur
            pending_shape = cur
            continue
        lin, name = _linear_part(module)
        if not merge:
            flush()
            pending_shape = cur
        if not pending:
            pending_shape = cur
        pending.append((lin, name))
        cur = _out_shape(lin, cur)
    flush()
    upper = math.prod(f.norm for f in factors) if factors else 1.0
    return NetworkBound(tuple(factors), float(upper), merge)


def normalised_lipschitz_upper(lipschitz_g: float, g_norms, *, r: float = 1.0) -> float:
    r"""Upper bound on the Lipschitz constant of ``f = r g / ||g||`` over a set of inputs.

    For inputs ``u, v`` with ``||g(u)||, ||g(v)|| >= m > 0``,

        ||f(u) - f(v)|| <= r ||g(u) - g(v)|| / min(||g(u)||, ||g(v)||) <= (r Lip(g) / m) ||u - v|| ,

    (the projection onto the ball of radius ``m`` is 1-Lipschitz and maps ``g(u)`` to ``m g(u) / ||g(u)||``
    when ``||g(u)|| >= m = ||g(v)||``). So ``r Lip(g) / min ||g||``, with the minimum over the set, bounds
    ``||f(u) - f(v)|| / ||u - v||`` for every pair of the set. It is not a global bound: where ``g``
    comes near 0, ``f`` is not Lipschitz at all. ``g_norms``: the norms ``||g(x)||`` over the set
    (positive); ``lipschitz_g > 0``, ``r > 0``.
    """
    lg = check_real(lipschitz_g, "lipschitz_g", low=0, low_open=True)
    r = check_real(r, "r", low=0, low_open=True)
    norms = as_tensor(g_norms, "g_norms").flatten()
    m = float(norms.min())
    if m <= 0:
        raise ValueError("a norm ||g(x)|| is 0: f = g / ||g|| is undefined there and has no Lipschitz constant")
    return r * lg / m


# ------------------------------------------------------------------ lower bounds from pairs
@dataclass(frozen=True)
class PairBound:
    """The largest ratio ``||f(u) - f(v)|| / ||u - v||`` found among pairs: ``value`` at rows ``(i, j)``."""

    value: float
    i: int
    j: int
    input_distance: float
    output_distance: float
    n_pairs: int


def pairwise_lipschitz_lower(inputs, outputs, *, min_distance: float = 0.0, recheck: int = 64,
                             block: int = 2048) -> PairBound:
    r"""``max_{i < j} ||y_i - y_j|| / ||x_i - x_j||`` over the pairs of rows with ``||x_i - x_j|| > min_distance``.

    ``inputs`` ``(N, D)`` (or ``(N, ...)``, flattened) are points ``x_i`` and ``outputs`` ``(N, d)`` their
    images ``y_i = f(x_i)``. Any pair gives a valid **lower** bound on the Lipschitz constant of ``f``;
    this returns the best one. Distances are screened block by block with matrix products in float64
    (after centring), then the ``recheck`` best candidate pairs are recomputed from direct differences,
    so the returned ratio is the exact ratio of the returned pair. ``min_distance >= 0`` skips
    near-duplicate inputs (a float32 encoder can give two equal inputs slightly different outputs, which
    would make the ratio meaningless). ``N >= 2``.
    """
    x = as_tensor(inputs, "inputs")
    y = as_tensor(outputs, "outputs")
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs has {x.shape[0]} rows but outputs has {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError("need at least two points")
    min_distance = check_real(min_distance, "min_distance", low=0)
    recheck = check_int(recheck, "recheck", low=1)
    block = check_int(block, "block", low=1)
    n = x.shape[0]
    xc, yc = x - x.mean(0), y - y.mean(0)
    xn, yn = xc.square().sum(1), yc.square().sum(1)
    cand_r, cand_i, cand_j = [], [], []
    total = 0
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        dx2 = (xn[i0:i1, None] + xn[None, :] - 2 * xc[i0:i1] @ xc.T).clamp_min(0)
        dy2 = (yn[i0:i1, None] + yn[None, :] - 2 * yc[i0:i1] @ yc.T).clamp_min(0)
        rows = torch.arange(i0, i1)[:, None]
        keep = (torch.arange(n)[None, :] > rows) & (dx2 > (0.5 * min_distance) ** 2) & (dx2 > 0)
        total += int(keep.sum())
        ratio = torch.where(keep, dy2 / dx2.clamp_min(1e-300), torch.zeros((), dtype=dx2.dtype))
        k = min(recheck, ratio.numel())
        top = torch.topk(ratio.flatten(), k)
        cand_r.append(top.values)
        cand_i.append(top.indices // n + i0)
        cand_j.append(top.indices % n)
    r, ii, jj = torch.cat(cand_r), torch.cat(cand_i), torch.cat(cand_j)
    order = torch.argsort(r, descending=True)[:recheck]
    best = PairBound(0.0, -1, -1, 0.0, 0.0, total)
    for t in order.tolist():
        if float(r[t]) <= 0:
            continue
        i, j = int(ii[t]), int(jj[t])
        dx = float((x[i] - x[j]).norm())
        dy = float((y[i] - y[j]).norm())
        if dx <= min_distance or dx == 0.0:
            continue
        if dy / dx > best.value:
            best = PairBound(dy / dx, i, j, dx, dy, total)
    if best.i < 0:
        raise ValueError(f"no pair of inputs is farther apart than min_distance = {min_distance:g}")
    return best


@dataclass(frozen=True)
class RefinedPairs:
    """Pairs after gradient ascent: ``ratio[b] = ||f(a[b]) - f(b[b])|| / ||a[b] - b[b]||`` (the best seen)."""

    ratio: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    start_ratio: torch.Tensor

    @property
    def value(self) -> float:
        """The best ratio over all pairs: a lower bound on the Lipschitz constant."""
        return float(self.ratio.max())


def refine_lipschitz_lower(fn: Callable, a, b, *, steps: int = 100, lr: float = 1e-2, box=(0.0, 1.0),
                           min_distance: float = 1e-2) -> RefinedPairs:
    r"""Projected gradient ascent on ``log ||fn(a) - fn(b)|| - log ||a - b||`` from the given pairs.

    ``a`` and ``b`` are batches ``(B, ...)`` of starting pairs (e.g. the best pairs of
    :func:`pairwise_lipschitz_lower`); ``fn`` maps a batch to ``(B, d)`` and must be differentiable.
    Both points move (Adam, learning rate ``lr``, ``steps`` steps) and are clamped to ``box`` (valid
    inputs, e.g. images in ``[0, 1]``); their distance is kept at least ``min_distance`` (the
    difference is rescaled), so every ratio is a finite-difference ratio of a real pair, never a
    derivative. Returns the best pair seen per start; each ratio is a certified **lower** bound on the
    Lipschitz constant of ``fn`` on the box (evaluated in ``fn``'s precision).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    a0 = as_tensor(a, "a", dtype=torch.float32)
    b0 = as_tensor(b, "b", dtype=torch.float32)
    if a0.shape != b0.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a0.shape)} and {tuple(b0.shape)}")
    check_int(steps, "steps", low=0)
    check_real(lr, "lr", low=0, low_open=True)
    lo, hi = (check_real(box[0], "box[0]"), check_real(box[1], "box[1]")) if box is not None else (-math.inf, math.inf)
    if not lo < hi:
        raise ValueError(f"box must be (low, high) with low < high, got {box}")
    min_distance = check_real(min_distance, "min_distance", low=0, low_open=True)
    dims = tuple(range(1, a0.ndim))

    def project(p, q):
        p, q = p.clamp(lo, hi), q.clamp(lo, hi)
        d = (q - p).flatten(1).norm(dim=1).view(-1, *([1] * (p.ndim - 1)))
        small = d < min_distance
        if bool(small.any()):  # push q away from p along their difference, back into the box
            direction = torch.where(d > 0, (q - p) / d.clamp_min(1e-30), torch.ones_like(p) / math.sqrt(p[0].numel()))
            q = torch.where(small, (p + 1.01 * min_distance * direction).clamp(lo, hi), q)
        return p, q

    def ratio(p, q):
        num = (fn(p) - fn(q)).flatten(1).norm(dim=1)
        den = (p - q).flatten(1).norm(dim=1)
        return num / den

    with torch.no_grad():
        p, q = project(a0.clone(), b0.clone())
        start = ratio(p, q).double()
    best_r, best_a, best_b = start.clone(), p.clone(), q.clone()
    p, q = p.requires_grad_(True), q.requires_grad_(True)
    opt = torch.optim.Adam([p, q], lr=lr)
    for _ in range(steps):
        val = ratio(p, q)
        loss = -torch.log(val.clamp_min(1e-30)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            np_, nq = project(p, q)
            p.copy_(np_)
            q.copy_(nq)
            cur = ratio(p, q).double()
            better = cur > best_r
            if bool(better.any()):
                best_r = torch.where(better, cur, best_r)
                mask = better.view(-1, *([1] * len(dims)))
                best_a = torch.where(mask, p.detach(), best_a)
                best_b = torch.where(mask, q.detach(), best_b)
    with torch.no_grad():  # re-evaluate the kept pairs once more (same precision as fn)
        final = ratio(best_a, best_b).double()
    return RefinedPairs(final, best_a, best_b, start)
