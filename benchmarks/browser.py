"""The demo page in Chromium (Playwright), for the load benchmark and the browser tests.

Chromium is Debian's (``/usr/bin/chromium``, or ``SIGNAL_CHROMIUM``); Playwright downloads no browser.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from signal_core.modalities import MODALITIES

CHROMIUM = os.environ.get("SIGNAL_CHROMIUM", "/usr/bin/chromium")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a demo server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def demo_page(url: str, executable: str = CHROMIUM, height: int = 1600, timeout_ms: int = 60_000,
              width: int = 1280) -> Iterator:
    """A Playwright page showing the demo at ``url`` (its Search button there); the browser closes after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("#search-button", timeout=timeout_ms)
            yield page
        finally:
            browser.close()


def set_query(page, paths: Sequence[str], timeout_ms: int = 30_000) -> None:
    """Upload the (RGB, NIR, TIR) query files into the page's three inputs and wait for the previews."""
    for modality, path in zip(MODALITIES, paths):
        page.locator(f"#query-{modality} input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#query-tir img", timeout=timeout_ms)
