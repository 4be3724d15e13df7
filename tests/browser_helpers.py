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
    their results on one ``queue/data`` stream per session, which the server closes when none is pending.

    The stream's end is seen as "requestfinished", or as "requestfailed" when the page's client aborts the
    fetch on reading the server's ``close_stream`` message before the response's end arrives (seen once in
    CI on a loaded machine: waiting for "requestfinished" alone then hung until its bound)."""
    ended = []

    def on_end(request) -> None:
        if "/queue/data" in request.url:
            ended.append(request)

    page.on("requestfinished", on_end)
    page.on("requestfailed", on_end)
    try:
        yield
        deadline = time.monotonic() + timeout_ms / 1000
        while not ended:
            assert time.monotonic() < deadline, f"no gradio event finished within {timeout_ms / 1000:g} s"
            page.evaluate(_ONE_TICK)  # a round trip to the page: Playwright delivers the events meanwhile
        page.evaluate(_ONE_TICK)  # the client has read the stream's end before the test acts again
    finally:
        page.remove_listener("requestfinished", on_end)
        page.remove_listener("requestfailed", on_end)


_ONE_TICK = "() => new Promise(done => setTimeout(done, 100))"


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = SERVER_S) -> None:
    """Return once ``condition()`` holds (checked every 0.2 s); fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s:g} s"
        time.sleep(0.2)
