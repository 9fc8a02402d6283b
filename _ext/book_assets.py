"""Sphinx extension of the book: its stylesheet and script, its launch buttons, and a fix-up.

* ``static/book.css`` and ``static/book.js`` go on every page: code set so that 88 characters fit the text
  column, outputs and table cells that wrap instead of running off it, display equations shrunk to fit on
  phones, and print rules under which nothing is cut off (tests/test_site.py checks all of it).
* The launch buttons follow the repository address of ``book_repository`` (git remote or ``_config.yml``).
* The student versions of the graded assignments (``assignments/``, built by
  ``tools/build_assignments.py`` without their solutions) are zipped into the site as
  ``assignments/<name>-student.zip``, which the instructors' page links for download.
* Duplicate ``<script>`` entries are dropped from every page (below).

With jupyter-book 1.0.4 the inline configuration scripts of sphinx-thebe and sphinx-togglebutton are
registered more than once, so each page declares ``const THEBE_JS_URL`` two or three times and the
browser reports "Identifier 'THEBE_JS_URL' has already been declared". Identical script entries are
redundant by definition, so keeping the first of each is safe.
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import book_repository


def _script_key(js):
    attributes = getattr(js, "attributes", None) or getattr(js, "_attributes", {}) or {}
    # An inline script is registered with filename None by one extension and '' by another.
    return str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


STATIC = Path(__file__).resolve().parent / "static"


def add_static(app):
    app.config.html_static_path.append(str(STATIC))


def publish_assignments(app, exception):
    """Zip each assignment's student folder (notebook and support files, no solutions, no hidden tests)
    into ``<site>/assignments/<name>-student.zip``."""
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    tool = Path(app.srcdir) / "tools" / "build_assignments.py"
    if exception or app.builder.format != "html" or not tool.is_file():
        return
    out = Path(app.outdir) / "assignments"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, str(tool), "--no-check", "--out", tmp], capture_output=True,
                              text=True, timeout=900, cwd=app.srcdir)
        if proc.returncode:
            logger.warning(f"[book] the assignments could not be built for the site:\n{proc.stderr[-2000:]}")
            return
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        names = []
        for student in sorted(Path(tmp).glob("*/student")):
            name = student.parent.name
            shutil.make_archive(str(out / f"{name}-student"), "zip", student)
            names.append(name)
    logger.info(f"[book] student notebooks for download: {', '.join(names)}")


def setup(app):
    app.connect("config-inited", book_repository.config_inited)
    app.connect("builder-inited", add_static)
    app.add_css_file("book.css")
    app.add_js_file("book.js")
    app.connect("build-finished", publish_assignments)
    app.connect("html-page-context", drop_duplicate_scripts, priority=100000)  # run after every other handler
    return {"parallel_read_safe": True, "parallel_write_safe": True}
