"""The Milvus gallery (Milvus Lite, embedded): same top-k as the exact faiss index, junk dropped by
Milvus filters, a persistent collection, and one clear error for every way it cannot be opened."""
from __future__ import annotations

import json
import socket
import sys

import numpy as np
import pytest

from signal_core.retrieval import milvus_index
from signal_core.retrieval.gallery_open import gallery_digest, index_rows, open_index, rows_metadata, write_index
from signal_core.retrieval.index import GalleryIndex, IndexFileError
from signal_core.retrieval.milvus_index import MilvusGallery, MilvusGalleryError, parse_milvus_uri
from signal_core.utils.optional import MissingExtraError

N, D, K = 300, 32, 10


@pytest.fixture(scope="module")
def data():
    """Features in 30 identities of 10 rows (noisy copies of one centre), 3 cameras, 2 scenes."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((N // 10, D))
    feats = (np.repeat(centres, 10, axis=0) + 0.6 * rng.standard_normal((N, D))).astype(np.float32)
    meta = {"pid": np.arange(N) // 10, "camid": np.arange(N) % 3, "sceneid": np.arange(N) % 2}
    queries = (centres[[0, 5, 7, 0]] + 0.6 * rng.standard_normal((4, D))).astype(np.float32)
    return feats, meta, queries


@pytest.fixture(scope="module")
def gallery(data, tmp_path_factory):
    feats, meta, _ = data
    uri = f"milvus:{tmp_path_factory.mktemp('milvus') / 'gallery.db'}"
    built = MilvusGallery.build(uri, feats[:200], {k: v[:200] for k, v in meta.items()}, info={"model_sha256": "w1"})
    built.add(feats[200:], {k: v[200:] for k, v in meta.items()})  # rows 200.. numbered after the first 200
    built.save()
    yield built
    built.close()


def test_search_equals_the_exact_faiss_index(data, gallery):
    feats, meta, queries = data
    exact = GalleryIndex.build(feats, kind="exact", metadata=meta)
    got, want = gallery.search(queries, K), exact.search(queries, K)
    assert len(gallery) == N and gallery.dim == D
    np.testing.assert_array_equal(got.rows, want.rows)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
    rows = feats[[5, 250]]
    np.testing.assert_allclose(gallery.vectors([5, 250]), rows / np.linalg.norm(rows, axis=1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("by", ["camid", "sceneid"])
def test_metadata_filter_drops_junk_as_the_exact_index_does(data, gallery, by):
    feats, meta, queries = data
    q_pids = np.array([0, 5, 7, -2])  # -2: an unknown identity drops nothing
    q_other = np.array([1, 0, 2, 0] if by == "camid" else [1, 0, 1, 0])
    junk = {"query_pids": q_pids, f"query_{by}s": q_other}
    got = gallery.search(queries, K, **junk)
    want = GalleryIndex.build(feats, kind="exact", metadata=meta).search(queries, K, **junk)
    np.testing.assert_array_equal(got.rows, want.rows)
    unfiltered = gallery.search(queries, K).rows
    for q in range(3):
        dropped = [r for r in unfiltered[q] if meta["pid"][r] == q_pids[q] and meta[by][r] == q_other[q]]
        assert dropped, "the unfiltered top-k holds junk rows of this query"
        assert not set(dropped) & set(got.rows[q].tolist())
        assert all(meta["pid"][r] != q_pids[q] or meta[by][r] != q_other[q] for r in got.rows[q])
    np.testing.assert_array_equal(got.rows[3], unfiltered[3])


def test_collection_persists_and_keeps_rows(data, tmp_path):
    feats, meta, queries = data
    rows = [{"name": f"{int(p):06d}_{i}.png", "paths": [f"RGB/{i}.png", f"NI/{i}.png", f"TI/{i}.png"], "pid": int(p),
             "camid": int(c), "sceneid": None} for i, (p, c) in enumerate(zip(meta["pid"], meta["camid"]))]
    uri = f"milvus:{tmp_path / 'g.db'}#reid"
    first = write_index(uri, feats, rows, {"model_sha256": "w1", "precision": "fp32"})
    expected = first.search(queries, K)
    first.close()
    again = open_index(uri, dim=D, model_sha256="w1")  # another client: read from the file
    assert len(again) == N and again.info["precision"] == "fp32" and index_rows(again) == rows
    np.testing.assert_array_equal(again.search(queries, K).rows, expected.rows)
    again.close()
    same = write_index(uri, feats, rows, {"model_sha256": "w1", "precision": "fp32"})  # already there: kept
    assert len(same) == N
    same.close()
    write_index(tmp_path / "g.sgi", feats, rows, {"model_sha256": "w1"})  # the faiss file keeps the same facts
    sgi = open_index(tmp_path / "g.sgi", dim=D, model_sha256="w1")
    assert index_rows(sgi) == rows and sgi.kind == "exact"
    np.testing.assert_array_equal(sgi.search(queries, K).rows, expected.rows)
    with pytest.raises(IndexFileError, match="other weights"):
        open_index(tmp_path / "g.sgi", model_sha256="w2")
    assert json.loads(rows_metadata(rows)["paths"][3]) == rows[3]["paths"]


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


@pytest.mark.parametrize("uri, words", [
    ("milvus:gallery", "ending in .db"),
    ("milvus:", "not a Milvus gallery URI"),
    ("milvus://host", "not a Milvus server URI"),
    ("milvus://host:99999", "not a Milvus server URI"),
    ("milvus:g.db#bad-name", "collection name"),
    ("milvus:/no/such/folder/g.db", "folder of the Milvus Lite file does not exist"),
])
def test_bad_uri_is_one_clear_error(uri, words):
    with pytest.raises(MilvusGalleryError) as exc:
        parse_milvus_uri(uri)
    assert words in one_line(exc)


def test_absent_server_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(milvus_index, "CONNECT_TIMEOUT_S", 2.0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MilvusGalleryError) as exc:
        MilvusGallery.load(f"milvus://127.0.0.1:{port}")
    assert f"cannot reach the Milvus server at 127.0.0.1:{port}" in one_line(exc)


def test_other_dimension_weights_or_collection_are_refused(gallery):
    for kwargs, words in (({"dim": D + 1}, f"holds {D}-d features, these are {D + 1}-d"),
                          ({"model_sha256": "w2"}, "built with other weights"),
                          ({"dim": D, "model_sha256": "w1"}, None)):
        if words is None:
            assert len(MilvusGallery.load(gallery.uri, **kwargs)) == N
            continue
        with pytest.raises(MilvusGalleryError) as exc:
            MilvusGallery.load(gallery.uri, **kwargs)
        assert words in one_line(exc)
    with pytest.raises(MilvusGalleryError) as exc:
        MilvusGallery.load(gallery.uri.replace("gallery.db", "gallery.db#nothing"))
    assert "holds no gallery collection 'nothing'" in one_line(exc)
    with pytest.raises(MilvusGalleryError, match="already holds a gallery collection"):
        MilvusGallery.build(gallery.uri, np.ones((2, D), np.float32))


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if not installed
    with pytest.raises(MissingExtraError) as exc:
        MilvusGallery.load("milvus:g.db")
    assert 'pip install ".[scale]"' in one_line(exc)


def test_another_gallery_of_the_same_size_is_replaced_not_kept(data, tmp_path):
    """Issue 29: a collection holding gallery A (same rows count and weights) was kept for gallery B."""
    feats, meta, queries = data
    rows = [{"name": f"{i:04d}.png", "paths": [f"A/{i}.png"] * 3, "pid": int(p), "camid": 0, "sceneid": None}
            for i, p in enumerate(meta["pid"][:40])]
    uri, info = f"milvus:{tmp_path / 'g.db'}", {"model_sha256": "w1", "precision": "fp32"}
    write_index(uri, feats[:40], rows, info).close()
    other = [{**r, "paths": [p.replace("A/", "B/") for p in r["paths"]]} for r in rows]
    replaced = write_index(uri, feats[40:80], other, info)  # gallery B: 40 other rows, the same weights
    assert len(replaced) == 40 and index_rows(replaced) == other
    np.testing.assert_array_equal(replaced.search(queries, K).rows,
                                  GalleryIndex.build(feats[40:80], kind="exact").search(queries, K).rows)
    assert replaced.info["gallery_sha256"] == gallery_digest(feats[40:80], other) != gallery_digest(feats[:40], rows)
    assert replaced._client.list_collections() == ["signal_gallery"]  # nothing left beside it
    replaced.close()
    sgi = write_index(tmp_path / "g.sgi", feats[40:80], other, info)  # the faiss file records the same digest
    assert open_index(tmp_path / "g.sgi").info["gallery_sha256"] == replaced.info["gallery_sha256"]
    assert len(sgi) == 40


def test_a_name_that_is_not_utf8_is_refused_before_anything_is_written(tmp_path):
    names = ["000001_cam1_0.png", "000001_cam2_\udcff.png"]  # a file name in Latin-1, as Python reads it
    uri = f"milvus:{tmp_path / 'u.db'}"
    with pytest.raises(MilvusGalleryError) as exc:
        MilvusGallery.build(uri, np.ones((2, D), np.float32), {"name": names})
    assert "row 1: the name '000001_cam2_\\udcff.png' is not valid UTF-8" in one_line(exc)
    assert not (tmp_path / "u.db").exists()


@pytest.mark.parametrize("kind, words", [
    ("file", "is a file, not a Milvus Lite database"),
    ("link to a file", "(a symbolic link to"),
    ("dangling link", "is a broken symbolic link"),
    ("other folder", "is a folder that is not a Milvus Lite database"),
    ("missing", "does not exist; build the gallery first"),
])
def test_a_lite_path_that_is_not_a_database_is_one_line_and_left_alone(kind, words, tmp_path):
    path, target = tmp_path / "g.db", tmp_path / "target"
    if kind == "file":
        path.write_text("notes")
    elif kind == "link to a file":
        target.write_text("notes")
        path.symlink_to(target)
    elif kind == "dangling link":
        path.symlink_to(tmp_path / "nothing.db")
    elif kind == "other folder":
        path.mkdir()
        (path / "photo.png").write_bytes(b"x")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(MilvusGalleryError) as exc:
        open_index(f"milvus:{path}")
    message = one_line(exc)
    assert words in message and "in use by another process" not in message
    if kind != "missing":  # a search never writes; building there is refused alike
        with pytest.raises(MilvusGalleryError, match=words.split(" (")[0].replace("(", r"\(")):
            MilvusGallery.build(f"milvus:{path}", np.ones((2, D), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_locked_database_says_another_process_holds_it(gallery, tmp_path):
    """The lock Milvus Lite takes (flock on LOCK) held elsewhere: one line, no traceback on stderr."""
    import fcntl
    import shutil

    copy = tmp_path / "held.db"
    shutil.copytree(gallery.uri[len("milvus:"):], copy, ignore=shutil.ignore_patterns("LOCK"))
    with open(copy / "LOCK", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another process holding it would
        with pytest.raises(MilvusGalleryError) as exc:
            MilvusGallery.load(f"milvus:{copy}")
    assert f"{copy} is in use by another process" in one_line(exc)


@pytest.mark.parametrize("damage", ["schema", "data"])
def test_a_damaged_database_is_one_line(gallery, damage, tmp_path, capfd):
    import shutil

    copy = tmp_path / "damaged.db"
    shutil.copytree(gallery.uri[len("milvus:"):], copy, ignore=shutil.ignore_patterns("LOCK"))
    files = sorted(copy.rglob("schema.json" if damage == "schema" else "*.parquet"))
    assert files
    for file in files:
        file.write_bytes(b"{not what Milvus Lite wrote")
    capfd.readouterr()
    with pytest.raises(MilvusGalleryError) as exc:
        MilvusGallery.load(f"milvus:{copy}").search(np.ones((1, D), np.float32), K)
    assert "the database may be damaged: rebuild it" in one_line(exc)
    assert "Traceback" not in capfd.readouterr().err
