"""``python -m benchmarks.readme_screenshot`` retakes the README's screenshot from ``python app.py`` (no flags):
the page down to the query's registration view, 960 px wide (slow: starts the demo and Chromium)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.browser import CHROMIUM

pytestmark = pytest.mark.slow


def test_the_readme_screenshot_is_retaken_from_the_bundled_demo(tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM} under CI (apt-get install chromium)")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from benchmarks.readme_screenshot import take

    out = tmp_path / "demo.png"
    take(out, "registration")  # raises when the view does not change or the demo's log has a traceback
    image = Image.open(out)
    assert image.width == 960 and 1200 < image.height < 4000, image.size
    assert image.mode == "P" and not list(tmp_path.glob("*.tmp"))
