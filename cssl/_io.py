"""Atomic file writes: a results file or checkpoint is either the old one or the complete new one.

Each writer writes to a temporary file in the same folder, flushes and fsyncs it, then renames it over
the target with :func:`os.replace` (atomic on POSIX and Windows), so a run killed mid-write never
leaves a truncated file behind.

Also here: :func:`lock_folder`, the lock that keeps two runs from writing to one output folder, and
:func:`read_checkpoint`, the only way :mod:`cssl` reads a checkpoint before resuming
(``weights_only=True``, never the unsafe fallback), with :func:`set_aside` for a file that fails it.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_write", "atomic_write_json", "atomic_torch_save", "read_json", "lock_folder", "FolderLocked",
           "read_checkpoint", "CorruptCheckpoint", "set_aside"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Context manager yielding a file object; on success the file replaces ``path`` atomically."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates the file readable by its owner only; give it the usual permissions instead.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (NaN/inf are rejected: JSON has no such numbers)."""
    text = json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False)
    with atomic_write(path, "w") as fh:
        fh.write(text + "\n")
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically."""
    import torch

    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, with an error that names the file when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the step that writes it first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it and regenerate it") from None


# ------------------------------------------------------------------------------ output-folder locks
class FolderLocked(RuntimeError):
    """Another process holds the lock of an output folder (see :func:`lock_folder`)."""


_HELD_LOCKS: dict[str, list] = {}  # resolved folder -> [open lock file, depth]: re-entrant in one process


def _try_lock(fh) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike, *, hint: str = "wait for it to finish or write elsewhere"
                ) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (the file ``folder/.lock``) while the block runs.

    A second process that asks for the same folder fails **at once** with :class:`FolderLocked`,
    naming the holder's pid and start time and ending with ``hint``. The lock is an OS lock
    (``flock``), so it disappears with its process, even after ``SIGKILL``; the file stays as a
    harmless marker. Re-entrant within one process (a run inside ``reproduce`` takes it again).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key][1] += 1
        try:
            yield folder
        finally:
            _HELD_LOCKS[key][1] -= 1
        return
    lock_path = folder / ".lock"
    fh = open(lock_path, "a+", encoding="utf-8")
    try:
        if not _try_lock(fh):
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise FolderLocked(f"{folder} is in use by another run ({holder}); {hint}")
        fh.seek(0)
        fh.truncate()
        import datetime

        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        fh.write(f"pid {os.getpid()} on {os.uname().nodename if hasattr(os, 'uname') else 'this host'}, "
                 f"since {started}")
        fh.flush()
        _HELD_LOCKS[key] = [fh, 1]
        try:
            yield folder
        finally:
            del _HELD_LOCKS[key]
    finally:
        fh.close()  # closing the file releases the lock


# ------------------------------------------------------------------------------ checkpoints
class CorruptCheckpoint(ValueError):
    """A checkpoint file that cannot be read safely (truncated, empty, not a cssl checkpoint)."""


_CHECKPOINT_KEYS = ("config", "model", "optimizer", "scheduler", "rng", "step")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a training checkpoint with ``torch.load(..., weights_only=True)`` and check its keys.

    Never falls back to ``weights_only=False`` (that would run whatever code a damaged or planted
    file holds). Raises :class:`CorruptCheckpoint` naming the file and the reason when it cannot be
    read or is not a checkpoint of :func:`cssl.train.train`.
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, OSError, zipfile.BadZipFile,
            KeyError, AttributeError, TypeError, ImportError, IndexError, MemoryError) as err:
        if isinstance(err, pickle.UnpicklingError):  # torch's text advises the unsafe weights_only=False
            why = "the safe loader refused its contents"
        elif path.stat().st_size == 0:
            why = "the file is empty"
        else:
            first = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:100]
            why = f"{type(err).__name__}{': ' + first if first else ''}; truncated or damaged"
        raise CorruptCheckpoint(f"{path} is not a readable checkpoint ({why})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _CHECKPOINT_KEYS) \
            or not isinstance(ckpt.get("config"), dict):
        raise CorruptCheckpoint(f"{path} is not a cssl training checkpoint (it lacks "
                                f"{[k for k in _CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]})")
    return ckpt


def set_aside(path: str | os.PathLike, tag: str = "corrupt") -> Path:
    """Rename ``path`` to ``<stem>.<tag>-<UTC time><suffix>`` beside it (never overwriting); return the new path."""
    import datetime

    path = Path(path)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.stem}.{tag}-{stamp}{path.suffix}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}.{tag}-{stamp}-{n}{path.suffix}")
    os.replace(path, target)
    return target
