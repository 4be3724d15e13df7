"""train.extract / train.search on tiny data: feature folders, resume, bad input, rank lists."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from signal_core import SignalConfig, SignalModel, build_model, load_checkpoint, save_checkpoint
from signal_core.data import UNKNOWN, build_transforms, load_triple, parse_triple_name, read_triples_folder
from signal_core.data.errors import DatasetError
from signal_core.retrieval.feature_store import FeatureStoreError, read_features, read_manifest
from signal_core.retrieval.folder_features import extract_to_folder
from signal_core.utils.hashing import sha256_file
from train import extract, search
from train.rank_page import PageTriple, RankList, write_rank_page

NUM_CAMERAS = 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model runs ~30x faster on one thread than on two when the machine's cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=NUM_CAMERAS)), path)
    return path


def make_triples(root: Path, names: list[str], seed: int = 0, size=(64, 32)) -> Path:
    """A triples folder; each triple is random 8 x 4 blocks (distinct content), NI / TI derived from RGB."""
    rng = np.random.default_rng(seed)
    for d in ("RGB", "NI", "TI"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for name in names:
        blocks = rng.integers(0, 256, (8, 4, 3), dtype=np.uint8)
        rgb = np.kron(blocks, np.ones((size[0] // 8, size[1] // 4, 1), dtype=np.uint8))
        Image.fromarray(rgb).save(root / "RGB" / name)
        Image.fromarray(255 - rgb[..., 1]).save(root / "NI" / name)
        Image.fromarray(rgb.mean(-1).astype(np.uint8)).save(root / "TI" / name)
    return root


def gallery_names(ids=(1, 2, 3, 4), per_id: int = 3) -> list[str]:
    return [f"{pid:06d}_cam{k % NUM_CAMERAS + 1}_{k:03d}.png" for pid in ids for k in range(per_id)]


def run_extract(weights: Path, triples: Path, out: Path, *extra: str) -> int:
    return extract.main(["--weights", str(weights), "--triples", str(triples), "--out", str(out), "--batch-size", "2",
                         "--shard-size", "4", "--num-workers", "0", "--no-progress", *extra])


def error_line(capsys) -> str:
    """The one ``error:`` line on stderr (log lines, ``INFO: ...`` / ``WARNING: ...``, may come before it)."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith(("INFO: ", "WARNING: "))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_parse_triple_name_and_unknown_names(tmp_path):
    assert parse_triple_name("000123_cam2_0.jpg") == (123, 1)
    assert parse_triple_name("/x/000007_cam1.png") == (7, 0)
    assert parse_triple_name("street_0042.png") == (-1, -1) == (UNKNOWN, UNKNOWN)
    assert parse_triple_name("000123_cam0_0.jpg") == (-1, -1)
    make_triples(tmp_path, ["b_night.png", "000007_cam3_001.png"])
    records = read_triples_folder(tmp_path)
    assert [(Path(r.paths[0]).name, r.pid, r.camid) for r in records] == [
        ("000007_cam3_001.png", 7, 2), ("b_night.png", -1, -1)]
    assert records[0].paths[1].endswith("NI/000007_cam3_001.png")


def test_extract_search_round_trip(weights, tmp_path, capsys):
    names = gallery_names() + ["unlabelled_01.png"]
    gallery = make_triples(tmp_path / "gallery", names)
    assert run_extract(weights, gallery, tmp_path / "feats") == 0
    feats, rows, manifest = read_features(tmp_path / "feats")
    assert feats.shape == (len(names), SignalConfig.preset("tiny").feature_dim) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    assert [r["name"] for r in rows] == sorted(names)
    assert rows[0]["pid"] == 1 and rows[0]["camid"] == 0 and rows[-1]["pid"] is None and rows[-1]["camid"] is None
    assert manifest["model"]["sha256"] == sha256_file(weights) and manifest["complete"]
    assert manifest["count"] == len(names) and manifest["settings"]["image_size"] == [64, 32]
    # Same numbers as the model run directly on each triple (with its camera, or the mean camera).
    model = load_checkpoint(weights).eval()
    transform = build_transforms((64, 32), train=False)
    for i in (0, 5, len(names) - 1):
        images = [t.unsqueeze(0) for t in transform(load_triple(rows[i]["paths"]))]
        cams = None if rows[i]["camid"] is None else torch.tensor([rows[i]["camid"]])
        expected = F.normalize(model.extract_features(*images, cams), dim=1)[0].numpy()
        np.testing.assert_allclose(feats[i], expected, atol=1e-5)

    # Byte copies of two gallery triples as queries: found at rank 1 with cosine >= 0.999.
    queries = tmp_path / "queries"
    for d in ("RGB", "NI", "TI"):
        (queries / d).mkdir(parents=True)
        for name in ("000002_cam2_001.png", "unlabelled_01.png"):
            shutil.copyfile(gallery / d / name, queries / d / name)
    out, page = tmp_path / "results.json", tmp_path / "ranks.html"
    assert search.main(["--features", str(tmp_path / "feats"), "--queries", str(queries), "--weights", str(weights),
                        "--top-k", "5", "--out", str(out), "--html", str(page), "--index", "exact"]) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["name"] for r in results] == ["000002_cam2_001.png", "unlabelled_01.png"]
    for r in results:
        assert len(r["matches"]) == 5 and [m["rank"] for m in r["matches"]] == [1, 2, 3, 4, 5]
        assert r["matches"][0]["name"] == r["name"] and r["matches"][0]["score"] >= 0.999
        scores = [m["score"] for m in r["matches"]]
        assert scores == sorted(scores, reverse=True)
    assert results[0]["identity"] == 2 and results[0]["camera"] == 2 and results[1]["identity"] is None
    # Scores are the cosine similarities of the stored features.
    q_row = [r["name"] for r in rows].index("000002_cam2_001.png")
    for m in results[0]["matches"]:
        g_row = [r["name"] for r in rows].index(m["name"])
        assert m["score"] == pytest.approx(float(feats[q_row] @ feats[g_row]), abs=1e-5)

    # The HTML page: self-contained, one green / red border per match of a known identity.
    text = page.read_text()
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert not re.search(r"(href=|url\(|https?://)", text)
    pairs = [(r["identity"], m["identity"]) for r in results for m in r["matches"]]
    green = sum(q is not None and q == g for q, g in pairs)
    red = sum(q is not None and g is not None and q != g for q, g in pairs)
    assert text.count('class="item hit"') == green >= 1 and text.count('class="item miss"') == red >= 1
    assert text.count('class="item unknown"') == 10 - green - red >= 5  # the unlabelled query's 5 at least
    assert len(sources) == 3 * (2 + 2 * 5)

    # --drop-junk: the copy (same identity and camera) is left out; the unlabelled query keeps its copy.
    out3 = tmp_path / "results3.json"
    assert search.main(["--features", str(tmp_path / "feats"), "--queries", str(queries), "--weights", str(weights),
                        "--top-k", "20", "--out", str(out3), "--drop-junk"]) == 0
    labelled, unlabelled = json.loads(out3.read_text())["results"]
    assert len(labelled["matches"]) == len(names) - 1  # the gallery's 000002_cam2_001 is junk
    assert all((m["identity"], m["camera"]) != (2, 2) for m in labelled["matches"])
    assert unlabelled["matches"][0]["name"] == "unlabelled_01.png" and len(unlabelled["matches"]) == len(names)

    # Queries as a feature folder give the same ranking as the triples folder.
    assert run_extract(weights, queries, tmp_path / "qfeats") == 0
    out2 = tmp_path / "results2.json"
    assert search.main(["--features", str(tmp_path / "feats"), "--queries", str(tmp_path / "qfeats"),
                        "--top-k", "5", "--out", str(out2), "--index", "exact"]) == 0
    results2 = json.loads(out2.read_text())["results"]
    assert [[m["name"] for m in r["matches"]] for r in results2] == [[m["name"] for m in r["matches"]] for r in results]


def _count_rows(monkeypatch, fail_at_call: int | None = None) -> list[int]:
    """Count the triples the model encodes; optionally raise KeyboardInterrupt (a kill) at one call."""
    calls: list[int] = []
    original = SignalModel.extract_features

    def counting(self, rgb, *args, **kwargs):
        if fail_at_call is not None and len(calls) == fail_at_call:
            raise KeyboardInterrupt
        calls.append(rgb.shape[0])
        return original(self, rgb, *args, **kwargs)

    monkeypatch.setattr(SignalModel, "extract_features", counting)
    return calls


def test_resume_after_kill_keeps_finished_shards(weights, tmp_path, monkeypatch):
    names = gallery_names(ids=(1, 2, 3, 4, 5), per_id=2)  # 10 triples: shards of 4, 4, 2
    triples = make_triples(tmp_path / "t", names)
    assert run_extract(weights, triples, tmp_path / "full") == 0
    full, full_rows, _ = read_features(tmp_path / "full")

    calls = _count_rows(monkeypatch, fail_at_call=3)  # killed in shard 1 (2 batches of 2 per shard)
    assert run_extract(weights, triples, tmp_path / "part") == 130
    manifest = read_manifest(tmp_path / "part")
    assert not manifest["complete"] and [e["index"] for e in manifest["shards"]] == [0] and manifest["count"] == 4
    assert sorted(p.name for p in (tmp_path / "part").iterdir()) == ["manifest.json", "shard-00000.npz"]
    with pytest.raises(FeatureStoreError, match="incomplete"):
        read_features(tmp_path / "part")
    assert read_features(tmp_path / "part", allow_incomplete=True).features.shape[0] == 4
    shard0 = (tmp_path / "part" / "shard-00000.npz").stat()

    (tmp_path / "part" / ".shard-00001.npz.k1ll3d.tmp").write_bytes(b"half a shard")  # a SIGKILL mid-write
    monkeypatch.undo()
    calls = _count_rows(monkeypatch)
    assert run_extract(weights, triples, tmp_path / "part") == 0
    assert sum(calls) == 6  # only the 6 triples of the unfinished shards
    after = (tmp_path / "part" / "shard-00000.npz").stat()
    assert (after.st_ino, after.st_mtime_ns) == (shard0.st_ino, shard0.st_mtime_ns)
    resumed, resumed_rows, manifest = read_features(tmp_path / "part")
    assert manifest["complete"] and resumed_rows == full_rows
    assert sorted(p.name for p in (tmp_path / "part").iterdir()) == ["manifest.json"] + [
        f"shard-0000{i}.npz" for i in range(3)]
    np.testing.assert_allclose(resumed, full, atol=1e-6)

    calls.clear()  # a finished folder: nothing to do
    assert run_extract(weights, triples, tmp_path / "part") == 0 and calls == []


def test_dataset_split(weights, tmp_path):
    root = tmp_path / "RGBNT201"
    make_triples(root / "train_171", gallery_names(ids=(1, 2), per_id=2))
    make_triples(root / "test", gallery_names(ids=(7, 9), per_id=3), seed=1)
    assert extract.main(["--weights", str(weights), "--dataset", "rgbnt201", "--data-root", str(root), "--split",
                         "query", "--out", str(tmp_path / "q"), "--no-progress", "--num-workers", "0"]) == 0
    _, rows, manifest = read_features(tmp_path / "q")
    assert [(r["pid"], r["camid"], r["sceneid"]) for r in rows] == [(p, k % NUM_CAMERAS, None)
                                                                   for p in (7, 9) for k in range(3)]
    assert rows[0]["paths"][2] == str((root / "test" / "TI" / rows[0]["name"]).resolve())
    assert manifest["settings"]["source"] == {"kind": "dataset", "name": "rgbnt201", "root": str(root.resolve()),
                                              "split": "query"}


def test_max_shards_stops_and_resume_refuses_other_runs(weights, tmp_path, capsys):
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1, 2, 3), per_id=2))
    model = load_checkpoint(weights).eval()
    records = read_triples_folder(triples)
    info = {"sha256": sha256_file(weights), "path": str(weights)}
    settings = {"source": {"kind": "triples", "root": str(triples.resolve())}, "precision": "fp32"}  # as the CLI's
    summary = extract_to_folder(model, records, tmp_path / "f", info, settings, batch_size=2,
                                shard_size=4, progress=False, max_shards=1)
    assert (summary.complete, summary.count, summary.shards_written) == (False, 4, 1)

    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=NUM_CAMERAS)), other)
    assert run_extract(other, triples, tmp_path / "f") == 2
    assert "weights" in error_line(capsys)
    assert run_extract(weights, triples, tmp_path / "f", "--shard-size", "3") == 2
    assert "shard_size" in error_line(capsys)
    assert run_extract(weights, triples, tmp_path / "f") == 0
    assert read_features(tmp_path / "f").features.shape[0] == 6


def test_corrupted_shard_is_named_and_recomputed(weights, tmp_path):
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1, 2), per_id=3))
    assert run_extract(weights, triples, tmp_path / "f") == 0
    good = read_features(tmp_path / "f").features
    shard = tmp_path / "f" / "shard-00001.npz"
    shard.write_bytes(shard.read_bytes()[:-7] + b"garbage")
    with pytest.raises(FeatureStoreError, match="shard-00001.npz.*checksum"):
        read_features(tmp_path / "f")
    assert run_extract(weights, triples, tmp_path / "f") == 0  # the resume recomputes the bad shard
    np.testing.assert_allclose(read_features(tmp_path / "f").features, good, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda m: m["settings"].pop("feature_dim"), "no positive settings.feature_dim"),
    (lambda m: m["shards"][0].pop("sha256"), "lacks index, rows, file or sha256"),
    (lambda m: m["shards"][0].update(file="../../secret.npz"), "'../../secret.npz' is not a plain file name"),
])
def test_a_malformed_manifest_is_a_clear_error(weights, tmp_path, change, message):
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1, 2), per_id=2))
    assert run_extract(weights, triples, tmp_path / "f") == 0
    path = tmp_path / "f" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(FeatureStoreError, match=re.escape(message)):
        read_features(tmp_path / "f")


def _missing_ni(root: Path) -> None:
    shutil.rmtree(root / "NI")


def _mismatched(root: Path) -> None:
    (root / "NI" / "000001_cam2_001.png").rename(root / "NI" / "000001_cam2_999.png")


def _empty(root: Path) -> None:
    for p in (root / "RGB").iterdir():
        p.unlink()


@pytest.mark.parametrize("break_folder, expected", [
    (_missing_ni, r"NI missing"),
    (_mismatched, r"RGB/000001_cam2_001\.png' has no counterpart '.*NI/000001_cam2_001\.png'"),
    (_empty, r"RGB' holds no images"),
])
def test_bad_triples_folders_exit_2(weights, tmp_path, capsys, break_folder, expected):
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1,), per_id=3))
    break_folder(triples)
    assert run_extract(weights, triples, tmp_path / "f") == 2
    assert re.search(expected, error_line(capsys))
    with pytest.raises(DatasetError):
        read_triples_folder(triples)


def test_unreadable_image_without_and_with_skip_bad(weights, tmp_path, capsys):
    names = gallery_names(ids=(1, 2), per_id=3)
    triples = make_triples(tmp_path / "t", names)
    bad = triples / "TI" / names[4]
    bad.write_bytes(b"this is not an image")
    assert run_extract(weights, triples, tmp_path / "f") == 2
    err = error_line(capsys)
    assert str(bad) in err and "--skip-bad" in err
    assert run_extract(weights, triples, tmp_path / "f", "--skip-bad") == 0
    feats, rows, manifest = read_features(tmp_path / "f")
    assert feats.shape[0] == len(names) - 1 and names[4] not in [r["name"] for r in rows]
    assert [s["name"] for s in manifest["skipped"]] == [names[4]] and str(bad) in manifest["skipped"][0]["error"]
    assert names[4] in capsys.readouterr().out


def test_other_user_errors_exit_2(weights, tmp_path, capsys):
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1,), per_id=2))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert run_extract(weights, triples, tmp_path / "busy") == 2
    assert "not a feature folder" in error_line(capsys)
    assert extract.main(["--weights", str(weights), "--out", str(tmp_path / "f")]) == 2
    assert "--triples" in error_line(capsys)
    assert run_extract(tmp_path / "nope.safetensors", triples, tmp_path / "f2") == 2
    assert "nope.safetensors" in error_line(capsys)
    assert run_extract(weights, triples, tmp_path / "f") == 0
    args = ["--features", str(tmp_path / "f"), "--top-k", "3", "--out", str(tmp_path / "r.json")]
    assert search.main([*args, "--queries", str(tmp_path / "busy")]) == 2
    assert "neither a feature folder" in error_line(capsys)
    assert search.main([*args, "--queries", str(triples)]) == 2
    assert "--weights" in error_line(capsys)
    assert search.main(["--features", str(tmp_path / "busy"), "--queries", str(triples), "--top-k", "3",
                        "--out", str(tmp_path / "r.json")]) == 2
    assert "not a feature folder" in error_line(capsys)


def test_rank_page_caps_queries_and_marks_unreadable(tmp_path):
    triples = make_triples(tmp_path / "t", ["000001_cam1_000.png", "000002_cam1_000.png"])
    paths = [r.paths for r in read_triples_folder(triples)]
    q = PageTriple("q", paths[0], pid=1, camid=0)
    matches = [PageTriple("a", paths[0], 1, 0, 0.99, 1), PageTriple("b", paths[1], 2, 0, 0.5, 2),
               PageTriple("gone", [str(tmp_path / "missing.png")] * 3, UNKNOWN, UNKNOWN, 0.1, 3)]
    summary = write_rank_page(tmp_path / "p.html", [RankList(q, matches)] * 4, max_queries=3)
    text = (tmp_path / "p.html").read_text()
    assert (summary.queries_shown, summary.queries_total, summary.hits, summary.misses) == (3, 4, 3, 3)
    assert text.count('class="item hit"') == 3 and text.count('class="item miss"') == 3
    assert text.count(">unreadable<") == 3 and "first 3 of 4 queries" in text


def test_a_triples_folder_lists_what_it_leaves_out(weights, tmp_path, capsys):
    """NI / TI images without an RGB image, a FIFO, a link to a device, a folder, a non-image and a hidden file:
    left out of the triples, each named with why (the scan), and named by train.extract (one warning line)."""
    import os

    from signal_core.data.triples import scan_triples_folder

    root = make_triples(tmp_path / "t", gallery_names(ids=(1,), per_id=2))
    make_triples(tmp_path / "other", ["000009_cam1_000.png"])
    for folder in ("NI", "TI"):
        (tmp_path / "other" / folder / "000009_cam1_000.png").rename(root / folder / "000009_cam1_000.png")
    os.mkfifo(root / "RGB" / "pipe.png")
    (root / "NI" / "null.png").symlink_to("/dev/null")
    (root / "TI" / "sub.png").mkdir()
    (root / "RGB" / "notes.txt").write_text("mine")
    (root / "RGB" / ".DS_Store").write_bytes(b"")
    scan = scan_triples_folder(root)
    assert [Path(r.paths[0]).name for r in scan.records] == gallery_names(ids=(1,), per_id=2)
    assert scan.ignored == [
        "NI/000009_cam1_000.png (no RGB image of that name)",
        "NI/null.png (not a regular file (a FIFO, socket or device))",
        "RGB/.DS_Store (hidden file)",
        "RGB/notes.txt (not an image name (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp))",
        "RGB/pipe.png (not a regular file (a FIFO, socket or device))",
        "TI/000009_cam1_000.png (no RGB image of that name)",
        "TI/sub.png (a folder)",
    ]
    assert run_extract(weights, root, tmp_path / "f") == 0
    err = capsys.readouterr().err
    assert err.startswith(f"WARNING: {root}: ignored 7 entries of RGB/, NI/, TI/ that are not part of a triple: "
                          "NI/000009_cam1_000.png (no RGB image of that name); NI/null.png") and err.count("\n") == 1
    assert read_features(tmp_path / "f").features.shape[0] == 2


def test_non_finite_features_are_never_written(weights, tmp_path):
    """Issue 29: whatever computes them (a broken graph, broken weights), NaN features are refused by the writer,
    naming the triples; the shards before are kept."""
    names = gallery_names(ids=(1, 2), per_id=3)
    triples = make_triples(tmp_path / "t", names)
    records = read_triples_folder(triples.resolve())
    model = load_checkpoint(weights).eval()
    calls = []

    def features(rgb, nir, tir, cams):  # the second batch of shard 1 holds a NaN row
        calls.append(len(rgb))
        out = np.ones((len(rgb), model.cfg.feature_dim), np.float32)
        if len(calls) == 3:
            out[1, 5] = np.nan
        return out

    out = tmp_path / "f"
    with pytest.raises(FeatureStoreError) as exc:
        extract_to_folder(model, records, out, {"sha256": "x"}, {"precision": "fp32"}, batch_size=2, shard_size=4,
                          progress=False, features_fn=features)
    assert f"not finite (NaN or infinity): {names[5]};" in str(exc.value) and "\n" not in str(exc.value)
    manifest = read_manifest(out)
    assert manifest["count"] == 4 and [e["file"] for e in manifest["shards"]] == ["shard-00000.npz"]
    assert not (out / "shard-00001.npz").exists()
