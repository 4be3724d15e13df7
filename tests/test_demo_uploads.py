"""A visitor's own gallery: safe intake of zips and files (demo/uploads.py) and per-session galleries
(demo/sessions.py). Every refused upload is checked for its message AND for leaving nothing behind:
the listing of the folder around the destination is the same before and after."""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

from demo.uploads import Deadline, UploadError, UploadLimits, intake_files, intake_zip, member_parts
from signal_core.utils.messages import shown
from tests.demo_helpers import make_triples_folder, write_png_header
from tests.upload_helpers import (
    lie_about_size,
    listing,
    nested_zip_bomb,
    triple_members,
    zip_bomb,
    zip_folder,
    zip_members,
    zip_with_symlink,
)


@pytest.fixture(scope="module")
def triples(tmp_path_factory) -> Path:
    return make_triples_folder(tmp_path_factory.mktemp("triples") / "gallery", ids=(1, 2), per_id=2)


def _refused(tmp_path: Path, zip_path: Path, limits: UploadLimits | None = None, **kw) -> str:
    """Run intake_zip into ``tmp_path/work/upload``; assert it is refused and wrote nothing (the listings
    of ``work`` and of ``tmp_path``'s parent are unchanged); return the message."""
    work = Path(tempfile.mkdtemp(dir=tmp_path, prefix="work"))
    before, around = listing(tmp_path), sorted(os.listdir(tmp_path.parent))
    with pytest.raises(UploadError) as info:
        intake_zip(zip_path, work / "upload", limits, **kw)
    assert listing(tmp_path) == before and sorted(os.listdir(tmp_path.parent)) == around
    assert not (work / "upload").exists()
    return str(info.value)


def test_good_zip_top_level_and_in_one_folder(triples, tmp_path):
    for top in (None, "my_triples"):
        top_dir = f"{top}/" if top else ""
        archive = zip_folder(triples, tmp_path / f"{top}.zip", top=top, extra={
            f"{top_dir}README.txt": b"hello", "__MACOSX/._x": b"", f"{top_dir}RGB/.DS_Store": b""})
        intake = intake_zip(archive, tmp_path / f"out-{top}")
        assert intake.images == 12 and sorted(os.listdir(intake.folder)) == ["NI", "RGB", "TI"]
        assert sorted(os.listdir(intake.folder / "NI")) == sorted(os.listdir(triples / "NI"))
        assert (intake.folder / "TI" / "000002_cam2_001.png").read_bytes() == (
            triples / "TI" / "000002_cam2_001.png").read_bytes()
        assert intake.ignored == [f"{top_dir}README.txt", f"{top_dir}RGB/.DS_Store"]
        assert "ignored 2 file(s)" in intake.ignored_note()


def test_several_files_with_modality_prefixes(triples, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for folder, prefix in (("RGB", "RGB_"), ("NI", "nir-"), ("TI", "TI_")):
        for path in (triples / folder).iterdir():
            shutil.copy(path, files / f"{prefix}{path.name}")
    (files / "notes.txt").write_text("x")
    intake = intake_files(sorted(files.iterdir()), tmp_path / "out")
    assert intake.images == 12 and intake.ignored == ["notes.txt"]
    assert sorted(os.listdir(intake.folder / "NI")) == sorted(os.listdir(triples / "NI"))
    before = listing(tmp_path)
    with pytest.raises(UploadError, match="name them RGB_<name>, NI_<name> and TI_<name>"):
        intake_files([files / "notes.txt"], tmp_path / "out2")
    with pytest.raises(UploadError, match="'RGB_x.png' is not an image"):
        (files / "RGB_x.png").write_text("not an image")
        intake_files([files / "RGB_x.png"], tmp_path / "out3")
    assert listing(tmp_path) == sorted(before + ["files/RGB_x.png"])


@pytest.mark.parametrize("name", ["../evil.png", "RGB/../../evil.png", "..\\..\\evil.png"])
def test_dot_dot_paths_refused(triples, tmp_path, name):
    archive = zip_members(tmp_path / "a.zip", {**triple_members(triples), name: b"x"})
    assert f"zip member '{name}' points outside its folder ('..'): refused." == _refused(tmp_path, archive)


@pytest.mark.parametrize("name", ["/tmp/evil.png", "/RGB/000001_cam1_000.png", "C:/evil.png", "\\\\server\\x.png"])
def test_absolute_paths_refused(triples, tmp_path, name):
    archive = zip_members(tmp_path / "a.zip", {**triple_members(triples), name: b"x"})
    assert _refused(tmp_path, archive).startswith(f"zip member '{name}' has an absolute path: refused")


def test_symlink_member_refused(triples, tmp_path):
    archive = zip_with_symlink(tmp_path / "link.zip", triples)
    assert _refused(tmp_path, archive) == ("zip member 'RGB/link.png' is a symbolic link: refused (links are not "
                                           "accepted).")


def test_zip_bomb_refused_from_its_header(tmp_path):
    message = _refused(tmp_path, zip_bomb(tmp_path / "bomb.zip"))
    assert message.startswith("zip member 'RGB/000001_cam1_000.png' is compressed ") and "zip bomb" in message
    big = _refused(tmp_path, zip_bomb(tmp_path / "b2.zip", 30))
    assert "would unpack to 30 MB, over this demo's limit of 20 MB per file" in big


def test_nested_zip_bomb_never_opened(tmp_path):
    message = _refused(tmp_path, nested_zip_bomb(tmp_path / "nested.zip"))
    assert message.startswith("the zip holds no triples folder")


def test_nested_zip_beside_triples_ignored(triples, tmp_path):
    inner = nested_zip_bomb(tmp_path / "inner.zip").read_bytes()
    archive = zip_members(tmp_path / "a.zip", {**triple_members(triples), "RGB/bomb.zip": inner})
    intake = intake_zip(archive, tmp_path / "out")
    assert intake.ignored == ["RGB/bomb.zip"] and intake.images == 12
    assert not any(p.suffix == ".zip" for p in (tmp_path / "out").rglob("*"))


def test_lying_size_headers_caught_while_reading(triples, tmp_path):
    """zipfile stops at the declared size and the CRC of the bytes read does not match: refused."""
    members = triple_members(triples)
    name = "RGB/000001_cam1_000.png"
    for declared in (10, len(members[name]) - 1):
        archive = lie_about_size(zip_members(tmp_path / f"lie{declared}.zip", members, zipfile.ZIP_STORED), name,
                                 declared)
        assert _refused(tmp_path, archive) == (f"'lie{declared}.zip' is not a readable zip file (Bad CRC-32 for "
                                               f"file '{name}').")


@pytest.mark.parametrize("change, expected", [
    ({"max_members": 5}, "the zip has 13 entries, over this demo's limit of 5: upload fewer files."),
    ({"max_triples": 3}, "the zip holds 4 triples, over this demo's limit of 3: upload fewer."),
    ({"max_total_bytes": 1000}, "the zip would unpack to 0 MB, over this demo's limit of 0 MB"),
    ({"max_member_bytes": 100}, "per file: downscale it."),
])
def test_count_and_size_limits(triples, tmp_path, change, expected):
    archive = zip_members(tmp_path / "a.zip", {**triple_members(triples), "README.md": b"x"})
    assert expected in _refused(tmp_path, archive, dataclasses.replace(UploadLimits(), **change))


def test_bytes_actually_read_are_counted(triples, tmp_path):
    """Files (no header to trust) are counted as they are copied: per file and in total."""
    files = tmp_path / "files"
    files.mkdir()
    for folder in ("RGB", "NI", "TI"):
        for path in (triples / folder).iterdir():
            shutil.copy(path, files / f"{folder}_{path.name}")
    paths = sorted(files.iterdir())
    sizes = [p.stat().st_size for p in paths]
    before = listing(tmp_path)
    with pytest.raises(UploadError, match=r"the upload is larger than 0 MB uncompressed \(this demo's limit\)"):
        intake_files(paths, tmp_path / "out", UploadLimits(max_total_bytes=sum(sizes) - 1))
    with pytest.raises(UploadError, match=r"is larger than 0 MB \(this demo's limit per file\): downscale it"):
        intake_files(paths, tmp_path / "out", UploadLimits(max_member_bytes=max(sizes) - 1))
    assert listing(tmp_path) == before


def test_pixels_not_an_image_duplicates_not_a_zip(triples, tmp_path):
    big = write_png_header(tmp_path / "big.png", 13000, 13000).read_bytes()
    names = ["000001_cam1_000.png"]
    for extra, expected in (
        ({"RGB/000009_cam1_000.png": big}, "'RGB/000009_cam1_000.png' has 169 Mpx, over the limit of 40 Mpx"),
        ({"NI/000001_cam1_000.png": b"text"}, "'NI/000001_cam1_000.png' is not an image file in a format read here"),
    ):
        archive = zip_members(tmp_path / "a.zip", {**triple_members(triples, names), **extra})
        assert expected in _refused(tmp_path, archive)
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as archive, pytest.warns(UserWarning):
        for name, data in [*triple_members(triples, names).items(), ("RGB/000001_cam1_000.png", b"x")]:
            archive.writestr(name, data)
    assert "'RGB/000001_cam1_000.png' appears twice in the upload: keep one." == _refused(tmp_path, twice)
    (tmp_path / "fake.zip").write_text("not a zip")
    assert _refused(tmp_path, tmp_path / "fake.zip").startswith("'fake.zip' is not a readable zip file")


def test_time_limit(triples, tmp_path):
    archive = zip_folder(triples, tmp_path / "a.zip")
    deadline = Deadline(0.0)
    assert _refused(tmp_path, archive, deadline=deadline).startswith(
        "stopped reading the upload after 0 s, this demo's time limit per upload")


def test_member_parts():
    assert member_parts("top/./RGB//a.png") == ("top", "RGB", "a.png")
    with pytest.raises(UploadError, match="NUL"):
        member_parts("RGB/a\0.png")


def test_long_member_name_message_names_it_shortened_never_the_server_folder(tmp_path):
    folder = make_triples_folder(tmp_path / "src", ids=(1,), per_id=1)
    name = "RGB/" + "a" * 300 + ".png"
    archive = zip_members(tmp_path / "long.zip", {**triple_members(folder), name: (folder / "RGB" /
                                                  "000001_cam1_000.png").read_bytes()})
    dest = tmp_path / "secret-upload-folder" / "0123456789abcdef"
    with pytest.raises(UploadError) as info:
        intake_zip(archive, dest)
    assert str(info.value) == (f"'{shown(name)}' cannot be written here (File name too long): rename it.")
    assert "secret-upload-folder" not in str(info.value) and len(str(info.value)) < 200
    assert not dest.exists()


def test_ignored_names_are_shortened(tmp_path):
    folder = make_triples_folder(tmp_path / "src", ids=(1,), per_id=1)
    archive = zip_members(tmp_path / "x.zip", {**triple_members(folder), "n" * 5000 + ".txt": b"x"})
    intake = intake_zip(archive, tmp_path / "dest")
    long_name = shown("n" * 5000 + ".txt")
    assert intake.ignored_note() == f" (ignored 1 file(s) that are not images in RGB/, NI/, TI/: {long_name})"


def test_upload_folder_cap_removes_the_oldest_old_files_only(tmp_path):
    from demo.upload_guard import make_room

    now = 1_000_000.0
    for i, age in enumerate((3600, 1800, 60)):  # two old uploads and one a visitor is using now
        path = tmp_path / f"hash{i}" / f"f{i}.png"
        path.parent.mkdir()
        path.write_bytes(b"x" * 400)
        os.utime(path, (now - age, now - age))
    assert make_room(tmp_path, 200, 1000, now=now)  # 1200 held: the oldest goes (800 + 200 fit)
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["f1.png", "f2.png"] and not (tmp_path / "hash0").exists()
    assert not make_room(tmp_path, 700, 1000, now=now)  # the young file stays: no room
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["f2.png"]


def test_nir_and_tir_images_without_an_rgb_image_are_listed_as_ignored(triples, tmp_path):
    """The triples-folder rule of signal_core (match_triple_names): orphans are named, not dropped silently."""
    png = (triples / "NI" / "000001_cam1_000.png").read_bytes()
    archive = zip_folder(triples, tmp_path / "a.zip", extra={"NI/000009_cam1_000.png": png, "TI/stray.png": png})
    intake = intake_zip(archive, tmp_path / "out")
    assert intake.images == 12
    assert intake.ignored == ["NI/000009_cam1_000.png (no RGB image of that name)",
                              "TI/stray.png (no RGB image of that name)"]
    assert "ignored 2 file(s)" in intake.ignored_note() and "NI/000009_cam1_000.png" in intake.ignored_note()
    assert sorted(os.listdir(intake.folder / "NI")) == sorted(os.listdir(triples / "NI"))  # not written
    files = tmp_path / "files"
    files.mkdir()
    for folder in ("RGB", "NI", "TI"):
        shutil.copy(triples / folder / "000001_cam1_000.png", files / f"{folder}_000001_cam1_000.png")
    (files / "NI_lonely.png").write_bytes(png)
    intake = intake_files(sorted(files.iterdir()), tmp_path / "out2")
    assert intake.images == 3 and intake.ignored == ["NI_lonely.png (no RGB image of that name)"]


def test_embedded_files_are_taken_in_whole_or_refused_before_anything_is_written(tmp_path):
    import base64
    import json

    from demo.embedded_files import Refused, take_in_json

    stored = []

    def store(files):
        stored.extend(files)
        return [str(tmp_path / name) for _, name in files]

    meta = {"_type": "gradio.FileData"}
    data_url = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    body = json.dumps({"data": [{"path": "x", "url": data_url, "meta": meta, "orig_name": "../../000001_cam1_0.png"},
                                None, 3, "data:not a file"], "fn_index": 2}).encode()
    out = json.loads(take_in_json(body, 100, store))
    assert out["data"][0] == {"path": str(tmp_path / "000001_cam1_0.png"), "meta": meta,
                              "orig_name": "../../000001_cam1_0.png", "size": 9}
    assert out["data"][1:] == [None, 3, "data:not a file"] and out["fn_index"] == 2  # plain strings: not files
    assert stored == [(b"\x89PNG fake", "000001_cam1_0.png")]
    escaped = body.replace(b'"url": "data:', b'"url": "\\u0064ata:')  # JSON escapes do not hide it
    assert take_in_json(escaped, 100, store) is not None and len(stored) == 2
    assert take_in_json(b'{"data": [1, "x"]}', 100, store) is None  # nothing embedded: handed on as it came
    assert take_in_json(b"not json", 100, store) is None
    stored.clear()
    two = json.dumps([{"path": data_url, "meta": meta}, {"path": "y", "url": "data:image/png;base64,"
                                                         + base64.b64encode(bytes(200)).decode()}]).encode()
    with pytest.raises(Refused, match="over this server's limit of") as info:
        take_in_json(two, 100, store)
    assert info.value.status == 413 and stored == []  # the first one was not written either
    for item, status in (({"path": "https://example.com/a.png"}, 400), ({"url": "data:image/png,raw"}, 400),
                         ({"url": "data:image/png;base64,@@@@"}, 400)):
        with pytest.raises(Refused) as info:
            take_in_json(json.dumps([item]).encode(), 100, store)
        assert info.value.status == status and stored == []
