"""Command line: ``python -m cssl <command> ...`` (also installed as ``cssl``).

Commands
    ``train``      one training run (any :class:`cssl.train.TrainConfig` field as an option)
    ``reproduce``  an experiment of the paper (``table1``, ``table2``, ``figure3``) over methods and seeds

Examples::

    python -m cssl train --method simclr --letters ab --steps 200 --out-dir runs/simclr-ab
    python -m cssl reproduce table1 --profile quick --methods simclr barlow_twins --seeds 0 1 2
    python -m cssl reproduce table1 --profile book      # the committed runs of the book (results/book)
    python -m cssl reproduce table2 --profile paper --dataset cifar10 --data-root data_cache --download
    torchrun --nproc_per_node 4 -m cssl train --profile paper --method simclr --epochs 800

Errors: a user error (bad flag value, missing or corrupt data, a checkpoint of another configuration,
an output folder in use) prints **one line** ``error: ...`` naming the flag that fixes it and exits
non-zero (2 for a bad flag, 1 otherwise); ``python -m cssl --debug <command> ...`` shows the traceback
instead. ``CSSL_NUM_THREADS`` sets PyTorch's CPU threads, as in the chapters.

Adding a command is one call to :func:`register` with a function that adds its arguments and one that
runs it and returns the exit status.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import typing
from pathlib import Path
from typing import Callable

from ._io import FolderLocked

__all__ = ["main", "register", "build_parser", "COMMANDS", "CommandError"]


class CommandError(Exception):
    """A user error found by the command line itself; printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``prog: error: ...``) and exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


#: Python-API wording in cssl's messages -> the command line's flag (longest first).
_CLI_WORDS = (("resume=False", "--no-resume"), ("download=True", "--download"), ("pass the right md5=",
              "pass the right --data-md5"), ("md5=", "--data-md5 "), ("out_dir", "--out-dir"))


def _cli_wording(message: str) -> str:
    message = re.sub(r"[\w=.]+ \(command line: ([^)]*)\)", r"\1", str(message))
    for api, flag in _CLI_WORDS:
        message = message.replace(api, flag)
    return _one_line(message)

#: name -> (help, add_arguments(parser), run(args) -> exit status)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def register(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], int]) -> None:
    """Add a subcommand: ``add_arguments(parser)`` declares its options, ``run(args)`` returns the exit code."""
    if name in COMMANDS:
        raise ValueError(f"command {name!r} is already registered")
    COMMANDS[name] = (help, add_arguments, run)


# ------------------------------------------------------------------------------------------- train
_TRAIN_HELP = {
    "method": "self-supervised method: simclr, barlow_twins, moco, simsiam",
    "dataset": "textures (16x16 procedural colour textures), nuisance_textures (the same with a nuisance for "
               "each transformation, the book profile's data), digits (sklearn 8x8), cifar10, cifar100",
    "letters": "augmentations, a subset of abcde: a crop, b blur, c grayscale, d colour jitter, e flip",
    "strength": "colour-jitter strength s: ColorJitter(0.8s, 0.8s, 0.8s, 0.2s), in (0, 2.5]",
    "cj_prob": "probability of colour jitter, in [0, 1] (Table 2 uses 1.0)",
    "blur_sigma": "blur standard deviation in pixels (default: image side / 32, the authors' 1 px at 32x32)",
    "crop_min_scale": "smallest share of the area a random resized crop keeps, in (0, 1] (authors: 0.08)",
    "backbone": "encoder: smallcnn or resnet18 (CIFAR stem)",
    "width": "backbone width (smallcnn 16, resnet18 64 when omitted)",
    "steps": "number of optimizer steps (give steps or epochs)",
    "epochs": "number of epochs of n_train // batch_size steps (give steps or epochs)",
    "batch_size": "global batch size (split across torchrun ranks)",
    "optimizer": "sgd (momentum) or adam",
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "cosine": "cosine learning-rate schedule over the run",
    "seed": "seed of initialisation, batch order and augmentations",
    "device": "auto (CUDA if available), cpu, cuda, cuda:N",
    "amp": "bf16 autocast on CUDA (ignored on CPU)",
    "eval_every": "evaluate (kNN, nearest centre) every this many steps (default: once per epoch)",
    "checkpoint_every": "write the checkpoint every this many steps (default: at every evaluation)",
    "knn_k": "k of the kNN monitor (authors: 200)",
    "knn_t": "temperature of the kNN monitor (authors: 0.1)",
    "recalibrate_bn": "re-estimate BatchNorm statistics on clean training images before each evaluation",
    "eval_batch_size": "batch size of feature extraction",
    "temperature": "NT-Xent temperature (SimCLR 0.5, MoCo 0.1 when omitted)",
    "bt_lambda": "Barlow Twins off-diagonal weight lambda (5e-3 when omitted)",
    "moco_momentum": "MoCo momentum-encoder coefficient",
    "queue_size": "MoCo queue length",
    "split_bn": "number of BatchNorm splits (MoCo: 8 in the authors' code; 1 = ordinary BatchNorm)",
    "n_train": "use a seeded subset of this many training images",
    "n_test": "use a seeded subset of this many test images",
    "image_size": "side of the procedural textures",
    "data_root": "folder of the CIFAR files",
    "download": "download CIFAR if missing (md5-checked)",
    "data_md5": "expected md5 of the CIFAR archive (default: the official one)",
    "data_seed": "seed of the procedural data and of subsets",
    "out_dir": "folder for results.json and checkpoint.pt (default runs/<method>-<dataset>-<letters>-s<seed>)",
    "profile": "start from this profile's settings (quick or paper); explicit options override it",
}
_TRAIN_PROFILES = ("quick", "book", "paper", "none")


def _field_type(f: dataclasses.Field):
    from .train import TrainConfig

    t = typing.get_type_hints(TrainConfig)[f.name]
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return args[0] if args else t


def _add_train_config_options(p: argparse.ArgumentParser) -> None:
    from .train import DATASETS, TrainConfig

    g = p.add_argument_group("run configuration (defaults: the profile's, else TrainConfig's)")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "profile":
            continue
        t = _field_type(f)
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{_TRAIN_HELP.get(f.name, f.name)} [TrainConfig default: {f.default}]"
        if t is bool:
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            choices = {"method": ["simclr", "barlow_twins", "moco", "simsiam"],
                       "dataset": list(DATASETS),
                       "backbone": ["smallcnn", "resnet18"], "optimizer": ["sgd", "adam"]}.get(f.name)
            g.add_argument(flag, dest=f.name, type=t, default=None, choices=choices, help=help_,
                           metavar=None if choices else f.name.upper())


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=_TRAIN_PROFILES, default="quick",
                   help="start from a profile's settings (default quick, the book's CPU scale; see `reproduce "
                   "--help`); options below override it; none: TrainConfig's own defaults")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start afresh even if out_dir holds a checkpoint")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _add_train_config_options(p)


def _config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser):
    from .experiments import profile_config
    from .train import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "profile"]
    given = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    try:
        if args.profile not in (None, "none"):
            method = given.pop("method", "simclr")
            dataset = given.pop("dataset", None)
            return profile_config(args.profile, method, dataset=dataset, **given)
        if "epochs" in given and "steps" not in given:
            given["steps"] = None
        return TrainConfig(**given)
    except (ValueError, TypeError) as err:
        message = str(err)
        if "runs on" in message:
            message += "; pick the profile with --profile (none: TrainConfig's defaults on any dataset)"
        parser.error(_flag_prefix(message, names + ["profile"]))


def _flag_prefix(message: str, names: list[str]) -> str:
    """``message`` prefixed with the flags of the config fields it names, e.g. ``argument --steps: ...``."""
    found = []
    for word in re.findall(r"[a-z][a-z0-9_]*", message):
        if word in names and word not in found:
            found.append(word)
    if "runs on" in message:  # a dataset outside the profile's
        found = ["dataset", "profile"]
    flags = "/".join("--" + w.replace("_", "-") for w in found[:3])
    return f"argument {flags}: {_cli_wording(message)}" if flags else _cli_wording(message)


def _lead_flag(message: str) -> str:
    """``"batch_size 512 exceeds ..."`` -> ``"argument --batch-size: batch_size 512 exceeds ..."``."""
    from .train import TrainConfig

    first = message.split(" ", 1)[0]
    if first in {f.name for f in dataclasses.fields(TrainConfig)}:
        return f"argument --{first.replace('_', '-')}: {message}"
    return message


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def _check_cifar_present(cfg) -> None:
    """Fail in one line, naming ``--download`` / ``--data-root``, when a CIFAR run has no data to read."""
    if not cfg.dataset.startswith("cifar") or cfg.download:
        return
    from .data import CIFAR_SPECS

    spec = CIFAR_SPECS[cfg.dataset]
    root = Path(cfg.data_root)
    stem = spec["archive"][: -len(".tar.gz")]
    if any((root / name).exists() for name in (spec["archive"], stem + ".npz", spec["folder"])):
        return
    raise CommandError(f"{cfg.dataset} data not found in {root}/ (no {spec['archive']} or {spec['folder']}/ "
                       f"there): pass --download to fetch it (md5-checked), or --data-root FOLDER where it is")


def _warn_if_slow(cfg, runs: int = 1) -> None:
    """The paper profile (or any ResNet-18 run) on a CPU: say how long it would take, measured here."""
    from .experiments import estimate_seconds
    from .train import resolve_device

    if resolve_device(cfg.device).type != "cpu" or (cfg.profile != "paper" and cfg.backbone != "resnet18"):
        return
    est = estimate_seconds(cfg, device="cpu")
    total = est["seconds"] * runs
    if total < 600:
        return
    when = f"{total / 86400:,.1f} days" if total >= 2 * 86400 else f"{total / 3600:,.1f} hours"
    what = f"{runs} runs of " if runs > 1 else ""
    print(f"warning: {what}{cfg.backbone} for {est['steps']:,} steps of {cfg.batch_size} images on the CPU: "
          f"about {when} at the {est['images_per_s']:.3g} images/s measured here (training alone); run it on a "
          "CUDA GPU, or use --profile quick (minutes)", file=sys.stderr, flush=True)


def _train_run(args: argparse.Namespace) -> int:
    from . import distributed as dist_utils
    from .train import train

    from .experiments import run_in_folder
    from .train import device_name, resolve_device

    cfg = _config_from_args(args, args._parser)
    if cfg.out_dir is None:
        cfg.out_dir = f"runs/{cfg.method}-{cfg.dataset}-{cfg.letters}-s{cfg.seed}"
    _check_cifar_present(cfg)
    if _is_main_rank():
        print(f"cssl train: profile {args.profile}, {cfg.method} on {cfg.dataset} ({cfg.backbone}), "
              f"{f'{cfg.steps} steps' if cfg.steps else f'{cfg.epochs} epochs'}, device "
              f"{device_name(resolve_device(cfg.device))}; writing {cfg.out_dir}", flush=True)
        _warn_if_slow(cfg)
    try:
        res = run_in_folder(cfg, resume=args.resume, progress=args.progress)
        main_rank = dist_utils.is_main()  # before cleanup, which forgets the rank
    finally:
        dist_utils.cleanup()
    if main_rank:
        fin, best = res["final"], res["best"]
        print(f"{cfg.method} {cfg.dataset} {cfg.letters}: final kNN {fin['knn_top1']:.4f} (step {fin['step']}), "
              f"best kNN {best['knn_top1']:.4f} (step {best['step']}), nearest-centre {fin['nearest_centre_acc']:.4f}, "
              f"linear probe {fin.get('linear_probe_acc', float('nan')):.4f}; "
              f"results in {cfg.out_dir}/results.json")
    return 0


# --------------------------------------------------------------------------------------- reproduce
def _reproduce_args(p: argparse.ArgumentParser) -> None:
    from .experiments import ALL_METHODS, EXPERIMENTS, PROFILES

    p.add_argument("experiment", choices=sorted(EXPERIMENTS),
                   help="; ".join(f"{k}: {v.description}" for k, v in EXPERIMENTS.items()))
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="; ".join(f"{k}: {v.description}" for k, v in PROFILES.items()) + " (default quick)")
    p.add_argument("--methods", nargs="+", choices=list(ALL_METHODS), default=None,
                   help="methods to run (default: the profile's; figure3 runs simclr)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default 0 1 2)")
    p.add_argument("--dataset", default=None, help="quick: textures|digits; paper: cifar10|cifar100")
    p.add_argument("--out", default="results", help="root folder of results (default results/)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--steps", type=int, default=None, help="override the run length in steps")
    p.add_argument("--epochs", type=int, default=None, help="override the run length in epochs")
    p.add_argument("--data-root", dest="data_root", default=None, help="folder of the CIFAR files")
    p.add_argument("--download", action="store_true", default=None, help="download CIFAR if missing")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress output")
    p.add_argument("--workers", type=int, default=2,
                   help="book profile: single-thread training processes (default 2, one per core)")
    p.add_argument("--force", action="store_true", help="book profile: retrain runs that are already current")


def _reproduce_book(args: argparse.Namespace) -> int:
    from . import runcache

    if args.workers < 1:
        args._parser.error(f"--workers must be a positive integer, got {args.workers}")
    for name in ("steps", "epochs", "data_root", "download", "dataset"):
        if getattr(args, name) not in (None, False):
            args._parser.error(f"--{name.replace('_', '-')} does not apply to --profile book: its runs are fixed "
                               "by the profile (see cssl.experiments)")
    summary = runcache.regenerate(args.experiment, methods=args.methods, seeds=args.seeds, workers=args.workers,
                                  progress=args.progress, force=args.force)
    print(f"{args.experiment} (book): {summary['trained']} run(s) trained, {summary['current']} already current, "
          f"{summary['wall_s']:.0f} s; cache in {runcache.cache_root() / args.experiment}")
    return 0


def _reproduce_run(args: argparse.Namespace) -> int:
    from .experiments import experiment_runs, reproduce

    if args.seeds is not None and any(s < 0 for s in args.seeds):
        args._parser.error(f"--seeds must be nonnegative integers, got {args.seeds}")
    for name in ("steps", "epochs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            args._parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.profile == "book":
        return _reproduce_book(args)
    extra = {k: getattr(args, k) for k in ("steps", "epochs", "data_root", "download") if getattr(args, k) is not None}
    common = dict(profile=args.profile, methods=args.methods, seeds=args.seeds, dataset=args.dataset,
                  out=args.out, device=args.device)
    try:
        runs = experiment_runs(args.experiment, **common, **extra)
    except (ValueError, TypeError) as err:
        args._parser.error(_flag_prefix(str(err), ["methods", "seeds", "dataset", "steps", "epochs", "device"]))
    if runs:
        _check_cifar_present(runs[0][3])
        _warn_if_slow(runs[0][3], runs=len(runs))
    summary = reproduce(args.experiment, **common, progress=args.progress,
                        log=None if args.progress else (lambda line: print(line, flush=True)), **extra)
    print(f"{summary['experiment']} ({summary['profile']}, {summary['dataset']}): kNN top-1, mean ± std over "
          f"seeds {summary['seeds']}; final | best over evaluations")
    for m, cells in summary["rows"].items():
        for label, c in cells.items():
            f, b = c["final_knn_summary"], c["best_knn_summary"]
            print(f"  {m:13s} {label:8s} {f['mean']:.4f} ± {f['std']:.4f} | {b['mean']:.4f} ± {b['std']:.4f}")
    print(f"summary in {args.out}/{summary['experiment']}/{summary['profile']}-{summary['dataset']}/summary.json")
    return 0


register("train", "train one model and write results.json + checkpoint.pt", _train_args, _train_run)
register("reproduce", "run an experiment of the paper (table1, table2, figure3) over methods and seeds",
         _reproduce_args, _reproduce_run)

# ------------------------------------------------------------------------------------------ ledger
def _ledger_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=None, help="the book's folder (default: the nearest parent with _toc.yml)")
    p.add_argument("--rebuild", action="store_true",
                   help="execute every chapter whose record is missing or stale before printing (slow)")


def _ledger_run(args: argparse.Namespace) -> int:
    from . import claims

    try:
        records = claims.collect(root=args.root, exclude=["90_ledger"], rebuild_stale=args.rebuild)
    except RuntimeError as err:
        print(f"error: {err}\n(run `python -m cssl ledger --rebuild` or build the book first)", file=sys.stderr)
        return 1
    for r in records:
        margin = "inf" if abs(r["margin"]) >= 1e300 else f"{r['margin']:.3g}"
        print(f"{r['chapter']:<22} {r['label']:<26} {r['kind']:<9} {r['verdict']:<28} margin {margin:<9} "
              f"{r['statement']}")
    print(f"{len(records)} claims")
    return 0


register("ledger", "print every claim the book checks, with kind, verdict and margin", _ledger_args, _ledger_run)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per registered command."""
    parser = _Parser(
        prog="python -m cssl", description="Executable companion of 'Towards the Generalization of Contrastive "
        "Self-Supervised Learning' (Huang, Yi, Zhao, Jiang, ICLR 2023).",
        epilog="Run `python -m cssl <command> --help` for a command's options.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True, parser_class=_Parser)
    for name, (help_, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add_arguments(p)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")
        p.set_defaults(_run=run, _parser=p)
    return parser


#: Exceptions that report a problem with the input, the data or the environment (no traceback needed).
_USER_ERRORS = (CommandError, ValueError, TypeError, OSError, FloatingPointError, FolderLocked)


def _set_threads() -> None:
    if os.environ.get("CSSL_NUM_THREADS", "").strip():
        import torch

        from .train import use_threads

        use_threads(torch.get_num_threads())


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command; returns the exit status.

    Errors print one line on stderr (``error: ...``, with the flag that fixes them) and return 1;
    a bad flag exits with status 2; ``--debug`` re-raises instead, with the traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        _set_threads()
        return args._run(args)
    try:
        _set_threads()
        return args._run(args)
    except KeyboardInterrupt:
        print("error: interrupted; the same command resumes from the last checkpoint", file=sys.stderr)
        return 130
    except _USER_ERRORS as err:
        print(f"error: {_lead_flag(_cli_wording(str(err))) or type(err).__name__}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - e.g. RuntimeError (no CUDA) or a bug: the traceback on request
        print(f"error: {type(err).__name__}: {_cli_wording(str(err))} (python -m cssl --debug "
              f"{args.command} ... shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
