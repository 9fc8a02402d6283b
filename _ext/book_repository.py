"""The book's public repository address, for the launch buttons, Thebe and the repository button.

Publishing the book needs no manual step: when ``_config.yml`` leaves ``repository.url`` unset, the build
takes the address from the git remote of the checkout (``origin``, else the only remote) when that remote is
a GitHub repository that answers publicly, and turns on the Binder launch button, Thebe's live code and the
repository button. ``tools/set_repository.py ADDRESS`` stays for other cases (a build outside a clone, a
mirror, a private remote with a public copy): it writes the address into ``_config.yml``, which wins, and into
every chapter's setup cell, and only then is the Colab button turned on too, because Colab opens the
notebook from GitHub and its setup cell must name the address to install ``cssl`` there.

The environment variable ``BOOK_REPOSITORY`` overrides both: an address, or ``none`` for no buttons.
``BOOK_REPOSITORY_CHECK=0`` skips asking GitHub whether the remote is public (offline builds, tests).
Offline, the answer is unknown and the remote's address is used.
"""
from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

BINDERHUB = "https://mybinder.org"
# Jupyter Book 1 fills an unset repository.url with its own repository: that means "unset" here.
JUPYTER_BOOK_DEFAULT = "https://github.com/executablebooks/jupyter-book"
COLAB = "https://colab.research.google.com"
_REMOTE = re.compile(
    r"^(?:https://(?:[^@/]+@)?github\.com/|git@github\.com:|ssh://git@github\.com/|git://github\.com/)"
    r"(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def github_address(remote: str) -> str:
    """``https://github.com/OWNER/REPO`` for a GitHub remote URL (https, ssh or scp form; credentials in an
    https URL are dropped), else ``""``."""
    match = _REMOTE.match(remote.strip())
    if not match:
        return ""
    return f"https://github.com/{match['owner']}/{match['repo']}"


def git_remote(root: Path) -> str:
    """The URL of ``origin`` in the checkout at ``root``, else of its only remote; ``""`` when there is none
    (or ``root`` is not a git checkout, or git is missing)."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    names = git("remote").split()
    if not names:
        return ""
    name = "origin" if "origin" in names else (names[0] if len(names) == 1 else "")
    return git("remote", "get-url", name) if name else ""


def is_public(address: str, timeout: float = 5.0) -> bool | None:
    """Whether GitHub serves ``address`` to anyone: True (HTTP 200 without credentials), False (404: private
    or missing), None (no answer, e.g. offline)."""
    request = urllib.request.Request(address, method="HEAD", headers={"User-Agent": "cssl-book-build"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except urllib.error.HTTPError as err:
        return False if err.code in (401, 403, 404) else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def resolve(config_url: str, root: Path, environ=os.environ, probe=is_public) -> tuple[str, str]:
    """The address the build uses and where it came from: ``(address, source)`` with source one of
    ``"environment"``, ``"_config.yml"``, ``"git remote"``, or ``("", reason)`` when there is none."""
    override = environ.get("BOOK_REPOSITORY")
    if override is not None:
        if override.strip().lower() in ("", "none", "off"):
            return "", "BOOK_REPOSITORY=none"
        address = github_address(override)
        if not address:
            raise ValueError(f"BOOK_REPOSITORY must be https://github.com/OWNER/REPO or none, got {override!r}")
        return address, "environment"
    if config_url:
        return config_url, "_config.yml"
    remote = git_remote(root)
    if not remote:
        return "", "no git remote"
    address = github_address(remote)
    if not address:
        return "", "the git remote is not a GitHub repository"
    if environ.get("BOOK_REPOSITORY_CHECK", "1") != "0" and probe(address) is False:
        return "", f"{address} is not public (GitHub answers 404 without credentials)"
    return address, "git remote"


def apply(theme_options: dict, address: str, colab: bool) -> None:
    """Turn on the launch buttons, Thebe and the repository button for ``address`` in sphinx-book-theme's
    options (``html_theme_options``, as Jupyter Book builds them from ``_config.yml``)."""
    theme_options["repository_url"] = address
    theme_options.setdefault("repository_branch", "main")
    theme_options["use_repository_button"] = True
    buttons = dict(theme_options.get("launch_buttons") or {})
    buttons["binderhub_url"] = BINDERHUB
    buttons["colab_url"] = COLAB if colab else ""
    buttons["thebe"] = True
    theme_options["launch_buttons"] = buttons


def config_inited(app, config) -> None:
    from sphinx.util import logging

    options = config.html_theme_options
    configured = options.get("repository_url") or ""
    if configured.rstrip("/") == JUPYTER_BOOK_DEFAULT:
        configured = ""
    address, source = resolve(configured, Path(app.srcdir))
    logger = logging.getLogger(__name__)
    if not address:
        logger.info(f"[book] launch buttons off: {source}")
        return
    # Colab needs the address in every chapter's setup cell, which only tools/set_repository.py writes.
    apply(options, address, colab=bool(configured) and address == configured)
    logger.info(f"[book] launch buttons for {address} (from {source})")
