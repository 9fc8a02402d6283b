"""Benchmark of the image sigma(delta) estimator (:func:`cssl.concentration.estimate_sigma`).

Measures the time of the three stages (sampling T views per image, the blocked within-class distance
matrix hat d_A, the greedy main parts for several deltas) against N images and T views, fits the growth
rate t ~ (N (T+1))^alpha, and compares the headline case (N = 1000, T = 16, 3x32x32) with the matmul
floor: one float32 matrix product of all N (T+1) views against all of them, what any method based on
the full view-pair matrix pays. The symmetric blocks of :func:`augmented_distance` need about half of it.

Usage: ``python bench/bench_sigma.py [--quick]`` (``--quick`` skips the largest cases).
Timings depend on the machine and on its load: the floor is measured in the same run for that reason,
and the headline is also given as CPU time / threads (``time.process_time``), which a busy shared
machine inflates much less than wall-clock time; on an idle machine the two agree.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from cssl.concentration import _clique, augmented_distance, estimate_sigma, sample_views  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _report import RESULTS, write_report  # noqa: E402

import numpy as np  # noqa: E402


def synthetic_class(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """One class of images: a smooth prototype plus per-image smooth variation, pixels in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    proto = torch.nn.functional.interpolate(torch.rand(1, channels, 4, 4, generator=g), size=size, mode="bilinear")
    vary = torch.nn.functional.interpolate(torch.rand(n, channels, 8, 8, generator=g), size=size, mode="bilinear")
    return (0.6 * proto + 0.4 * vary).clamp(0, 1)


def cheap_augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-image horizontal flip (p = 0.5), brightness jitter and a little pixel noise: fast, so the
    benchmark times the estimator rather than the augmentation."""
    n = batch.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    bright = 1.0 + 0.4 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    noise = 0.02 * torch.randn(batch.shape, generator=generator)
    return (out * bright + noise).clamp(0, 1)


def gflops_float32(dim: int, reps: int = 3) -> float:
    a = torch.randn(4096, dim)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        a @ a.T
        best = min(best, time.perf_counter() - t)
    return 2 * 4096 * 4096 * dim / best / 1e9


def full_matmul_floor(views: torch.Tensor, rows: int = 4096) -> float:
    """Time of the full (M x M) float32 product of all views, by row blocks (so it fits in memory)."""
    flat = views.reshape(-1, views.shape[-1])
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, flat.shape[0], rows):
        flat[i:i + rows] @ flat.T
    return time.perf_counter() - t, (time.process_time() - c) / torch.get_num_threads()


def run_case(n: int, t_views: int, deltas: list[float], channels: int = 3, size: int = 32):
    images = synthetic_class(n, channels, size)
    g = torch.Generator().manual_seed(1)
    c0 = time.process_time()
    t0 = time.perf_counter()
    views = sample_views(images, cheap_augment, t_views, generator=g)
    t1 = time.perf_counter()
    dist = augmented_distance(views, precision="float32")
    t2 = time.perf_counter()
    sigmas = []
    previous = None
    for delta in sorted(deltas):
        result = _clique((dist <= delta).numpy(), np.ones(n), "greedy", previous, 8)
        previous = result.indices
        sigmas.append(result.indices.numel() / n)
    t3 = time.perf_counter()
    cpu = (time.process_time() - c0) / torch.get_num_threads()
    return {"cpu_s": cpu, "n": n, "T": t_views, "M": n * (t_views + 1), "D": channels * size * size, "views_s": t1 - t0,
            "dist_s": t2 - t1, "clique_s": t3 - t2, "total_s": t3 - t0, "sigma": sigmas, "views": views}


def fit_power(xs, ys) -> float:
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(lx, ly, 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the largest cases")
    parser.add_argument("--out", default=str(RESULTS), help="folder for sigma.json and sigma.md")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    gflops = gflops_float32(3072)
    print(f"float32 matmul speed: {gflops:.0f} GFLOP/s (best of 3, 4096x3072 @ 3072x4096)")

    pilot = run_case(100, 8, [0.0])
    off = augmented_distance(pilot["views"], precision="float32")
    off = off[~torch.eye(off.shape[0], dtype=torch.bool)]
    deltas = [float(off.quantile(q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)]
    print("deltas (quantiles 5/25/50/75/95% of the pilot's off-diagonal hat d_A):",
          ", ".join(f"{d:.2f}" for d in deltas))

    t_main = 8 if args.quick else 16
    ns = [125, 250, 500] + ([] if args.quick else [1000])
    n_main = ns[-1]
    rows = [run_case(n, t_main, deltas) for n in ns]
    rows += [run_case(n_main, t, deltas) for t in (4, 8, 16) if t < t_main]
    header = f"{'N':>5} {'T':>3} {'M=N(T+1)':>9} {'D':>5} {'views s':>8} {'d_A s':>7} {'cliques s':>9} {'total s':>8} {'CPU/thr s':>9}  sigma(deltas)"
    print(header)
    print("-" * len(header))
    for r in sorted(rows, key=lambda r: (r["T"], r["n"])):
        print(f"{r['n']:>5} {r['T']:>3} {r['M']:>9} {r['D']:>5} {r['views_s']:>8.2f} {r['dist_s']:>7.2f} "
              f"{r['clique_s']:>9.2f} {r['total_s']:>8.2f} {r['cpu_s']:>9.2f}  " + " ".join(f"{s:.2f}" for s in r["sigma"]))
    big = [r for r in rows if r["M"] >= 2000]
    alpha = fit_power([r["M"] for r in big], [r["dist_s"] for r in big])
    alpha_total = fit_power([r["M"] for r in big], [r["total_s"] for r in big])
    fixed_t = [r for r in rows if r["T"] == t_main]
    alpha_n = fit_power([r["n"] for r in fixed_t], [r["total_s"] for r in fixed_t])
    fixed_n = [r for r in rows if r["n"] == n_main]
    alpha_t = fit_power([r["T"] + 1 for r in fixed_n], [r["total_s"] for r in fixed_n])
    print(f"fitted growth: d_A time ~ M^{alpha:.2f}, total ~ M^{alpha_total:.2f} (M = N (T+1) views, "
          f"cases with M >= 2000); at T={t_main}: total ~ N^{alpha_n:.2f}; at N={n_main}: total ~ (T+1)^{alpha_t:.2f}")
    if not args.quick:
        head = next(r for r in rows if r["n"] == 1000 and r["T"] == 16)
        floor, floor_cpu = full_matmul_floor(head["views"])
        images = synthetic_class(1000)
        t0, c0 = time.perf_counter(), time.process_time()
        est = estimate_sigma(images, cheap_augment, 16, deltas, generator=torch.Generator().manual_seed(1))
        end_to_end = time.perf_counter() - t0
        end_cpu = (time.process_time() - c0) / torch.get_num_threads()
        print(f"headline N=1000, T=16, D=3072: estimate_sigma end to end {end_to_end:.2f} s wall, "
              f"{end_cpu:.2f} s CPU/threads (staged: total {head['total_s']:.2f} s, d_A {head['dist_s']:.2f} s)")
        print(f"full {head['M']}x{head['M']} float32 matmul floor {floor:.2f} s wall, {floor_cpu:.2f} s CPU/threads; "
              f"ratio end-to-end / floor {end_to_end / floor:.2f} (wall), {end_cpu / floor_cpu:.2f} (CPU)")
        print("sigma at the deltas:", " ".join(f"{s:.3f}" for s in est.sigma.tolist()))
    keys = ("n", "T", "M", "D", "views_s", "dist_s", "clique_s", "total_s", "cpu_s")
    report = {"matmul_gflops": gflops, "deltas": deltas, "growth": {"dist_vs_M": alpha, "total_vs_M": alpha_total,
              "total_vs_N": alpha_n, "total_vs_T_plus_1": alpha_t},
              "cases": [{**{k: r[k] for k in keys}, "sigma": list(r["sigma"])} for r in rows]}
    table = ["| N | T | M = N(T+1) | D | views (s) | hat d_A (s) | cliques (s) | total (s) |", "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['n']} | {r['T']} | {r['M']} | {r['D']} | {r['views_s']:.2f} | {r['dist_s']:.2f} | {r['clique_s']:.2f} | "
              f"{r['total_s']:.2f} |" for r in sorted(rows, key=lambda r: (r["T"], r["n"]))]
    table += ["", f"Growth: hat d_A time ~ M^{alpha:.2f}, total ~ M^{alpha_total:.2f} (M = N(T+1) views); "
              f"float32 matmul {gflops:.0f} GFLOP/s."]
    if not args.quick:
        report["headline"] = {"end_to_end_s": end_to_end, "end_to_end_cpu_s": end_cpu, "floor_s": floor,
                              "floor_cpu_s": floor_cpu, "goal_s": 15.0}
        table += ["", f"Headline (one class, N = 1000, T = 16, 3x32x32): `estimate_sigma` {end_to_end:.1f} s end to end "
                  f"(goal <= 15 s) against {floor:.1f} s for the full {head['M']}x{head['M']} float32 distance matmul."]
    write_report("sigma_quick" if args.quick else "sigma", report, table, args.out)


if __name__ == "__main__":
    main()
