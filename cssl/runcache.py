"""The committed run cache: the ``book`` profile's trained encoders, produced once and re-verified.

The experiment chapters analyse encoders that have *learned*: hundreds of optimizer steps per run,
five seeds per cell, too long to train on every build. So each run is trained once, by one command::

    python -m cssl reproduce table1 --profile book            # two single-thread workers

and written under ``results/book/<experiment>/<method>/<cell>/seed<k>/``:

* ``run.json``: the full :class:`~cssl.train.TrainConfig`, the seed, :func:`config_hash` (of the
  config) and :func:`code_hash` (of the training code), the thread count, the metrics history (kNN and
  nearest-centre accuracy and loss at every evaluation), the final metrics, wall time and provenance;
* ``encoder.pt``: the trained encoder's weights (BatchNorm statistics re-estimated on clean images,
  as at the last evaluation), about 100 kB for the book's SmallCNN; its sha256 is in ``run.json``.

A run is **current** when its config hash and code hash equal those of the config asked for and of
the code on disk. :func:`obtain` returns a current run or trains the missing one in memory (a chapter
still executes without the cache, only slower); the test suite retrains a deterministic sample of the
committed runs and asserts that the metrics come back exactly, and asserts that every committed run is
current, so changing training code means regenerating the cache before it lands.

Exactness: every cached run is trained on the CPU with **one** thread (floating-point reductions are
ordered by the thread count), its batches, augmentations and initialisation seeded as in
:func:`cssl.train.train`; :func:`train_run` enforces both.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ._io import atomic_torch_save, atomic_write_json, read_json
from .experiments import EXPERIMENTS, experiment_runs
from .train import TrainConfig, provenance, train

__all__ = ["CODE_MODULES", "CachedRun", "code_hash", "config_hash", "cache_root", "run_dir", "load_run",
           "train_run", "obtain", "grid_configs", "regenerate", "committed_runs", "CACHE_THREADS"]

#: The modules whose source decides what a run computes: data, augmentation, models, losses, the
#: training loop and the kNN monitor. A change to any of them makes every cached run stale.
CODE_MODULES = ("augment", "data", "distributed", "losses", "metrics", "models", "train")
#: Threads of every cached run (and of every re-verification).
CACHE_THREADS = 1
_IGNORED_FIELDS = ("out_dir", "profile")  # where a run is written, and the label of its profile


def code_hash() -> str:
    """sha256 over the sources of :data:`CODE_MODULES` (name and text of each, in that order)."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in CODE_MODULES:
        h.update(name.encode() + b"\0" + (pkg / f"{name}.py").read_bytes() + b"\0")
    return h.hexdigest()


def config_hash(config: TrainConfig) -> str:
    """sha256 of the config as canonical JSON, without ``out_dir`` and ``profile``."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    fields = {k: v for k, v in config.to_dict().items() if k not in _IGNORED_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """The cache folder ``<book>/results/book`` (``root`` overrides the book's folder, e.g. in tests)."""
    from .claims import book_root

    return Path(root) if root is not None else book_root(Path(__file__).resolve().parent.parent) / "results" / "book"


def _safe(label: str) -> str:
    return label.replace("/", "_").replace("=", "")


def run_dir(experiment: str, method: str, cell: str, seed: int, *, root=None) -> Path:
    """``<cache_root>/<experiment>/<method>/<cell>/seed<seed>``."""
    return cache_root(root) / experiment / method / _safe(cell) / f"seed{int(seed)}"


@dataclass
class CachedRun:
    """One run: its record (``run.json``) and, once loaded, its trained encoder in eval mode."""

    record: dict
    encoder: torch.nn.Module
    cached: bool  # True: read from the cache; False: trained now

    @property
    def history(self) -> list[dict]:
        """One entry per evaluation: ``step``, ``loss``, ``knn_top1``, ``nearest_centre_acc``."""
        return self.record["history"]

    @property
    def final(self) -> dict:
        """The last evaluation (as in :attr:`history`) and ``linear_probe_acc``, the linear probe's accuracy."""
        return self.record["final"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build_encoder(config: TrainConfig, in_channels: int = 3) -> torch.nn.Module:
    from .models import build_backbone

    return build_backbone(config.backbone, in_channels=in_channels, width=config.width, split_bn=config.split_bn)


def load_run(experiment: str, cell: str, config: TrainConfig, *, root=None) -> CachedRun | None:
    """The cached run of ``config`` if it is present and current, else ``None``.

    Current: its ``config_hash`` and ``code_hash`` equal :func:`config_hash` of ``config`` and
    :func:`code_hash`, and ``encoder.pt`` has the recorded sha256. A corrupt file is an error that
    names it and says to regenerate.
    """
    folder = run_dir(experiment, config.method, cell, config.seed, root=root)
    path = folder / "run.json"
    if not path.is_file():
        return None
    record = read_json(path)
    if record.get("config_hash") != config_hash(config) or record.get("code_hash") != code_hash():
        return None
    weights = folder / "encoder.pt"
    if not weights.is_file() or _sha256(weights) != record.get("encoder_sha256"):
        raise ValueError(f"{weights} is missing or does not match {path}; regenerate it with "
                         f"`python -m cssl reproduce {experiment} --profile book`")
    encoder = _build_encoder(config)
    encoder.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    # channels_last as in training, so that features are computed by the same kernels, bit for bit
    return CachedRun(record, encoder.to(memory_format=torch.channels_last).eval(), cached=True)


def train_run(experiment: str, cell: str, config: TrainConfig, *, data=None, write: bool = False, root=None,
              checkpoint_dir: str | os.PathLike | None = None) -> CachedRun:
    """Train ``config`` on the CPU with :data:`CACHE_THREADS` thread(s) and return the run.

    With ``write`` the record and weights are written atomically into the cache (the weights first,
    so a ``run.json`` always has its ``encoder.pt``). ``checkpoint_dir`` lets a long run resume after
    a kill (:func:`cssl.train.train`'s checkpoint). Restores the caller's thread count afterwards.
    """
    if config.device != "cpu":
        raise ValueError(f"cached runs are trained on the CPU for exact reproducibility; got device={config.device!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(CACHE_THREADS)
    try:
        cfg = TrainConfig.from_dict({**config.to_dict(), "out_dir": str(checkpoint_dir) if checkpoint_dir else None})
        res = train(cfg, resume=checkpoint_dir is not None, progress=False, data=data)
    finally:
        torch.set_num_threads(threads)
    encoder = res["method"].encoder.eval()
    keep = ("step", "loss", "knn_top1", "nearest_centre_acc")
    record = {"experiment": experiment, "cell": cell, "method": config.method, "seed": config.seed,
              "config": config.to_dict(), "config_hash": config_hash(config), "code_hash": code_hash(),
              "threads": CACHE_THREADS, "history": [{k: h[k] for k in keep} for h in res["history"]],
              "final": {k: res["final"][k] for k in (*keep, "linear_probe_acc")}, "train_wall_s": round(res["wall_time_s"], 2),
              "provenance": provenance("cpu", profile=config.profile)}
    if write:
        folder = run_dir(experiment, config.method, cell, config.seed, root=root)
        state = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
        atomic_torch_save(state, folder / "encoder.pt")
        record["encoder_sha256"] = _sha256(folder / "encoder.pt")
        atomic_write_json(folder / "run.json", record)
    return CachedRun(record, encoder, cached=False)


def obtain(experiment: str, cell: str, config: TrainConfig, *, data=None, root=None) -> CachedRun:
    """The cached run of ``config`` when current (:func:`load_run`), else trained now (not written)."""
    run = load_run(experiment, cell, config, root=root)
    return run if run is not None else train_run(experiment, cell, config, data=data, root=root)


def grid_configs(experiment: str, *, methods=None, seeds=None, **overrides) -> list[tuple[str, str, int, TrainConfig]]:
    """The ``book`` profile's runs of ``experiment``: ``(method, cell label, seed, config)``, CPU, no out_dir."""
    runs = experiment_runs(experiment, profile="book", methods=methods, seeds=seeds, device="cpu", **overrides)
    return [(m, c, s, TrainConfig.from_dict({**cfg.to_dict(), "out_dir": None})) for m, c, s, cfg in runs]


def _exit_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """Worker initializer: end this worker when the process that started it is gone.

    A regeneration killed by SIGTERM or SIGKILL cannot shut its pool down, and spawned workers would go on
    training and writing runs into the cache for a command nobody is running any more. A daemon thread
    polls the parent's pid; when the worker has been re-parented, it exits at once (the run's last
    checkpoint stays in ``scratch``, so the next regeneration resumes it).
    """
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker(job: tuple) -> tuple[str, float]:
    experiment, cell, cfg_dict, root, ckpt = job
    t0 = time.perf_counter()
    train_run(experiment, cell, TrainConfig.from_dict(cfg_dict), write=True, root=root, checkpoint_dir=ckpt)
    shutil.rmtree(ckpt, ignore_errors=True)  # the run is in the cache now; its checkpoint has done its job
    return f"{cfg_dict['method']} {cell} seed {cfg_dict['seed']}", time.perf_counter() - t0


def regenerate(experiment: str, *, methods=None, seeds=None, workers: int = 2, root=None, progress: bool = True,
               force: bool = False, scratch: str | os.PathLike = "runs/cache-checkpoints") -> dict:
    """Train every run of ``experiment`` that is missing or stale and write it into the cache.

    ``workers`` processes of one thread each share the runs (two on the book's two-core machine);
    each run checkpoints under ``scratch/<code hash>/`` so that a killed regeneration resumes where it
    stopped, and never from a checkpoint of other training code. Workers end with the command: killed,
    it leaves no worker training behind (:func:`_exit_with_parent`).
    ``force`` retrains current runs too. Returns ``{"trained": n, "current": n, "wall_s": s}``.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {sorted(EXPERIMENTS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    t0 = time.perf_counter()
    jobs, current = [], 0
    for m, cell, s, cfg in grid_configs(experiment, methods=methods, seeds=seeds):
        if not force and load_run(experiment, cell, cfg, root=root) is not None:
            current += 1
            continue
        ckpt = Path(scratch) / code_hash()[:16] / experiment / m / _safe(cell) / f"seed{s}"
        if force and (ckpt / "checkpoint.pt").is_file():
            (ckpt / "checkpoint.pt").unlink()
        jobs.append((experiment, cell, cfg.to_dict(), None if root is None else str(root), str(ckpt)))
    bar = None
    if progress and jobs:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"{experiment} (book)", unit="run", dynamic_ncols=True)
    try:
        if workers == 1:
            for job in jobs:
                name, secs = _worker(job)
                if bar is not None:
                    bar.set_postfix_str(f"{name} {secs:.0f} s")
                    bar.update(1)
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                     initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
                for fut in as_completed([pool.submit(_worker, j) for j in jobs]):
                    name, secs = fut.result()
                    if bar is not None:
                        bar.set_postfix_str(f"{name} {secs:.0f} s")
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return {"trained": len(jobs), "current": current, "wall_s": time.perf_counter() - t0}


def committed_runs(*, root=None) -> list[Path]:
    """Every ``run.json`` in the cache, sorted."""
    base = cache_root(root)
    return sorted(base.glob("*/*/*/seed*/run.json")) if base.is_dir() else []


def config_of(record: dict) -> TrainConfig:
    """The :class:`~cssl.train.TrainConfig` a cached record was trained with."""
    return TrainConfig.from_dict(record["config"])


def sample_for_verification(paths: Sequence[Path], k: int) -> list[Path]:
    """``k`` of ``paths`` chosen deterministically (by the sha256 of their relative names), for re-training."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return sorted(paths, key=lambda p: hashlib.sha256("/".join(p.parts[-5:]).encode()).hexdigest())[:k]
