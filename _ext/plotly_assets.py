"""Sphinx extension: serve plotly.js with the book, for the explorers of ``cssl.static_explore``.

When an HTML site is built, the pinned plotly package's ``plotly.min.js`` is written to
``_static/plotly/plotly.min.js`` in the output (``cssl.static_explore.write_plotly_js``). The explorers
load it relative to the site's root, so they work offline and without a CDN, and the served plotly.js
is always the version pinned in requirements.txt.
"""


def copy_plotly(app, exception):
    if exception is not None or getattr(app.builder, "format", "") != "html":
        return
    from cssl.static_explore import write_plotly_js

    write_plotly_js(app.outdir)


def setup(app):
    app.connect("build-finished", copy_plotly)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
