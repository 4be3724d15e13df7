"""End-to-end tests of ``app.py``: one server process on a free local port (tiny random model,
generated gallery), queried with gradio_client (good triple, missing modality, every kind of bad
input, 16 concurrent clients x 10 searches), over plain HTTP (which files it serves) and with a
real Chromium browser driven by Playwright.

The browser test skips when Chromium or Playwright is not installed, except under CI (env CI set),
where it fails. ``SIGNAL_SCREENSHOT=path.png`` saves a screenshot of the page after the search.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.browser import CHROMIUM, free_port, set_query
from demo.text import score_decimals
from tests.browser_helpers import SEARCH_MS, UI_MS, browser_page, events_finished
from tests.demo_helpers import make_checkpoint, make_triples_folder, write_png_header

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python app.py`` on a free port (uploads up to 1 MB); yields (url, query folder, root folder:
    cache/, gallery/, model.safetensors); stopped at the end."""
    with run_app(tmp_path_factory.mktemp("demo_app")) as (url, queries, root, _):
        yield url, queries, root


@pytest.fixture(scope="module")
def bf16_server(tmp_path_factory):
    """The same app with bf16 inference forced (what ``auto`` picks on CPUs with AMX)."""
    with run_app(tmp_path_factory.mktemp("demo_app_bf16"), "--precision", "bf16") as (url, queries, root, _):
        yield url, queries, root


@contextlib.contextmanager
def run_app(root: Path, *extra: str):
    """``python app.py`` with a tiny model and a 5-identity gallery under ``root``, ``extra`` flags; yields
    (url, query folder, root, the process); stopped (SIGTERM) at the end, and its log must hold no traceback."""
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
                             "--queries", str(queries), "--port", str(port), "--max-file-size", "1", *extra],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
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
                pytest.fail(f"app.py not ready after 300 s:\n{(root / 'server.log').read_text()}")
            time.sleep(0.25)
        yield url, queries, root, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert "Traceback" not in (root / "server.log").read_text()


def _client(url):
    from gradio_client import Client

    # a generous timeout: on a loaded 2-core CI machine 16 clients starting at once can wait a while
    return Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 120})


def _triple(folder: Path, name: str):
    from gradio_client import handle_file

    return [handle_file(str(folder / d / name)) for d in ("RGB", "NI", "TI")]


def test_search_good_triple(server):
    url, queries, _ = server
    gallery, status, *outputs = _client(url).predict(*_triple(queries, "000002_cam2_001.png"), 5, "2",
                                                      api_name="/search")
    captions = [item["caption"] for item in gallery]
    assert len(captions) == 5
    assert captions[0].startswith("#1 ✓ id 2 · cam 2 · 1.000"), captions  # itself, same camera
    assert all(c.startswith(f"#{i + 1}") for i, c in enumerate(captions))
    sims = [float(c.split("·")[2]) for c in captions]
    assert sims == sorted(sims, reverse=True)
    assert all(c.split("·")[3].split()[0].startswith("R") for c in captions)  # the parts' shares
    assert "Top 5" in status and "query id 2" in status and "Missing" not in status
    assert all(o is not None for o in outputs[:3])  # the query's RGB / NIR / TIR overlays


def test_search_missing_modality(server):
    url, queries, _ = server
    rgb, _, tir = _triple(queries, "000004_cam1_000.png")
    gallery, status, *_ = _client(url).predict(rgb, None, tir, 3, "unknown", api_name="/search")
    assert len(gallery) == 3 and "Missing modality: **NIR**" in status and "zeroed" in status


def _error_message(client, *inputs, api_name="/search") -> str:
    """The message of the gr.Error that ``api_name`` raises for these inputs (gradio_client's AppError)."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict(*inputs, api_name=api_name)
    return str(info.value)


def test_search_json(server, tmp_path):
    url, queries, _ = server
    client = _client(url)
    rgb, nir, tir = _triple(queries, "000002_cam2_001.png")
    answer = client.predict(rgb, nir, tir, 4, "2", api_name="/search_json")
    assert answer["query_identity"] == 2 and answer["camera"] == 2 and answer["missing"] == []
    assert [m["rank"] for m in answer["matches"]] == [1, 2, 3, 4] and answer["seconds"] > 0
    first = answer["matches"][0]
    assert first["name"] == "000002_cam2_001.png" and first["identity"] == 2 and first["camera"] == 2
    assert first["score"] == pytest.approx(1.0, abs=1e-4)
    assert all(p["cosine"] == pytest.approx(1.0, abs=1e-4) for p in first["parts"].values())
    for match in answer["matches"]:
        assert set(match["parts"]) == {"rgb", "nir", "tir", "fused"}
        assert sum(p["share"] for p in match["parts"].values()) == pytest.approx(1.0, abs=1e-4)
    # the same ranking as the page's /search
    gallery, *_ = client.predict(rgb, nir, tir, 4, "2", api_name="/search")
    decimals = score_decimals([m["score"] for m in answer["matches"]])
    assert [g["caption"].split("·")[2].strip() for g in gallery] == [f"{m['score']:.{decimals}f}"
                                                                    for m in answer["matches"]]
    missing = client.predict(rgb, None, tir, 2, "unknown", api_name="/search_json")
    assert missing["missing"] == ["nir"] and missing["camera"] is None and len(missing["matches"]) == 2
    assert _error_message(client, rgb, nir, tir, 3, "9", api_name="/search_json") == (
        "camera 9 given for the query '000002_cam2_001.png' does not exist for this model: use a camera from "
        "1 to 4, or 'unknown' (mean camera embedding).")
    assert _error_message(client, None, None, None, 3, "unknown", api_name="/search_json") == (
        "Give at least one image (RGB, NIR or TIR) to search with.")


def test_user_errors_raise_in_the_client(server, tmp_path):
    from gradio_client import handle_file

    url, queries, _ = server
    client = _client(url)
    rgb, nir, tir = _triple(queries, "000004_cam1_000.png")
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not an image")
    assert _error_message(client, rgb, handle_file(str(bad)), None, 3, "unknown") == (
        "NIR input: 'notes.txt' is not an image file in a format read here (JPEG, PNG, BMP, TIFF, WebP or PPM / "
        "PGM): convert it to PNG or JPEG.")
    assert _error_message(client, None, None, None, 3, "unknown") == (
        "Give at least one image (RGB, NIR or TIR) to search with.")
    assert _error_message(client, rgb, nir, tir, 3.7, "unknown") == (
        "top k must be a whole number from 1 to 15, got 3.7.")
    assert _error_message(client, rgb, nir, tir, 3, "9") == (
        "camera 9 given for the query '000004_cam1_000.png' does not exist for this model: use a camera from "
        "1 to 4, or 'unknown' (mean camera embedding).")
    big = handle_file(str(write_png_header(tmp_path / "big.png", 13000, 13000)))  # 657 KB would be real
    assert _error_message(client, big, nir, tir, 3, "unknown") == (
        "RGB input: 'big.png' has 169 Mpx, over the limit of 40 Mpx: downscale it first.")
    garbage = {"path": None, "url": "data:image/png;base64,bm90IGFuIGltYWdl", "meta": {"_type": "gradio.FileData"}}
    message = _error_message(client, garbage, nir, tir, 3, "unknown")  # taken in as an upload, then decoded
    assert message.startswith("RGB input: 'upload-") and "is not an image file in a format read here" in message
    large = tmp_path / "large.png"
    large.write_bytes(os.urandom(1_200_000))  # over the server's --max-file-size 1 (MB)
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):  # told by the client
        client.predict(handle_file(str(large)), nir, tir, 3, "unknown", api_name="/search")
    import httpx  # gradio_client's own HTTP library

    answer = httpx.post(f"{url}gradio_api/upload", files={"files": ("large.png", large.read_bytes(), "image/png")})
    assert answer.status_code == 413 and "maximum allowed size of 1048576 bytes" in answer.text  # and the server
    # still serving after the errors
    gallery, _, *_ = client.predict(rgb, nir, tir, 2, "1", api_name="/search")
    assert gallery[0]["caption"].startswith("#1 ✓ id 4")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _file_url(base: str, path) -> str:
    return f"{base}gradio_api/file={urllib.parse.quote(str(path))}"


def test_serves_only_what_the_page_shows(server):
    url, queries, root = server
    gallery, _, *overlays = _client(url).predict(*_triple(queries, "000002_cam2_001.png"), 3, "2",
                                                  api_name="/search")
    cache = root / "cache"
    (cache / "secret.txt").write_text("hf_token")
    feature_files = list(cache.glob("gallery-*.safetensors"))
    assert len(feature_files) == 1
    refused = [*feature_files, cache / "secret.txt", root / "model.safetensors", root / "server.log",
               root / "gallery" / "RGB" / "000001_cam1_000.png", REPO / "README.md", REPO / "app.py",
               queries / "RGB" / "000002_cam2_001.png"]  # the examples are served from copies (below)
    for path in refused:
        assert _get(_file_url(url, path))[0] == 403, path
    thumbnail = Path(gallery[0]["image"]["path"])
    assert thumbnail.parent.parent == cache and thumbnail.parent.name.startswith("thumbs-")
    per_process = Path(overlays[0]["path"]).parent  # the demo's folder of per-search images and example copies
    example = per_process / "examples" / "RGB" / "000002_cam2_001.png"
    served = [thumbnail, example, *(Path(o["path"]) for o in overlays[:3])]
    for path in served:
        status, body = _get(_file_url(url, path))
        assert status == 200 and body == path.read_bytes(), path
    assert all(Path(o["path"]).parent.name.startswith("signal-demo-") for o in overlays[:3])


def test_sixteen_concurrent_clients_ten_searches_each_bf16(bf16_server):
    """16 clients x 10 searches at once with bf16 inference forced: no error, rankings and scores
    exactly those of a serial run, every thumbnail and overlay a complete image (issue 21: bf16
    searches running at once failed with "mat1 and mat2 must have the same dtype")."""
    url, queries, _ = bf16_server
    names = ["000002_cam2_001.png", "000004_cam1_000.png"]

    def search(client, name):
        return client.predict(*_triple(queries, name), 4, name.split("_")[1][3:], api_name="/search")

    serial_client = _client(url)
    serial = {name: [g["caption"] for g in search(serial_client, name)[0]] for name in names}
    clients = [_client(url) for _ in range(16)]

    def one(i):
        client, answers = clients[i], []
        for j in range(10):
            name = names[(i + j) % 2]
            try:
                gallery, status, *overlays = search(client, name)
            except Exception as exc:  # noqa: BLE001 - counted and shown below
                answers.append((name, repr(exc), []))
                continue
            images = [g["image"]["url"] for g in gallery] + [o["url"] for o in overlays[:3]]
            decoded = [np.asarray(Image.open(io.BytesIO(_get(u)[1]))) for u in images]
            answers.append((name, [g["caption"] for g in gallery], [d.size for d in decoded]))
        return answers

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        answers = [a for batch in pool.map(one, range(16)) for a in batch]
    seconds = time.perf_counter() - start
    print(f"16 clients x 10 searches (bf16): {len(answers)} in {seconds:.1f} s "
          f"= {len(answers) / seconds:.1f} searches/s")
    errors = [(name, captions) for name, captions, _ in answers if isinstance(captions, str)]
    assert errors == [] and len(answers) == 160
    for name, captions, sizes in answers:
        assert captions == serial[name], (name, captions, serial[name])
        assert captions[0].startswith(f"#1 ✓ id {int(name[:6])} ")
        assert len(sizes) == 7 and min(sizes) > 0


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
    from playwright.sync_api import expect

    url, queries, _ = server
    with browser_page(url, chromium) as page:
        for _ in range(2):  # the modality switch without a query: nothing happens, no error
            with events_finished(page):
                page.locator("#modalities label", has_text="TIR").click()
        assert "Give a query" in page.locator("#status").inner_text() and not page.locator(".toast-body").count()
        set_query(page, [queries / folder / "000002_cam2_001.png" for folder in ("RGB", "NI", "TI")], timeout_ms=UI_MS)
        page.click("#search-button")
        expect(page.locator("#results .thumbnail-item img").first).to_be_attached(timeout=SEARCH_MS)
        for modality in ("rgb", "nir", "tir"):
            expect(page.locator(f"#query-overlay-{modality} img")).to_be_attached(timeout=SEARCH_MS)
        captions = page.locator("#results .caption-label").all_inner_texts()
        assert len(captions) == 10 and captions[0].startswith("#1 ✓ id 2"), captions
        assert "query id 2" in page.locator("#status").inner_text()
        assert " R#" in captions[0] and " F#" in captions[0]  # each part's own rank of the result
        page.locator("#results .thumbnail-item").first.click()
        expect(page.locator("#selected-overlay-rgb img")).to_be_attached(timeout=UI_MS)
        selected = page.locator("#selected").inner_text()
        assert "Selected #1" in selected and "fused SIM tokens" in selected and "cosine" in selected
        shot = os.environ.get("SIGNAL_SCREENSHOT")
        if shot:
            page.screenshot(path=shot, full_page=True)
        _check_view_switch(page, shot and shot.replace(".png", "-scores.png"))
        page.locator("#modalities label", has_text="NIR").click()  # the switch searches again
        expect(page.locator("#status")).to_contain_text("Switched off", timeout=SEARCH_MS)
        moved = page.locator("#results .caption-label").all_inner_texts()
        assert len(moved) == 10 and all("(was " in c for c in moved), moved
        if shot:
            page.screenshot(path=shot.replace(".png", "-switch.png"), full_page=True)


def _check_view_switch(page, shot: str | None) -> None:
    """"SIM scores" swaps the query's and the selected result's overlays for the (wider) heatmaps, and back;
    ``shot``: a screenshot of the heatmap view."""
    from playwright.sync_api import expect

    def sources():
        return [page.locator(f"#{kind}-overlay-{m} img").get_attribute("src")
                for kind in ("query", "selected") for m in ("rgb", "nir", "tir")]

    kept = sources()
    page.locator("#view label", has_text="SIM scores").click()
    expect(page.locator("#query-overlay-rgb img")).not_to_have_attribute("src", kept[0], timeout=UI_MS)
    expect(page.locator("#selected-overlay-tir img")).not_to_have_attribute("src", kept[5], timeout=UI_MS)
    heat = sources()
    assert all(h != k for h, k in zip(heat, kept)), (heat, kept)
    size = page.evaluate("(() => { const i = document.querySelector('#query-overlay-rgb img');"
                         " return [i.naturalWidth, i.naturalHeight]; })()")
    assert size[0] > size[1], size  # intra | inter side by side
    if shot:
        page.screenshot(path=shot, full_page=True)
    page.locator("#view label", has_text="kept tokens").click()
    expect(page.locator("#query-overlay-rgb img")).to_have_attribute("src", kept[0], timeout=UI_MS)
