"""How the browser and server tests wait: on what they check, never for a fixed time.

Each wait is Playwright's ``expect`` / ``wait_for_*`` (or :func:`wait_until` for the server's files), which
returns as soon as the page (or the folder) shows what is checked. Its bound only says when to give up,
and is sized for the work behind it on a 2-core machine shared with other test processes (a search there
once took over 30 s while it takes under a second alone).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from benchmarks.browser import demo_page

UI_MS = 120_000  # the page reacting to a click, an upload or a switch (no model work, or one query's drawings)
SEARCH_MS = 240_000  # a search: the query's forward pass, the ranking, the result thumbnails and overlays
LOAD_MS = 300_000  # a visitor's gallery: unzip, decode and extract the features of every triple
PAGE_MS = 300_000  # the page itself: gradio's first load in a new browser
SERVER_S = 120.0  # the server acting on its own after a page closes (removing a session's folders)


@contextmanager
def browser_page(url: str, chromium: str, height: int = 1600) -> Iterator:
    """:func:`benchmarks.browser.demo_page` whose Playwright actions (click, upload, read) wait up to ``UI_MS``
    for their element instead of Playwright's 30 s."""
    with demo_page(url, chromium, height=height, timeout_ms=PAGE_MS) as page:
        page.set_default_timeout(UI_MS)
        yield page


@contextmanager
def events_finished(page, timeout_ms: int = SEARCH_MS) -> Iterator:
    """On leaving the block, wait until the queued gradio events it started have finished: the page receives
    their results on one ``queue/data`` stream per session, which the server closes when none is pending."""
    with page.expect_request_finished(lambda request: "/queue/data" in request.url, timeout=timeout_ms):
        yield


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = SERVER_S) -> None:
    """Return once ``condition()`` holds (checked every 0.2 s); fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s:g} s"
        time.sleep(0.2)
