"""Figures read at the book's column width: the displayed text size and the draw-time check."""
import io
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib as mpl  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from cssl.plotting import (  # noqa: E402
    COLUMN_PX,
    MIN_TEXT_PX,
    smallest_text_px,
    use_book_style,
)


@pytest.fixture
def book_style():
    """The book style inside an rc context, so that the hook does not leak into other tests."""
    with mpl.rc_context():
        use_book_style()
        yield
    plt.close("all")


def _small_warnings(record):
    return [w for w in record if "px in the book's column" in str(w.message)]


def test_px_formula_on_a_known_case(book_style):
    # 12 in at 110 dpi is 1320 px, shown at 676 px: 8 pt is 8 * 110/72 * 676/1320 px
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot([0, 1], [0, 1])
    ax.tick_params(labelsize=8)
    ax.set_title("a title", fontsize=14)
    with pytest.warns(UserWarning, match="px in the book's column"):
        fig.canvas.draw()
    px, text = smallest_text_px(fig)
    assert px == pytest.approx(8 * 110 / 72 * 676 / 1320)
    assert text in {t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()}
    # a figure narrower than the column is shown at its own size: 9 pt is 9 * 110/72 px
    fig2, ax2 = plt.subplots(figsize=(5, 3))
    ax2.set_xlabel("x", fontsize=9)
    ax2.tick_params(labelsize=12)
    fig2.canvas.draw()
    assert smallest_text_px(fig2) == (pytest.approx(9 * 110 / 72), "x")
    # column_px: a wider column shows the 12 in figure larger
    assert smallest_text_px(fig, column_px=1320)[0] == pytest.approx(8 * 110 / 72)
    assert COLUMN_PX == 676


def test_invisible_and_axis_off_texts_do_not_count(book_style):
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[1].tick_params(labelsize=3)
    axes[1].axis("off")  # its tiny tick labels are not drawn
    hidden = axes[0].text(0.5, 0.5, "hidden", fontsize=2)
    hidden.set_visible(False)
    axes[0].text(0.5, 0.5, "", fontsize=1)  # empty text is not drawn either
    fig.canvas.draw()
    px, text = smallest_text_px(fig)
    assert px == pytest.approx(11 * 110 / 72)  # the default 11 pt tick labels of axes[0]
    assert text not in {"hidden", ""}


def test_wide_figure_with_8pt_ticks_warns_once_per_draw(book_style):
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot([0, 1], [0, 1], label="curve")
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=11)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # as the inline backend saves it: constrained layout and a tight box draw twice
        fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")
    small = _small_warnings(record)
    assert len(small) == 1
    assert issubclass(small[0].category, UserWarning)
    message = str(small[0].message)
    assert f"below {MIN_TEXT_PX:g} px" in message
    # the saved PNG is the tight box, a little wider than 12 in: its width is in the message
    width = float(message.split("(figure ")[1].split(" in wide")[0])
    px = 8 * 110 / 72 * 676 / (110 * width)
    assert f"shown at {px:.1f} px" in message
    assert smallest_text_px(fig)[1] in message
    with pytest.warns(UserWarning, match="px in the book's column"):
        fig.canvas.draw()


def test_column_width_figure_at_11pt_does_not_warn(book_style):
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 4.0))
    for ax in axes:
        ax.plot([0, 1], [0, 1], label=r"$\hat\sigma(\delta)$")
        ax.set_xlabel(r"$\delta$")
        ax.set_title(r"$R_\varepsilon$")
        ax.legend()
    fig.suptitle("two panels")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")
        fig.canvas.draw()
    assert _small_warnings(record) == []
    assert smallest_text_px(fig)[0] >= MIN_TEXT_PX


def test_use_book_style_installs_the_hook_once():
    with mpl.rc_context():
        use_book_style()
        use_book_style()
        assert list(mpl.rcParams["figure.hooks"]).count("cssl.plotting:check_text_size") == 1


def test_image_grid_tiles_pixels_exactly():
    import numpy as np
    import matplotlib.pyplot as plt
    from cssl.plotting import image_grid

    imgs = np.zeros((5, 3, 4, 4), dtype=np.uint8)
    imgs[2] = 255
    fig, ax = plt.subplots()
    image_grid(ax, imgs, 3, gap=1, background=0.5)
    canvas = ax.get_images()[0].get_array()
    assert canvas.shape == (2 * 5 - 1, 3 * 5 - 1, 3)
    assert (canvas[0:4, 10:14] == 1).all() and (canvas[0:4, 0:4] == 0).all()
    assert (canvas[4, :] == 0.5).all() and (canvas[5:9, 10:14] == 0.5).all()  # gap, empty tile
    plt.close(fig)
    with pytest.raises(ValueError, match="shape"):
        image_grid(ax, imgs[0], 3)
    with pytest.raises(ValueError, match="ncols"):
        image_grid(ax, imgs, 0)
