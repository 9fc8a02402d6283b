"""Shared provenance and report writing for the benchmarks: one JSON and one Markdown file per bench.

Every report says where and when it was measured (machine, CPU count, date, commit, Python, torch,
threads) so that the numbers the README shows can be traced and re-measured.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
from cssl._io import atomic_write, atomic_write_json  # noqa: E402


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance() -> dict:
    """Machine, date (UTC), commit (with ``+dirty`` when tracked files differ from it), Python, torch, threads."""
    import torch

    commit = _git("rev-parse", "--short", "HEAD")
    if commit != "unknown" and _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    return {"machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()})",
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}


def write_report(name: str, report: dict, table: list[str], out_dir: str | os.PathLike = RESULTS) -> Path:
    """Write ``<out_dir>/<name>.json`` (``report`` plus ``provenance``) and ``<name>.md`` (a provenance line,
    then the Markdown ``table`` lines) atomically; return the Markdown path."""
    out = Path(out_dir)
    prov = {**provenance(), **report.get("provenance", {})}  # a bench may pin fields (e.g. the commit it tested)
    atomic_write_json(out / f"{name}.json", {**report, "provenance": prov})
    md = out / f"{name}.md"
    with atomic_write(md) as fh:
        fh.write(f"Measured on {prov['machine']}, {prov['date']}, commit {prov['commit']} "
                 f"(Python {prov['python']}, torch {prov['torch']}, {prov['threads']} threads).\n\n")
        fh.write("\n".join(table) + "\n")
    print(f"report: {out / (name + '.json')}, {md}")
    return md
