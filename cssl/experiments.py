"""The paper's experiments (Sec. 5) as data: profiles, experiment grids, and :func:`reproduce`.

Profiles (``docs/design.md``, section 3 "Profiles and devices")

* ``quick``: CPU scale. SmallCNN (width 16) on 16x16 procedural colour textures (or the 8x8 digits),
  batch 256, Adam 2e-3, 200 steps, kNN evaluated every 50 steps; BatchNorm statistics re-estimated on
  clean images before evaluation; Barlow Twins with ``lambda = 0.1`` (5e-3 stays near chance at this
  scale, ``docs/design.md`` section 3). About ten seconds a run on two CPU cores.
* ``book``: the runs the experiment chapters analyse, trained once and committed
  (:mod:`cssl.runcache`): the quick profile's model on :func:`cssl.data.nuisance_textures` (a nuisance
  for every transformation), crops keeping at least a quarter of the area (``crop_min_scale = 0.25``:
  a crop of 8 % of a 16x16 image is 4x4 pixels, less than one period), 800 steps at a **constant** learning
  rate (so the run's evaluation at step ``s`` is exactly the final evaluation of a run of length ``s``,
  and one run gives the accuracy at every training length), kNN every 100 steps, the blur's sigma
  scaled with the image (``image_size / 32``, the authors' one pixel in 32), five seeds, SimCLR and
  Barlow Twins. About 45 s a run on one CPU thread.
* ``paper``: the authors' recipe (``docs/design.md``, section 4): ResNet-18 with the CIFAR stem on
  CIFAR-10/100, batch 512, SGD momentum 0.9, weight decay 5e-4, cosine schedule; lr SimCLR 0.06,
  MoCo 0.08, SimSiam 0.05, Barlow Twins 0.11 (``lambda = 5e-3``); MoCo with split BatchNorm (8);
  800 epochs for Tables 1-2, 200 for Figure 3; kNN (k = 200, t = 0.1) after every epoch, evaluated
  like the authors' monitor (training-time BatchNorm statistics, ``recalibrate_bn=False``).

Experiments

* ``table1`` (richness, Sec. 5.2): letters ``abcde, abcd, abc, ab, a``.
* ``table2`` (colour strength, Sec. 5.3): letters ``ad``, ``cj_prob = 1``, strength ``1, 1/2, 1/4, 1/8``.
* ``figure3`` (composed pairs, Sec. 5.4): the 10 pairs of letters, SimCLR.

Every run writes ``results.json`` (with provenance) and a checkpoint under
``out/<experiment>/<profile>-<dataset>/<method>/<cell>/seed<k>/``; :func:`reproduce` resumes finished
or interrupted runs and writes ``summary.json`` beside them with mean and population standard
deviation (``ddof = 0``, as the authors' ``np.std``) over seeds of the final and the best-over-epochs
kNN accuracy. The paper reports the best over epochs (test-set model selection, see :mod:`cssl.train`).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import CorruptCheckpoint, atomic_write_json, lock_folder, read_checkpoint, set_aside
from .train import TrainConfig, provenance, resolve_device, train

__all__ = ["Profile", "Cell", "Experiment", "PROFILES", "EXPERIMENTS", "PAPER_RESULTS", "profile_config",
           "experiment_runs", "reproduce", "summarise", "check_resume", "run_in_folder", "estimate_seconds"]

ALL_METHODS = ("simclr", "barlow_twins", "moco", "simsiam")


@dataclass(frozen=True)
class Profile:
    """A scale: base :class:`~cssl.train.TrainConfig` fields, per-method overrides, allowed datasets."""

    name: str
    description: str
    base: dict
    per_method: dict = field(default_factory=dict)
    datasets: tuple = ()
    default_methods: tuple = ("simclr",)
    default_seeds: tuple = (0, 1, 2)


@dataclass(frozen=True)
class Cell:
    """One column/row entry of an experiment: a label and the config fields it sets."""

    label: str
    overrides: dict


@dataclass(frozen=True)
class Experiment:
    """A grid of cells, run for each method and seed; ``paper_epochs`` is the length in the paper."""

    name: str
    description: str
    cells: tuple
    paper_epochs: int
    methods: tuple | None = None  # None: the profile's default methods


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick", "CPU scale: SmallCNN w16, 16x16 colour textures (or digits), batch 256, Adam 2e-3, 200 steps",
        base=dict(dataset="textures", backbone="smallcnn", width=16, steps=200, epochs=None, batch_size=256,
                  optimizer="adam", lr=2e-3, weight_decay=0.0, cosine=True, eval_every=50, knn_k=200, knn_t=0.1,
                  recalibrate_bn=True, image_size=16, blur_sigma=1.0),
        per_method={"barlow_twins": dict(bt_lambda=0.1), "moco": dict(split_bn=8)},
        datasets=("textures", "digits"), default_methods=("simclr",), default_seeds=(0, 1, 2)),
    "book": Profile(
        "book", "CPU, committed to results/book: SmallCNN w16, 16x16 nuisance textures, batch 256, Adam 2e-3 at "
        "a constant rate, 800 steps, crops of at least a quarter of the image, kNN every 100 steps, five seeds",
        base=dict(dataset="nuisance_textures", backbone="smallcnn", width=16, steps=800, epochs=None,
                  batch_size=256, optimizer="adam", lr=2e-3, weight_decay=0.0, cosine=False, eval_every=100,
                  knn_k=200, knn_t=0.1, recalibrate_bn=True, image_size=16, blur_sigma=None, crop_min_scale=0.25),
        per_method={"barlow_twins": dict(bt_lambda=0.1), "moco": dict(split_bn=8)},
        datasets=("nuisance_textures",), default_methods=("simclr", "barlow_twins"), default_seeds=(0, 1, 2, 3, 4)),
    "paper": Profile(
        "paper", "authors' recipe: ResNet-18 (CIFAR stem), CIFAR-10/100, batch 512, SGD + cosine, 800/200 epochs",
        base=dict(dataset="cifar10", backbone="resnet18", width=64, steps=None, epochs=800, batch_size=512,
                  optimizer="sgd", momentum=0.9, weight_decay=5e-4, cosine=True, eval_every=None, knn_k=200,
                  knn_t=0.1, recalibrate_bn=False, eval_batch_size=1024),
        per_method={"simclr": dict(lr=0.06, temperature=0.5), "moco": dict(lr=0.08, split_bn=8, temperature=0.1),
                    "simsiam": dict(lr=0.05), "barlow_twins": dict(lr=0.11, bt_lambda=5e-3)},
        datasets=("cifar10", "cifar100"), default_methods=ALL_METHODS, default_seeds=(0, 1, 2)),
}

_PAIRS = tuple("".join(p) for p in itertools.combinations("abcde", 2))
_STRENGTHS = ((1.0, "1"), (0.5, "1/2"), (0.25, "1/4"), (0.125, "1/8"))

EXPERIMENTS: dict[str, Experiment] = {
    "table1": Experiment("table1", "richness of augmentation (paper Table 1)",
                         tuple(Cell(L, {"letters": L}) for L in ("abcde", "abcd", "abc", "ab", "a")), 800),
    "table2": Experiment("table2", "strength of colour distortion, crop + colour only (paper Table 2)",
                         tuple(Cell(f"s={lab}", {"letters": "ad", "cj_prob": 1.0, "strength": s})
                               for s, lab in _STRENGTHS), 800),
    "figure3": Experiment("figure3", "composed pairs of transformations, SimCLR (paper Figure 3)",
                          tuple(Cell(p, {"letters": p}) for p in _PAIRS), 200, methods=("simclr",)),
}

#: The paper's kNN top-1 accuracies (%, mean ± std over 3 runs, max over epochs), from its Tables 1 and 2:
#: ``PAPER_RESULTS[experiment][dataset][method][cell label] = (mean, std)``.
PAPER_RESULTS: dict = {
    "table1": {
        "cifar10": {
            "simclr": {"abcde": (89.76, .12), "abcd": (88.48, .22), "abc": (83.50, .14), "ab": (63.23, .05), "a": (62.74, .18)},
            "barlow_twins": {"abcde": (86.91, .09), "abcd": (85.38, .37), "abc": (82.00, .59), "ab": (67.83, .94), "a": (67.77, .69)},
            "moco": {"abcde": (90.12, .12), "abcd": (89.69, .11), "abc": (86.78, .07), "ab": (75.12, .28), "a": (74.94, .22)},
            "simsiam": {"abcde": (90.59, .11), "abcd": (89.34, .09), "abc": (85.38, .09), "ab": (63.27, .30), "a": (61.47, .74)},
        },
        "cifar100": {
            "simclr": {"abcde": (57.74, .12), "abcd": (55.43, .10), "abc": (45.10, .25), "ab": (28.01, .18), "a": (27.95, .09)},
            "barlow_twins": {"abcde": (57.99, .29), "abcd": (55.22, .25), "abc": (50.40, .64), "ab": (34.11, .59), "a": (34.05, 1.13)},
            "moco": {"abcde": (64.19, .14), "abcd": (62.50, .28), "abc": (57.04, .21), "ab": (40.18, .04), "a": (39.63, .31)},
            "simsiam": {"abcde": (63.48, .16), "abcd": (60.31, .41), "abc": (51.42, .14), "ab": (26.26, .30), "a": (25.90, .83)},
        },
    },
    "table2": {
        "cifar10": {
            "simclr": {"s=1": (82.75, .24), "s=1/2": (78.76, .18), "s=1/4": (76.37, .11), "s=1/8": (74.23, .16)},
            "barlow_twins": {"s=1": (82.58, .25), "s=1/2": (81.88, .25), "s=1/4": (79.64, .34), "s=1/8": (77.96, .16)},
            "moco": {"s=1": (86.68, .05), "s=1/2": (84.30, .14), "s=1/4": (82.76, .09), "s=1/8": (81.20, .12)},
            "simsiam": {"s=1": (82.50, 1.05), "s=1/2": (81.80, .15), "s=1/4": (78.80, .17), "s=1/8": (76.09, .50)},
        },
        "cifar100": {
            "simclr": {"s=1": (46.67, .42), "s=1/2": (40.21, .05), "s=1/4": (36.67, .08), "s=1/8": (34.75, .20)},
            "barlow_twins": {"s=1": (50.39, 1.09), "s=1/2": (48.76, .25), "s=1/4": (46.22, .71), "s=1/8": (44.72, .26)},
            "moco": {"s=1": (58.50, .51), "s=1/2": (55.08, .09), "s=1/4": (52.09, .18), "s=1/8": (49.43, .16)},
            "simsiam": {"s=1": (49.94, 2.01), "s=1/2": (46.27, .46), "s=1/4": (42.02, .34), "s=1/8": (36.26, .34)},
        },
    },
}


def _get(mapping: dict, key: str, what: str):
    if key not in mapping:
        raise ValueError(f"unknown {what} {key!r}; choose one of {sorted(mapping)}")
    return mapping[key]


def profile_config(profile: str, method: str, *, dataset: str | None = None, **overrides) -> TrainConfig:
    """The :class:`~cssl.train.TrainConfig` of ``method`` under ``profile``, with ``overrides`` applied last.

    Overrides that are ``None`` are ignored; giving ``steps`` clears the profile's ``epochs`` and vice versa.
    """
    prof = _get(PROFILES, profile, "profile")
    if method not in ALL_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(ALL_METHODS)}")
    fields = {**prof.base, **prof.per_method.get(method, {}), "method": method, "profile": profile}
    if dataset is not None:
        if dataset not in prof.datasets:
            raise ValueError(f"profile {profile!r} runs on {list(prof.datasets)}, not {dataset!r}")
        fields["dataset"] = dataset
    given = {k: v for k, v in overrides.items() if v is not None}
    if "steps" in given:
        fields["epochs"] = None
    if "epochs" in given:
        fields["steps"] = None
    fields.update(given)
    return TrainConfig(**fields)


def experiment_runs(experiment: str, *, profile: str = "quick", methods=None, seeds=None, dataset: str | None = None,
                    out: str | Path = "results", **overrides) -> list[tuple[str, str, int, TrainConfig]]:
    """All runs of ``experiment`` as ``(method, cell label, seed, config)`` with their ``out_dir`` set.

    Under the ``paper`` profile the run length is the paper's (800 epochs; 200 for Figure 3) unless
    ``steps``/``epochs`` are overridden.
    """
    exp = _get(EXPERIMENTS, experiment, "experiment")
    prof = _get(PROFILES, profile, "profile")
    methods = tuple(methods) if methods else (exp.methods or prof.default_methods)
    seeds = tuple(seeds) if seeds is not None and len(seeds) else prof.default_seeds
    for m in methods:
        if m not in ALL_METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {list(ALL_METHODS)}")
    ds = dataset or prof.base["dataset"]
    if profile == "paper" and overrides.get("steps") is None and overrides.get("epochs") is None:
        overrides = {**overrides, "epochs": exp.paper_epochs}
    root = Path(out) / experiment / f"{profile}-{ds}"
    runs = []
    for m in methods:
        for cell in exp.cells:
            for s in seeds:
                safe = cell.label.replace("/", "_").replace("=", "")
                cfg = profile_config(profile, m, dataset=dataset, **{**overrides, **cell.overrides}, seed=s,
                                     out_dir=str(root / m / safe / f"seed{s}"))
                runs.append((m, cell.label, s, cfg))
    return runs


def summarise(values: list[float]) -> dict:
    """Mean and population standard deviation (``ddof = 0``, the authors' ``np.std``) of a list."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)} if a.size else \
        {"mean": None, "std": None, "n": 0}


#: Config fields a run may change on resume (as :func:`cssl.train.train` ignores them).
_RESUME_IGNORED = ("out_dir", "device", "profile")


def check_resume(config: TrainConfig, *, resume: bool = True, set_aside_corrupt: bool = True) -> str | None:
    """Check ``config.out_dir/checkpoint.pt`` before :func:`cssl.train.train` resumes from it.

    * No checkpoint, ``resume=False`` or ``out_dir=None``: nothing to do, returns ``None``.
    * A checkpoint that cannot be read safely (truncated, empty, random bytes, not a cssl checkpoint;
      read only with ``weights_only=True``, see :func:`cssl._io.read_checkpoint`) is renamed to
      ``checkpoint.corrupt-<time>.pt`` beside it, so the run starts afresh; returns the message saying
      so. With ``set_aside_corrupt=False`` (ranks of a multi-process run, which must not race to move
      it) it raises ``ValueError`` instead.
    * A checkpoint written by a different config (fields other than ``out_dir``, ``device``,
      ``profile``) raises ``ValueError`` naming the fields and both ways out.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not resume or config.out_dir is None:
        return None
    path = Path(config.out_dir) / "checkpoint.pt"
    if not path.is_file():
        return None
    try:
        ckpt = read_checkpoint(path)
    except CorruptCheckpoint as err:
        if not set_aside_corrupt:
            raise ValueError(f"{err}; delete it or start over with resume=False (command line: --no-resume)") \
                from None
        moved = set_aside(path)
        return f"{err}; moved it to {moved} and starting afresh (delete that file if you do not need it)"
    old = {k: v for k, v in ckpt["config"].items() if k not in _RESUME_IGNORED}
    new = {k: v for k, v in config.to_dict().items() if k not in _RESUME_IGNORED}
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:4]) + (" ..." if len(diff) > 4 else "")
        raise ValueError(f"{path} was written by a different configuration ({shown}); start over there with "
                         "resume=False (command line: --no-resume) or use another out_dir (command line: --out-dir)")
    return None


def run_in_folder(config: TrainConfig, *, resume: bool = True, progress: bool = True,
                  log=None, **train_kwargs) -> dict:
    """:func:`cssl.train.train` with ``out_dir`` locked and its checkpoint checked first.

    The output folder is locked for the whole run (:func:`cssl._io.lock_folder`): a second run on
    it fails at once with :class:`cssl._io.FolderLocked`. :func:`check_resume` runs first; its message
    (a corrupt checkpoint set aside) goes to ``log`` (default: ``print`` to stderr). Under
    ``torchrun`` only rank 0 locks, and a corrupt checkpoint is an error on every rank.
    """
    import os
    import sys

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    log = log if log is not None else (lambda msg: print(f"cssl: {msg}", file=sys.stderr, flush=True))
    if config.out_dir is None:
        return train(config, resume=resume, progress=progress, **train_kwargs)
    multi = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    main_rank = os.environ.get("RANK", "0") in ("", "0")
    if multi and not main_rank:
        check_resume(config, resume=resume, set_aside_corrupt=False)
        return train(config, resume=resume, progress=progress, **train_kwargs)
    with lock_folder(config.out_dir, hint="wait for that run to finish, or use another "
                     "out_dir (command line: --out-dir)"):
        message = check_resume(config, resume=resume, set_aside_corrupt=not multi)
        if message:
            log(message)
        return train(config, resume=resume, progress=progress, **train_kwargs)


def estimate_seconds(config: TrainConfig, *, device=None, probe_batch: int = 8) -> dict:
    """Expected training time of ``config`` on ``device``, from a measured forward and backward pass.

    Times one optimizer-free step of the method on ``probe_batch`` random images (after one warm-up
    step) and scales it linearly to the run: ``seconds = t_probe / probe_batch x batch_size x steps``,
    where ``steps`` is ``config.steps`` or ``epochs x (n_train // batch_size)`` (CIFAR: 50,000
    training images unless ``n_train`` is set). Evaluation is not counted, so this is a lower bound.
    Returns ``{"steps", "images_per_s", "seconds"}``. Takes a second or two for ResNet-18 on a CPU.
    """
    import time as _time

    import torch

    from .models import build_backbone, build_method

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    dev = resolve_device(config.device) if device is None else torch.device(device)
    side = 32 if config.dataset.startswith("cifar") else (8 if config.dataset == "digits" else config.image_size)
    channels = 1 if config.dataset == "digits" else 3
    n_train = config.n_train or {"cifar10": 50_000, "cifar100": 50_000, "digits": 1_198}.get(config.dataset, 10_000)
    steps = config.steps if config.steps is not None else config.epochs * max(1, n_train // config.batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = build_backbone(config.backbone, in_channels=channels, width=config.width,
                                  split_bn=1)
        method = build_method(config.method, backbone, **config.method_kwargs()).to(dev)
        x = torch.rand(probe_batch, channels, side, side, device=dev)
        times = []
        for _ in range(2):
            t0 = _time.perf_counter()
            method(x, x.flip(-1)).backward()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(_time.perf_counter() - t0)
    per_image = times[-1] / probe_batch
    return {"steps": int(steps), "images_per_s": 1.0 / per_image,
            "seconds": per_image * config.batch_size * steps}


def reproduce(experiment: str, *, profile: str = "quick", methods=None, seeds=None, dataset: str | None = None,
              out: str | Path = "results", device: str = "auto", progress: bool = True, log=None,
              **overrides) -> dict:
    """Run (or resume) every run of ``experiment`` and write ``summary.json``; return the summary.

    The summary's ``rows[method][cell]`` holds per-seed and aggregated ``final_knn``, ``best_knn``
    (the paper's max over epochs), ``final_nearest_centre`` and ``final_linear_probe``, in [0, 1];
    ``paper`` holds the paper's numbers (in %) when the dataset is CIFAR-10/100; ``provenance`` and
    ``wall_time_s`` say where and how long.

    Each run goes through :func:`run_in_folder` (its folder locked while it trains, a corrupt
    checkpoint set aside). ``log(line)``, when given, receives one line per finished run (the command
    line prints them even with ``--no-progress``).
    """
    t0 = time.perf_counter()
    runs = experiment_runs(experiment, profile=profile, methods=methods, seeds=seeds, dataset=dataset, out=out,
                           device=device, **overrides)
    dev = resolve_device(device)
    ds = runs[0][3].dataset if runs else dataset
    root = Path(out) / experiment / f"{profile}-{ds}"
    if not runs:
        return _summary(experiment, profile, ds, {}, runs, dev, t0)
    with lock_folder(root, hint="wait for that reproduce to finish, or use another out (command line: --out)"):
        rows: dict = {}
        for i, (m, label, s, cfg) in enumerate(runs):
            if progress:
                print(f"[{i + 1}/{len(runs)}] {experiment} {profile} {cfg.dataset} {m} {label} seed {s}", flush=True)
            res = run_in_folder(cfg, resume=True, progress=progress)
            if log is not None:
                log(f"[{i + 1}/{len(runs)}] {experiment} {m} {label} seed {s}: final kNN "
                    f"{res['final']['knn_top1']:.4f}, best {res['best']['knn_top1']:.4f} "
                    f"({res['wall_time_s']:.0f} s)")
            cell = rows.setdefault(m, {}).setdefault(label, {"seeds": [], "final_knn": [], "best_knn": [],
                                                             "final_nearest_centre": [], "final_linear_probe": [],
                                                             "out_dirs": []})
            cell["seeds"].append(s)
            cell["final_knn"].append(res["final"]["knn_top1"])
            cell["best_knn"].append(res["best"]["knn_top1"])
            cell["final_nearest_centre"].append(res["final"]["nearest_centre_acc"])
            cell["final_linear_probe"].append(res["final"].get("linear_probe_acc"))  # None: run of older code
            cell["out_dirs"].append(cfg.out_dir)
        summary = _summary(experiment, profile, ds, rows, runs, dev, t0)
        atomic_write_json(root / "summary.json", summary)
    return summary


def _summary(experiment, profile, ds, rows, runs, dev, t0) -> dict:
    for m in rows:
        for cell in rows[m].values():
            for key in ("final_knn", "best_knn", "final_nearest_centre", "final_linear_probe"):
                cell[key + "_summary"] = summarise([v for v in cell[key] if v is not None])
    return {"experiment": experiment, "description": EXPERIMENTS[experiment].description, "profile": profile,
            "dataset": ds, "methods": sorted(rows), "seeds": sorted({s for _, _, s, _ in runs}),
            "cells": [c.label for c in EXPERIMENTS[experiment].cells], "rows": rows,
            "paper": PAPER_RESULTS.get(experiment, {}).get(ds), "wall_time_s": time.perf_counter() - t0,
            "provenance": provenance(dev, profile=profile), "note": "best_knn is the max over evaluations "
            "(the authors' reported number, model selection on the test set); final_knn is the last one"}
