"""Concentration studies (paper Sec. 5): train over an augmentation grid, then measure Theorem 1's factors.

Theorem 1 bounds the nearest-centre error by three factors: **alignment** (``R_eps``, driven by the
alignment loss, Theorem 2), **divergence** of the class centres (condition (2), ``max mu_k^T mu_l``)
and **concentration** of the augmented data (``sigma(delta)``, Definition 1, fixed by the data and the
augmentation before any training). The experiment chapters put the three side by side for each
augmentation set of Tables 1-2 and Figure 3:

* :func:`cell_augmentation` -- the :class:`~cssl.augment.Augmentation` a grid cell trains with;
* :func:`run_grid` -- train every (method, cell, seed) in memory and return one flat record per run with
  kNN / nearest-centre accuracy and the encoder's factors (:func:`encoder_factors`);
* :func:`encoder_world` -- a trained encoder's unit-norm features of sampled views as a
  :class:`~cssl.worlds.World`, so every exact metric of :mod:`cssl.metrics` applies to it;
* :func:`grid_concentration` -- ``hat sigma(delta)`` of each cell's augmentation at several ``delta``
  (:func:`cssl.concentration.estimate_sigma`), before any training;
* :func:`aggregate` and :func:`rank_correlation` -- mean and spread over seeds; Spearman's rho.

Runs here write no files (``out_dir=None``): they are the book's seconds-long CPU runs. Long runs
go through :func:`cssl.experiments.reproduce`, which checkpoints and resumes.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._validate import as_tensor, check_int, check_real
from .augment import Augmentation
from .concentration import SigmaEstimate, estimate_sigma, standardize_views
from .experiments import EXPERIMENTS, Cell, profile_config, summarise
from .metrics import alignment, delta_mu, max_centre_inner_product, nearest_centre_error, r_eps
from .train import (Dataset, TrainConfig, _build, _to_float, evaluate, extract_features, input_normaliser,
                    load_dataset, train, training_augmentation)
from .worlds import World

__all__ = ["cell_augmentation", "grid_cells", "eval_subset", "EVAL_SEED", "encoder_world", "encoder_factors",
           "run_grid", "grid_concentration", "aggregate", "rank_correlation", "untrained_accuracy",
           "raw_pixel_accuracy", "seed_matrix", "input_map", "untrained_encoder"]

_AUG_FIELDS = ("letters", "strength", "cj_prob")


def grid_cells(experiment_or_cells) -> tuple[Cell, ...]:
    """The cells of an experiment name (``"table1"``, ``"table2"``, ``"figure3"``) or a list of cells.

    A cell may be given as a :class:`~cssl.experiments.Cell` or as a ``(label, overrides)`` pair.
    """
    if isinstance(experiment_or_cells, str):
        if experiment_or_cells not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {experiment_or_cells!r}; choose one of {sorted(EXPERIMENTS)}")
        return EXPERIMENTS[experiment_or_cells].cells
    cells = []
    for c in experiment_or_cells:
        if isinstance(c, Cell):
            cells.append(c)
        elif isinstance(c, Sequence) and len(c) == 2 and isinstance(c[0], str) and isinstance(c[1], Mapping):
            cells.append(Cell(c[0], dict(c[1])))
        else:
            raise TypeError(f"a cell must be a Cell or a (label, overrides dict) pair, got {c!r}")
    labels = [c.label for c in cells]
    if not cells or len(set(labels)) != len(labels):
        raise ValueError(f"cells must be non-empty with distinct labels, got {labels}")
    return tuple(cells)


def cell_augmentation(cell: Cell | Mapping, profile: str = "quick") -> Augmentation:
    """The augmentation ``A`` a cell trains with under ``profile``: :class:`~cssl.augment.Augmentation`
    built from the cell's ``letters``, ``strength`` and ``cj_prob`` overrides (the paper's defaults
    otherwise: strength 0.5, ``cj_prob`` 0.8) and the profile's blur, exactly as :func:`cssl.train.train`
    builds it (:func:`cssl.train.training_augmentation`)."""
    overrides = cell.overrides if isinstance(cell, Cell) else dict(cell)
    cfg = profile_config(profile, "simclr", **{f: overrides[f] for f in _AUG_FIELDS if f in overrides})
    return training_augmentation(cfg, cfg.image_size)


@torch.no_grad()
def encoder_world(encoder: torch.nn.Module, images, labels, augment: Callable, n_views: int, *,
                  input_transform: Callable | None = None, generator: torch.Generator | None = None,
                  num_classes: int | None = None, batch_size: int = 1024) -> World:
    """Unit-norm features ``f(x') / ||f(x')||`` of the clean image and ``T = n_views`` sampled views.

    Returns the world ``(N, T + 1, d)`` (view 0 the clean image, the paper's ``x in A(x)``) with the
    images' labels and uniform masses: the finite-sample stand-in for ``f(A(x))`` on which
    :func:`encoder_factors` computes ``R_eps``, the centres ``mu_k`` and ``Err(G_f)`` exactly.
    ``input_transform`` maps float images in [0, 1] to the encoder's input (``train()``'s
    ``result["input_transform"]``). Features are normalised because the paper's encoders have
    ``||f|| = r``; here ``r = 1``.
    """
    x = as_tensor(images, "images", dtype=None, ndim=4)
    x = _to_float(x)
    y = as_tensor(labels, "labels", dtype=None, ndim=1).to(torch.int64)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} entries but there are {x.shape[0]} images")
    t = check_int(n_views, "n_views", low=0)
    if not callable(augment):
        raise TypeError("augment must be a callable (batch, generator) -> batch")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    batches = [x] + [augment(x, generator) for _ in range(t)]
    feats = [F.normalize(extract_features(encoder, b, batch_size=batch_size, transform=input_transform), dim=1)
             for b in batches]
    views = torch.stack(feats, dim=1).to(torch.float64)
    return World(views, y, num_classes=num_classes)


def encoder_factors(world: World, eps: float) -> dict:
    """Theorem 1's factors measured on a feature world of unit-norm features (``r = 1``).

    Returns ``alignment`` (eq. (4), exact on the sampled views), ``r_eps`` (``R_eps``, the mass of points
    whose sampled views spread more than ``eps``), ``max_centre_ip`` (``max_{k != l} mu_k^T mu_l``, left
    side of condition (2)), ``delta_mu`` (``1 - min_k ||mu_k||^2``) and ``nc_error`` (``Err(G_f)`` of the
    nearest-centre classifier with centres over all views, Sec. 2). ``eps >= 0``.
    """
    eps = check_real(eps, "eps", low=0)
    return {"alignment": alignment(world), "r_eps": r_eps(world, eps),
            "max_centre_ip": max_centre_inner_product(world), "delta_mu": delta_mu(world, 1.0),
            "nc_error": nearest_centre_error(world)}


EVAL_SEED = 1234  # the fixed test subset on which run_grid measures every encoder


def eval_subset(data: Dataset, n: int, seed: int = EVAL_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images and labels (a seeded random subset, in index order) of ``data``.

    With the default seed it is the subset on which :func:`run_grid` measures every encoder's factors,
    so a chapter can measure other quantities on exactly those images.
    """
    n = min(check_int(n, "n", low=1), data.x_test.shape[0])
    idx = torch.randperm(data.x_test.shape[0], generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return data.x_test[idx], data.y_test[idx]


def run_grid(experiment_or_cells, *, methods: Sequence[str] = ("simclr",), seeds: Sequence[int] = (0, 1, 2),
             profile: str = "quick", data: Dataset | None = None, eval_images: int = 600, n_views: int = 8,
             eps: float = 0.5, progress: bool = False, keep_worlds: bool = False, **overrides) -> list[dict]:
    """Train every (method, cell, seed) of a grid in memory and measure each encoder.

    Each run is :func:`cssl.train.train` with ``profile_config(profile, method, **overrides, **cell,
    seed=seed)`` and no files. After training, ``eval_images`` test images (a fixed subset) with
    ``n_views`` views drawn from **the cell's own augmentation** form the feature world of
    :func:`encoder_world`, on which :func:`encoder_factors` is computed at ``eps``.

    Under the ``book`` profile the runs come from the committed cache (:func:`cssl.runcache.obtain`:
    a current cached run is loaded, a missing or stale one is trained now, on the CPU with one thread,
    exactly as the cache would hold it); its runs are fixed, so ``overrides`` must be empty.

    Returns one dict per run: ``method``, ``cell``, ``seed``, ``knn`` (kNN top-1, k = 200, t = 0.1, the
    paper's protocol), ``nearest_centre`` (accuracy of ``G_f``), the factors, ``train_s`` (wall seconds
    to train or load), ``cached`` (read from the cache), ``history`` (``step``, ``loss``, ``knn_top1``,
    ``nearest_centre_acc`` at every evaluation), and with ``keep_worlds`` also ``world``: the
    :class:`cssl.worlds.World` the factors were computed on
    (for further measures on the very same features, e.g. :mod:`cssl.peers`).
    ``data`` is loaded once from the first config when not given; all runs share it.
    """
    from . import runcache

    cells = grid_cells(experiment_or_cells)
    check_int(eval_images, "eval_images", low=2)
    eps = check_real(eps, "eps", low=0)
    if not methods or not seeds:
        raise ValueError("methods and seeds must be non-empty")
    cached = profile == "book"
    if cached and overrides:
        raise ValueError(f"the book profile's runs are fixed (they are the committed cache); drop {sorted(overrides)}")
    experiment = experiment_or_cells if isinstance(experiment_or_cells, str) else "custom"
    records, transform = [], None
    for method in methods:
        for cell in cells:
            for seed in seeds:
                device = {"device": "cpu"} if cached else {}
                cfg = profile_config(profile, method, **{**overrides, **cell.overrides}, seed=int(seed), out_dir=None,
                                     **device)
                if data is None:
                    data = load_dataset(cfg)
                t0 = time.perf_counter()
                if cached:
                    run = runcache.obtain(experiment, cell.label, cfg, data=data)
                    encoder, history, final, from_cache = run.encoder, run.history, run.final, run.cached
                else:
                    res = train(cfg, progress=progress, data=data)
                    encoder, history, final, from_cache = res["method"].encoder, res["history"], res["final"], False
                train_s = time.perf_counter() - t0
                xe, ye = eval_subset(data, eval_images)
                transform = transform or input_map(data)
                world = encoder_world(encoder, xe, ye, cell_augmentation(cell, profile), n_views,
                                      input_transform=transform, num_classes=data.num_classes,
                                      generator=torch.Generator().manual_seed(10_000 + int(seed)))
                records.append({"method": method, "cell": cell.label, "seed": int(seed),
                                "knn": final["knn_top1"], "nearest_centre": final["nearest_centre_acc"],
                                **encoder_factors(world, eps), "train_s": train_s, "cached": from_cache,
                                "history": [{k: h[k] for k in ("step", "loss", "knn_top1", "nearest_centre_acc")}
                                            for h in history],
                                **({"world": world} if keep_worlds else {})})
    return records


def input_map(data: Dataset) -> Callable[[torch.Tensor], torch.Tensor]:
    """Raw images -> encoder input, as in training (:func:`cssl.train.input_normaliser` of the training set)."""
    normalise = input_normaliser(data.x_train)
    return lambda x: normalise(_to_float(x))


def untrained_encoder(config: TrainConfig, in_channels: int = 3) -> torch.nn.Module:
    """The encoder of ``config`` at its initialisation: built and seeded exactly as :func:`cssl.train.train`
    builds it for ``config.seed`` (the same network for every method), in channels_last like training."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    return _build(config, check_int(in_channels, "in_channels", low=1)).encoder.to(memory_format=torch.channels_last)


def untrained_accuracy(config: TrainConfig, data: Dataset) -> dict:
    """kNN and nearest-centre accuracy of the **untrained** encoder of ``config`` (its seed's initialisation).

    The baseline every trained accuracy is read against: the same architecture, initialised exactly as
    :func:`cssl.train.train` initialises it for ``config.seed``, evaluated by the same protocol
    (:func:`cssl.train.evaluate`: BatchNorm statistics re-estimated on clean training images when the
    config asks for it, kNN with ``k = config.knn_k``, ``t = config.knn_t``). Returns
    ``{"knn_top1", "nearest_centre_acc"}``.
    """
    encoder = untrained_encoder(config, data.x_train.shape[1])
    return evaluate(encoder, data, transform=input_map(data), k=config.knn_k, temperature=config.knn_t,
                    recalibrate_bn=config.recalibrate_bn, batch_size=config.eval_batch_size)


def raw_pixel_accuracy(data: Dataset, *, k: int = 200, temperature: float = 0.1) -> float:
    """kNN accuracy (``k``, ``t`` as the paper's monitor) on **raw pixels**, standardised per coordinate.

    Each image is flattened, each pixel coordinate standardised with the training mean and standard
    deviation (floored at 1e-3), and the cosine kNN of :func:`cssl.metrics.knn_accuracy` applied: the
    accuracy that needs no encoder at all.
    """
    from .metrics import knn_accuracy

    xtr, xte = _to_float(data.x_train).flatten(1), _to_float(data.x_test).flatten(1)
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-3)
    ftr, fte = F.normalize((xtr - mean) / std, dim=1), F.normalize((xte - mean) / std, dim=1)
    return knn_accuracy(ftr, data.y_train, fte, data.y_test, num_classes=data.num_classes,
                        k=min(check_int(k, "k", low=1), xtr.shape[0]), temperature=temperature)


def seed_matrix(records: Sequence[Mapping], key: str, method: str, cells: Sequence[str],
                seeds: Sequence[int], *, step: int | None = None) -> np.ndarray:
    """``records[key]`` as a ``(len(cells), len(seeds))`` array for one method, rows in ``cells`` order.

    With ``step``, the value of ``key`` (e.g. ``"knn_top1"``) in the run's ``history`` entry at that
    training step. The layout :meth:`cssl.claims.Ledger.compare` pairs by seed; a missing run or step is
    an error naming it.
    """
    def value(r):
        if step is None:
            return r[key]
        for h in r["history"]:
            if h["step"] == step:
                return h[key]
        raise KeyError(f"run {r['method']} {r['cell']} seed {r['seed']} has no evaluation at step {step}")

    index = {(r["method"], r["cell"], r["seed"]): value(r) for r in records}
    out = np.empty((len(cells), len(seeds)))
    for i, c in enumerate(cells):
        for j, s in enumerate(seeds):
            if (method, c, s) not in index:
                raise KeyError(f"no run for method {method!r}, cell {c!r}, seed {s} among the records")
            out[i, j] = index[method, c, s]
    return out


def grid_concentration(experiment_or_cells, images, labels, deltas, *, n_views: int = 8, seed: int = 0,
                       standardize: bool = True, method: str = "greedy",
                       profile: str = "quick") -> dict[str, SigmaEstimate]:
    """``hat sigma(delta)`` (Definition 1) of each cell's augmentation on the same images, at every delta.

    For each cell, :func:`cssl.concentration.estimate_sigma` with ``n_views`` views of the cell's
    augmentation under ``profile`` (:func:`cell_augmentation`, same generator seed for every cell),
    within-class augmented
    distances, greedy cliques (``method``) and ``sigma = min_k sigma_k``. With ``standardize`` each view
    is contrast-normalised first (:func:`cssl.concentration.standardize_views`): raw pixel distances make
    brightness/contrast jitter look like concentration of every class toward flat images (Chapter 8).
    Returns ``{cell label: SigmaEstimate}``.
    """
    cells = grid_cells(experiment_or_cells)
    x = _to_float(as_tensor(images, "images", dtype=None, ndim=4))
    out = {}
    for cell in cells:
        out[cell.label] = estimate_sigma(x, cell_augmentation(cell, profile), n_views, deltas, labels=labels,
                                         generator=torch.Generator().manual_seed(seed), method=method,
                                         view_transform=standardize_views if standardize else None)
    return out


def aggregate(records: Sequence[Mapping], keys: Sequence[str], by: Sequence[str] = ("method", "cell")) -> dict:
    """Mean and population std (``ddof = 0``, as the paper) over seeds: ``{(by values): {key: summary}}``.

    The order of groups is the order of first appearance in ``records``.
    """
    groups: dict = {}
    for i, rec in enumerate(records):
        missing = [k for k in (*by, *keys) if k not in rec]
        if missing:
            raise KeyError(f"record {i} has no {missing} (it has {sorted(rec)}); pass keys= and by= that every "
                           "record holds")
        groups.setdefault(tuple(rec[b] for b in by), []).append(rec)
    return {g: {k: summarise([r[k] for r in rs]) for k in keys} for g, rs in groups.items()}


def rank_correlation(x, y) -> float:
    """Spearman's rank correlation ``rho = corr(rank(x), rank(y))`` (average ranks for ties).

    Equals ``1 - 6 sum d_i^2 / (n (n^2 - 1))`` without ties. ``x`` and ``y`` are 1-D of equal length
    ``n >= 3`` and not constant. Used for the paper's Figure 3 claim that error tracks ``1 - sigma``.
    """
    from scipy.stats import rankdata

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size < 3:
        raise ValueError(f"x and y must be 1-D of equal length >= 3, got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("x and y must be finite")
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        raise ValueError("rank correlation is undefined for a constant sequence")
    return float(np.corrcoef(ra, rb)[0, 1])


