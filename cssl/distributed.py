"""Data-parallel training with ``torchrun``: process group, gradient-carrying gathers, global statistics.

Launch any training command with ``torchrun --nproc_per_node N -m cssl train ...``; :func:`cssl.train.train`
calls :func:`init_from_env` when ``WORLD_SIZE > 1`` and then every rank trains on its slice of the
global batch. The helpers make the *losses* equal to the single-process losses on the global batch:

* :func:`gather_with_grad` concatenates the projections of all ranks (rank order) and routes the
  gradient of each slice back to its rank, so NT-Xent sees all ``2N - 2`` negatives (SimCLR, Chen et al.
  2020, Sec. 2.2 "Global BN" and the gathered negatives of their TPU implementation).
* :func:`cross_correlation_loss` all-reduces the per-dimension sums, the squares and the
  cross-correlation matrix, so ``C`` is the global one (Barlow Twins' reference implementation
  all-reduces ``C`` the same way).
* :func:`convert_sync_batchnorm` makes BatchNorm statistics global on CUDA (SyncBatchNorm is CUDA-only
  in PyTorch; on CPU/gloo each rank keeps per-rank BatchNorm, like the authors' per-GPU BN).

Gradient bookkeeping: every rank evaluates the same global loss ``L``. The backward of a sum all-reduce
sums the ``W`` identical upstream gradients, so each rank's local gradient is ``W`` times its share;
DistributedDataParallel then *averages* over ranks, which gives exactly ``sum_r dL/dz_r dz_r/dtheta``,
the single-process gradient. ``tests/test_distributed.py`` checks losses and gradients against one process.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "is_distributed", "rank", "world_size", "is_main", "init_from_env", "cleanup", "barrier",
    "gather_with_grad", "all_gather_nograd", "all_reduce_with_grad", "cross_correlation_loss",
    "convert_sync_batchnorm", "revert_sync_batchnorm", "main_print",
]


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of ranks (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0: the only rank that logs, writes results and checkpoints."""
    return rank() == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (set by ``torchrun``), 1 when absent."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None


def init_from_env(device: str | torch.device = "cpu", *, timeout_s: float = 1800.0) -> torch.device:
    """Initialise the default process group from ``torchrun``'s environment and return this rank's device.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` (``env://``).
    Backend ``nccl`` for CUDA (the rank uses ``cuda:LOCAL_RANK``), ``gloo`` for CPU. A no-op returning
    ``device`` when ``WORLD_SIZE`` is 1 or the group already exists.
    """
    device = torch.device(device)
    if env_world_size() <= 1:
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(f"WORLD_SIZE > 1 but {missing} are not set; launch with torchrun")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                timeout=datetime.timedelta(seconds=timeout_s),
                                **({"device_id": device} if device.type == "cuda" else {}))
    return device


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Synchronise all ranks (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def main_print(*args, **kwargs) -> None:
    """``print`` on rank 0 only."""
    if is_main():
        print(*args, **kwargs)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward all-reduces the upstream gradient and returns this rank's slice."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z.contiguous())
        ctx.n, ctx.rank = z.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # sum the W ranks' (identical-loss) gradients
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` of every rank along dim 0 (rank order), keeping gradients to each rank's slice.

    Every rank must pass a tensor of the same shape (the train loop drops the last partial batch). Not
    distributed: returns ``z`` unchanged. Uses all-reduce in backward (works on gloo, which has no
    reduce-scatter).
    """
    if not is_distributed():
        return z
    return _GatherWithGrad.apply(z)


@torch.no_grad()
def all_gather_nograd(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` of every rank along dim 0, without gradients (MoCo's queue of keys)."""
    if not is_distributed():
        return z
    parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, z.contiguous())
    return torch.cat(parts)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over ranks; the backward sums the gradients (identity when not distributed)."""
    if not is_distributed():
        return x
    return _AllReduceSum.apply(x)


def cross_correlation_loss(z1: torch.Tensor, z2: torch.Tensor, lam: float = 5e-3, eps: float = 1e-8) -> torch.Tensor:
    """Barlow Twins loss ``sum_i (1 - C_ii)^2 + lam * sum_{i!=j} C_ij^2`` with global batch statistics.

    Each view's projection is standardised per dimension with the *global* mean and biased variance,
    ``zn = (z - mean) / sqrt(var + eps)`` as in :func:`cssl.losses.cross_correlation`, and
    ``C = z1n^T z2n / N_global``: the sums
    ``sum z``, ``sum z^2`` and ``z1n^T z2n`` are all-reduced with gradients. With one process this is
    exactly :func:`cssl.losses.cross_correlation` (the test checks the two agree on 1 and 2 ranks).
    """
    from ._validate import check_real

    check_real(lam, "lam", low=0)
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both have shape (N, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = float(z1.shape[0])
    if is_distributed():
        n_all = torch.tensor(n, device=z1.device)
        dist.all_reduce(n_all)
        n = float(n_all)
    if n < 2:
        raise ValueError("the global batch needs at least 2 samples to standardise the projections")

    def standardise(z):
        s = all_reduce_with_grad(torch.stack([z.sum(0), (z * z).sum(0)]))
        mean = s[0] / n
        var = s[1] / n - mean * mean
        return (z - mean) / (var.clamp_min(0) + eps).sqrt()

    c = all_reduce_with_grad(standardise(z1).T @ standardise(z2)) / n
    on = torch.diagonal(c)
    return (1 - on).pow(2).sum() + lam * (c.pow(2).sum() - on.pow(2).sum())


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace BatchNorm by :class:`torch.nn.SyncBatchNorm` when distributed on CUDA (no-op otherwise).

    PyTorch's SyncBatchNorm runs on GPUs only; on CPU/gloo (used by the tests) BatchNorm stays per rank.
    """
    if is_distributed() and torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module


class _BatchNormAnyDim(nn.modules.batchnorm._BatchNorm):
    """Plain (per-process) BatchNorm accepting 2-D to 5-D inputs, as SyncBatchNorm does."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Return ``module`` with every SyncBatchNorm replaced by an equivalent per-process BatchNorm (same weights and
    statistics), for single-rank evaluation (SyncBatchNorm would wait for the other ranks in training
    mode, e.g. during BatchNorm re-estimation)."""
    out = module
    if isinstance(module, nn.SyncBatchNorm):
        out = _BatchNormAnyDim(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight.copy_(module.weight)
                out.bias.copy_(module.bias)
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out = out.to(module.weight.device if module.affine else module.running_mean.device)
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, revert_sync_batchnorm(child))
    return out
