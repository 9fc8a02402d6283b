"""Input validation shared by every public function of :mod:`cssl`.

Each helper raises ``ValueError`` (or ``TypeError`` for a wrong kind of object) with a message that
names the argument, says what was received and what was expected, so a reader of a notebook sees at
once how to fix the call.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Sequence

import numpy as np
import torch

__all__ = [
    "as_tensor",
    "check_finite",
    "check_int",
    "check_real",
    "check_shape",
    "check_probability_vector",
    "available_memory",
    "check_memory",
]


def as_tensor(value, name: str, *, dtype: torch.dtype | None = torch.float64, ndim: int | None = None,
              allow_empty: bool = False) -> torch.Tensor:
    """Convert ``value`` (tensor, numpy array, nested list) to a torch tensor and validate it.

    Floating tensors are checked for NaN/inf. ``dtype=None`` keeps the input's dtype.
    """
    if isinstance(value, torch.Tensor):
        t = value.detach()
    elif isinstance(value, (np.ndarray, list, tuple, Real)):
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric array-like; could not convert it ({err})") from None
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if dtype is not None:
        if not (t.dtype.is_floating_point or t.dtype in (torch.int64, torch.int32, torch.int16, torch.int8,
                                                         torch.uint8, torch.bool)):
            raise TypeError(f"{name} has dtype {t.dtype}; expected a real numeric dtype")
        t = t.to(dtype)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(t.shape)}")
    if not allow_empty and t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); expected at least one element")
    if t.dtype.is_floating_point:
        check_finite(t, name)
    return t


def check_finite(t: torch.Tensor, name: str) -> torch.Tensor:
    """Raise if ``t`` holds NaN or infinite values."""
    if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected only finite numbers")
    return t


def check_shape(t: torch.Tensor, name: str, shape: Sequence[int | None]) -> torch.Tensor:
    """Check ``t.shape`` against ``shape``, where ``None`` matches any size."""
    if t.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    return t


def check_real(value, name: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float after checking it is a finite real number in the given interval.

    >>> check_real(0.5, "sigma", low=0, high=1, low_open=True)
    0.5
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not (lo_ok and hi_ok):
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {lo}, {hi}, got {value:g}")
    return value


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int after checking it is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def check_probability_vector(p, name: str, *, atol: float = 1e-9, strictly_positive: bool = True) -> torch.Tensor:
    """Validate a probability vector: 1-D, finite, (strictly) positive entries summing to 1."""
    t = as_tensor(p, name, ndim=1)
    if strictly_positive and bool((t <= 0).any()):
        raise ValueError(f"{name} must have strictly positive entries, got min {float(t.min()):g}")
    if not strictly_positive and bool((t < 0).any()):
        raise ValueError(f"{name} must have nonnegative entries, got min {float(t.min()):g}")
    total = float(t.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1, got {total:.12g}; normalise it first (p / p.sum())")
    return t


def available_memory() -> int | None:
    """Bytes of memory the machine can still give this process (``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(nbytes: float, what: str, advice: str) -> None:
    """Refuse, before allocating, a request whose estimate ``nbytes`` exceeds the available memory.

    ``what`` names the allocation ("the (N, N) distance matrix"), ``advice`` says which argument to
    lower. Raises ``ValueError`` at once, instead of a long swap or an OS kill.
    """
    free = available_memory()
    if free is not None and nbytes > free:
        raise ValueError(f"{what} needs about {nbytes / 2**30:,.1f} GiB but only {free / 2**30:,.1f} GiB "
                         f"of memory are available; {advice}")
