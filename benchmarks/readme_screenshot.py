"""Retake the README's screenshot (docs/figures/demo.png) of ``python app.py`` with no flags, in Chromium.

    python -m benchmarks.readme_screenshot [--out docs/figures/demo.png] [--view registration]

It starts the demo on a free port, searches the first bundled query (identity 601), shows ``--view``
(the bundled model stores registration, so its view is there) and keeps the page from the top to the
query's explanation row. The server's log is checked for tracebacks.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.browser import demo_page, free_port, set_query
from benchmarks.demo_load_bench import start_demo
from signal_core.modalities import FOLDERS
from signal_core.utils.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 240_000


def save_small(png: bytes, out: Path, width: int = 960) -> None:
    """The screenshot at ``width`` pixels in 256 colours (octree keeps the legend's colours), written atomically."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    small = image.quantize(256, method=Image.Quantize.FASTOCTREE)
    atomic_write(out, lambda tmp: small.save(tmp, format="PNG", optimize=True))


def take(out: Path, view: str) -> None:
    from playwright.sync_api import expect

    query = ROOT / "assets" / "demo" / "query"
    name = sorted((query / FOLDERS[0]).iterdir())[0].name
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "app.log"
        proc = start_demo(port, log)  # returns once the page answers
        try:
            url = f"http://127.0.0.1:{port}/"
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
        if "Traceback" in log.read_text():
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
