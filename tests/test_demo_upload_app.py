"""A visitor's own gallery, end to end on ``app.py`` (the server fixture of test_demo_app.py): the
``/load_gallery`` API with a good zip (then that client's ``/search`` runs on it, another client's on
the default gallery) and with malicious zips (refused with a message, nothing written), what is
served, and the page in Chromium: upload a zip, search it, close the tab (its folders are removed).

``SIGNAL_SCREENSHOT_UPLOAD=path.png`` saves a screenshot of the page after the upload and search.
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest

from benchmarks.browser import set_query
from tests import test_demo_app
from tests.browser_helpers import LOAD_MS, SEARCH_MS, UI_MS, browser_page, wait_until
from tests.demo_helpers import make_triples_folder
from tests.test_demo_app import _client, _file_url, _get, _triple
from tests.upload_helpers import (
    listing,
    nested_zip_bomb,
    triple_members,
    zip_bomb,
    zip_folder,
    zip_members,
    zip_with_symlink,
)

pytestmark = pytest.mark.slow
server, chromium = test_demo_app.server, test_demo_app.chromium  # the same fixtures (one server per module)
QUERY = "000008_cam2_001.png"


@pytest.fixture(scope="module")
def mine(tmp_path_factory):
    """(zip of a triples folder of identities 7, 8, 9 in one top folder, that folder)."""
    root = tmp_path_factory.mktemp("mine")
    folder = make_triples_folder(root / "mine", ids=(7, 8, 9), per_id=2, seed=5)
    return zip_folder(folder, root / "mine.zip", top="mine"), folder


def _roots(root: Path) -> tuple[Path, Path]:
    """The server's folders of uploaded images and of their thumbnails (from its log)."""
    found = re.search(r"visitors' galleries: images in (\S+), thumbnails in (\S+)", (root / "server.log").read_text())
    assert found, "the server did not log its upload folders"
    return Path(found[1]), Path(found[2])


def _load(client, path: Path) -> str:
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), api_name="/load_gallery")


def test_load_gallery_then_search_it_in_that_session_only(server, mine):
    url, queries, root = server
    archive, folder = mine
    alice, bob = _client(url), _client(url)
    status = _load(alice, archive)
    assert status.startswith("Loaded 6 triples from 'mine.zip' in ") and "Your searches now run on this" in status
    gallery, text, *_ = alice.predict(*_triple(folder, QUERY), 6, "2", api_name="/search")
    captions = [g["caption"] for g in gallery]
    assert captions[0].startswith("#1 ✓ id 8 · cam 2 · 1.000") and len(captions) == 6, captions
    assert {int(c.split("id ")[1].split(" ")[0]) for c in captions} == {7, 8, 9}
    assert "of 6 gallery triples" in text
    answer = alice.predict(*_triple(folder, QUERY), 6, "2", api_name="/search_json")  # the JSON API too
    assert [m["identity"] for m in answer["matches"]][0] == 8 and len(answer["matches"]) == 6
    assert {m["identity"] for m in answer["matches"]} == {7, 8, 9}
    thumbs_root = _roots(root)[1]
    thumbnail = Path(gallery[0]["image"]["path"])
    assert thumbnail.is_relative_to(thumbs_root)
    status, body = _get(_file_url(url, thumbnail))
    assert status == 200 and body == thumbnail.read_bytes()
    image = next(_roots(root)[0].rglob(QUERY))  # the uploaded images themselves are not served
    assert _get(_file_url(url, image))[0] == 403
    gallery, text, *_ = bob.predict(*_triple(queries, "000002_cam2_001.png"), 3, "2", api_name="/search")
    assert gallery[0]["caption"].startswith("#1 ✓ id 2 · cam 2 · 1.000") and "of 15 gallery triples" in text
    assert alice.predict(api_name="/reset_gallery") == "Back to the default gallery."
    gallery, *_ = alice.predict(*_triple(queries, "000002_cam2_001.png"), 3, "2", api_name="/search")
    assert gallery[0]["caption"].startswith("#1 ✓ id 2")


def _malicious(tmp: Path, folder: Path) -> list[tuple[Path, str]]:
    members = triple_members(folder, ["000007_cam1_000.png"])
    return [
        (zip_members(tmp / "dotdot.zip", {**members, "../../evil.png": b"x"}),
         "zip member '../../evil.png' points outside its folder ('..'): refused."),
        (zip_members(tmp / "absolute.zip", {**members, "/tmp/evil.png": b"x"}),
         "zip member '/tmp/evil.png' has an absolute path: refused"),
        (zip_with_symlink(tmp / "link.zip", folder, "mine/RGB/evil.png"),
         "zip member 'mine/RGB/evil.png' is a symbolic link: refused"),
        (zip_bomb(tmp / "bomb.zip"), "(over 100 : 1, the mark of a zip bomb): refused."),
        (nested_zip_bomb(tmp / "nested.zip"), "the zip holds no triples folder"),
        (zip_members(tmp / "many.zip", {str(i): b"" for i in range(10_001)}, zipfile.ZIP_STORED),
         "the zip has 10001 entries, over this demo's limit of 10000"),
    ]


def test_malicious_zips_refused_and_nothing_written(server, mine, tmp_path):
    from gradio_client.exceptions import AppError

    url, _, root = server
    client = _client(url)
    images_root, thumbs_root = _roots(root)
    before = (listing(images_root), listing(thumbs_root), sorted(os.listdir(tmp_path.parent)))
    for archive, expected in _malicious(tmp_path, mine[1]):
        with pytest.raises(AppError) as info:
            _load(client, archive)
        assert str(info.value).startswith("Upload refused: ") and expected in str(info.value), (archive, info.value)
    assert (listing(images_root), listing(thumbs_root), sorted(os.listdir(tmp_path.parent))) == before
    assert not list(Path("/tmp").glob("evil*")) and not list(root.rglob("evil*"))
    gallery, *_ = client.predict(*_triple(server[1], "000002_cam2_001.png"), 2, "2", api_name="/search")
    assert gallery[0]["caption"].startswith("#1 ✓ id 2")  # still the default gallery, still serving


def test_browser_upload_search_and_close(chromium, server, mine):
    """Once timed out at 30 s on a loaded machine (and passed alone): every wait is on what it checks."""
    from playwright.sync_api import expect

    url, _, root = server
    archive, folder = mine
    images_root = _roots(root)[0]
    with browser_page(url, chromium, height=1800) as page:
        kept = len(os.listdir(images_root))
        page.get_by_text("Search your own gallery").click()
        page.locator("#upload-files input[type=file]").set_input_files(str(archive))
        # gradio's file list writes the name's stem and extension in two elements ("mine .zip" as text)
        expect(page.locator("#upload-files").get_by_role("cell", name="mine.zip")).to_be_attached(timeout=UI_MS)
        page.click("#load-gallery")
        expect(page.locator("#upload-status")).to_contain_text("Loaded 6 triples", timeout=LOAD_MS)
        assert len(os.listdir(images_root)) == kept + 1
        set_query(page, [folder / sub / QUERY for sub in ("RGB", "NI", "TI")], timeout_ms=UI_MS)
        page.click("#search-button")
        expect(page.locator("#results .thumbnail-item img").first).to_be_attached(timeout=SEARCH_MS)
        captions = page.locator("#results .caption-label").all_inner_texts()
        assert len(captions) == 6 and captions[0].startswith("#1 ✓ id 8"), captions  # top k fitted to 6
        assert "of 6 gallery triples" in page.locator("#status").inner_text()
        if os.environ.get("SIGNAL_SCREENSHOT_UPLOAD"):
            page.screenshot(path=os.environ["SIGNAL_SCREENSHOT_UPLOAD"], full_page=True)
        page.close()  # the session ends: its gallery folders are removed (unload event)
        wait_until(lambda: len(os.listdir(images_root)) == kept, "the closed session's gallery folder removed")
