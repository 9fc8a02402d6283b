"""One figure style for the whole book, so every chapter's plots look alike.

Call :func:`use_book_style` once at the top of a chapter. Colours come from the Okabe-Ito palette,
which stays distinguishable for colour-blind readers and in grayscale print.

:func:`use_book_style` also checks every pyplot figure as it is drawn: a figure whose smallest
text would be shown smaller than :data:`MIN_TEXT_PX` CSS pixels in the book's text column
(:func:`smallest_text_px`) issues a ``UserWarning``. The book's build fails on any output to
stderr, so a figure that does not read at the column width fails the build.
"""
from __future__ import annotations

import warnings

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.text import Text

__all__ = [
    "PALETTE",
    "COLUMN_PX",
    "MIN_TEXT_PX",
    "use_book_style",
    "class_colour",
    "smallest_text_px",
    "check_text_size",
    "image_grid",
]

#: Widest an image is shown in a chapter's text column (CSS px, measured at a 1300 px window).
COLUMN_PX = 676
#: Smallest text size (CSS px, as displayed) a figure may have.
MIN_TEXT_PX = 9.0
#: The ``figure.hooks`` entry :func:`use_book_style` installs.
_HOOK = "cssl.plotting:check_text_size"

#: Okabe & Ito (2008) colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def use_book_style() -> None:
    """Set matplotlib defaults: readable sizes, light grid, the palette as colour cycle, inline PNG at 110 dpi.

    It also adds :func:`check_text_size` to ``rcParams["figure.hooks"]``, so that every figure made
    with pyplot afterwards warns when drawn if its smallest text would be shown below
    :data:`MIN_TEXT_PX` px in the text column.
    """
    mpl.rcParams.update({
        "figure.figsize": (6.4, 4.0),
        "figure.dpi": 110,
        "savefig.dpi": 110,
        "font.size": 11,
        "axes.titlesize": 12,
        "axes.labelsize": 11,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": mpl.cycler(color=PALETTE),
        "legend.frameon": False,
        "figure.constrained_layout.use": True,
    })
    hooks = list(mpl.rcParams["figure.hooks"])
    if _HOOK not in hooks:
        mpl.rcParams["figure.hooks"] = hooks + [_HOOK]


def class_colour(k: int) -> str:
    """The colour of latent class ``k`` (cycles through :data:`PALETTE`)."""
    return PALETTE[int(k) % len(PALETTE)]


def _drawn_texts(artist, *, axis_drawn: bool = True):
    """Yield the visible, non-empty :class:`~matplotlib.text.Text` artists below ``artist``.

    Invisible artists are pruned with everything they contain, as are the axes' axis artists
    (tick labels, axis labels, offset text) of an ``Axes`` whose axis is off (``ax.axis("off")``):
    matplotlib does not draw them.
    """
    for child in artist.get_children():
        if not child.get_visible():
            continue
        if isinstance(child, Axis) and not axis_drawn:
            continue
        if isinstance(child, Text) and child.get_text().strip():
            yield child
        drawn = child.axison if isinstance(child, Axes) else axis_drawn
        yield from _drawn_texts(child, axis_drawn=drawn)


def smallest_text_px(fig, column_px: float = COLUMN_PX) -> tuple[float, str]:
    """The smallest text of ``fig`` as displayed in the book's text column, in CSS px, and that text.

    A PNG is saved at the figure's dpi ``d`` (110 with :func:`use_book_style`) and a figure ``W``
    inches wide is ``d W`` px wide; the page shows it at most ``column_px`` CSS px wide (676 px at
    a 1300 px window) and scales a wider one down. A text of ``s`` points is therefore shown at

        ``s * d / 72 * min(1, column_px / (d * W))`` px.

    Every visible matplotlib ``Text`` with non-empty text counts: titles, suptitle, axis labels,
    tick labels, legend texts, annotations and ``ax.text``; invisible artists and the tick labels
    of an axes whose axis is off do not. Tick labels are only filled in when the figure is drawn,
    so call this on a drawn figure (``fig.canvas.draw()``) to include them. While a figure is
    saved with ``bbox_inches="tight"`` (as the inline backend saves it), its width is the cropped
    width, that of the PNG. Returns ``(inf, "")`` for a figure without text.
    """
    dpi = float(fig.dpi)
    width_px = dpi * float(fig.get_figwidth())
    scale = min(1.0, float(column_px) / width_px) if width_px > 0 else 1.0
    best_px, best_text = float("inf"), ""
    for text in _drawn_texts(fig):
        px = float(text.get_fontsize()) * dpi / 72.0 * scale
        if px < best_px:
            best_px, best_text = px, text.get_text()
    return best_px, best_text


def _warn_small_text(event) -> None:
    """``draw_event`` callback: warn once per drawn figure whose smallest text is too small."""
    renderer = getattr(event, "renderer", None)
    if "draw_text" in getattr(renderer, "__dict__", {}):
        # a layout pass (constrained layout, bbox_inches="tight") draws with a renderer whose
        # draw_* methods are disabled, just before the real draw: check only the real one
        return
    fig = event.canvas.figure
    px, text = smallest_text_px(fig)
    if px < MIN_TEXT_PX:
        width = fig.get_figwidth()
        warnings.warn(
            f"figure text {text!r} is shown at {px:.1f} px in the book's column, below "
            f"{MIN_TEXT_PX:g} px (figure {width:.2f} in wide at {fig.dpi:g} dpi): enlarge "
            "the font or narrow the figure",
            UserWarning,
        )


def check_text_size(fig) -> None:
    """``figure.hooks`` entry: connect :func:`smallest_text_px`'s check to the figure's draws.

    Each draw of ``fig`` (inline display, ``savefig``) then warns once, naming the smallest text
    and its displayed size, when that size is below :data:`MIN_TEXT_PX`.
    """
    fig.canvas.mpl_connect("draw_event", _warn_small_text)


def image_grid(ax: Axes, images, ncols: int, *, gap: int = 1, background: float = 1.0) -> None:
    """Show a batch of images as one tiled picture on ``ax``, ``ncols`` images a row, nearest-pixel.

    ``images`` is ``(N, C, H, W)`` with ``C`` in {1, 3}, uint8 or float in ``[0, 1]`` (a torch tensor or
    numpy array); tiles are separated by ``gap`` pixels of the grey level ``background``. Drawing all tiles
    as one image keeps every pixel square at any figure size, so 16x16 images stay legible at the column
    width. The axes' ticks are removed.
    """
    import numpy as np

    x = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, C, H, W) with C in (1, 3), got {x.shape}")
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    n, _, h, w = x.shape
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + gap) - gap, ncols * (w + gap) - gap, 3), float(background))
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = x[i].transpose(1, 2, 0)
    ax.imshow(np.clip(canvas, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
