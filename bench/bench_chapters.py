"""Execution time and peak memory of every chapter, against the book's budgets.

    python bench/bench_chapters.py [--out bench/results] [chapters/01_setting.ipynb ...]

Runs each chapter notebook of ``_toc.yml`` (or the ones named) top to bottom in a fresh kernel, one
after the other, and measures the wall time and the peak resident memory of the kernel process tree
(sampled every 50 ms with psutil, so very short spikes can be missed). Budgets (docs/design.md, section 7): theory
chapter at most 60 s, experiment chapter at most 180 s, each at most 2 GB; the whole book at most
15 minutes on a 2-core CPU. Writes ``chapters.json`` (with machine, date and commit) and
``chapters.md`` (the table the README shows) atomically. The notebooks themselves are not modified unless
``--save`` is given (then they are written back executed and cleaned, like ``tools/run_notebooks.py``).

The experiment chapters read the committed runs (``results/book``), so their budget is 60 s, the budget of an
experiment chapter whose runs are committed (180 s without them).

``--busy`` measures the book on a busy machine: for the whole measurement a CPU-heavy job of the book's own
size runs beside it (``python -m cssl train --profile quick`` with a long run, two threads, no files), and
the report is written as ``chapters_busy.{json,md}``. Every cell keeps the book's cell timeout (600 s,
``_config.yml``), so a chapter that would time out in a build on a busy machine fails here too.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from run_notebooks import clean, toc_notebooks  # noqa: E402

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _report import provenance, write_report  # noqa: E402

#: Chapters that train several models get the experiment budget; the rest are theory chapters.
EXPERIMENT_CHAPTERS = {"08", "09", "10", "11", "12"}
BUDGET_S = {"theory": 60.0, "experiment": 60.0}  # experiment chapters read the committed runs
CELL_TIMEOUT_S = 600  # as _config.yml's execute.timeout
BUDGET_BYTES = 2 * 1024**3


def _tree_rss(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(path: Path, save: bool = False) -> dict:
    """Execute one notebook; return its wall time and the kernel tree's peak RSS.

    With ``save`` the executed notebook is written back, cleaned as by ``tools/run_notebooks.py``, so one
    run both refreshes the committed outputs and measures them."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            km = getattr(client, "km", None)
            pid = None
            if km is not None and getattr(km, "provisioner", None) is not None:
                pid = getattr(getattr(km.provisioner, "process", None), "pid", None)
            if pid:
                peak[0] = max(peak[0], _tree_rss(pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        elapsed = time.perf_counter() - start
        stop.set()
        sampler.join()
    if save:
        nbformat.write(clean(nb), path)
    kind = "experiment" if path.stem[:2] in EXPERIMENT_CHAPTERS else "theory"
    return {"chapter": path.stem, "kind": kind, "seconds": round(elapsed, 1), "peak_rss_mb": round(peak[0] / 2**20),
            "budget_s": BUDGET_S[kind], "within_budget": elapsed <= BUDGET_S[kind] and peak[0] <= BUDGET_BYTES}



def _start_load():
    """A CPU-heavy job of the book's own size: a long quick-profile training run on two threads, no files."""
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-m", "cssl", "train", "--profile", "quick", "--steps", "1000000",
                             "--eval-every", "1000000", "--device", "cpu", "--out-dir", "runs/bench-busy-load",
                             "--no-resume", "--no-progress"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to measure (default: every chapter)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="output folder")
    parser.add_argument("--save", action="store_true", help="write the executed notebooks back (as run_notebooks.py)")
    parser.add_argument("--busy", action="store_true",
                        help="run a CPU-heavy training job of the book's size beside the measurement")
    args = parser.parse_args(argv)
    if args.busy and args.save:
        parser.error("--busy measures a loaded machine; do not --save its outputs")
    paths = [p.resolve() for p in args.notebooks] or toc_notebooks()
    prov = provenance()  # before --save rewrites notebooks (which would mark the tree dirty)
    load = _start_load() if args.busy else None
    rows = []
    try:
        for path in paths:
            row = measure(path, save=args.save)
            rows.append(row)
            print(f"{row['chapter']:<28} {row['seconds']:7.1f} s  {row['peak_rss_mb']:6d} MB  "
                  f"({row['kind']}, budget {row['budget_s']:.0f} s){'' if row['within_budget'] else '  OVER BUDGET'}",
                  flush=True)
    finally:
        if load is not None:
            load.kill()
            load.wait()
    total = sum(r["seconds"] for r in rows)
    report = {"total_seconds": round(total, 1), "book_budget_s": 900, "chapters": rows, "provenance": prov,
              "busy": bool(args.busy), "cell_timeout_s": CELL_TIMEOUT_S}
    lines = ["| chapter | kind | time (s) | budget (s) | peak memory (MB) | within budget |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['chapter']} | {r['kind']} | {r['seconds']:.1f} | {r['budget_s']:.0f} | {r['peak_rss_mb']} | "
              f"{'yes' if r['within_budget'] else 'NO'} |" for r in rows]
    lines.append(f"| **all chapters** | | **{total:.1f}** | 900 | | {'yes' if total <= 900 else 'NO'} |")
    if args.busy:
        lines.insert(0, "Measured while a CPU-heavy training job (two threads) ran beside it; the time budgets are "
                        "those of an idle machine, and the point is that no cell hits the 600 s timeout.\n")
    write_report("chapters_busy" if args.busy else "chapters", report, lines, args.out)
    print(f"total {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
