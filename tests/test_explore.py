"""Tests of :mod:`cssl.explore`: located d_A, Lipschitz constants on views, Theorem 2's affine model,
and the Theorem 1 figure/explorer."""
import itertools
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from cssl import bounds, explore, metrics
from cssl.concentration import augmented_distance
from cssl.worlds import World, random_world


# ------------------------------------------------------------------ closest_view_pair
def test_closest_view_pair_matches_augmented_distance_and_locates_the_pair():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=g, dtype=torch.float64)
    b = torch.randn(9, 5, generator=g, dtype=torch.float64)
    d, s, t = explore.closest_view_pair(a, b)
    assert d == float(augmented_distance(a[None], b[None])[0, 0])
    assert d == pytest.approx(float((a[s] - b[t]).norm()), abs=0)
    brute = min((float((a[i] - b[j]).norm()), i, j) for i in range(7) for j in range(9))
    assert (d, s, t) == pytest.approx(brute)


def test_closest_view_pair_on_images_and_shared_view():
    imgs = torch.rand(4, 3, 2, 2, dtype=torch.float64)
    other = torch.cat([torch.rand(2, 3, 2, 2, dtype=torch.float64), imgs[2:3]])
    d, s, t = explore.closest_view_pair(imgs, other)
    assert (d, s, t) == (0.0, 2, 2)


def test_closest_view_pair_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimension"):
        explore.closest_view_pair(torch.zeros(2, 3), torch.zeros(2, 4))


# ------------------------------------------------------------------ lipschitz_on_views
def test_lipschitz_of_a_linear_map_is_at_most_its_spectral_norm_and_exact_for_identity():
    w = random_world(2, 5, 4, 3, seed=0)
    assert explore.lipschitz_on_views(w, w) == pytest.approx(1.0)
    W = torch.tensor([[2.0, 0, 0], [0, 0.5, 0]], dtype=torch.float64)
    L = explore.lipschitz_on_views(w, w.map(lambda x: x @ W.T))
    assert 0.5 <= L <= 2.0 + 1e-12


def test_lipschitz_brute_force_and_blocks():
    w = random_world(2, 4, 3, 2, seed=3)
    feats = w.map(lambda x: torch.tanh(3 * x))
    x = w.views.reshape(-1, 2)
    y = feats.views.reshape(-1, 2)
    brute = max(float((y[i] - y[j]).norm() / (x[i] - x[j]).norm())
                for i, j in itertools.combinations(range(len(x)), 2) if float((x[i] - x[j]).norm()) > 0)
    assert explore.lipschitz_on_views(w, feats) == pytest.approx(brute)
    assert explore.lipschitz_on_views(w, feats, block=5) == pytest.approx(brute)


def test_lipschitz_is_infinite_when_equal_inputs_get_different_features():
    views = torch.zeros(2, 2, 1, dtype=torch.float64)
    feats = torch.tensor([[[0.0], [0.0]], [[1.0], [1.0]]], dtype=torch.float64)
    assert explore.lipschitz_on_views(World(views, [0, 1]), World(feats, [0, 1])) == math.inf


# ------------------------------------------------------------------ AffineAugmentationModel
def _model(n=1, m=2, seed=0, N=6, D=3, M=0.7):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(N, D, generator=g, dtype=torch.float64)
    off = torch.randn(N, m, D, generator=g, dtype=torch.float64)
    off[:, 0] = 0
    dirs = torch.linalg.qr(torch.randn(N, D, n, generator=g, dtype=torch.float64))[0]
    return explore.AffineAugmentationModel(pts, off, dirs, M, torch.arange(N) % 2)


@pytest.mark.parametrize("n", [1, 2])
def test_mean_world_gives_the_exact_alignment_of_the_continuous_model(n):
    model = _model(n=n)
    W = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]], dtype=torch.float64)
    exact = metrics.alignment(model.mean_world().map(lambda x: x @ W.T))
    # a fine grid converges to the continuous value (midpoint rule, error O(G^-2))
    fine = metrics.alignment(model.grid_world(200 if n == 1 else 40).map(lambda x: x @ W.T))
    assert fine == pytest.approx(exact, rel=1e-3)
    coarse = metrics.alignment(model.grid_world(3).map(lambda x: x @ W.T))
    assert abs(coarse - exact) > abs(fine - exact)


def test_mean_world_view_weights_follow_the_theorem():
    model = _model(n=2, m=3)
    world = model.mean_world()
    assert world.n_views == 2 * 3 * 4
    disc = world.views[:, :12]
    # each of the m = 3 discrete maps fills 4 of the 24 slots: weight 1/(2m)
    for gamma in range(3):
        same = (disc == (model.points + model.offsets[:, gamma])[:, None]).all(dim=2).sum(dim=1)
        assert bool((same == 4).all())


def test_sup_world_gives_the_exact_sup_and_the_grid_is_biased_low():
    model = _model(n=2)
    W = torch.tensor([[1.0, 0.0, 0.4], [0.0, 2.0, -1.0]], dtype=torch.float64)

    def f(x):
        return x @ W.T

    exact = metrics.sup_view_distance(model.sup_world().map(f))
    thetas = torch.rand(4000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    dense = torch.cat([model.points[:, None] + model.offsets, model.continuous_views(thetas)], dim=1)
    sampled = metrics.sup_view_distance(World(dense, model.labels).map(f))
    assert bool((sampled <= exact + 1e-12).all())
    assert torch.allclose(sampled, exact, atol=0.05)
    grid = metrics.sup_view_distance(model.grid_world(5).map(f))
    assert bool((grid <= exact + 1e-12).all())


def test_continuous_family_is_exactly_M_lipschitz():
    model = _model(n=2, M=1.3)
    th = torch.tensor([[0.1, 0.2], [0.9, 0.5]], dtype=torch.float64)
    v = model.continuous_views(th)
    assert torch.allclose((v[:, 0] - v[:, 1]).norm(dim=1),
                          torch.full((model.points.shape[0],), 1.3 * float((th[0] - th[1]).norm()), dtype=torch.float64))


def test_affine_model_validates():
    pts = torch.zeros(2, 3, dtype=torch.float64)
    off = torch.zeros(2, 1, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="orthonormal"):
        explore.AffineAugmentationModel(pts, off, torch.ones(2, 3, 1, dtype=torch.float64), 1.0, [0, 1])
    with pytest.raises(ValueError, match="offsets"):
        explore.AffineAugmentationModel(pts, torch.zeros(2, 1, 2), torch.zeros(2, 3, 1), 1.0, [0, 1])


# ------------------------------------------------------------------ Theorem 1 figure and explorer
def test_theorem1_figure_has_two_labelled_axes_and_matches_bounds():
    fig = explore.theorem1_threshold_figure(sigma=0.9, delta=0.1, eps=0.05, L=2.0, r=1.0, p_min=0.2,
                                            R_eps=0.03, delta_mu=0.1)
    ax1, ax2 = fig.axes[:2]
    for ax in (ax1, ax2):
        assert ax.get_xlabel() and ax.get_ylabel()
    rho = bounds.rho_max(0.9, 0.1, 0.05, 0.03, [0.2, 0.8], 2.0, 1.0)
    expected = bounds.theorem1_threshold(rho, 0.1, 1.0)
    marker = [line for line in ax1.get_lines() if len(line.get_xdata()) == 1][0]
    assert float(marker.get_ydata()[0]) == pytest.approx(expected)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_theorem1_explorer_has_the_sliders_and_redraws():
    pytest.importorskip("ipywidgets")
    box = explore.theorem1_explorer(sigma=0.8)
    controls, image = box.children
    sliders = {c.description: c for c in controls.children}
    assert set(sliders) == {"sigma", "delta", "eps", "L", "r", "p_min", "R_eps", "delta_mu"}
    assert sliders["sigma"].value == 0.8
    first = image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    sliders["eps"].value = 0.2
    assert image.value != first
    import matplotlib.pyplot as plt
    assert not plt.get_fignums()  # every rendered figure is closed
    with pytest.raises(ValueError, match="unknown"):
        explore.theorem1_explorer(bogus=1)


# ------------------------------------------------------------------ explorers for the static site
import json  # noqa: E402
import re  # noqa: E402

from cssl import static_explore  # noqa: E402


def _spec(explorer):
    html = explorer.to_html()
    match = re.search(r'<script type="application/json" id="[^"]+-spec">(.*?)</script>', html, re.S)
    assert match, "the explorer's HTML carries its figure as JSON"
    return json.loads(match.group(1).replace("<\\/", "</"))


def _frame(spec, key):
    return next(f for f in spec["frames"] if f["name"] == "-".join(map(str, key)))


def test_theorem1_static_explorer_frames_are_cssl_bounds():
    sigmas, r_eps, l_delta = (0.8, 0.95, 1.0), (0.0, 0.05), (0.0, 0.2)
    explorer = static_explore.theorem1_explorer(sigmas, r_eps, l_delta, p_min=0.2, delta_mu=0.1, points=11)
    assert len(explorer.frames) == 3 * 2 * 2
    spec = _spec(explorer)
    eps = np.array(spec["data"][0]["x"])
    sigma_axis = np.array(spec["data"][3]["x"])
    for key in [(0, 0, 0), (1, 1, 0), (2, 1, 1)]:
        s, R, ld = sigmas[key[0]], r_eps[key[1]], l_delta[key[2]]
        paper, corrected, shade_p, shade_c, bound, dot = _frame(spec, key)["data"]
        for values, coefficient in ((paper, "paper"), (corrected, "corrected")):
            rho = bounds.rho_max(s, ld, eps, R, [0.2, 0.8], 1.0, 1.0, coefficient=coefficient)
            assert values["y"] == pytest.approx(bounds.theorem1_threshold(rho, 0.1, 1.0), rel=1e-4, abs=1e-4)
        rho0 = bounds.rho_max(sigma_axis, ld, 0.0, R, [0.2, 0.8], 1.0, 1.0)
        can_hold = np.asarray(bounds.theorem1_threshold(rho0, 0.1, 1.0)) > -1
        assert [v is not None for v in shade_p["y"]] == can_hold.tolist()
        assert bound["y"] == pytest.approx(bounds.theorem1_bound(sigma_axis, R), rel=1e-4)
        assert dot["y"] == pytest.approx([bounds.theorem1_bound(s, R)], rel=1e-4)
    # the frames differ: moving a slider changes the figure
    assert _frame(spec, (0, 0, 0))["data"][0]["y"] != _frame(spec, (2, 0, 0))["data"][0]["y"]


def test_theorem3_static_explorer_frames_are_cssl_bounds_with_gaps_for_minus_infinity():
    explorer = static_explore.theorem3_explorer(L2=(0.1, 1.2), R_eps=(0.0, 0.1), classes=(2, 10), points=9)
    spec = _spec(explorer)
    eps = np.linspace(0.0, bounds.TAU_BOOK_EPS_MAX, 9)  # the page rounds to 5 digits
    assert spec["data"][3]["x"] == pytest.approx(eps, rel=1e-4)
    for key in [(1, 0, 0), (1, 1, 1), (0, 0, 0)]:
        l2, R, k = (0.1, 1.2)[key[0]], (0.0, 0.1)[key[1]], (2, 10)[key[2]]
        rhs = np.asarray(bounds.theorem3_rhs(l2, 4 * R, 1 / k, 1 / k, eps))
        got = _frame(spec, key)["data"][0]["y"]
        assert [v is None for v in got] == (~np.isfinite(rhs)).tolist()
        finite = np.isfinite(rhs)
        assert np.array([v for v in got if v is not None]) == pytest.approx(rhs[finite], rel=1e-4)
    # L2 = 0.1 with K = 2 lies below the floor: for small eps the log's argument is <= 0, a gap
    gaps = [v is None for v in _frame(spec, (0, 0, 0))["data"][0]["y"]]
    assert gaps[0] and not gaps[-1]
    assert "vacuous" in _frame(spec, (1, 0, 0))["layout"]["title"]["subtitle"]["text"]


def test_results_explorer_reads_the_committed_runs():
    from cssl import runcache

    explorer = static_explore.results_explorer("table1", methods=["simclr"], seeds=[0, 1])
    spec = _spec(explorer)
    assert [c.values for c in explorer.controls][1] == ("kNN top-1", "nearest centre")
    steps = explorer.controls[0].values
    frame = _frame(spec, (len(steps) - 1, 0))
    cells = ["abcde", "abcd", "abc", "ab", "a"]
    expected = []
    for cell in cells:
        accs = []
        for m, c, s, config in runcache.grid_configs("table1", methods=["simclr"], seeds=[0, 1]):
            if c == cell:
                accs.append(100 * runcache.load_run("table1", c, config).final["knn_top1"])
        expected.append(np.mean(accs))
    assert frame["data"][1]["y"] == pytest.approx(expected, rel=1e-4)
    assert spec["layout"]["xaxis"]["ticktext"] == cells


def test_results_explorer_refuses_missing_runs(tmp_path):
    with pytest.raises(ValueError, match="missing or stale.*reproduce table1"):
        static_explore.results_explorer("table1", methods=["simclr"], seeds=[0], root=tmp_path)


def test_sigma_explorer_is_grid_concentration_on_the_same_images():
    from cssl import study
    from cssl.experiments import profile_config
    from cssl.train import load_dataset

    data = load_dataset(profile_config("book", "simclr", device="cpu"))
    explorer = static_explore.sigma_explorer("table1", n_images=36, views=(1, 2), spaces=("standardised",),
                                             n_deltas=6, data=data)
    assert len(explorer.frames) == 2
    spec = _spec(explorer)
    x, y = study.eval_subset(data, 36)
    grid = np.array(_frame(spec, (1,))["data"][0]["x"])  # one space: no slider for it
    direct = study.grid_concentration("table1", x, y, grid, n_views=2, profile="book")
    for i, cell in enumerate(["abcde", "abcd", "abc", "ab", "a"]):
        curve = _frame(spec, (1,))["data"][i]["y"]
        assert curve == pytest.approx(direct[cell].sigma.numpy(), rel=1e-4)
        assert np.all(np.diff(curve) >= 0)


def test_sigma_explorer_from_a_chapters_estimates_and_its_errors():
    from cssl import study
    from cssl.experiments import profile_config
    from cssl.train import load_dataset

    data = load_dataset(profile_config("book", "simclr", device="cpu"))
    x, y = study.eval_subset(data, 24)
    cells = [("ab", {"letters": "ab"}), ("a", {"letters": "a"})]
    est = study.grid_concentration(cells, x, y, [0.0], n_views=2, profile="book", standardize=False)
    explorer = static_explore.sigma_explorer_from({(2, "raw"): est}, n_deltas=4, name="sigma-ch8")
    assert len(explorer.frames) == 1 and explorer.name == "sigma-ch8"
    assert [c.label for c in explorer.controls] == ["input space"]  # no slider for the one T
    frame = _frame(_spec(explorer), (0,))
    pooled = np.concatenate([e.pair_distances().numpy() for e in est.values()])
    grid = np.linspace(0.0, np.quantile(pooled, 0.9), 4)
    assert frame["data"][1]["y"] == pytest.approx(est["a"].at(grid).sigma.numpy(), rel=1e-4)
    assert "on 24 test images" in frame["layout"]["title"]["text"]
    two = static_explore.sigma_explorer_from({(2, "raw"): est, (2, "standardised"): est}, n_deltas=3)
    assert [c.values for c in two.controls] == [("raw", "standardised")]
    with pytest.raises(ValueError, match="another number of views"):
        static_explore.sigma_explorer_from({(3, "raw"): est})
    with pytest.raises(ValueError, match="every \\(T, space\\) pair"):
        static_explore.sigma_explorer_from({(2, "raw"): est, (4, "standardised"): est})
    with pytest.raises(ValueError, match="non-empty dict"):
        static_explore.sigma_explorer_from({})


def test_static_explorer_html_is_self_contained_and_validated():
    explorer = static_explore.theorem3_explorer(L2=(1.0, 1.5), R_eps=(0.0,), classes=(2,), points=5)
    html = explorer.to_html()
    assert not re.search(r'<script[^>]+src=', html), "plotly.js is loaded from the site, never a fixed URL"
    assert "http://" not in html and "https://" not in html
    assert static_explore.PLOTLY_JS in html and "data-content_root" in html
    # without scripts (an untrusted notebook) the reader sees why, not an empty box
    assert re.search(r'<p class="cssl-explorer-message">[^<]*book&#x27;s web page[^<]*bounds.theorem3_rhs', html)
    assert explorer._repr_html_() == html
    assert "2 frames" in repr(explorer) and "L2(f) (2)" in explorer.summary()
    spec = _spec(explorer)
    assert [s["name"] for s in spec["layout"]["sliders"]] == ["c0", "c1", "c2"]
    assert len({f["name"] for f in spec["frames"]}) == len(spec["frames"]) == 2
    bad = dict(type="scatter", x=[0, 1], colour="red")  # misspelt property: plotly's schema refuses it
    with pytest.raises(ValueError):
        static_explore.StaticExplorer("bad", [bad], {}, [static_explore.Control("a", ("1",))],
                                      lambda key: {"data": [dict(y=[0, 1])]}, frame_traces=[0])


def test_static_explorer_rejects_bad_input():
    ok = [dict(type="scatter", x=[0, 1])]
    control = static_explore.Control("a", ("1", "2"))
    with pytest.raises(ValueError, match="name"):
        static_explore.StaticExplorer("Bad Name", ok, {}, [control], lambda k: {"data": [{}]}, frame_traces=[0])
    with pytest.raises(ValueError, match="frame_traces lists 1"):
        static_explore.StaticExplorer("x", ok, {}, [control], lambda k: {"data": []}, frame_traces=[0])
    with pytest.raises(ValueError, match="at least one control"):
        static_explore.StaticExplorer("x", ok, {}, [], lambda k: {"data": [{}]}, frame_traces=[0])
    with pytest.raises(ValueError, match="initial index"):
        static_explore.Control("a", ("1",), initial=3)
    with pytest.raises(ValueError, match="sigmas entry"):
        static_explore.theorem1_explorer(sigmas=(0.0,))
    with pytest.raises(ValueError, match="spaces"):
        static_explore.sigma_explorer(spaces=("pixels",))


def test_write_plotly_js_serves_the_pinned_bundle(tmp_path):
    from plotly.offline import get_plotlyjs

    path = static_explore.write_plotly_js(tmp_path)
    assert path == tmp_path / static_explore.PLOTLY_JS
    assert path.read_text(encoding="utf-8") == get_plotlyjs()
    with pytest.raises(ValueError, match="site_dir"):
        static_explore.write_plotly_js(tmp_path / "absent")


def test_requirements_pin_the_plotly_that_is_installed():
    from pathlib import Path

    pins = (Path(__file__).resolve().parents[1] / "requirements.txt").read_text().splitlines()
    assert f"plotly=={static_explore.plotly_version()}" in pins


# ------------------------------------------------------------ Lemma 3.2 for every rho (thm-book-lem32-all)
from cssl.worlds import lemma32_proof_world, lemma32_slack_world  # noqa: E402


@pytest.mark.parametrize("h", [0.52, 0.6, 0.74])
@pytest.mark.parametrize("direction", [0.0, 2.0])
def test_lemma32_proof_steps_hold_with_rho_above_half(h, direction):
    w = lemma32_proof_world(h, eps=0.01, direction=direction)
    st = explore.lemma32_proof_steps(w, w, 0.0, 0.01, 1.0, 1.0, 0)
    assert st.rho == pytest.approx(h + 0.02) and st.rho > 0.5
    assert st.case == "rho > 1/2 (step 6)"
    assert st.holds, st.steps
    assert st.e_norm <= st.R
    chk = explore.lemma32_check(w, w, 0.0, 0.01, 1.0, 1.0)
    assert chk.hypothesis[0] and chk.worst_gap[0] < 0
    assert st.gap == pytest.approx(-chk.worst_gap[0])


def test_lemma32_proof_steps_small_rho_uses_jensen():
    w = lemma32_proof_world(0.3, eps=0.01)
    st = explore.lemma32_proof_steps(w, w, 0.0, 0.01, 1.0, 1.0, 0)
    assert st.case == "rho <= 1/2 (step 5)" and st.holds
    assert "step 5: |u - m| <= 2 rho" in st.margins


def test_lemma32_proof_steps_can_fail():
    w = lemma32_proof_world(0.6, eps=0.01)
    # a rho below h + a breaks step 1 (it is not an admissible constant), with the hypothesis still on
    st = explore.lemma32_proof_steps(w, w, 0.0, 0.01, 1.0, 1.0, 0, rho=0.55)
    assert not st.steps["step 1: h + a <= rho"] and not st.holds
    # the step-6 bound is the one a smaller rho would need: at rho = 0.55 with h + a = 0.62 it holds no more
    assert st.margins["step 1: h + a <= rho"] == pytest.approx(0.55 - 0.62)
    with pytest.raises(ValueError, match="hypothesis of Lemma 3.2 does not hold"):
        explore.lemma32_proof_steps(w, w, 0.0, 0.01, 1.0, 1.0, 0, rho=0.8)
    with pytest.raises(ValueError, match="l must be a class index"):
        explore.lemma32_proof_steps(w, w, 0.0, 0.01, 1.0, 1.0, 2)


@pytest.mark.parametrize("h", [0.55, 0.65, 0.75])
def test_lemma32_slack_worlds_refute_a_raised_threshold(h):
    w = lemma32_slack_world(h)
    chk = explore.lemma32_check(w, w, 0.0, 0.0, 1.0, 1.0)
    assert chk.rho[0] == pytest.approx(h, abs=2e-3) and chk.rho[0] > 0.5
    # the conclusion fails, so the printed lemma needs its hypothesis to fail: it does
    assert chk.worst_gap[0] >= 0 and not chk.hypothesis[0]
    c_world = chk.max_inner[0] - chk.threshold[0]
    assert 0.5 < c_world < 0.7
    # with the threshold raised by c_world + 0.01 the hypothesis holds and the conclusion fails
    assert chk.max_inner[0] < chk.threshold[0] + c_world + 0.01


def test_lemma32_slack_world_needs_a_configuration():
    with pytest.raises(ValueError, match="no stored configuration"):
        lemma32_slack_world(0.6)
    with pytest.raises(ValueError, match="rival_centre must have norm"):
        lemma32_slack_world(0.6, [0.0, 1.0, 0.0], [0.0, 2.0, 0.0])
