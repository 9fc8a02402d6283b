"""Wall time of the CI job on a clean checkout, as CI runs it.

    python bench/bench_ci.py [--out bench/results] [--keep]

Clones the current commit (``git clone`` of this repository, so only committed files) into a temporary
folder and runs ``.ci/run`` there with ``CI=true``: a fresh virtual environment, the README's install
command (pip install + a forced Jupyter Book build of every chapter) and its test command (pytest with
nbval). Records the wall time of the whole job, its exit status and pytest's summary line (the job's last
line) in ``ci.json`` / ``ci.md``. Budget (docs/design.md, section 7): CI at most 45 minutes. The full log
is kept beside the
report as ``ci.log``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import RESULTS, ROOT, provenance, write_report  # noqa: E402

BUDGET_S = 45 * 60


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for ci.json, ci.md and ci.log")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args(argv)
    prov = provenance()
    if prov["commit"].endswith("+dirty"):
        print("note: uncommitted changes are not part of the clone; the job tests HEAD", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="cssl-ci-"))
    clone = tmp / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "ci.log"
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run(["bash", ".ci/run"], cwd=clone, env={**os.environ, "CI": "true"}, stdout=log,
                              stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    summary = lines[-1] if lines else ""
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"wall_s": round(wall, 1), "budget_s": BUDGET_S, "returncode": proc.returncode,
              "pytest_summary": summary.strip("= "), "provenance": {**prov, "commit": prov["commit"].replace("+dirty", "")}}
    table = ["| job | wall time | budget | exit status | pytest summary |", "|---|---|---|---|---|",
             f"| `.ci/run` on a fresh clone | {wall / 60:.1f} min | {BUDGET_S // 60} min | {proc.returncode} | "
             f"{report['pytest_summary']} |"]
    write_report("ci", report, table, args.out)
    print(f"CI job: {wall / 60:.1f} min, exit {proc.returncode}: {summary}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
