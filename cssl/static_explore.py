"""Explorers that work on the static site: precomputed plotly frames behind sliders, no kernel needed.

The ``ipywidgets`` explorers of :mod:`cssl.explore` recompute their figure in a running kernel, so they
work in Jupyter and on Binder but not on the published web page. The explorers here compute every
figure the sliders can ask for **when the page is built**, from the same :mod:`cssl` functions, and
hand them to `plotly.js <https://plotly.com/javascript/>`_ as animation frames: moving a slider only
switches frames in the browser.

* :func:`theorem1_explorer` -- Theorem 1: the threshold of condition (2) against ``eps`` for the
  paper's ``rho_max`` and the book's corrected one, and the bound (3) ``(1 - sigma) + R_eps``
  (:mod:`cssl.bounds`), over ``sigma``, ``R_eps`` and ``L delta / r``;
* :func:`sigma_explorer` -- Definition 1: the estimated ``sigma(delta)`` against ``delta`` for every
  augmentation set of an experiment (:func:`cssl.study.grid_concentration`), over the number of
  sampled views and the input space (:func:`sigma_explorer_from` for estimates a chapter already has);
* :func:`theorem3_explorer` -- Theorem 3: its right-hand side ``log(exp((L2 + tau)/(p_k p_l)) -
  exp(1 - eps))`` against ``eps`` with the book's ``tau = 4 R_eps`` (:func:`cssl.bounds.theorem3_rhs`),
  over ``L2``, ``R_eps`` and the number of balanced classes;
* :func:`results_explorer` -- one experiment's committed ``book`` runs (``results/book``, read with
  :func:`cssl.runcache.load_run`): accuracy of every seed and method per augmentation set, over the
  training step and the metric.

Each returns a :class:`StaticExplorer`, which displays itself as HTML in a notebook (the figure, its
sliders and a few lines of JavaScript that load plotly.js and connect the sliders). plotly.js is
served with the book, not from a network: ``_ext/plotly_assets.py`` copies the pinned plotly
package's bundle to :data:`PLOTLY_JS` in the built site (:func:`write_plotly_js`), and the page loads
it relative to the site's root, so the explorers work offline. Outside the book's site (e.g. in
JupyterLab) the figure says so and names the live ``ipywidgets`` version to use instead.
"""
from __future__ import annotations

import html
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import bounds
from ._validate import check_int, check_real

__all__ = ["PLOTLY_JS", "Control", "StaticExplorer", "write_plotly_js", "plotly_version",
           "theorem1_explorer", "sigma_explorer", "sigma_explorer_from", "theorem3_explorer", "results_explorer"]

#: Where the built site serves plotly.js, relative to the site's root.
PLOTLY_JS = "_static/plotly/plotly.min.js"
#: Width of the book's text column in pixels (the figures are laid out for it).
COLUMN_PX = 704
_FONT = dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size=14, color="#222")
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def plotly_version() -> str:
    """The version of the plotly package whose plotly.js the book serves."""
    import plotly

    return plotly.__version__


def write_plotly_js(site_dir) -> Path:
    """Write the pinned plotly package's ``plotly.min.js`` to ``<site_dir>/`` :data:`PLOTLY_JS`; return its path.

    Called by the book's Sphinx extension ``_ext/plotly_assets.py`` when a site is built, so the
    explorers load plotly.js from the site itself (offline, and always the version in requirements.txt).
    """
    from plotly.offline import get_plotlyjs

    site = Path(site_dir)
    if not site.is_dir():
        raise ValueError(f"site_dir must be an existing folder (the built site), got {site}")
    path = site / PLOTLY_JS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(get_plotlyjs(), encoding="utf-8")
    return path


# ------------------------------------------------------------------ the explorer object
@dataclass(frozen=True)
class Control:
    """One slider: its label (may hold plotly's ``<sub>``/``<i>`` markup) and the labels of its positions."""

    label: str
    values: tuple
    initial: int = 0

    def __post_init__(self):
        if not self.values:
            raise ValueError(f"control {self.label!r} needs at least one value")
        if not 0 <= self.initial < len(self.values):
            raise ValueError(f"control {self.label!r}: initial index {self.initial} outside 0..{len(self.values) - 1}")


def _clean(x):
    """JSON-ready copy: numpy to lists, floats to 5 significant digits, non-finite to ``None`` (a gap)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_clean(v) for v in x.tolist()]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return float(f"{v:.5g}") if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


class StaticExplorer:
    """A plotly figure with one precomputed frame per combination of slider positions.

    ``traces`` are the figure's traces (plotly dicts) and ``layout`` its layout; ``frame(index)``
    returns, for a tuple of slider positions, ``{"data": [...], "layout": {...}}``: new values for
    the traces listed in ``frame_traces`` (in that order) and layout changes (titles, ranges).
    Every frame is computed once, here. ``note`` names the live alternative for a running kernel.
    The figure is validated by plotly's Python package (a misspelt property is an error).
    """

    def __init__(self, name: str, traces: Sequence[dict], layout: dict, controls: Sequence[Control],
                 frame: Callable[[tuple], dict], *, frame_traces: Sequence[int], height: int = 560,
                 alt: str = "", note: str = ""):
        import plotly.graph_objects as go

        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name must be lower-case letters, digits and dashes (an HTML id), got {name!r}")
        self.name = name
        self.controls = tuple(controls)
        if not self.controls:
            raise ValueError("an explorer needs at least one control")
        self.height = check_int(height, "height", low=200)
        self.alt, self.note = alt, note
        self.frame_traces = [check_int(i, "frame_traces entry", low=0, high=len(traces) - 1) for i in frame_traces]
        keys = list(itertools.product(*(range(len(c.values)) for c in self.controls)))
        self.frames: dict[str, dict] = {}
        for key in keys:
            f = frame(key)
            if len(f.get("data", [])) != len(self.frame_traces):
                raise ValueError(f"frame {key} updates {len(f.get('data', []))} traces, "
                                 f"frame_traces lists {len(self.frame_traces)}")
            self.frames[self.key(key)] = {"name": self.key(key), "data": f["data"], "traces": self.frame_traces,
                                          "layout": f.get("layout", {})}
        self.initial = tuple(c.initial for c in self.controls)
        first = self.frames[self.key(self.initial)]
        data = [dict(t) for t in traces]
        for i, update in zip(self.frame_traces, first["data"]):
            data[i].update(update)
        layout = _merge(self._layout(layout), first["layout"])
        # validate with plotly's schema: a misspelt property or a bad value is an error here, not in the browser
        go.Figure(data=data, layout=layout,
                  frames=[go.Frame(name=f["name"], data=f["data"], traces=f["traces"], layout=f["layout"])
                          for f in list(self.frames.values())[:3]])
        self.figure = {"data": data, "layout": layout}

    @staticmethod
    def key(index: Sequence[int]) -> str:
        """The frame name of a tuple of slider positions, e.g. ``(2, 0, 1) -> "2-0-1"``."""
        return "-".join(str(int(i)) for i in index)

    def _layout(self, layout: dict) -> dict:
        n = len(self.controls)
        slider_h = 92
        out = _merge(dict(font=_FONT, autosize=True, height=self.height + slider_h * n,
                          margin=dict(l=70, r=50, t=70, b=70 + slider_h * n), hovermode="closest",
                          paper_bgcolor="white", plot_bgcolor="white",
                          legend=dict(font=dict(size=13))), layout)
        out["title"] = _merge(dict(x=0.01, xanchor="left", yref="container", y=1.0, yanchor="top",
                                   pad=dict(t=10), font=dict(size=14), subtitle=dict(font=dict(size=13))),
                              out.get("title", {}))
        plot_h = self.height - out["margin"]["t"] - 70  # the plotting area: height less the margins
        sliders = []
        for i, c in enumerate(self.controls):
            sliders.append(dict(
                name=f"c{i}", active=c.initial, x=0.0, len=1.0, xanchor="left",
                y=-(62 + slider_h * i) / plot_h, yanchor="top", pad=dict(t=30, b=0),
                currentvalue=dict(prefix=f"{c.label} = ", font=dict(size=14), xanchor="left"),
                font=dict(size=12),
                steps=[dict(label=str(v), value=str(j), method="skip", args=[]) for j, v in enumerate(c.values)]))
        out["sliders"] = sliders
        return out

    # ---------------------------------------------------------------- output
    def spec(self) -> dict:
        """The JSON the page hands to plotly.js: figure, frames, slider start and config."""
        return _clean({"data": self.figure["data"], "layout": self.figure["layout"],
                       "frames": list(self.frames.values()), "initial": list(self.initial),
                       "config": {"responsive": True, "displayModeBar": False, "scrollZoom": False}})

    def to_html(self) -> str:
        """The explorer as a self-contained HTML fragment (no external URL; plotly.js from the site)."""
        spec = json.dumps(self.spec(), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        div = f"cssl-explorer-{self.name}"
        fallback = "This explorer runs on the book's web page, which serves plotly.js. " + self.note
        loader = _LOADER.replace("@ID@", div).replace("@PLOTLY@", PLOTLY_JS)
        # the message stays when no script runs (an untrusted notebook); the loader replaces it
        return (f'<div class="cssl-explorer" id="{div}" data-state="" role="figure" '
                f'aria-label="{html.escape(self.alt)}" data-height="{self.figure["layout"]["height"]}" '
                f'style="width:100%;max-width:{COLUMN_PX}px"><p class="cssl-explorer-message">'
                f'{html.escape(fallback)}</p></div>\n'
                f'<script type="application/json" id="{div}-spec">{spec}</script>\n'
                f"<script>\n{loader}</script>\n")

    def summary(self) -> str:
        """One line: the frames, the sliders and the title of the first frame (markup removed)."""
        sliders = ", ".join(f"{_plain(c.label)} ({len(c.values)})" for c in self.controls)
        title = self.figure["layout"].get("title", {})
        title = _plain(" / ".join(t for t in (title.get("text", ""), title.get("subtitle", {}).get("text", "")) if t))
        return f"{self.name}: {len(self.frames)} frames; sliders {sliders}; first frame: {title}"

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"<StaticExplorer {self.summary()}>"


def _plain(text: str) -> str:
    """``text`` without plotly's HTML-like markup (``<i>``, ``<sub>``)."""
    return re.sub(r"<[^>]+>", "", text)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# Loads plotly.js once per page from the site's root (Sphinx writes it into <html data-content_root>),
# draws the first frame and switches frames when a slider moves. `data-state` holds the current frame
# name (read by the tests).
_LOADER = r"""(function () {
  var el = document.getElementById("@ID@");
  var spec = JSON.parse(document.getElementById("@ID@-spec").textContent);
  function siteRoot() {
    var root = document.documentElement.getAttribute("data-content_root");
    if (root !== null) return root;
    var s = document.querySelector('script[src*="_static/documentation_options.js"]');
    return s ? s.getAttribute("src").split("_static/documentation_options.js")[0] : null;
  }
  function plotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!window.csslPlotly) {
      window.csslPlotly = new Promise(function (resolve, reject) {
        var root = siteRoot();
        if (root === null) { reject(new Error("not on the book's site")); return; }
        var s = document.createElement("script");
        s.src = root + "@PLOTLY@";
        s.onload = function () { resolve(window.Plotly); };
        s.onerror = function () { reject(new Error("could not load " + s.src)); };
        document.head.appendChild(s);
      });
    }
    return window.csslPlotly;
  }
  var message = el.querySelector(".cssl-explorer-message");
  plotly().then(function (Plotly) {
    el.style.minHeight = el.getAttribute("data-height") + "px";
    if (message) message.remove();
    return Plotly.newPlot(el, spec.data, spec.layout, spec.config).then(function (gd) {
      return Plotly.addFrames(gd, spec.frames).then(function () {
        var state = spec.initial.slice();
        el.setAttribute("data-state", state.join("-"));
        gd.on("plotly_sliderchange", function (event) {
          state[parseInt(event.slider.name.slice(1), 10)] = parseInt(event.step.value, 10);
          var name = state.join("-");
          Plotly.animate(gd, [name], {mode: "immediate", frame: {duration: 0, redraw: true},
                                      transition: {duration: 0}}).then(function () {
            el.setAttribute("data-state", name);
          });
        });
      });
    });
  }).catch(function (error) {
    el.style.minHeight = "0";
    el.className += " cssl-explorer-unavailable";
    if (message) message.textContent += " (" + error.message + ")";
  });
})();
"""


def _title(text: str) -> dict:
    """A frame's title: the first line as plotly's title, the rest (after ``<br>``) as its subtitle."""
    head, _, rest = text.partition("<br>")
    return {"text": head, "subtitle": {"text": rest}}


def _fmt(v: float, spec: str = "g") -> str:
    """``v`` formatted with ``spec``, with a typographic minus sign."""
    return format(v, spec).replace("-", "−")


# ------------------------------------------------------------------ Theorem 1
def theorem1_explorer(sigmas: Sequence[float] = (0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 1.0),
                      R_eps: Sequence[float] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2),
                      L_delta: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.4), *, p_min: float = 0.1,
                      delta_mu: float = 0.0, eps_max: float = 0.5, points: int = 51) -> StaticExplorer:
    r"""Theorem 1's threshold (condition (2)) and bound (3) over ``sigma``, ``R_eps`` and ``L delta / r``.

    Top panel: ``threshold / r^2 = 1 - rho_max - sqrt(2 rho_max) - Delta_mu / 2`` (paper, eq. (2),
    :func:`cssl.bounds.theorem1_threshold`) against ``eps / r`` in ``[0, eps_max]``, with ``rho_max``
    the paper's ``2 (1 - sigma) + R_eps / p_min + sigma (L delta / r + 2 eps / r)`` and the book's
    corrected one (:func:`cssl.bounds.rho_max`). Below ``-1`` no encoder satisfies (2), since
    ``mu_k^T mu_l >= -r^2``. Bottom panel: the bound ``(1 - sigma) + R_eps`` of eq. (3)
    (:func:`cssl.bounds.theorem1_bound`) against ``sigma``, the current ``sigma`` marked, shaded where
    (2) can be met at all for some ``eps >= 0`` (the threshold at ``eps = 0`` above ``-1``; it falls
    as ``eps`` grows). ``L`` and ``delta`` enter only through ``L delta / r``, ``r`` only through
    ``eps / r``: the panels are in units of ``r`` (``r = 1``). ``p_min`` is the smallest class mass
    (``0.1``: ten balanced classes), ``delta_mu`` the paper's ``Delta_mu`` (``0``: its best case).
    One frame per combination of the three sliders.
    """
    sig = [check_real(s, "sigmas entry", low=0, high=1, low_open=True) for s in sigmas]
    rs = [check_real(v, "R_eps entry", low=0, high=1) for v in R_eps]
    lds = [check_real(v, "L_delta entry", low=0) for v in L_delta]
    p_min = check_real(p_min, "p_min", low=0, high=0.5, low_open=True)
    delta_mu = check_real(delta_mu, "delta_mu", low=0, high=1)
    eps_max = check_real(eps_max, "eps_max", low=0, low_open=True)
    points = check_int(points, "points", low=2)
    p = [p_min, 1.0 - p_min]  # rho_max reads only min p
    eps = np.linspace(0.0, eps_max, points)
    sigma_axis = np.linspace(0.5, 1.0, points)
    names = {"paper": "paper's ρ<sub>max</sub>", "corrected": "book's ρ̃<sub>max</sub>"}
    colours = {"paper": _PALETTE[0], "corrected": _PALETTE[3]}

    def threshold(s, e, ld, R, coefficient):
        # delta = L delta / r with L = r = 1: rho_max's a = L delta / r + 2 eps / r
        rho = bounds.rho_max(s, ld, e, R, p, 1.0, 1.0, coefficient=coefficient)
        return np.asarray(bounds.theorem1_threshold(rho, delta_mu, 1.0))

    traces = [dict(type="scatter", mode="lines", x=eps, name=names[c],
                   line=dict(color=colours[c], width=2.5, dash="solid" if c == "paper" else "dash"),
                   xaxis="x", yaxis="y") for c in names]
    traces.append(dict(type="scatter", mode="lines", x=[0.0, eps_max], y=[-1.0, -1.0], showlegend=False,
                       hoverinfo="skip", line=dict(color="gray", width=1, dash="dot"), xaxis="x", yaxis="y"))
    for c in names:  # shading: where (2) is satisfiable for some eps
        traces.append(dict(type="scatter", mode="lines", x=sigma_axis, fill="tozeroy", line=dict(width=0),
                           fillcolor=("rgba(0,114,178,0.18)" if c == "paper" else "rgba(213,94,0,0.14)"),
                           name=f"(2) can hold: {c if c == 'paper' else 'book'}", hoverinfo="skip",
                           xaxis="x2", yaxis="y2"))
    traces.append(dict(type="scatter", mode="lines", x=sigma_axis, name="bound (1 − σ) + <i>R</i><sub>ε</sub>",
                       line=dict(color="black", width=2.5), xaxis="x2", yaxis="y2", showlegend=False))
    traces.append(dict(type="scatter", mode="markers", marker=dict(color="black", size=11), showlegend=False,
                       name="this σ", xaxis="x2", yaxis="y2"))
    layout = dict(
        xaxis=dict(domain=[0, 1], anchor="y", title=dict(text="alignment radius ε / <i>r</i>"), range=[0, eps_max]),
        yaxis=dict(domain=[0.58, 1], anchor="x", title=dict(text="threshold of (2) / <i>r</i>²"),
                   range=[-3.0, 1.05]),
        xaxis2=dict(domain=[0, 1], anchor="y2", title=dict(text="concentration σ"), range=[0.5, 1.0]),
        yaxis2=dict(domain=[0, 0.38], anchor="x2", title=dict(text="bound on Err(<i>G<sub>f</sub></i>)"),
                    range=[0, 0.75]),
        legend=dict(orientation="h", x=0, y=1.01, xanchor="left", yanchor="bottom", font=dict(size=12)),
        margin=dict(t=150),
        annotations=[dict(text="no encoder meets (2) below this line", x=eps_max, y=-1.0, xref="x", yref="y",
                          xanchor="right", yanchor="bottom", showarrow=False, font=dict(size=12, color="gray"))],
    )
    controls = [Control("σ", tuple(_fmt(s) for s in sig), initial=min(len(sig) - 1, sig.index(min(sig, key=lambda
                        v: abs(v - 0.95))))),
                Control("<i>R</i><sub>ε</sub>", tuple(_fmt(v) for v in rs), initial=min(2, len(rs) - 1)),
                Control("<i>L</i>δ / <i>r</i>", tuple(_fmt(v) for v in lds), initial=min(1, len(lds) - 1))]

    def frame(key):
        s, R, ld = sig[key[0]], rs[key[1]], lds[key[2]]
        data = [dict(y=threshold(s, eps, ld, R, c)) for c in names]
        for c in names:
            ok = threshold(sigma_axis, 0.0, ld, R, c) > -1.0
            data.append(dict(y=np.where(ok, 1.0, np.nan)))
        bound = np.asarray(bounds.theorem1_bound(sigma_axis, R))
        b = float(bounds.theorem1_bound(s, R))
        data += [dict(y=bound), dict(x=[s], y=[b])]
        t0 = float(threshold(s, 0.0, ld, R, "paper"))
        title = (f"σ = {s:g}: bound (3) = {b:.3f}" + ("; (2) unmeetable" if t0 <= -1.0 else "")
                 + f"<br>paper's threshold at ε = 0: {_fmt(t0, '.2f')} <i>r</i>²")
        return {"data": data, "layout": {"title": _title(title)}}

    return StaticExplorer(
        "theorem1", traces, layout, controls, frame,
        frame_traces=[0, 1, 3, 4, 5, 6], height=600,
        alt="Theorem 1: threshold of condition (2) against epsilon and the error bound against sigma, with sliders",
        note="In Jupyter or Binder, cssl.explore.theorem1_explorer() gives all eight parameters, live.")


# ------------------------------------------------------------------ sigma(delta)
def sigma_explorer(experiment: str = "table1", *, n_images: int = 240, views: Sequence[int] = (1, 2, 4, 8),
                   spaces: Sequence[str] = ("standardised", "raw"), n_deltas: int = 25, quantile: float = 0.9,
                   profile: str = "book", seed: int = 0, data=None) -> StaticExplorer:
    r"""Estimated ``sigma(delta)`` of Definition 1 against ``delta`` for every augmentation set of ``experiment``.

    For each number of sampled views ``T`` in ``views`` and each input space ("standardised": every
    view contrast-normalised, or "raw" pixels), :func:`cssl.study.grid_concentration` estimates
    ``hat sigma(delta) = min_k |C_k^0| / n_k`` (greedy cliques of ``hat d_A <= delta``, eq. (1) on the
    sampled views) of each cell's augmentation on the same ``n_images`` test images
    (:func:`cssl.study.eval_subset`), at ``n_deltas`` equally spaced ``delta`` from 0 to the
    ``quantile`` of the pooled within-class ``hat d_A`` with the fewest views. More views can only
    lower ``hat d_A`` (a minimum over more pairs; the first views are the same draws), so the graphs
    ``hat d_A <= delta`` grow with ``T`` toward those of the true ``d_A``, and the curves tend to rise
    toward ``sigma(delta)`` (estimated from below: greedy cliques). One frame per (``T``, space); each
    curve is non-decreasing in ``delta`` (warm-started cliques).
    """
    from .experiments import profile_config
    from .study import eval_subset, grid_cells, grid_concentration
    from .train import load_dataset

    grid_cells(experiment)  # an unknown experiment is an error before any work
    n_images = check_int(n_images, "n_images", low=2)
    ts = sorted({check_int(t, "views entry", low=1) for t in views})
    spaces = list(spaces)
    if not spaces or any(s not in ("standardised", "raw") for s in spaces):
        raise ValueError(f"spaces must be a non-empty list of 'standardised' and/or 'raw', got {spaces}")
    n_deltas = check_int(n_deltas, "n_deltas", low=2)
    quantile = check_real(quantile, "quantile", low=0, high=1, low_open=True)
    if data is None:
        data = load_dataset(profile_config(profile, "simclr", device="cpu"))
    x, y = eval_subset(data, n_images)
    estimates = {(t, space): grid_concentration(experiment, x, y, [0.0], n_views=t, seed=seed,
                                                standardize=space == "standardised", profile=profile)
                 for space in spaces for t in ts}
    return sigma_explorer_from(estimates, n_deltas=n_deltas, quantile=quantile, name=f"sigma-{experiment}",
                               title=experiment)


def sigma_explorer_from(estimates, *, n_deltas: int = 25, quantile: float = 0.9, name: str = "sigma",
                        title: str = "") -> StaticExplorer:
    r"""The ``sigma(delta)`` explorer of :func:`sigma_explorer` from estimates a chapter already has.

    ``estimates[(T, space)]`` is ``{cell label: SigmaEstimate}`` (as :func:`cssl.study.grid_concentration`
    returns, with ``T = n_views`` views, ``space`` "standardised" or "raw"; the same cells for every
    key). The curves are ``estimate.at(grid).sigma`` (:meth:`cssl.concentration.SigmaEstimate.at`: the
    clique search on the stored distances, no new views), on ``n_deltas`` equally spaced ``delta``
    from 0 to the ``quantile`` of the pooled within-class ``hat d_A`` with the fewest views of each
    space. Sliders: ``T`` and the space, each only when it has more than one value (the space's always
    when neither has).
    """
    from .concentration import SigmaEstimate

    if not isinstance(estimates, dict) or not estimates:
        raise ValueError("estimates must be a non-empty dict {(T, space): {cell: SigmaEstimate}}")
    n_deltas = check_int(n_deltas, "n_deltas", low=2)
    quantile = check_real(quantile, "quantile", low=0, high=1, low_open=True)
    ts = sorted({t for t, _ in estimates})
    spaces = list(dict.fromkeys(space for _, space in estimates))
    if any(s not in ("standardised", "raw") for s in spaces):
        raise ValueError(f"the spaces in estimates must be 'standardised' or 'raw', got {spaces}")
    if set(estimates) != {(t, s) for t in ts for s in spaces}:
        raise ValueError(f"estimates must hold every (T, space) pair of T in {ts} and spaces {spaces}")
    cells = list(next(iter(estimates.values())))
    for (t, space), ests in estimates.items():
        if list(ests) != cells or not all(isinstance(e, SigmaEstimate) for e in ests.values()):
            raise ValueError(f"estimates[{(t, space)}] must map the cells {cells} to SigmaEstimates")
        if any(e.n_views != t for e in ests.values()):
            raise ValueError(f"estimates[{(t, space)}] were computed with another number of views than T = {t}")
    first = next(iter(next(iter(estimates.values())).values()))
    n_images = sum(len(m) for m in first.members)
    curves, grids = {}, {}
    for space in spaces:
        pooled = np.concatenate([e.pair_distances().numpy() for e in estimates[ts[0], space].values()])
        grids[space] = np.linspace(0.0, float(np.quantile(pooled, quantile)), n_deltas)
        for t in ts:
            for cell, e in estimates[t, space].items():
                curves[space, t, cell] = e.at(grids[space]).sigma.numpy()
    units = {"standardised": "standardised views", "raw": "raw pixels in [0, 1]"}
    traces = [dict(type="scatter", mode="lines+markers", name=cell, marker=dict(size=6),
                   line=dict(color=_PALETTE[i % len(_PALETTE)], width=2.5)) for i, cell in enumerate(cells)]
    layout = dict(yaxis=dict(title=dict(text="estimated σ(δ)"), range=[0, 1.02]),
                  xaxis=dict(title=dict(text="δ")),
                  legend=dict(title=dict(text="augmentation"), x=0.02, xanchor="left", y=0.98, yanchor="top",
                              bgcolor="rgba(255,255,255,0.8)"),
                  )
    controls = [Control("views per image <i>T</i>", tuple(str(t) for t in ts), initial=len(ts) - 1),
                Control("input space", tuple(spaces), initial=0)]
    keep = [i for i, c in enumerate(controls) if len(c.values) > 1] or [1]  # no slider with one position
    prefix = f"{title}: " if title else ""

    def frame(key):
        full = [len(ts) - 1, 0]
        for i, k in zip(keep, key):
            full[i] = k
        t, space = ts[full[0]], spaces[full[1]]
        grid = grids[space]
        return {"data": [dict(x=grid, y=curves[space, t, c]) for c in cells],
                "layout": {"xaxis": {"title": {"text": f"δ ({units[space]}, L2 norm)"},
                                     "range": [0, float(grid[-1]) * 1.02]},
                           "title": _title(f"{prefix}σ̂(δ) on {n_images} test images<br>{_views_text(t)}")}}

    return StaticExplorer(
        name, traces, layout, [controls[i] for i in keep], frame, frame_traces=list(range(len(cells))), height=480,
        alt=f"Estimated sigma(delta) against delta for the augmentation sets {', '.join(cells)}, with sliders",
        note="In Jupyter, rerun cssl.study.grid_concentration with other images or views.")


def _views_text(t: int) -> str:
    """``"1 view"`` or ``"T views"`` (the original image is always added to the ``T`` sampled views)."""
    return f"{t} sampled view{'s' if t != 1 else ''} of each, plus the original"


# ------------------------------------------------------------------ Theorem 3
def theorem3_explorer(L2: Sequence[float] = (0.8, 1.0, 1.2, 1.4, 1.6, 2.0),
                      R_eps: Sequence[float] = (0.0, 0.02, 0.05, 0.1, 0.2),
                      classes: Sequence[int] = (2, 3, 5, 10), *, points: int = 73) -> StaticExplorer:
    r"""Theorem 3's right-hand side against ``eps``, with the book's ``tau = 4 R_eps``, over ``L2``, ``R_eps``, ``K``.

    ``rhs(eps) = log(exp((L2 + tau) / (p_k p_l)) - exp(1 - eps))`` (paper, Theorem 3;
    :func:`cssl.bounds.theorem3_rhs`) with ``tau = tau_book(R_eps, eps) = 4 R_eps``
    (:func:`cssl.bounds.tau_book`, valid for ``0 <= eps <= 1 - log(1 - 1/e)``, the plotted range) and
    ``K`` balanced classes (``p_k = p_l = 1/K``). Since ``mu_k^T mu_l <= ||mu_k|| ||mu_l|| = 1`` for
    unit-norm features, the theorem says something only where the curve is below 1 (shaded). The
    dashed curve is the smallest value the right-hand side can take for any encoder, any ``eps >= 0``
    and ``tau >= 0`` (:func:`cssl.bounds.theorem3_rhs_jensen_floor` at ``L_1 = 0``, the largest
    ``L_1`` can be; ``log(16 - e) ~ 2.59`` at ``eps = 0``): it never reaches 1, so the theorem is
    never informative. A gap in the curve marks inputs inconsistent with the theorem (the logarithm's
    argument ``<= 0``, possible only when ``L2`` is below its floor ``log 2``).
    """
    l2s = [check_real(v, "L2 entry", low=0) for v in L2]
    rs = [check_real(v, "R_eps entry", low=0, high=1) for v in R_eps]
    ks = [check_int(k, "classes entry", low=2) for k in classes]
    points = check_int(points, "points", low=2)
    eps = np.linspace(0.0, bounds.TAU_BOOK_EPS_MAX, points)
    floor = np.asarray(bounds.theorem3_rhs_jensen_floor(eps))
    y_top = 8.0
    traces = [
        dict(type="scatter", mode="lines", x=[0, eps[-1], eps[-1], 0], y=[-2.0, -2.0, 1.0, 1.0], fill="toself",
             fillcolor="rgba(0,158,115,0.12)", line=dict(width=0), hoverinfo="skip",
             name="informative: below the trivial 1"),
        dict(type="scatter", mode="lines", x=[0, eps[-1]], y=[1.0, 1.0], line=dict(color="black", width=1.2),
             name="trivial bound μ<sub>k</sub>ᵀμ<sub>l</sub> ≤ 1", showlegend=False, hoverinfo="skip"),
        dict(type="scatter", mode="lines", x=eps, y=floor, line=dict(color=_PALETTE[1], width=2, dash="dash"),
             name="smallest possible, any encoder"),
        dict(type="scatter", mode="lines", x=eps, line=dict(color=_PALETTE[0], width=3),
             name="right-hand side, τ = 4<i>R</i><sub>ε</sub>"),
    ]
    layout = dict(xaxis=dict(title=dict(text="ε"), range=[0, float(eps[-1])]),
                  yaxis=dict(title=dict(text="bound on μ<sub>k</sub>ᵀμ<sub>l</sub>"), range=[-2.0, y_top]),
                  legend=dict(orientation="h", x=0, y=1.01, xanchor="left", yanchor="bottom", font=dict(size=12)),
                  margin=dict(t=150))
    controls = [Control("<i>L</i><sub>2</sub>(<i>f</i>)", tuple(_fmt(v) for v in l2s), initial=min(2, len(l2s) - 1)),
                Control("<i>R</i><sub>ε</sub>", tuple(_fmt(v) for v in rs), initial=0),
                Control("classes <i>K</i> (balanced)", tuple(str(k) for k in ks), initial=0)]

    def frame(key):
        l2, R, k = l2s[key[0]], rs[key[1]], ks[key[2]]
        tau = np.asarray(bounds.tau_book(R, eps)) * np.ones_like(eps)
        rhs = np.asarray(bounds.theorem3_rhs(l2, tau, 1.0 / k, 1.0 / k, eps))
        finite = rhs[np.isfinite(rhs)]
        if finite.size:
            i = int(np.nanargmin(np.where(np.isfinite(rhs), rhs, np.nan)))
            lowest = f"smallest right-hand side: {_fmt(rhs[i], '.2f')} at ε = {eps[i]:.2f}<br>"
            lowest += "vacuous: never below the trivial 1" if rhs[i] >= 1 else "informative: below the trivial 1"
        else:
            lowest = "no curve: the logarithm's argument is ≤ 0<br>inputs inconsistent with the theorem"
        top = max(y_top, 1.08 * float(finite.max())) if finite.size else y_top  # the whole curve in view
        return {"data": [dict(y=rhs)], "layout": {"title": _title(lowest), "yaxis": {"range": [-2.0, top]}}}

    return StaticExplorer(
        "theorem3", traces, layout, controls, frame, frame_traces=[3], height=460,
        alt="Theorem 3: right-hand side against epsilon with the trivial bound 1, with sliders",
        note="In Jupyter, call cssl.bounds.theorem3_rhs for any other values.")


# ------------------------------------------------------------------ one experiment's committed runs
def results_explorer(experiment: str = "table1", *, methods: Sequence[str] | None = None,
                     seeds: Sequence[int] | None = None, ordered: bool | None = None, root=None) -> StaticExplorer:
    r"""The committed ``book`` runs of one experiment: accuracy per augmentation set, seed and method.

    Reads every run of ``experiment`` under ``results/book`` with :func:`cssl.runcache.load_run`
    (the configurations of :func:`cssl.runcache.grid_configs`; a run that is missing or stale is an
    error: regenerate it with ``python -m cssl reproduce <experiment> --profile book``). Each run's
    history holds the kNN top-1 accuracy and the nearest-centre accuracy (the classifier ``G_f`` of
    Theorem 1) on the test set every 100 steps. ``ordered``: join the means with a line (default: for
    the ordered grids of Tables 1 and 2, not for Figure 3's pairs). The figure shows, for the chosen step and metric,
    every seed (dots) and the mean over seeds (line) of each method, per augmentation set. One frame
    per (step, metric).
    """
    from . import runcache
    from .study import grid_cells

    cells = [c.label for c in grid_cells(experiment)]
    runs = runcache.grid_configs(experiment, methods=methods, seeds=seeds)
    records = {}
    for m, cell, seed, config in runs:
        run = runcache.load_run(experiment, cell, config, root=root)
        if run is None:
            raise ValueError(f"run {experiment}/{m}/{cell}/seed{seed} is missing or stale in results/book; "
                             f"regenerate it with `python -m cssl reproduce {experiment} --profile book`")
        records[m, cell, seed] = {h["step"]: h for h in run.history}
    method_list = list(dict.fromkeys(m for m, *_ in runs))
    seed_list = sorted({s for _, _, s, _ in runs})
    steps = sorted(set.intersection(*(set(h) for h in records.values())))
    metrics = {"kNN top-1": "knn_top1", "nearest centre": "nearest_centre_acc"}  # slider label: record key
    long_names = {"kNN top-1": "kNN top-1 accuracy", "nearest centre": "nearest-centre accuracy 1 − Err(G<sub>f</sub>)"}
    if ordered is None:  # Tables 1 and 2 order their rows (richness, strength); Figure 3's pairs are not ordered
        ordered = experiment != "figure3"
    pretty = {"simclr": "SimCLR", "barlow_twins": "Barlow Twins", "moco": "MoCo", "simsiam": "SimSiam"}
    xs = np.arange(len(cells), dtype=float)
    shift = {m: (i - (len(method_list) - 1) / 2) * 0.18 for i, m in enumerate(method_list)}
    traces = []
    for i, m in enumerate(method_list):
        colour = _PALETTE[i % len(_PALETTE)]
        traces.append(dict(type="scatter", mode="markers", name=f"{pretty.get(m, m)}, each seed",
                           marker=dict(color=colour, size=8, opacity=0.55, symbol="circle-open",
                                       line=dict(width=2))))
        traces.append(dict(type="scatter", mode="lines+markers" if ordered else "markers",
                           name=f"{pretty.get(m, m)}, mean", line=dict(color=colour, width=3),
                           marker=dict(color=colour, size=10), x=xs + shift[m]))
    values = {}
    for label, key in metrics.items():
        for step in steps:
            for m in method_list:
                values[label, step, m] = 100 * np.array([[records[m, c, s][step][key] for s in seed_list]
                                                         for c in cells])
    ranges = {}
    for label in metrics:
        allv = np.concatenate([v.ravel() for (lab, _, _), v in values.items() if lab == label])
        pad = 0.05 * (allv.max() - allv.min() + 1e-9)
        ranges[label] = [float(allv.min() - pad), float(allv.max() + pad)]
    layout = dict(xaxis=dict(title=dict(text="augmentation set"), tickmode="array",
                             tickvals=xs, ticktext=cells, range=[-0.5, len(cells) - 0.5],
                             zeroline=False),
                  yaxis=dict(title=dict(text="accuracy on the test set (%)")),
                  legend=dict(orientation="h", x=0, y=1.02, xanchor="left", yanchor="bottom", font=dict(size=12)),
                  margin=dict(t=150))
    controls = [Control("training step", tuple(str(s) for s in steps), initial=len(steps) - 1),
                Control("metric", tuple(metrics), initial=0)]

    def frame(key):
        step, label = steps[key[0]], list(metrics)[key[1]]
        data = []
        for m in method_list:
            v = values[label, step, m]
            jitter = np.linspace(-0.05, 0.05, len(seed_list))
            data.append(dict(x=(xs[:, None] + shift[m] + jitter[None, :]).ravel(), y=v.ravel(),
                             text=[f"seed {s}" for _ in cells for s in seed_list]))
            data.append(dict(y=v.mean(axis=1)))
        name = long_names[label]
        return {"data": data, "layout": {"yaxis": {"range": ranges[label]},
                                         "title": _title(f"{experiment}, book runs at step {step}<br>{name}")}}

    return StaticExplorer(
        f"results-{experiment}", traces, layout, controls, frame, frame_traces=list(range(len(traces))), height=480,
        alt=f"Accuracy of the committed runs of {experiment} per augmentation set, with sliders",
        note="In Jupyter, cssl.runcache.load_run gives each run's record and encoder.")
