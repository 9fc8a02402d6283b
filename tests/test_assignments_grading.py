"""Grading the course assignments as a class would be graded: for every assignment, submissions written as
students write them are graded with its autograder zip (tools/build_assignments.py --grade, otter run
locally with the per-cell and per-call time limits) and their scores checked:

* the solutions: full marks;
* three typical wrong submissions (each a plausible student with the slips of that chapter): below 60 %;
* one that hard-codes every value the public tests check: at most 20 %;
* one that calls the cssl functions a question forbids: 0 on those questions, the others full;
* one that raises (an exception in one function, a syntax error in another cell): 0 on those questions,
  the others full;
* one that loops forever: stopped by the time limits, 0 on that question, the others full.

Submissions are the solutions notebook with some functions (or variables) replaced; the public values for
the hard-coded one are computed here with cssl. Two grading processes run side by side.
"""
import ast
import csv
import importlib.util
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_assignments", ROOT / "tools" / "build_assignments.py")
build_assignments = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("build_assignments", build_assignments)
_spec.loader.exec_module(build_assignments)

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop:Warning")

CELL_TIMEOUT, CALL_TIMEOUT = 20, 6   # seconds; the looping submission costs about one cell and a few calls


# ----------------------------------------------------------------------------- public values (hard-coding)
def _public_values(name: str) -> dict:
    """The values the public tests of ``name`` check, computed with cssl (what a hard-coding student copies)."""
    import torch

    if name == "ch02_concentration":
        from cssl import concentration
        from cssl.worlds import random_world
        w1 = random_world(2, 3, 5, 2, seed=0)
        w2 = random_world(2, 8, 4, 2, class_spread=3.0, point_spread=1.0, view_noise=0.4, seed=1)
        return {"d": float(concentration.augmented_distance(w1.views)[0, 1]),
                "sigma": float(concentration.sigma_of_delta(w2, 1.0, method="exact")[0])}
    if name == "ch03_theorem1":
        from cssl import bounds, metrics
        from cssl.concentration import main_parts
        from cssl.worlds import near_threshold_world, random_world
        w = random_world(2, 4, 3, 2, view_noise=0.3, seed=0)
        world = near_threshold_world(3, 8, 4, 4, centre_cosine=-0.5, point_spread=0.005, view_spread=0.002,
                                     bad_fraction=0.125, seed=0)
        sigma = main_parts(world, 0.02, method="exact").sigma
        ref = bounds.theorem1_check(world, sigma, 0.02, 0.01, 1.0, 1.0)
        return {"r": {e: metrics.r_eps(w, e) for e in (0.0, 0.3, 0.6, 1.2)},
                "t1": {"sigma": sigma, "R_eps": ref.R_eps, "rho_max": ref.rho_max, "threshold": ref.threshold,
                       "condition": bool(ref.condition_holds), "bound": ref.bound, "err": ref.err}}
    if name == "ch05_infonce":
        import numpy as np
        from cssl import bounds, losses, metrics
        from cssl.worlds import near_threshold_world, random_world
        g = torch.Generator().manual_seed(0)
        z = torch.nn.functional.normalize(torch.randn(3, 256, 8, generator=g, dtype=torch.float64), dim=-1)
        split = [float(t) for t in losses.info_nce_split(z[0], z[1], z[2])]
        ex = losses.info_nce_split_exact(random_world(3, 5, 4, 3, view_noise=0.5, radius=1.0, seed=0))
        w = near_threshold_world(2, 6, 4, 3, centre_cosine=-1.0, seed=0)
        rhs = bounds.theorem3_rhs_pairs(float(losses.info_nce_split_exact(w).L2),
                                        bounds.tau_book(metrics.r_eps(w, 0.0), 0.0), w.class_masses(), 0.0)
        return {"split": split, "exact": [float(ex.L1), float(ex.L2), 2 * float(ex.L1) + 2],
                "rhs": float(np.min(rhs))}
    if name == "ch08_richness":
        from cssl import claims
        ref = claims.paired_effect([0.71, 0.69, 0.74, 0.70, 0.72], [0.60, 0.66, 0.61, 0.65, 0.58])
        return {"verdict": [ref[0], ref[1], ref[2], ref[4]]}
    if name == "ch12_lipschitz":
        from torch import nn
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).double()
        upper = 1.0
        for layer in net[::2]:
            upper *= float(torch.linalg.svdvals(layer.weight.detach())[0])
        return {"upper": upper, "lower": 2.0, "normalised": 3.0}
    raise KeyError(name)


# ----------------------------------------------------------------------------- the submissions
LOOP = "    while True:\n        pass\n"


def _submissions(name: str) -> dict:
    """``{variant: (replacements, expectation)}``; replacements map a top-level name to its new source."""
    pv = _public_values(name)
    if name == "ch02_concentration":
        q1, q2, q3 = "q1_augmented_distance", "q2_sigma", "q3_delta_half"
        sigma_counts = '''
def sigma_of(world, delta):
    D = concentration.augmented_distance(world.views)
    fractions = []
    for k in range(world.num_classes):
        idx = world.class_members(k)
        best = concentration.max_weight_clique((D[idx][:, idx] <= delta).numpy(), torch.ones(len(idx)))
        fractions.append(best.weight / len(idx))
    return float(min(fractions))
'''
        return {
            "wrong_no_augmentation": ({  # d_A of the clean points only; sigma counts points, not mass
                "augmented_distance_pair": "def augmented_distance_pair(a, b):\n"
                                           "    return float((torch.as_tensor(a)[0] - torch.as_tensor(b)[0]).norm())\n",
                "sigma_of": sigma_counts}, ("below", 0.6)),
            "wrong_max_and_mean": ({  # max over view pairs; mean over classes; last delta instead of first
                "augmented_distance_pair": "def augmented_distance_pair(a, b):\n"
                                           "    return float(torch.cdist(torch.as_tensor(a, dtype=torch.float64),"
                                           " torch.as_tensor(b, dtype=torch.float64)).max())\n",
                "sigma_of": sigma_counts.replace("float(min(fractions))", "float(sum(fractions) / len(fractions))"),
                "delta_half": "def delta_half(images, labels, letters, deltas, seed):\n"
                              "    est = concentration.estimate_sigma(images, Augmentation(letters), 8, deltas, "
                              "labels=labels, generator=torch.Generator().manual_seed(seed))\n"
                              "    reached = torch.as_tensor(deltas)[est.sigma >= 0.5]\n"
                              "    return float(reached[-1]) if len(reached) else math.nan\n"}, ("below", 0.6)),
            "wrong_squared_and_strict": ({  # squared distance; d_A < delta; 0.0 when never reached
                "augmented_distance_pair": "def augmented_distance_pair(a, b):\n"
                                           "    a, b = torch.as_tensor(a, dtype=torch.float64), "
                                           "torch.as_tensor(b, dtype=torch.float64)\n"
                                           "    return float((a[:, None] - b[None]).pow(2).sum(-1).min())\n",
                "sigma_of": sigma_counts.replace("<= delta", "< delta").replace("torch.ones(len(idx))",
                                                                               "world.weights[idx]")
                .replace("best.weight / len(idx)", "best.weight / float(world.weights[idx].sum())"),
                "delta_half": "def delta_half(images, labels, letters, deltas, seed):\n"
                              "    est = concentration.estimate_sigma(images, Augmentation(letters), 8, deltas, "
                              "labels=labels, generator=torch.Generator().manual_seed(seed))\n"
                              "    reached = torch.as_tensor(deltas)[est.sigma > 0.5]\n"
                              "    return float(reached[0]) if len(reached) else 0.0\n"}, ("below", 0.6)),
            "hardcoded": ({
                "augmented_distance_pair": f"def augmented_distance_pair(a, b):\n    return {pv['d']!r}\n",
                "sigma_of": f"def sigma_of(world, delta):\n    return {pv['sigma']!r}\n",
                "delta_half": "def delta_half(images, labels, letters, deltas, seed):\n    return 1.0\n",
                "halves": 'halves = {"a": 3.0, "acd": 1.5}\n'}, ("at_most", 0.2)),
            "forbidden": ({
                "augmented_distance_pair": "def augmented_distance_pair(a, b):\n"
                                           "    a, b = torch.as_tensor(a), torch.as_tensor(b)\n"
                                           "    V = max(len(a), len(b))\n"
                                           "    pad = lambda t: torch.cat([t, t[:1].expand(V - len(t), -1)])\n"
                                           "    views = torch.stack([pad(a), pad(b)])\n"
                                           "    return float(concentration.augmented_distance(views)[0, 1])\n",
                "sigma_of": "def sigma_of(world, delta):\n"
                            "    return concentration.sigma_of_delta(world, delta, method='exact')[0]\n"},
                ("zero_on", [q1, q2])),
            "raises": ({
                "augmented_distance_pair": "def augmented_distance_pair(a, b):\n"
                                           "    raise NotImplementedError('later')\n",
                "delta_half": "def delta_half(images, labels, letters, deltas, seed)\n    return 0.0\n"},
                ("zero_on", [q1, q3])),
            "loops": ({"sigma_of": "def sigma_of(world, delta):\n" + LOOP}, ("zero_on", [q2])),
        }
    if name == "ch03_theorem1":
        q1, q2, q3 = "q1_r_eps", "q2_theorem1", "q3_printed_reading"
        fixed_world = '''
def printed_counterexample(eps):
    angles = lambda a: torch.stack([torch.cos(torch.tensor(a)), torch.sin(torch.tensor(a))], -1).double()
    step = 2 * np.arcsin(0.025 / 2)
    rows = [[0.0, step, 0.0]] * 3 + [[np.pi - 0.3, 0.0, step]] + [[np.pi, np.pi + step, np.pi]] * 4
    return World(angles(rows), [0, 0, 0, 0, 1, 1, 1, 1]), 0.0
'''
        t1 = '''
def theorem1_on_world(world, delta, eps):
    sigma = main_parts(world, delta, method="exact").sigma
    R = metrics.r_eps(world, eps)
    p = world.class_masses()
    rho = float(bounds.rho_max(sigma, delta, eps, R, p, 1.0, 1.0))
    delta_mu = min(max(metrics.delta_mu(world, 1.0), 0.0), 1.0)
    threshold = float(bounds.theorem1_threshold(rho, delta_mu, 1.0))
    return {"sigma": sigma, "R_eps": R, "rho_max": rho, "threshold": threshold,
            "condition": bool(metrics.max_centre_inner_product(world) < threshold),
            "bound": (1 - sigma) + R, "err": metrics.nearest_centre_error(world)}
'''
        return {
            "wrong_counts_uniform_fixed": ({  # fraction of points, >=; uniform p; one fixed world
                "r_eps_of": "def r_eps_of(world, eps):\n    v = world.views\n"
                            "    spread = (v[:, :, None] - v[:, None]).norm(dim=-1).amax(dim=(1, 2))\n"
                            "    return float((spread >= eps).double().mean())\n",
                "theorem1_on_world": t1.replace("p = world.class_masses()",
                                                "p = np.full(world.num_classes, 1 / world.num_classes)"),
                "printed_counterexample": fixed_world}, ("below", 0.6)),
            "wrong_mean_pmin_threshold": ({  # mean view distance; p[0] for min p; 2 sqrt(rho) threshold
                "r_eps_of": "def r_eps_of(world, eps):\n    v = world.views\n"
                            "    spread = (v[:, :, None] - v[:, None]).norm(dim=-1).mean(dim=(1, 2))\n"
                            "    return float(world.weights[spread > eps].sum())\n",
                "theorem1_on_world": t1.replace("p = world.class_masses()",
                                                "p = np.full(world.num_classes, float(world.class_masses()[0]))")
                .replace("threshold = float(bounds.theorem1_threshold(rho, delta_mu, 1.0))",
                         "threshold = 1 - rho - 2 * math.sqrt(rho) - delta_mu / 2")}, ("below", 0.6)),
            "wrong_printed_reading": ({  # R_eps read as P[S_eps]; counterexample whose views are aligned
                "theorem1_on_world": t1.replace("R = metrics.r_eps(world, eps)",
                                                "R = float(world.weights[metrics.aligned_mask(world, eps)].sum())"),
                "printed_counterexample": fixed_world.replace("0.025 / 2", "eps / 4")}, ("below", 0.6)),
            "hardcoded": ({
                "r_eps_of": f"def r_eps_of(world, eps):\n    return {pv['r']!r}[eps]\n",
                "theorem1_on_world": f"def theorem1_on_world(world, delta, eps):\n    return {pv['t1']!r}\n",
                "printed_counterexample": fixed_world}, ("at_most", 0.2)),
            "forbidden": ({
                "r_eps_of": "def r_eps_of(world, eps):\n    return metrics.r_eps(world, eps)\n",
                "theorem1_on_world": "def theorem1_on_world(world, delta, eps):\n"
                                     "    sigma = main_parts(world, delta, method='exact').sigma\n"
                                     "    c = bounds.theorem1_check(world, sigma, delta, eps, 1.0, 1.0)\n"
                                     "    return {'sigma': sigma, 'R_eps': c.R_eps, 'rho_max': c.rho_max,\n"
                                     "            'threshold': c.threshold, 'condition': c.condition_holds,\n"
                                     "            'bound': c.bound, 'err': c.err}\n"}, ("zero_on", [q1, q2])),
            "raises": ({
                "theorem1_on_world": "def theorem1_on_world(world, delta, eps):\n    return {}['sigma']\n",
                "printed_counterexample": "def printed_counterexample(eps):\n    return World(, 0.0\n"},
                ("zero_on", [q2, q3])),
            "loops": ({"r_eps_of": "def r_eps_of(world, eps):\n" + LOOP}, ("zero_on", [q1])),
        }
    if name == "ch05_infonce":
        q1, q2, q3 = "q1_batch_split", "q2_exact_split", "q3_theorem3"
        split = '''
def infonce_split(z1, z2, zneg):
    a = (z1 * z2).sum(dim=1)
    b = (z1 * zneg).sum(dim=1)
    L1 = 0.5 * (z1 - z2).pow(2).sum(dim=1).mean() - 1.0
    L2 = torch.logaddexp(a, b).mean()
    return float(L1), float(L2)
'''
        exact_no_weights = '''
def exact_parts(world):
    v = world.views
    sq = (v[:, :, None, :] - v[:, None, :, :]).pow(2).sum(dim=-1)
    L_align = float(sq.mean())
    a = torch.einsum("nsd,ntd->nst", v, v)
    b = torch.einsum("nsd,mud->nsmu", v, v)
    L2 = float(torch.logaddexp(a[:, :, :, None, None], b[:, :, None, :, :]).mean())
    return 0.5 * L_align - 1.0, L2, L_align
'''
        margin = '''
def theorem3_margin(world, eps):
    L2 = float(losses.info_nce_split_exact(world).L2)
    R = metrics.r_eps(world, eps)
    p = world.class_masses()
    rhs = bounds.theorem3_rhs_pairs(L2, bounds.tau_book(R, eps), p, eps)
    mu = bounds.off_diagonal_pairs(metrics.centre_inner_products(world))
    return float(np.min(rhs - mu)), float(np.min(rhs))
'''
        return {
            "wrong_half_self_uniform": ({  # L1 without 1/2; negatives from the same point; uniform p
                "infonce_split": split.replace("0.5 * (z1 - z2)", "(z1 - z2)"),
                "exact_parts": exact_no_weights.replace("b = torch.einsum(\"nsd,mud->nsmu\", v, v)",
                                                        "b = torch.einsum(\"nsd,nud->nsu\", v, v)[:, :, None, :]"),
                "theorem3_margin": margin.replace("p = world.class_masses()",
                                                  "p = np.full(world.num_classes, 1 / world.num_classes)")},
                ("below", 0.6)),
            "wrong_no_logaddexp_printed_R": ({  # L2 = mean b; masses ignored; R_eps read as P[S_eps]
                "infonce_split": split.replace("torch.logaddexp(a, b).mean()", "b.mean()"),
                "exact_parts": exact_no_weights,
                "theorem3_margin": margin.replace(
                    "R = metrics.r_eps(world, eps)",
                    "R = float(world.weights[metrics.aligned_mask(world, eps)].sum())")}, ("below", 0.6)),
            "wrong_sign_max": ({  # L1 = -1/2 ||.||^2 + 1; L_align over distinct views; max instead of min
                "infonce_split": split.replace("L1 = 0.5 * (z1 - z2).pow(2).sum(dim=1).mean() - 1.0",
                                               "L1 = 1.0 - 0.5 * (z1 - z2).pow(2).sum(dim=1).mean()"),
                "theorem3_margin": margin.replace("float(np.min(rhs - mu)), float(np.min(rhs))",
                                                  "float(np.max(rhs - mu)), float(np.max(rhs))")},
                ("below", 0.6)),
            "hardcoded": ({
                "infonce_split": f"def infonce_split(z1, z2, zneg):\n    return {tuple(pv['split'])!r}\n",
                "exact_parts": f"def exact_parts(world):\n    return {tuple(pv['exact'])!r}\n",
                "theorem3_margin": f"def theorem3_margin(world, eps):\n    return 0.5, {pv['rhs']!r}\n"},
                ("at_most", 0.2)),
            "forbidden": ({
                "infonce_split": "def infonce_split(z1, z2, zneg):\n"
                                 "    return tuple(float(t) for t in losses.info_nce_split(z1, z2, zneg))\n",
                "exact_parts": "def exact_parts(world):\n    s = losses.info_nce_split_exact(world)\n"
                               "    return float(s.L1), float(s.L2), float(metrics.alignment(world))\n"},
                ("zero_on", [q1, q2])),
            "raises": ({
                "infonce_split": "def infonce_split(z1, z2, zneg):\n    return z1 @ z2\n",
                "exact_parts": "def exact_parts(world):\n    return world.views.sum(\n"},
                ("zero_on", [q1, q2])),
            "loops": ({"theorem3_margin": "def theorem3_margin(world, eps):\n" + LOOP}, ("zero_on", [q3])),
        }
    if name == "ch08_richness":
        q1, q2 = "q1_paired_verdict", "q2_removal_verdicts"
        verdict = '''
def paired_verdict(higher, lower):
    d = np.asarray(higher, dtype=float) - np.asarray(lower, dtype=float)
    n, effect = d.size, float(d.mean())
    half = float(stats.t.ppf(0.975, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    low, high = effect - half, effect + half
    verdict = "reproduces" if low > 0 else "reversed" if high < 0 else "inconclusive"
    return effect, low, high, verdict
'''
        removal = '''
def removal_verdicts(records, method, cells, seeds, step=None):
    key = "knn" if step is None else "knn_top1"
    acc = study.seed_matrix(records, key, method, cells, seeds, step=step)
    out = {}
    for i in range(len(cells) - 1):
        effect, _, _, _, verdict = claims.paired_effect(acc[i], acc[i + 1])
        out[(cells[i], cells[i + 1])] = (effect, verdict)
    return out
'''
        return {
            "wrong_unpaired_last_entry": ({  # a two-sample interval; always the last history entry
                "paired_verdict": verdict.replace(
                    "half = float(stats.t.ppf(0.975, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)",
                    "half = float(stats.t.ppf(0.975, 2 * n - 2)) * math.sqrt((np.var(higher, ddof=1)"
                    " + np.var(lower, ddof=1)) / n)"),
                "removal_verdicts": removal.replace(
                    'acc = study.seed_matrix(records, key, method, cells, seeds, step=step)',
                    'acc = study.seed_matrix([{**r, "knn": r["history"][-1]["knn_top1"]} for r in records],'
                    ' "knn", method, cells, seeds)')}, ("below", 0.6)),
            "wrong_normal_reversed": ({  # 1.96 instead of the t quantile; the poorer row first
                "paired_verdict": verdict.replace("float(stats.t.ppf(0.975, n - 1))", "1.96"),
                "removal_verdicts": removal.replace("claims.paired_effect(acc[i], acc[i + 1])",
                                                    "claims.paired_effect(acc[i + 1], acc[i])")}, ("below", 0.6)),
            "wrong_ddof_global_seeds": ({  # population std; the notebook's SEEDS instead of the argument
                "paired_verdict": verdict.replace("d.std(ddof=1)", "d.std()"),
                "removal_verdicts": removal.replace("cells, seeds, step=step)", "cells, SEEDS, step=step)")},
                ("below", 0.6)),
            "hardcoded": ({
                "paired_verdict": f"def paired_verdict(higher, lower):\n    return {tuple(pv['verdict'])!r}\n",
                "removal_verdicts": "def removal_verdicts(records, method, cells, seeds, step=None):\n"
                                    "    return {(a, b): (0.0, 'inconclusive') for a, b in zip(cells, cells[1:])}\n"},
                ("at_most", 0.2)),
            "forbidden": ({
                "paired_verdict": "def paired_verdict(higher, lower):\n"
                                  "    e = claims.paired_effect(higher, lower)\n    return e[0], e[1], e[2], e[4]\n"},
                ("zero_on", [q1])),
            "raises": ({"removal_verdicts": "def removal_verdicts(records, method, cells, seeds, step=None):\n"
                                            "    return records[method]\n"}, ("zero_on", [q2])),
            "loops": ({"paired_verdict": "def paired_verdict(higher, lower):\n" + LOOP}, ("zero_on", [q1])),
        }
    if name == "ch12_lipschitz":
        q1, q2, q3 = "q1_upper", "q2_lower", "q3_normalised"
        upper = '''
def lipschitz_upper(model):
    bound = 1.0
    for layer in model:
        if isinstance(layer, nn.Linear):
            bound *= float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2))
    return bound
'''
        lower = '''
def lipschitz_lower(fn, inputs):
    x = torch.as_tensor(inputs, dtype=torch.float64)
    with torch.no_grad():
        y = torch.as_tensor(fn(x), dtype=torch.float64)
    dx = (x[:, None, :] - x[None, :, :]).norm(dim=-1)
    dy = (y[:, None, :] - y[None, :, :]).norm(dim=-1)
    keep = dx > 0
    return float((dy[keep] / dx[keep]).max())
'''
        normalised = '''
def normalised_bound(g, inputs, r):
    with torch.no_grad():
        norms = g(torch.as_tensor(inputs, dtype=torch.float64)).norm(dim=1)
    m = float(norms.min())
    if m <= 0:
        raise ValueError("zero norm")
    return r * lipschitz_upper(g) / m
'''
        return {
            "wrong_frobenius_squared_max": ({  # Frobenius norms; squared distances; max norm instead of min
                "lipschitz_upper": upper.replace("ord=2", "ord='fro'"),
                "lipschitz_lower": lower.replace(".norm(dim=-1)", ".pow(2).sum(dim=-1)"),
                "normalised_bound": normalised.replace("m = float(norms.min())", "m = float(norms.max())")},
                ("below", 0.6)),
            "wrong_max_consecutive_no_r": ({  # largest layer norm; consecutive pairs only; r forgotten
                "lipschitz_upper": upper.replace("bound *= ", "bound = max(bound, ").replace(
                    "ord=2))", "ord=2)))").replace("bound = 1.0", "bound = 0.0"),
                "lipschitz_lower": "def lipschitz_lower(fn, inputs):\n"
                                   "    x = torch.as_tensor(inputs, dtype=torch.float64)\n"
                                   "    with torch.no_grad():\n        y = fn(x)\n"
                                   "    return float(((y[1:] - y[:-1]).norm(dim=1) / (x[1:] - x[:-1]).norm(dim=1))"
                                   ".nan_to_num(0.0).max())\n",
                "normalised_bound": normalised.replace("return r * lipschitz_upper(g) / m",
                                                       "return lipschitz_upper(g) / m")}, ("below", 0.6)),
            "wrong_sum_inverted_no_check": ({  # sum of norms; ratio inverted; no error at a zero norm
                "lipschitz_upper": upper.replace("bound *= ", "bound += ").replace("bound = 1.0", "bound = 0.0"),
                "lipschitz_lower": lower.replace("(dy[keep] / dx[keep])", "(dx[keep] / dy[keep])"),
                "normalised_bound": normalised.replace('    if m <= 0:\n        raise ValueError("zero norm")\n',
                                                       "")}, ("below", 0.6)),
            "hardcoded": ({
                "lipschitz_upper": f"def lipschitz_upper(model):\n    return {pv['upper']!r}\n",
                "lipschitz_lower": f"def lipschitz_lower(fn, inputs):\n    return {pv['lower']!r}\n",
                "normalised_bound": f"def normalised_bound(g, inputs, r):\n    return {pv['normalised']!r}\n"},
                ("at_most", 0.2)),
            "forbidden": ({
                "lipschitz_upper": "def lipschitz_upper(model):\n    bound = 1.0\n"
                                   "    for layer in model:\n        if isinstance(layer, nn.Linear):\n"
                                   "            W = layer.weight.detach()\n"
                                   "            bound *= lipschitz.operator_norm(lambda v: v @ W.T, (layer.in_features,))\n"
                                   "    return float(bound)\n",
                "lipschitz_lower": "def lipschitz_lower(fn, inputs):\n    with torch.no_grad():\n"
                                   "        return lipschitz.pairwise_lipschitz_lower(inputs, fn(inputs)).value\n"},
                ("zero_on", [q1, q2])),
            "raises": ({"lipschitz_lower": "def lipschitz_lower(fn, inputs):\n    raise RuntimeError('todo')\n",
                        "normalised_bound": "def normalised_bound(g, inputs, r):\n  return r\n    pass\n"},
                       ("zero_on", [q2, q3])),
            "loops": ({"lipschitz_upper": "def lipschitz_upper(model):\n" + LOOP}, ("zero_on", [q1])),
        }
    raise KeyError(name)


def _replace_top_level(source: str, replacements: dict) -> tuple[str, set]:
    """Replace top-level ``def name`` / ``name = ...`` statements of a cell; return the new source and the
    names replaced."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source, set()
    lines = source.splitlines(keepends=True)
    done, edits = set(), []
    for node in tree.body:
        target = node.name if isinstance(node, ast.FunctionDef) else \
            node.targets[0].id if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) else None
        if target in replacements:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
            edits.append((start, node.end_lineno, replacements[target].strip("\n") + "\n"))
            done.add(target)
    for start, end, text in sorted(edits, reverse=True):
        lines[start:end] = [text]
    return "".join(lines), done


def write_submission(solutions: Path, replacements: dict, dest: Path) -> Path:
    nb = nbformat.read(solutions, as_version=4)
    found = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, done = _replace_top_level(cell.source, replacements)
            found |= done
    missing = set(replacements) - found
    assert not missing, f"{solutions.name}: no top-level definition of {sorted(missing)}"
    nbformat.write(nb, dest)
    return dest


# ----------------------------------------------------------------------------- building and grading
ALL = sorted(m.name for m in build_assignments.find_masters())


def _grade(zip_path: Path, subs: list[Path], csv_path: Path) -> tuple[dict, float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "build_assignments.py"), "--grade", str(zip_path),
                           *map(str, subs), "--timeout", str(CELL_TIMEOUT), "--call-timeout", str(CALL_TIMEOUT),
                           "--csv", str(csv_path)], capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(csv_path) as f:
        rows = {Path(r["submission"]).stem: r for r in csv.DictReader(f)}
    return rows, elapsed, proc.stderr


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("grading")
    t0 = time.perf_counter()
    built = {r["name"]: r for r in build_assignments.build(out=out / "build", check=False)}
    build_s = time.perf_counter() - t0
    jobs = {}
    for name in ALL:
        folder = out / "submissions" / name
        folder.mkdir(parents=True)
        subs = {"correct": write_submission(built[name]["solutions"], {}, folder / "correct.ipynb")}
        for variant, (replacements, _) in _submissions(name).items():
            subs[variant] = write_submission(built[name]["solutions"], replacements, folder / f"{variant}.ipynb")
        jobs[name] = (built[name]["autograder"], subs)
    t1 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:      # two grading processes side by side
        futures = {name: pool.submit(_grade, zip_path, list(subs.values()), out / f"{name}.csv")
                   for name, (zip_path, subs) in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    grade_s = time.perf_counter() - t1
    n_subs = sum(len(subs) for _, subs in jobs.values())
    print(f"\nassignment grading: build {build_s:.0f} s; {n_subs} submissions graded in {grade_s:.0f} s "
          f"(two processes)", file=sys.stderr)
    for name, (rows, elapsed, _) in results.items():
        summary = ", ".join(f"{v} {100 * float(r['score']) / float(r['possible']):.0f}% ({float(r['seconds']):.0f} s)"
                            for v, r in rows.items())
        print(f"  {name} ({elapsed:.0f} s): {summary}", file=sys.stderr)
    return {name: rows for name, (rows, _, _) in results.items()}


def _scores(row: dict, name: str) -> tuple[float, float, dict]:
    master = build_assignments.read_master(ROOT / "assignments" / name / f"{name}.ipynb")
    questions = {q: float(row[q]) for q in master.points}
    return float(row["score"]), float(row["possible"]), questions


@pytest.mark.parametrize("name", ALL)
def test_every_assignment_has_the_graded_submissions(name):
    variants = _submissions(name)
    kinds = [exp[0] for _, exp in variants.values()]
    assert kinds.count("below") >= 3 and "at_most" in kinds
    assert {"hardcoded", "forbidden", "raises", "loops"} <= set(variants)


@pytest.mark.parametrize("name", ALL)
def test_scores_of_correct_wrong_hardcoded_forbidden_raising_and_looping_submissions(graded, name):
    master = build_assignments.read_master(ROOT / "assignments" / name / f"{name}.ipynb")
    rows = graded[name]
    score, possible, questions = _scores(rows["correct"], name)
    assert possible == sum(master.points.values()) and score == possible, f"{name}: solutions get {questions}"
    for variant, (_, (kind, arg)) in _submissions(name).items():
        score, possible, questions = _scores(rows[variant], name)
        if kind == "below":
            assert score < arg * possible, f"{name} {variant}: {score}/{possible} {questions}"
        elif kind == "at_most":
            assert score <= arg * possible, f"{name} {variant}: {score}/{possible} {questions}"
        else:
            assert all(questions[q] == 0 for q in arg), f"{name} {variant}: {questions}"
            others = {q: s for q, s in questions.items() if q not in arg}
            assert all(s == master.points[q] for q, s in others.items()), \
                f"{name} {variant}: the other questions must be graded in full: {questions}"
