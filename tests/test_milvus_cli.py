"""A saved gallery index end to end: train.extract --index, train.search --index and the demo's
--gallery with a Milvus Lite collection (and a faiss .sgi file); errors are one line."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from signal_core.retrieval import milvus_index
from tests.test_extract_search import error_line, gallery_names, make_triples, run_extract
from train import search


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[str, Path]:
    """A feature folder with its gallery saved in a Milvus Lite collection and in a faiss file."""
    from tests.demo_helpers import make_checkpoint

    root = tmp_path_factory.mktemp("saved")
    weights = make_checkpoint(root / "model.safetensors")
    triples = make_triples(root / "triples", gallery_names(per_id=3))
    feats = root / "feats"
    assert run_extract(weights, triples, feats, "--threads", "1", "--index", f"milvus:{root / 'g.db'}") == 0
    assert run_extract(weights, triples, feats, "--threads", "1", "--index", str(root / "g.sgi")) == 0  # resume: done
    return {"weights": weights, "triples": triples, "feats": feats, "milvus": Path(f"milvus:{root / 'g.db'}"),
            "sgi": root / "g.sgi", "root": root}


def run_search(queries: Path, out: Path, *args: str) -> dict:
    assert search.main([*args, "--queries", str(queries), "--top-k", "5", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def ranked(payload: dict) -> list:
    return [[(m["rank"], m["name"], m["identity"], m["camera"], m["paths"]) for m in r["matches"]]
            for r in payload["results"]]


@pytest.mark.parametrize("saved", ["milvus", "sgi"])
def test_search_through_a_saved_index_equals_the_feature_folder(extracted, saved, tmp_path):
    folder = extracted["feats"]
    for junk in ([], ["--drop-junk"]):
        want = run_search(folder, tmp_path / "want.json", "--features", str(folder), "--index", "exact", *junk)
        got = run_search(folder, tmp_path / "got.json", "--index", str(extracted[saved]), *junk)
        assert ranked(got) == ranked(want) and got["index"] == ("milvus" if saved == "milvus" else "exact")
        assert max(abs(a["score"] - b["score"]) for r, s in zip(got["results"], want["results"])
                   for a, b in zip(r["matches"], s["matches"])) <= 1e-5
        assert got["model_sha256"] == want["model_sha256"] and len(ranked(got)) == 12


def test_saved_index_errors_are_one_line(extracted, tmp_path, capsys, monkeypatch):
    folder = extracted["feats"]
    args = ["--queries", str(folder), "--out", str(tmp_path / "r.json")]
    monkeypatch.setattr(milvus_index, "CONNECT_TIMEOUT_S", 2.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for index, words in ((f"milvus://127.0.0.1:{port}", "cannot reach the Milvus server"),
                         ("milvus:gallery", "ending in .db"),
                         (f"{extracted['milvus']}#other", "holds no gallery collection 'other'"),
                         (str(tmp_path / "none.sgi"), "does not exist")):
        assert search.main(["--index", index, *args]) == 2
        assert words in error_line(capsys)
    assert search.main(["--index", str(extracted["milvus"]), "--features", str(folder), *args]) == 2
    assert "drop --features" in error_line(capsys)
    assert search.main(["--index", "flat", "--features", str(folder), *args]) == 2
    assert "exact|ivfpq|auto" in error_line(capsys)
    assert run_extract(extracted["weights"], extracted["triples"], tmp_path / "f", "--index", "gallery.faiss") == 2
    assert "ending in .sgi" in error_line(capsys)


def test_demo_gallery_from_a_milvus_collection(extracted, tmp_path):
    """--gallery milvus:FILE.db: the collection's rows are the gallery; a gallery triple finds itself at
    rank 1; other weights are refused with a message."""
    from demo.options import DemoOptions, StartupError
    from demo.startup import build_engine
    from signal_core.data import read_triples_folder
    from tests.demo_helpers import make_checkpoint

    records = read_triples_folder(extracted["triples"].resolve())
    engine, _ = build_engine(DemoOptions(weights=str(extracted["weights"]), gallery=str(extracted["milvus"]),
                                         queries=""), progress=False)
    assert engine.index.kind == "milvus" and len(engine.gallery) == len(records)
    result = engine.search(*records[3].paths, top_k=5, camera=records[3].camid + 1, explain=False)
    assert result.matches[0].index == 3 and result.matches[0].similarity > 0.999
    assert [m.rank for m in result.matches] == [1, 2, 3, 4, 5] and result.matches[0].thumbnail
    other = make_checkpoint(tmp_path / "other.safetensors", seed=1)
    with pytest.raises(StartupError, match="built with other weights"):
        build_engine(DemoOptions(weights=str(other), gallery=str(extracted["milvus"]), queries=""), progress=False)


def test_extract_into_a_collection_of_another_gallery_replaces_it(extracted, tmp_path, capsys):
    """Issue 29: gallery B written over gallery A (same row count and weights) kept A's rows, and the search
    ranked A."""
    from tests.test_extract_search import make_triples

    other = make_triples(tmp_path / "b", gallery_names(per_id=3), seed=7)  # the same names, other images
    uri = str(extracted["milvus"]).replace("g.db", "ab.db")
    assert run_extract(extracted["weights"], extracted["triples"], tmp_path / "fa", "--threads", "1",
                       "--index", uri) == 0
    assert run_extract(extracted["weights"], other, tmp_path / "fb", "--threads", "1", "--index", uri) == 0
    assert "held another gallery (12 rows" in capsys.readouterr().err
    got = run_search(tmp_path / "fb", tmp_path / "got.json", "--index", uri)
    want = run_search(tmp_path / "fb", tmp_path / "want.json", "--features", str(tmp_path / "fb"), "--index", "exact")
    assert ranked(got) == ranked(want)
    assert all(m["paths"][0].startswith(str(other.resolve())) for r in got["results"] for m in r["matches"])


def test_search_of_a_missing_lite_file_says_so_and_creates_nothing(extracted, tmp_path, capsys):
    missing = tmp_path / "none.db"
    args = ["--index", f"milvus:{missing}", "--queries", str(extracted["feats"]), "--out", str(tmp_path / "r.json")]
    assert search.main(args) == 2
    assert f"{missing} does not exist; build the gallery first" in error_line(capsys)
    assert not missing.exists() and not (tmp_path / "r.json").exists()
