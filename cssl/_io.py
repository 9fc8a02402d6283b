"""Atomic file writes: a results file or checkpoint is either the old one or the complete new one.

Each writer writes to a temporary file in the same folder, flushes and fsyncs it, then renames it over
the target with :func:`os.replace` (atomic on POSIX and Windows), so a run killed mid-write never
leaves a truncated file behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_write", "atomic_write_json", "atomic_torch_save", "read_json"]


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
