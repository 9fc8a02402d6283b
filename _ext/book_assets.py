"""Sphinx extension: drop duplicate <script> entries from every page.

With jupyter-book 1.0.4 the inline configuration scripts of sphinx-thebe and sphinx-togglebutton are
registered more than once, so each page declares ``const THEBE_JS_URL`` two or three times and the
browser reports "Identifier 'THEBE_JS_URL' has already been declared". Identical script entries are
redundant by definition, so keeping the first of each is safe.
"""


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


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts, priority=100000)  # run after every other handler
    return {"parallel_read_safe": True, "parallel_write_safe": True}
