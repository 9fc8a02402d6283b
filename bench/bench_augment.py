"""Throughput of the batched augmentation vs the per-image reference (``python bench/bench_augment.py``).

Measures the authors' full pipeline "abcde" (``docs/design.md``, section 4) on random 3x32x32 images, batch 512:
``Augmentation`` (one batched call, parameters sampled inside) against ``ReferenceAugmentation``
(a Python loop over images; measured on fewer images and reported per image). Rounds alternate
between the two so that a busy machine slows both alike; the median round is reported. Goal on CPU:
batched at least 10x the reference. On a CUDA machine the batched path is timed there too.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from cssl.augment import Augmentation, ReferenceAugmentation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import RESULTS, write_report  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--letters", default="abcde")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--ref-images", type=int, default=64, help="images per reference round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", default=str(RESULTS), help="folder for augment.json and augment.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    aug = Augmentation(args.letters)
    ref = ReferenceAugmentation(args.letters)
    x = torch.rand(args.batch, 3, args.size, args.size)
    g = torch.Generator().manual_seed(0)
    cpu = torch.device("cpu")
    aug(x, g), ref(x[:4], g)  # warm-up
    batched, reference = [], []
    for _ in range(args.rounds):
        batched.append(args.batch / time_call(lambda: aug(x, g), cpu))
        reference.append(args.ref_images / time_call(lambda: ref(x[: args.ref_images], g), cpu))
    b, r = statistics.median(batched), statistics.median(reference)
    print(f"letters={args.letters!r} images {args.size}x{args.size} batch {args.batch}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"CPU batched   : {b:10.0f} images/s  (rounds: {', '.join(f'{v:.0f}' for v in batched)})")
    print(f"CPU reference : {r:10.0f} images/s  (rounds: {', '.join(f'{v:.0f}' for v in reference)})")
    print(f"speed-up      : {b / r:10.1f}x  (goal >= 10x)")
    result = {"cpu_batched": b, "cpu_reference": r, "speedup": b / r}
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        xc = x.to(dev)
        gc = torch.Generator(device=dev).manual_seed(0)
        aug(xc, gc)
        rates = [args.batch / time_call(lambda: aug(xc, gc), dev) for _ in range(args.rounds)]
        result["cuda_batched"] = statistics.median(rates)
        print(f"CUDA batched  : {result['cuda_batched']:10.0f} images/s ({torch.cuda.get_device_name(dev)})")
    result.update(letters=args.letters, size=args.size, batch=args.batch, rounds=args.rounds,
                  batched_rounds=batched, reference_rounds=reference)
    table = ["| path | images/s (median of rounds) |", "|---|---|",
             f"| batched (`cssl.augment.Augmentation`), CPU | {b:,.0f} |",
             f"| per-sample reference (`ReferenceAugmentation`), CPU | {r:,.0f} |",
             f"| **speed-up** (goal >= 10x) | **{b / r:.1f}x** |"]
    if "cuda_batched" in result:
        table.append(f"| batched, {torch.cuda.get_device_name(dev)} | {result['cuda_batched']:,.0f} |")
    table += ["", f"Augmentation {args.letters!r}, {args.size}x{args.size} images, batch {args.batch}."]
    write_report("augment", result, table, args.out)
    return result


if __name__ == "__main__":
    main()
