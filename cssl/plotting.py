"""One figure style for the whole book, so every chapter's plots look alike.

Call :func:`use_book_style` once at the top of a chapter. Colours come from the Okabe-Ito palette,
which stays distinguishable for colour-blind readers and in grayscale print.
"""
from __future__ import annotations

import matplotlib as mpl

__all__ = ["PALETTE", "use_book_style", "class_colour"]

#: Okabe & Ito (2008) colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def use_book_style() -> None:
    """Set matplotlib defaults: readable sizes, light grid, the palette as colour cycle, inline PNG at 110 dpi."""
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


def class_colour(k: int) -> str:
    """The colour of latent class ``k`` (cycles through :data:`PALETTE`)."""
    return PALETTE[int(k) % len(PALETTE)]
