"""Encoders, projection heads and the four self-supervised methods of the paper's experiments (Sec. 5).

Backbones
    :class:`SmallCNN` (3 conv blocks, the CPU workhorse of the ``quick`` profile), :class:`MLP`,
    :func:`resnet18_cifar` (ResNet-18 with the CIFAR stem, as in lightly 1.0.8's
    ``ResNetGenerator('resnet-18')`` used by the authors' code), and :class:`SphereEncoder`, which puts
    any encoder on the sphere ``||f|| = r`` assumed by the paper's theorems (Sec. 3).

Methods (paper Sec. 5.1: "projection heads follow each method's original settings"; the recipe is read
from the authors' repository ``huang-research-group/contrastive2021`` and lightly 1.0.8, see
``docs/design.md``, section 4)
    :class:`SimCLR` (NT-Xent, T = 0.5), :class:`BarlowTwins` (cross-correlation, lambda),
    :class:`MoCo` (momentum encoder 0.99, queue 4096, T = 0.1, symmetric loss, split BatchNorm),
    :class:`SimSiam` (predictor, stop-gradient, negative cosine).

Every method is an ``nn.Module`` with one interface::

    loss = method(x1, x2)          # == method.loss(x1, x2): a scalar for two batches of views
    method.on_step_end()           # after optimizer.step(): MoCo's momentum update (no-op otherwise)
    method.encoder                 # the backbone whose features are evaluated (kNN, linear probe)

``forward`` *is* the loss so that ``DistributedDataParallel(method)`` sees the whole computation.
All heads are sized relative to the backbone's feature dimension ``D`` (512 for ResNet-18), so a small
backbone gets a proportionally small head: SimCLR/MoCo ``D -> D -> D/4``, SimSiam ``D -> 4D -> 4D`` with
predictor ``4D -> D -> 4D``, Barlow Twins ``D -> 4D -> 4D -> 4D``.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_int, check_real

__all__ = [
    "SmallCNN", "MLP", "SphereEncoder", "SplitBatchNorm2d", "BasicBlock", "ResNetCIFAR", "resnet18_cifar",
    "build_backbone", "simclr_head", "moco_head", "simsiam_projection_head", "simsiam_prediction_head",
    "barlow_twins_head", "Method", "SimCLR", "BarlowTwins", "MoCo", "SimSiam", "METHODS", "build_method",
]


def _feature_dim(backbone: nn.Module, feature_dim: int | None) -> int:
    d = feature_dim if feature_dim is not None else getattr(backbone, "feature_dim", None)
    if d is None:
        raise ValueError("the backbone has no `feature_dim` attribute; pass feature_dim=<its output size>")
    return check_int(d, "feature_dim", low=1)


# ----------------------------------------------------------------------------------------- backbones
class SmallCNN(nn.Module):
    """Three conv blocks (3x3 conv + BatchNorm + ReLU), two 2x2 max-pools, global average pooling.

    Channels ``width -> 2*width -> 4*width``; the pooled feature has ``4*width`` dimensions, or
    ``out_dim`` if given (a final linear layer). Made for the ``quick`` profile: a batch of 256 16x16
    images takes tens of milliseconds on two CPU cores in channels_last memory format (the prototype of
    ``docs/design.md``, section 3, measured 34 ms vs 465 ms without it for width 32). The train loop converts model and
    inputs with ``.to(memory_format=torch.channels_last)``.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, out_dim: int | None = None,
                 norm_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        check_int(in_channels, "in_channels", low=1)
        check_int(width, "width", low=1)
        norm = norm_layer or nn.BatchNorm2d
        chans = [in_channels, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False), norm(chans[i + 1]),
                       nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(4 * width, out_dim) if out_dim is not None else nn.Identity()
        self.in_channels = in_channels
        self.feature_dim = check_int(out_dim, "out_dim", low=1) if out_dim is not None else 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SmallCNN expects (B, {self.in_channels}, H, W) images, got {tuple(x.shape)}")
        return self.fc(self.features(x).mean(dim=(2, 3)))


class MLP(nn.Module):
    """Multi-layer perceptron ``in_dim -> hidden -> ... -> hidden -> out_dim`` with ReLU between layers.

    ``num_layers`` counts linear layers (>= 1). ``batch_norm=True`` puts BatchNorm1d after every hidden
    linear layer (before the ReLU), ``last_batch_norm=True`` also after the last one: the layout of
    lightly 1.0.8's ``_projection_mlp`` used for SimSiam and Barlow Twins. Inputs of more than two
    dimensions are flattened, so an MLP encodes the flat views of a :class:`cssl.worlds.World` or images.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, *, num_layers: int = 2, batch_norm: bool = False,
                 last_batch_norm: bool = False):
        super().__init__()
        check_int(in_dim, "in_dim", low=1)
        check_int(hidden, "hidden", low=1)
        check_int(out_dim, "out_dim", low=1)
        check_int(num_layers, "num_layers", low=1)
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            last = i == num_layers - 1
            if (batch_norm and not last) or (last and last_batch_norm):
                layers.append(nn.BatchNorm1d(dims[i + 1]))
            if not last:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.feature_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1) if x.ndim > 2 else x
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"MLP expects inputs with {self.in_dim} features, got shape {tuple(x.shape)}")
        return self.net(x)


class SphereEncoder(nn.Module):
    """``f(x) = r * g(x) / ||g(x)||``: the encoder ``g`` projected on the sphere of radius ``r``.

    The paper's theorems assume ``||f(x)|| = r`` for every ``x`` (Sec. 3), with ``r = 1`` for InfoNCE
    (Sec. 4.1) and ``r = sqrt(d)`` for the cross-correlation loss (Sec. 4.2, Theorem 4).
    """

    def __init__(self, backbone: nn.Module, radius: float = 1.0, *, eps: float = 1e-12):
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        self.backbone = backbone
        self.radius = check_real(radius, "radius", low=0, low_open=True)
        self.eps = check_real(eps, "eps", low=0, low_open=True)
        self.feature_dim = getattr(backbone, "feature_dim", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.radius * F.normalize(self.backbone(x), dim=-1, eps=self.eps)


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that normalises ``num_splits`` sub-batches separately during training.

    Simulates the per-GPU BatchNorm of multi-GPU MoCo on one device so that the query and key encoders
    cannot exploit batch statistics shared across a whole batch (He et al. 2020, Sec. 3.3 "Shuffling
    BN"); the authors use lightly's ``SplitBatchNorm`` with ``num_splits=8`` for MoCo. Running
    statistics are kept per split and averaged when the module goes to ``eval()``. In eval mode it is
    an ordinary BatchNorm. The batch size must be divisible by ``num_splits`` in training.
    """

    def __init__(self, num_features: int, num_splits: int = 8, **kwargs):
        super().__init__(num_features, **kwargs)
        self.num_splits = check_int(num_splits, "num_splits", low=1)
        self.register_buffer("running_mean", torch.zeros(num_features * num_splits))
        self.register_buffer("running_var", torch.ones(num_features * num_splits))

    def train(self, mode: bool = True):
        if self.training and not mode:  # collapse the per-split statistics into one set, replicated
            s, c = self.num_splits, self.num_features
            self.running_mean.copy_(self.running_mean.view(s, c).mean(0).repeat(s))
            self.running_var.copy_(self.running_var.view(s, c).mean(0).repeat(s))
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.num_splits
        if self.training:
            if n % s:
                raise ValueError(f"SplitBatchNorm2d: batch {n} is not divisible by num_splits={s}")
            momentum = 0.0 if self.momentum is None else self.momentum
            if self.momentum is None:  # cumulative average, used by BatchNorm re-estimation
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked)
            out = F.batch_norm(x.reshape(n // s, c * s, h, w), self.running_mean, self.running_var,
                               self.weight.repeat(s), self.bias.repeat(s), True, momentum, self.eps)
            out = out.reshape(n, c, h, w)
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                out = out.contiguous(memory_format=torch.channels_last)  # keep the fast layout
            return out
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight, self.bias, False,
                            0.0, self.eps)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BatchNorm, identity or 1x1-conv shortcut (He et al. 2016)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), norm_layer(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """ResNet with the CIFAR stem: 3x3 stride-1 ``conv1``, no max-pool, global average pooling.

    Mirrors lightly 1.0.8's ``ResNetGenerator`` followed by ``AdaptiveAvgPool2d(1)`` as used by the
    authors; stages of ``width, 2w, 4w, 8w`` channels with strides 1, 2, 2, 2, so the feature has
    ``8 * width`` (512 for ``width=64``) dimensions.
    """

    def __init__(self, num_blocks: Sequence[int] = (2, 2, 2, 2), in_channels: int = 3, width: int = 64,
                 norm_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        check_int(in_channels, "in_channels", low=1)
        check_int(width, "width", low=1)
        norm = norm_layer or nn.BatchNorm2d
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = norm(width)
        stages, planes = [], width
        for i, n in enumerate(num_blocks):
            out = width * 2 ** i
            blocks = []
            for j in range(check_int(n, "num_blocks[i]", low=1)):
                blocks.append(BasicBlock(planes, out, stride=(1 if i == 0 or j > 0 else 2), norm_layer=norm))
                planes = out
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.in_channels = in_channels
        self.feature_dim = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNet expects (B, {self.in_channels}, H, W) images, got {tuple(x.shape)}")
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return out.mean(dim=(2, 3))


def resnet18_cifar(in_channels: int = 3, width: int = 64, norm_layer: Callable[[int], nn.Module] | None = None) -> ResNetCIFAR:
    """ResNet-18 (blocks 2-2-2-2) with the CIFAR stem; 512-d features for ``width=64`` (authors' encoder)."""
    return ResNetCIFAR((2, 2, 2, 2), in_channels=in_channels, width=width, norm_layer=norm_layer)


def build_backbone(name: str, *, in_channels: int = 3, width: int | None = None, split_bn: int = 1) -> nn.Module:
    """``"smallcnn"`` (width default 16) or ``"resnet18"`` (width default 64); ``split_bn > 1`` uses
    :class:`SplitBatchNorm2d` with that many splits (MoCo)."""
    norm = None if split_bn <= 1 else (lambda c: SplitBatchNorm2d(c, split_bn))
    if name == "smallcnn":
        return SmallCNN(in_channels, width=16 if width is None else width, norm_layer=norm)
    if name == "resnet18":
        return resnet18_cifar(in_channels, width=64 if width is None else width, norm_layer=norm)
    raise ValueError(f"unknown backbone {name!r}; choose 'smallcnn' or 'resnet18'")


# ---------------------------------------------------------------------------------------------- heads
def simclr_head(feature_dim: int) -> MLP:
    """SimCLR projection ``D -> D -> ReLU -> D/4``, no BatchNorm (lightly 1.0.8: 512 -> 512 -> 128)."""
    return MLP(feature_dim, feature_dim, max(feature_dim // 4, 1), num_layers=2)


def moco_head(feature_dim: int) -> MLP:
    """MoCo projection ``D -> D -> ReLU -> D/4`` (lightly 1.0.8 MoCo: 512 -> 512 -> 128)."""
    return MLP(feature_dim, feature_dim, max(feature_dim // 4, 1), num_layers=2)


def simsiam_projection_head(feature_dim: int) -> MLP:
    """SimSiam projection ``D -> 4D (BN, ReLU) -> 4D (BN)`` (authors: 512 -> 2048 -> 2048)."""
    return MLP(feature_dim, 4 * feature_dim, 4 * feature_dim, num_layers=2, batch_norm=True, last_batch_norm=True)


def simsiam_prediction_head(feature_dim: int) -> MLP:
    """SimSiam predictor ``4D -> D (BN, ReLU) -> 4D`` (authors: 2048 -> 512 -> 2048)."""
    return MLP(4 * feature_dim, feature_dim, 4 * feature_dim, num_layers=2, batch_norm=True)


def barlow_twins_head(feature_dim: int) -> MLP:
    """Barlow Twins projection ``D -> 4D -> 4D -> 4D``, BatchNorm after all three linear layers
    (authors: lightly's SimSiam with 3 MLP layers, 512 -> 2048 -> 2048 -> 2048)."""
    return MLP(feature_dim, 4 * feature_dim, 4 * feature_dim, num_layers=3, batch_norm=True, last_batch_norm=True)


# -------------------------------------------------------------------------------------------- methods
def _dist():
    from . import distributed
    return distributed


def _fp32(z: torch.Tensor):
    """Context that turns autocast off: losses (similarity logits, cross-correlations) run in float32
    even when the encoder runs under bf16 autocast on CUDA."""
    return torch.autocast(z.device.type, enabled=False)


class Method(nn.Module):
    """Base class: ``forward(x1, x2) -> scalar loss``; ``encoder`` is the evaluated backbone."""

    name = "method"

    def __init__(self, backbone: nn.Module, feature_dim: int | None = None):
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        self.encoder = backbone
        self.feature_dim = _feature_dim(backbone, feature_dim)

    def loss(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The method's loss on two batches of views of the same images (same order)."""
        return self(x1, x2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def on_step_end(self) -> None:
        """Called by the train loop after each optimizer step (MoCo: momentum update)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates (excludes e.g. MoCo's momentum encoder)."""
        return [p for p in self.parameters() if p.requires_grad]

    def _project_views(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_i = g(f(x_i))`` for both views, in float32 (the loss runs in float32 under autocast)."""
        self._check_views(x1, x2)
        return self.projection(self.encoder(x1)).float(), self.projection(self.encoder(x2)).float()

    @staticmethod
    def _check_views(x1: torch.Tensor, x2: torch.Tensor) -> None:
        if x1.shape != x2.shape:
            raise ValueError(f"the two views must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
        if x1.shape[0] < 2:
            raise ValueError(f"a batch needs at least 2 images for a contrastive loss, got {x1.shape[0]}")


class SimCLR(Method):
    """SimCLR (Chen et al. 2020): NT-Xent on projections ``z = g(f(x))`` with temperature 0.5.

    ``loss = nt_xent(z1, z2, T)`` over the 2N views of the (global, under DDP) batch; see
    :func:`cssl.losses.nt_xent`. Authors: lightly ``NTXentLoss()`` (T = 0.5), SGD lr 0.06.
    Under ``torch.distributed`` the projections of all ranks are gathered with gradients
    (:func:`cssl.distributed.gather_with_grad`) so every view sees all 2N - 2 negatives.
    """

    name = "simclr"

    def __init__(self, backbone: nn.Module, feature_dim: int | None = None, *, temperature: float = 0.5):
        super().__init__(backbone, feature_dim)
        self.temperature = check_real(temperature, "temperature", low=0, low_open=True)
        self.projection = simclr_head(self.feature_dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        from .losses import nt_xent

        z1, z2 = self._project_views(x1, x2)
        d = _dist()
        with _fp32(z1):
            if d.is_distributed():
                z1, z2 = d.gather_with_grad(z1), d.gather_with_grad(z2)
            return nt_xent(z1, z2, temperature=self.temperature)


class BarlowTwins(Method):
    """Barlow Twins (Zbontar et al. 2021): ``sum_i (1 - C_ii)^2 + lambda sum_{i!=j} C_ij^2``.

    ``C = z1n^T z2n / N`` with each projection standardised per dimension over the batch
    (:func:`cssl.losses.cross_correlation`). The authors use ``lambda = 5e-3`` and lr 0.11; at the
    CPU scale of the ``quick`` profile ``lambda ~ 0.1`` learns where 5e-3 stays near chance
    (``docs/design.md``, section 3). Under ``torch.distributed`` the batch statistics and ``C`` are all-reduced
    (:func:`cssl.distributed.cross_correlation_loss`), so the loss equals the single-process one.
    """

    name = "barlow_twins"

    def __init__(self, backbone: nn.Module, feature_dim: int | None = None, *, lam: float = 5e-3):
        super().__init__(backbone, feature_dim)
        self.lam = check_real(lam, "lam", low=0)
        self.projection = barlow_twins_head(self.feature_dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        from .losses import cross_correlation

        z1, z2 = self._project_views(x1, x2)
        d = _dist()
        with _fp32(z1):
            if d.is_distributed():
                return d.cross_correlation_loss(z1, z2, lam=self.lam)
            return cross_correlation(z1, z2, lam=self.lam)


class MoCo(Method):
    """MoCo v2 as in the authors' code (lightly 1.0.8 ``MoCo`` + ``NTXentLoss(memory_bank_size=4096)``).

    Query ``q = normalize(g(f(x)))`` from the online network, key ``k`` from a momentum copy updated
    after every step as ``theta_k <- m theta_k + (1 - m) theta_q`` with ``m = 0.99``. The loss of a pair
    is ``-log( exp(q.k/T) / (exp(q.k/T) + sum_{n in queue} exp(q.n/T)) )`` with ``T = 0.1``; the queue
    holds the last ``queue_size`` keys (initialised with random unit vectors, as lightly's memory bank).
    Symmetric: ``(l(q1, k2) + l(q2, k1)) / 2``, both key batches are then enqueued. Keys are computed
    on a shuffled batch (batch shuffle, which matters with :class:`SplitBatchNorm2d`, ``split_bn=8`` in
    the authors' runs; build the backbone with ``build_backbone(..., split_bn=8)``). Under
    ``torch.distributed`` the queue is filled with the keys of all ranks. Authors: SGD lr 0.08.
    """

    name = "moco"

    def __init__(self, backbone: nn.Module, feature_dim: int | None = None, *, momentum: float = 0.99,
                 queue_size: int = 4096, temperature: float = 0.1):
        super().__init__(backbone, feature_dim)
        self.momentum = check_real(momentum, "momentum", low=0, high=1)
        self.temperature = check_real(temperature, "temperature", low=0, low_open=True)
        check_int(queue_size, "queue_size", low=1)
        self.projection = moco_head(self.feature_dim)
        self.momentum_encoder = copy.deepcopy(self.encoder)
        self.momentum_projection = copy.deepcopy(self.projection)
        for p in list(self.momentum_encoder.parameters()) + list(self.momentum_projection.parameters()):
            p.requires_grad_(False)
        out = self.projection.feature_dim
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, out), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        perm = torch.randperm(x.shape[0], device=x.device)  # batch shuffle (see class docstring)
        with torch.no_grad():
            k = self.momentum_projection(self.momentum_encoder(x[perm])).float()
        out = torch.empty_like(k)
        out[perm] = k
        return F.normalize(out, dim=1)

    def _contrast(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        pos = (q * k).sum(1, keepdim=True)
        neg = q @ self.queue.clone().T
        logits = torch.cat([pos, neg], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        d = _dist()
        if d.is_distributed():
            keys = d.all_gather_nograd(keys)
        n, size = keys.shape[0], self.queue.shape[0]
        keys = keys[-size:]
        n = keys.shape[0]
        idx = (int(self.queue_ptr) + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_((int(self.queue_ptr) + n) % size)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        self._check_views(x1, x2)
        q1 = F.normalize(self.projection(self.encoder(x1)).float(), dim=1)
        q2 = F.normalize(self.projection(self.encoder(x2)).float(), dim=1)
        k1, k2 = self._keys(x1), self._keys(x2)
        with _fp32(q1):
            loss = 0.5 * (self._contrast(q1, k2) + self._contrast(q2, k1))
        if self.training:
            self._enqueue(torch.cat([k2, k1]))
        return loss

    @torch.no_grad()
    def on_step_end(self) -> None:
        m = self.momentum
        for online, target in ((self.encoder, self.momentum_encoder), (self.projection, self.momentum_projection)):
            for p, pk in zip(online.parameters(), target.parameters()):
                pk.mul_(m).add_(p.detach(), alpha=1 - m)


class SimSiam(Method):
    """SimSiam (Chen & He 2021): ``-(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2``.

    ``z = h(f(x))`` with the projection ``D -> 4D -> 4D`` (BN), ``p = q(z)`` with the predictor
    ``4D -> D -> 4D``; ``sg`` is stop-gradient (lightly ``SymNegCosineSimilarityLoss``). Authors: SGD
    lr 0.05.
    """

    name = "simsiam"

    def __init__(self, backbone: nn.Module, feature_dim: int | None = None):
        super().__init__(backbone, feature_dim)
        self.projection = simsiam_projection_head(self.feature_dim)
        self.predictor = simsiam_prediction_head(self.feature_dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        self._check_views(x1, x2)
        z1 = self.projection(self.encoder(x1))
        z2 = self.projection(self.encoder(x2))
        p1, p2 = self.predictor(z1).float(), self.predictor(z2).float()
        z1, z2 = z1.detach().float(), z2.detach().float()
        with _fp32(p1):
            return -0.5 * (F.cosine_similarity(p1, z2, dim=1).mean() + F.cosine_similarity(p2, z1, dim=1).mean())


METHODS: dict[str, type[Method]] = {"simclr": SimCLR, "barlow_twins": BarlowTwins, "moco": MoCo, "simsiam": SimSiam}


def build_method(name: str, backbone: nn.Module, *, feature_dim: int | None = None, **kwargs) -> Method:
    """Instantiate a method by name (``simclr``, ``barlow_twins``, ``moco``, ``simsiam``).

    ``kwargs`` go to the class: ``temperature`` (SimCLR, MoCo), ``lam`` (Barlow Twins), ``momentum``
    and ``queue_size`` (MoCo).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name](backbone, feature_dim, **kwargs)
