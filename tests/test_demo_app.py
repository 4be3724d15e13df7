"""End-to-end tests of ``app.py``: one server process on a free local port (tiny random model,
generated gallery), queried with gradio_client (good triple, missing modality, non-image file,
16 concurrent clients) and with a real Chromium browser driven by Playwright.

The browser test skips when Chromium or Playwright is not installed, except under CI (env CI set),
where it fails. ``SIGNAL_SCREENSHOT=path.png`` saves a screenshot of the page after the search.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from demo_helpers import free_port, make_checkpoint, make_triples_folder

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("SIGNAL_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python app.py`` on a free port; yields (url, query folder); stopped at the end."""
    root = tmp_path_factory.mktemp("demo_app")
    weights = make_checkpoint(root / "model.safetensors")
    gallery = make_triples_folder(root / "gallery", ids=(1, 2, 3, 4, 5), per_id=3)
    queries = root / "query"
    for d in ("RGB", "NI", "TI"):  # queries: copies of gallery triples under their own names
        (queries / d).mkdir(parents=True)
        for name in ("000002_cam2_001.png", "000004_cam1_000.png"):
            shutil.copy(gallery / d / name, queries / d / name)
    port = free_port()
    env = {**os.environ, "SIGNAL_CACHE_DIR": str(root / "cache"), "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(root / "gradio"), "SIGNAL_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--weights", str(weights), "--gallery", str(gallery),
                             "--queries", str(queries), "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{(root / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py not ready after 60 s:\n{(root / 'server.log').read_text()}")
            time.sleep(0.25)
        yield url, queries
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert "Traceback" not in (root / "server.log").read_text()


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def _triple(folder: Path, name: str):
    from gradio_client import handle_file

    return [handle_file(str(folder / d / name)) for d in ("RGB", "NI", "TI")]


def test_search_good_triple(server):
    url, queries = server
    gallery, status, *outputs = _client(url).predict(*_triple(queries, "000002_cam2_001.png"), 5, "2",
                                                      api_name="/search")
    captions = [item["caption"] for item in gallery]
    assert len(captions) == 5
    assert captions[0].startswith("#1 ✓ id 2 · cam 2 · 1.000"), captions  # itself, same camera
    assert all(c.startswith(f"#{i + 1}") for i, c in enumerate(captions))
    sims = [float(c.rsplit("·", 1)[1]) for c in captions]
    assert sims == sorted(sims, reverse=True)
    assert "Top 5" in status and "query id 2" in status and "Missing" not in status
    assert all(o is not None for o in outputs[:3])  # the query's RGB / NIR / TIR overlays


def test_search_missing_modality_and_bad_file(server, tmp_path):
    url, queries = server
    client = _client(url)
    rgb, _, tir = _triple(queries, "000004_cam1_000.png")
    gallery, status, *_ = client.predict(rgb, None, tir, 3, "unknown", api_name="/search")
    assert len(gallery) == 3 and "Missing modality: **NIR**" in status and "zeroed" in status
    from gradio_client import handle_file

    bad = tmp_path / "notes.txt"
    bad.write_text("this is not an image")
    gallery, status, *_ = client.predict(rgb, handle_file(str(bad)), None, 3, "unknown", api_name="/search")
    assert gallery == [] and "NIR input: 'notes.txt' is not an image file" in status
    gallery, status, *_ = client.predict(None, None, None, 3, "unknown", api_name="/search")
    assert gallery == [] and "at least one image" in status
    # still serving after the errors
    gallery, _, *_ = client.predict(*_triple(queries, "000004_cam1_000.png"), 2, "1", api_name="/search")
    assert gallery[0]["caption"].startswith("#1 ✓ id 4")


def test_sixteen_concurrent_clients(server):
    url, queries = server
    names = ["000002_cam2_001.png", "000004_cam1_000.png"]

    def one(i):
        name = names[i % 2]
        cam = name.split("_")[1][3:]
        gallery, status, *_ = _client(url).predict(*_triple(queries, name), 4, cam, api_name="/search")
        return name, [g["caption"] for g in gallery], status

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(16)))
    assert len(answers) == 16
    for name, captions, status in answers:
        pid = int(name[:6])
        assert len(captions) == 4 and captions[0].startswith(f"#1 ✓ id {pid} "), (name, captions, status)


@pytest.fixture(scope="module")
def chromium():
    """Skip (fail under CI) when Chromium or Playwright is missing; checked before the server starts."""
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is not installed (pip install playwright)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run under CI: {problem}")
        pytest.skip(problem)
    return CHROMIUM


def test_browser_search_shows_results_and_overlays(chromium, server):
    from playwright.sync_api import sync_playwright

    url, queries = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(url)
            page.wait_for_selector("#search-button", timeout=30_000)
            for modality, folder in (("rgb", "RGB"), ("nir", "NI"), ("tir", "TI")):
                page.locator(f"#query-{modality} input[type=file]").set_input_files(
                    str(queries / folder / "000002_cam2_001.png"))
            page.wait_for_selector("#query-tir img", timeout=30_000)
            page.click("#search-button")
            page.wait_for_selector("#results .thumbnail-item img", timeout=30_000)
            for modality in ("rgb", "nir", "tir"):
                page.wait_for_selector(f"#query-overlay-{modality} img", timeout=30_000)
            captions = page.locator("#results .caption-label").all_inner_texts()
            assert len(captions) == 10 and captions[0].startswith("#1 ✓ id 2"), captions
            assert "query id 2" in page.locator("#status").inner_text()
            page.locator("#results .thumbnail-item").first.click()
            page.wait_for_selector("#selected-overlay-rgb img", timeout=30_000)
            assert "Selected #1" in page.locator("#selected").inner_text()
            if os.environ.get("SIGNAL_SCREENSHOT"):
                page.screenshot(path=os.environ["SIGNAL_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
