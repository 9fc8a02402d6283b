"""Copy the benchmark reports (``bench/results/<name>.md``) into README.md between the bench markers.

    python bench/update_readme.py [--check]

The README shows each report under a heading, in the order of ``REPORTS``; a report that has not been
measured yet is listed with the command that produces it. ``--check`` exits 1 when the README is stale.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
#: (report name, heading, command that writes it)
REPORTS = (
    ("chapters", "Chapters: time and peak memory", "python bench/bench_chapters.py"),
    ("chapters_busy", "Chapters on a busy machine (a training job beside the build)",
     "python bench/bench_chapters.py --busy"),
    ("ci", "CI: `.ci/run` on a fresh clone", "python bench/bench_ci.py"),
    ("page", "Visible code on the chapters' pages", "python bench/bench_page.py"),
    ("augment", "Batched augmentation against the per-sample reference", "python bench/bench_augment.py"),
    ("sigma", "sigma(delta) estimation against N and T", "python bench/bench_sigma.py"),
    ("train_cpu", "Training throughput, quick profile (CPU)", "python bench/bench_train.py"),
    ("train_gpu", "Training throughput, paper profile (GPU)", "python bench/bench_train.py --gpu"),
)


def block(results: Path = ROOT / "bench" / "results") -> str:
    parts = [START]
    for name, heading, command in REPORTS:
        md = results / f"{name}.md"
        parts.append(f"\n### {heading}\n\n`{command}` writes `bench/results/{name}.{{json,md}}`.\n")
        parts.append(md.read_text().rstrip() if md.is_file() else "Not measured on the reference machine yet; run the command above"
                     + (" on a CUDA machine." if name.endswith("gpu") else "."))
    parts.append(END)
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    readme = ROOT / "README.md"
    text = readme.read_text()
    if text.count(START) != 1 or text.count(END) != 1:
        print(f"README.md must contain {START} and {END} once each", file=sys.stderr)
        return 1
    head, rest = text.split(START)
    _, tail = rest.split(END)
    new = head + block() + tail
    if args.check:
        if new != text:
            print("README.md's benchmark block is stale; run: python bench/update_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
