"""Headless Chromium and a local web server for the checks of the built site.

Used by ``tests/test_site.py``, ``tests/test_explorers_site.py`` and ``tools/build_pdf.py``, so the three
drive the same browser with the same flags: Debian's ``chromium`` and ``chromedriver``
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them when missing), a throwaway
profile, no network of its own (no background requests, no QUIC), and the site served from
``127.0.0.1`` on a free port.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static file handler that does not log every request (keeps pytest's output clean)."""

    def log_message(self, *args):
        pass


def serve(directory: str | Path):
    """Serve ``directory`` on ``127.0.0.1`` in a daemon thread; returns ``(server, base url)``.

    Call ``server.shutdown()`` when done."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def start_chromium(*, width: int = 1280, height: int = 1600, log_browser: bool = False,
                   timeout: int = 60, prefix: str = "cssl-chromium-"):
    """A headless Chromium driven by selenium, and its profile folder: ``(driver, profile)``.

    ``log_browser`` keeps the console log (``driver.get_log("browser")``); ``timeout`` (seconds) bounds
    scripts and page loads. Raises ``RuntimeError`` naming the packages when Chromium is not installed.
    Stop it with :func:`stop_chromium`."""
    if not (CHROMIUM and CHROMEDRIVER):
        raise RuntimeError("chromium and chromedriver are not installed "
                           "(Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix=prefix)
    for arg in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(arg)
    if log_browser:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(timeout)
    driver.set_page_load_timeout(max(timeout, 60))
    return driver, profile


def stop_chromium(driver, profile: str) -> None:
    """Quit ``driver`` and delete its profile folder."""
    try:
        driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
