"""Per-session galleries (demo/sessions.py): an upload is searched by its session only, shares the
default engine's model and lock, and its folders are removed when the session ends, when it is
replaced, when idle, over the kept limit, or when the upload is refused."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from demo.sessions import GalleryDropped, SessionGalleries
from demo.uploads import UploadError, UploadLimits
from tests.demo_helpers import make_triples_folder
from tests.upload_helpers import listing, zip_folder, zip_with_symlink


@pytest.fixture(scope="module")
def upload_zip(tmp_path_factory) -> Path:
    """A zip of 3 identities x 2 triples (identities 7, 8, 9: not in the default gallery)."""
    root = tmp_path_factory.mktemp("upload")
    folder = make_triples_folder(root / "mine", ids=(7, 8, 9), per_id=2, seed=5)
    return zip_folder(folder, root / "mine.zip", top="mine")


@pytest.fixture
def galleries(engine, tmp_path):
    return SessionGalleries(engine, UploadLimits(), root=tmp_path / "data", thumbs_root=tmp_path / "thumbs")


def _query(upload_zip: Path, tmp_path: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(upload_zip) as archive:
        archive.extractall(tmp_path / "q", [f"mine/{d}/000008_cam2_001.png" for d in ("RGB", "NI", "TI")])
    return [str(tmp_path / "q" / "mine" / d / "000008_cam2_001.png") for d in ("RGB", "NI", "TI")]


def test_upload_is_searched_by_its_session_only(engine, galleries, upload_zip, tmp_path):
    steps = []
    status = galleries.load("alice", [upload_zip], lambda done, total: steps.append((done, total)))
    assert status.startswith("Loaded 6 triples from 'mine.zip' in ") and "other visitors keep the default" in status
    assert steps[0] == (0, 6) and steps[-1] == (6, 6)
    mine = galleries.engine_for("alice")
    assert mine is not engine and mine.model is engine.model and mine.features_fn is engine.features_fn
    assert galleries.engine_for("bob") is engine and galleries.engine_for(None) is engine
    result = mine.search(*_query(upload_zip, tmp_path), top_k=6, camera="2")
    assert [m.pid for m in result.matches][0] == 8 and result.matches[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert {m.pid for m in result.matches} == {7, 8, 9}
    thumb = Path(result.matches[0].thumbnail)
    assert thumb.parent.parent == galleries.thumbs_root and thumb.is_file()
    default = engine.search(*_query(upload_zip, tmp_path), top_k=3)
    assert {m.pid for m in default.matches} <= {1, 2, 3, 4}


def test_session_end_replace_idle_and_kept_limit_remove_folders(galleries, upload_zip):
    galleries.load("alice", [upload_zip])
    first = os.listdir(galleries.root)
    assert len(first) == 1 and len(os.listdir(galleries.thumbs_root)) == 1
    galleries.load("alice", [upload_zip])  # a second upload replaces the first
    assert len(os.listdir(galleries.root)) == 1 and os.listdir(galleries.root) != first
    assert galleries.drop("alice") and not galleries.drop("alice")  # the session ended
    assert os.listdir(galleries.root) == [] and os.listdir(galleries.thumbs_root) == []
    galleries.load("carol", [upload_zip])
    assert galleries.sweep() == 0 and galleries.sweep(now=10 ** 12) == 1  # idle for longer than idle_s
    assert os.listdir(galleries.root) == [] and "carol" not in galleries


def test_budget_and_idle_sweep_tell_the_visitor_their_gallery_is_gone(engine, galleries, upload_zip):
    galleries.load("s1", [upload_zip])
    one = galleries.kept_bytes  # its images on disk and its features in memory
    assert one > upload_zip.stat().st_size // 2 and len(galleries) == 1
    galleries.max_kept_bytes = 2 * one  # room for two galleries of this size
    for session in ("s2", "s3"):
        galleries.load(session, [upload_zip])
    assert "s1" not in galleries and "s2" in galleries and "s3" in galleries  # least recently used removed
    assert len(os.listdir(galleries.root)) == 2 == len(os.listdir(galleries.thumbs_root))
    assert galleries.kept_bytes == 2 * one
    with pytest.raises(GalleryDropped) as info:  # not silently the default gallery
        galleries.engine_for("s1")
    assert str(info.value) == (
        "your gallery 'mine.zip' was removed to make room for other visitors' galleries (this server keeps "
        f"{2 * one / 2**20:.1f} MB of them). Load it again (Search your own gallery), or press 'Back to the default "
        "gallery' to search the default one.")
    assert not galleries.drop("s1") and galleries.engine_for("s1") is engine  # back to the default: told once
    assert galleries.engine_for("s2").gallery_name == "your gallery 'mine.zip'"
    assert engine.gallery_name == "default gallery"
    assert galleries.sweep(now=10 ** 12) == 2
    with pytest.raises(GalleryDropped, match="^your gallery 'mine.zip' was removed after 60 minutes unused. Load "):
        galleries.engine_for("s3")
    galleries.load("s3", [upload_zip])  # loading again clears it
    assert galleries.engine_for("s3") is not engine


def test_refused_upload_leaves_nothing(galleries, triples_zip_with_link, tmp_path):
    before = listing(tmp_path)
    with pytest.raises(UploadError, match="is a symbolic link: refused"):
        galleries.load("mallory", [triples_zip_with_link])
    assert listing(tmp_path) == before and "mallory" not in galleries


@pytest.fixture
def triples_zip_with_link(tmp_path):
    folder = make_triples_folder(tmp_path / "src" / "g", ids=(1,), per_id=1)
    return zip_with_symlink(tmp_path / "src" / "link.zip", folder)


def test_mismatched_triple_message_has_no_server_path(galleries, tmp_path):
    folder = make_triples_folder(tmp_path / "src" / "g", ids=(1,), per_id=2)
    (folder / "TI" / "000001_cam2_001.png").unlink()
    archive = zip_folder(folder, tmp_path / "src" / "bad.zip")
    with pytest.raises(UploadError) as info:
        galleries.load("dave", [archive])
    assert str(info.value).startswith("'RGB/000001_cam2_001.png' has no counterpart 'TI/000001_cam2_001.png'")
    assert os.listdir(galleries.root) == []


def test_concurrent_upload_limit_and_bad_calls(galleries, upload_zip):
    held = [galleries._slots.acquire(blocking=False) for _ in range(2)]
    assert held == [True, True]
    with pytest.raises(UploadError, match=r"2 upload\(s\) are being processed right now .* try again in a minute"):
        galleries.load("erin", [upload_zip])
    for _ in held:
        galleries._slots.release()
    with pytest.raises(UploadError, match="upload either one zip or image files, not both"):
        galleries.load("erin", [upload_zip, upload_zip])
    with pytest.raises(UploadError, match="no file given"):
        galleries.load("erin", [])
    galleries.limits = UploadLimits(max_seconds=0.0)
    with pytest.raises(UploadError, match="time limit per upload"):
        galleries.load("erin", [upload_zip])
    assert os.listdir(galleries.root) == []


def test_upload_options(engine):
    from demo.options import StartupError, parse_options
    from demo.sessions import from_options

    options = parse_options(["--upload-max-mb", "50"], {"SIGNAL_UPLOAD_MAX_SECONDS": "60"})
    galleries = from_options(engine, options)
    assert galleries.limits == UploadLimits(max_total_bytes=50 << 20, max_seconds=60.0)
    assert from_options(engine, parse_options([], {"SIGNAL_UPLOAD_MAX_TRIPLES": "0"})) is None
    with pytest.raises(StartupError, match="--upload-max-ratio must be at least 1, got 0"):
        parse_options(["--upload-max-ratio", "0"], {})
    with pytest.raises(StartupError, match="--upload-max-triples must be 0 \\(no uploads\\) or more, got -1"):
        parse_options([], {"SIGNAL_UPLOAD_MAX_TRIPLES": "-1"})
