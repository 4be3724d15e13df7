"""Retake the README's screenshot (docs/figures/demo.png) of ``python app.py`` with no flags, in Chromium.

    python -m benchmarks.readme_screenshot [--out docs/figures/demo.png] [--view registration]

It starts the demo on a free port, searches the first bundled query (identity 601), shows ``--view``
(the bundled model stores registration, so its view is there) and keeps the page from the top to the
query's explanation row. The server's log is checked for tracebacks.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.browser import demo_page, set_query
from signal_core.modalities import FOLDERS

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 240_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the demo did not answer at {url} within {seconds:.0f} s") from None
            time.sleep(1)


def save_small(png: bytes, out: Path, width: int = 960) -> None:
    """The screenshot at ``width`` pixels in 256 colours (octree keeps the legend's colours), written atomically."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    tmp = out.with_name(out.name + ".tmp")
    image.quantize(256, method=Image.Quantize.FASTOCTREE).save(tmp, format="PNG", optimize=True)
    tmp.replace(out)


def take(out: Path, view: str) -> None:
    from playwright.sync_api import expect

    query = ROOT / "assets" / "demo" / "query"
    name = sorted((query / FOLDERS[0]).iterdir())[0].name
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_for(url, WAIT_MS / 1000)
            with demo_page(url, timeout_ms=WAIT_MS, height=1800) as page:
                page.set_default_timeout(WAIT_MS)
                set_query(page, [query / d / name for d in FOLDERS], timeout_ms=WAIT_MS)
                page.click("#search-button")
                expect(page.locator("#results .thumbnail-item img").first).to_be_attached(timeout=WAIT_MS)
                overlay = page.locator("#query-overlay-nir img")
                expect(overlay).to_be_attached(timeout=WAIT_MS)
                before = overlay.get_attribute("src")
                if view:
                    page.locator("#view label", has_text=view).click()
                    expect(overlay).not_to_have_attribute("src", before, timeout=WAIT_MS)
                page.evaluate("document.fonts.ready")
                box = page.locator("#query-overlay-tir").bounding_box()  # relative to the scrolled viewport
                bottom = box["y"] + box["height"] + 8 + page.evaluate("window.scrollY")
                width = page.viewport_size["width"]
                shot = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": width, "height": bottom})
            save_small(shot, out)
        finally:
            proc.terminate()
            proc.wait(30)
        log.seek(0)
        if "Traceback" in log.read():
            raise SystemExit("the demo's log has a traceback; the screenshot was written but check it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "demo.png")
    parser.add_argument("--view", default="registration", help="the view to show: kept tokens, SIM scores, "
                        "registration (default), or '' for the page's own")
    args = parser.parse_args()
    take(args.out, args.view)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
