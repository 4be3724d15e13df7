"""The demo under abuse, end to end on ``app.py`` with small limits (visitors' galleries kept: 1 MB; gradio's
upload folder: 2 MB): a visitor whose gallery was removed is told so, uploads cannot fill the disk and
refused ones leave nothing, messages are short and name no server path, a refused request is one log
line, names are escaped, and SIGTERM removes the visitors' images. The page in Chromium: a search
without an image says why, a change of gallery clears the results, a modality switch drops the
highlight of a result that moved.

``SIGNAL_SCREENSHOT_ABUSE=path.png`` saves screenshots of the page (path-*.png).
"""
from __future__ import annotations

import base64
import io
import os
import re
import signal
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from benchmarks.browser import set_query
from tests import test_demo_app
from tests.browser_helpers import LOAD_MS, SEARCH_MS, UI_MS, browser_page
from tests.demo_helpers import make_triples_folder
from tests.test_demo_app import _client, _error_message, _file_url, _get, _triple, run_app
from tests.upload_helpers import triple_members, zip_bomb, zip_folder, zip_members

pytestmark = pytest.mark.slow
chromium = test_demo_app.chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_app(tmp_path_factory.mktemp("abuse"), "--upload-keep-mb", "1", "--upload-max-mb", "1",
                 "--upload-cache-mb", "2") as running:
        yield running


@pytest.fixture(scope="module")
def noisy_zip(tmp_path_factory) -> Path:
    """One triple of 256 x 256 noise images (about 0.6 MB: two such galleries exceed the 1 MB budget)."""
    root = tmp_path_factory.mktemp("noisy")
    rng = np.random.default_rng(0)
    for d in ("RGB", "NI", "TI"):
        (root / "g" / d).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(root / "g" / d /
                                                                                  "000007_cam1_000.png")
    return zip_folder(root / "g", root / "noisy.zip")


def _load(client, path: Path) -> str:
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), api_name="/load_gallery")


def _uploads(root: Path) -> list[Path]:
    """The files in the server's gradio upload folder."""
    return [p for p in (root / "gradio").rglob("*") if p.is_file()]


def test_a_visitor_whose_gallery_was_removed_is_told(server, noisy_zip):
    url, queries, root, _ = server
    alice, bob = _client(url), _client(url)
    triple = _triple(queries, "000002_cam2_001.png")
    assert _load(alice, noisy_zip).startswith("Loaded 1 triples from 'noisy.zip'")
    answer = alice.predict(*triple, 1, "unknown", api_name="/search_json")
    assert answer["gallery"] == {"name": "your gallery 'noisy.zip'", "triples": 1}
    assert [p.name for p in _uploads(root) if p.suffix == ".zip"] == ["noisy.zip"]  # kept: another may load it
    assert _load(bob, noisy_zip).startswith("Loaded 1 triples")  # over the 1 MB budget: alice's is removed
    message = _error_message(alice, *triple, 1, "unknown", api_name="/search_json")
    assert message.startswith("your gallery 'noisy.zip' was removed to make room for other visitors' galleries")
    assert "Load it again" in message
    _, status, *_ = bob.predict(*triple, 1, "unknown", api_name="/search")
    assert "of 1 gallery triples (your gallery 'noisy.zip')" in status
    assert alice.predict(api_name="/reset_gallery") == "You are searching the default gallery."
    answer = alice.predict(*triple, 3, "unknown", api_name="/search_json")
    assert answer["gallery"] == {"name": "default gallery", "triples": 15}
    for path in _uploads(root):  # room again for the other tests
        path.unlink()


def test_several_visitors_load_the_same_zip_at_once(server, tmp_path):
    """gradio keeps identical uploads at one path: no load may delete it under the others."""
    from concurrent.futures import ThreadPoolExecutor

    url, _, root, _ = server
    archive = zip_folder(make_triples_folder(tmp_path / "g", ids=(3,), per_id=1, seed=5), tmp_path / "same.zip")
    clients = [_client(url) for _ in range(6)]
    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(lambda client: _load(client, archive), clients))
    assert all(answer.startswith("Loaded 1 triples from 'same.zip'") for answer in answers), answers
    for client in clients:
        client.predict(api_name="/reset_gallery")
    for path in _uploads(root):  # room again for the other tests
        path.unlink()


def test_refused_uploads_are_deleted_and_the_upload_folder_is_capped(server, tmp_path):
    url, _, root, _ = server
    client = _client(url)
    bomb = zip_bomb(tmp_path / "bomb.zip")
    before = _uploads(root)
    with pytest.raises(Exception, match="^Upload refused: the zip would unpack to 10 MB"):
        _load(client, bomb)
    assert _uploads(root) == before  # nothing of it stays, so nothing can be downloaded by its path
    posted = []
    for i in range(4):  # 4 x 0.9 MB of fresh uploads into a 2 MB folder: the third is refused
        answer = httpx.post(f"{url}gradio_api/upload", files={"files": (f"p{i}.png", os.urandom(900_000))})
        posted.append(answer.status_code)
        if answer.status_code == 200:
            assert _get(_file_url(url, answer.json()[0]))[0] == 200
        else:
            assert answer.json() == {"error": "this server's upload space (2 MB) is full: try again in a few minutes."}
    assert posted[:2] == [200, 200] and posted[2:] == [507, 507], posted
    assert sum(p.stat().st_size for p in _uploads(root)) <= 2 << 20
    chunked = httpx.post(f"{url}gradio_api/upload", content=iter([b"x"]), headers={"content-type": "text/plain"})
    assert chunked.status_code == 411
    for path in _uploads(root):  # make room again for the other tests
        path.unlink()


def test_messages_are_short_name_no_server_path_and_log_one_line(server, tmp_path):
    url, queries, root, _ = server
    client = _client(url)
    triple = _triple(queries, "000004_cam1_000.png")
    folder = make_triples_folder(tmp_path / "g", ids=(1,), per_id=1)
    long_name = "RGB/" + "z" * 300 + ".png"
    members = {**triple_members(folder), long_name: (folder / "RGB" / "000001_cam1_000.png").read_bytes()}
    log_before = (root / "server.log").stat().st_size
    messages = [
        _load_error(client, zip_members(tmp_path / "long.zip", members)),
        _error_message(client, *triple, 3, "x" * 3_000_000),
        _error_message(client, *triple, "abc", "unknown"),
        _error_message(client, *triple, [1, 2], {"a": 1}),
        _error_message(client, None, None, None, 3, "unknown"),
    ]
    assert messages[0].startswith("Upload refused: 'RGB/zzzz") and "(308 characters)" in messages[0]
    assert messages[1].startswith("camera 'xxxx") and "(3000000 characters)" in messages[1]
    assert messages[2] == "top k must be a whole number from 1 to 15, got 'abc'."
    assert messages[3] == "top k must be a whole number from 1 to 15, got [1, 2]."
    for message in messages:
        assert len(message) < 400 and "/tmp" not in message and str(root) not in message, message
        assert not re.search(r"signal-uploads-|[0-9a-f]{16}", message), message  # no folder, no upload token
    log = (root / "server.log").read_text()[log_before:]
    assert "Traceback" not in log and log.count("\n") <= 2 * len(messages), log  # one line each (plus httpx's)
    assert len(log) < 3000


def _load_error(client, path: Path) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        _load(client, path)
    return str(info.value)


def test_names_in_the_upload_status_are_escaped(server, tmp_path):
    url, _, _, _ = server
    folder = make_triples_folder(tmp_path / "g", ids=(1,), per_id=1)
    archive = zip_members(tmp_path / "names.zip", {**triple_members(folder), "<img src=x onerror=alert(1)>.png": b"x",
                                                  "<script>alert(1)</script>.txt": b"x"})
    client = _client(url)
    status = _load(client, archive)
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in status and "&lt;script&gt;alert(1)&lt;/script&gt;.txt" in status
    assert "<img" not in status and "<script" not in status
    client.predict(api_name="/reset_gallery")


def test_browser_no_image_gallery_change_and_modality_switch(chromium, server, tmp_path):
    from playwright.sync_api import expect

    url, queries, root, _ = server
    shot = os.environ.get("SIGNAL_SCREENSHOT_ABUSE")
    folder = make_triples_folder(tmp_path / "mine", ids=(7, 8), per_id=2, seed=3)
    archive = zip_folder(folder, tmp_path / "mine.zip")
    with browser_page(url, chromium, height=2000) as page:
        status, results = page.locator("#status"), page.locator("#results .thumbnail-item")
        page.click("#search-button")  # no image: the API's message on the page, no error badge
        expect(status).to_contain_text("Give at least one image", timeout=UI_MS)
        assert status.inner_text().startswith("⚠️ Give at least one image (RGB, NIR or TIR)")
        assert not page.locator(".toast-body").count() and not page.locator(".error").count()
        if shot:
            page.screenshot(path=shot.replace(".png", "-no-image.png"), full_page=True)
        set_query(page, [queries / d / "000002_cam2_001.png" for d in ("RGB", "NI", "TI")], timeout_ms=UI_MS)
        page.click("#search-button")
        expect(page.locator("#results .thumbnail-item img").first).to_be_attached(timeout=SEARCH_MS)
        results.nth(1).click()  # the orange highlight on result 2
        expect(page.locator("#selected-overlay-rgb img")).to_be_attached(timeout=UI_MS)
        assert page.locator("#results .thumbnail-item.selected").count() == 1
        before = page.locator("#results .caption-label").all_inner_texts()
        page.locator("#modalities label", has_text="RGB").click()  # the results move: no stale highlight
        expect(status).to_contain_text("Switched off", timeout=SEARCH_MS)
        assert page.locator("#results .caption-label").all_inner_texts() != before
        assert page.locator("#results .thumbnail-item.selected").count() == 0
        assert page.locator("#selected").inner_text() == "Click a result above to see what the model looked at " \
            "in it and its score by part."
        if shot:
            page.screenshot(path=shot.replace(".png", "-switch.png"), full_page=True)
        page.get_by_text("Search your own gallery").click()
        page.locator("#upload-files input[type=file]").set_input_files(str(archive))
        expect(page.locator("#upload-files")).to_contain_text("mine.zip", timeout=UI_MS)
        page.click("#load-gallery")
        expect(page.locator("#upload-status")).to_contain_text("Loaded 4 triples", timeout=LOAD_MS)
        expect(status).to_contain_text("the gallery changed", timeout=UI_MS)
        assert results.count() == 0  # the default gallery's results are gone
        page.click("#search-button")
        expect(status).to_contain_text("your gallery 'mine.zip'", timeout=SEARCH_MS)
        assert results.count() == 4
        page.click("#reset-gallery")
        expect(status).to_contain_text("the gallery changed", timeout=UI_MS)
        assert results.count() == 0  # the uploaded gallery's results are gone
        if shot:
            page.screenshot(path=shot.replace(".png", "-reset.png"), full_page=True)


def _png_bytes(height: int, width: int, seed: int = 0) -> bytes:
    """A PNG of noise (incompressible: about 3 bytes a pixel)."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer,
                                                                                                          "PNG")
    return buffer.getvalue()


def _call(url: str, image, api: str = "search_json") -> tuple[int, str]:
    """(status, text) of a REST call of ``api`` with ``image`` as its RGB input: the HTTP refusal, or the
    event stream's result."""
    answer = httpx.post(f"{url}gradio_api/call/{api}", json={"data": [image, None, None, 3, "unknown"]}, timeout=120)
    if answer.status_code != 200:
        return answer.status_code, answer.json()["error"]
    with httpx.stream("GET", f"{url}gradio_api/call/{api}/{answer.json()['event_id']}", timeout=120) as events:
        return 200, "".join(events.iter_text())


def test_files_embedded_in_the_json_are_held_to_the_upload_limits(server):
    """data: URLs in an API call's JSON: 1 MB per file, 2 MB in the upload folder, the decoder's formats; what
    is refused is not kept; a URL to fetch and a value that is no file are refused in one line."""
    url, queries, root, _ = server
    for path in _uploads(root):  # an empty 2 MB folder (the tests before leave recent query images)
        path.unlink()
    before = _uploads(root)
    static = str(queries / "RGB" / "000002_cam2_001.png")  # a served file: gradio reads it in place

    def embedded(data: bytes, kind: str = "png", **where) -> dict:
        data_url = f"data:image/{kind};base64," + base64.b64encode(data).decode()
        return {"path": static, "url": data_url, "meta": {"_type": "gradio.FileData"}} | where

    big = _png_bytes(600, 800)  # 1.4 MB: over --max-file-size 1
    assert _call(url, embedded(big)) == (413, "a file of 1 MB is over this server's limit of 1 MB per file.")
    as_path = {"path": "data:image/png;base64," + base64.b64encode(big).decode(), "meta": {"_type": "gradio.FileData"}}
    assert _call(url, as_path)[0] == 413
    assert _uploads(root) == before
    answers = [_call(url, embedded(_png_bytes(480, 480, seed)))[0] for seed in range(4)]  # 0.66 MB each
    assert answers == [200, 200, 200, 507], answers  # the 2 MB folder is full after three
    assert sum(p.stat().st_size for p in _uploads(root)) <= 2 << 20
    status, events = _call(url, embedded(_png_bytes(8, 8), "png"))  # small: still room
    assert status == 200 and '"matches"' in events
    added = set(_uploads(root)) - set(before)
    assert len(added) == 4 and all(p.suffix == ".png" for p in added)
    for path in added:  # room again for what follows
        path.unlink()
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n"
    status, events = _call(url, embedded(eps, "eps"))
    assert status == 200 and "RGB input: 'upload-" in events and "not an image file in a format read here" in events
    assert _uploads(root) == before  # refused by the decoder: deleted
    assert _call(url, {"path": "https://example.com/a.png", "meta": {"_type": "gradio.FileData"}}) == (
        400, "a file given as a URL is not fetched by this server: send the file itself (gradio_client's handle_file "
        "uploads it).")
    status, events = _call(url, 7)
    assert status == 200 and ('"error": "RGB input: not an image file (got 7): send a file (gradio_client\'s '
                              'handle_file(path))."') in events
    assert "Traceback" not in (root / "server.log").read_text()


def test_sigterm_removes_the_visitors_images(server, noisy_zip):
    """Last in this module: stops the server (as containers and Spaces do)."""
    url, _, root, proc = server
    client = _client(url)
    _load(client, noisy_zip)
    found = re.search(r"visitors' galleries: images in (\S+), thumbnails in (\S+)", (root / "server.log").read_text())
    images, thumbs = Path(found[1]), Path(found[2])
    served = Path(re.search(r"(\S*signal-demo-[^/\s]+)", _served_path(client, root))[1])
    assert os.listdir(images) and served.is_dir()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0  # returns when the server has exited; the bound only stops a hang
    assert not images.exists() and not thumbs.exists() and not served.exists()


def _served_path(client, root: Path) -> str:
    """The path of one per-search image (in the demo's served folder)."""
    _, _, overlay, *_ = client.predict(*_triple(root / "query", "000002_cam2_001.png"), 1, "unknown",
                                       api_name="/search")
    return overlay["path"]
