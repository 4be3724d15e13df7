"""signal_core.retrieval.index.GalleryIndex: exact = brute force, ivfpq recall, save/load, corrupt files, add, junk."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from signal_core.retrieval.index import AUTO_EXACT_MAX_ROWS, GalleryIndex, IndexFileError, IvfPqConfig, JunkFilter

SMALL_IVFPQ = IvfPqConfig(pca_dim=32, nlist=16, nprobe=8, k_factor=8)


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """The CI machine is shared: two OpenMP threads that spin-wait on a loaded machine are far slower."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def clustered(n: int, dim: int, n_ids: int, seed: int = 0, noise: float = 0.5, rank: int = 16) -> tuple:
    """[n, dim] unit features around ``n_ids`` identity centres (in a ``rank``-dim subspace), and identities [n]."""
    basis = np.random.default_rng(123).standard_normal((rank, dim)).astype(np.float32) / np.sqrt(rank)
    centres = np.random.default_rng(7).standard_normal((n_ids, rank)).astype(np.float32) @ basis  # same for all seeds
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, n_ids, n)
    x = centres[pids] + noise * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True), pids


def brute_force(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple:
    scores = queries @ gallery.T  # [M, N]
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, 1), rows


def test_exact_equals_brute_force():
    gallery, _ = clustered(3000, 48, 60, noise=2.0)
    queries, _ = clustered(40, 48, 60, seed=1, noise=2.0)
    scores, rows = GalleryIndex.build(gallery * 3.0, kind="exact").search(queries, 10)  # unnormalised in
    ref_scores, ref_rows = brute_force(gallery, queries, 10)
    assert rows.dtype == np.int64 and scores.dtype == np.float32 and rows.shape == (40, 10)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    gaps = np.diff(ref_scores, axis=1, append=-np.inf) < -1e-5  # rows whose score is not tied with the next
    gaps[:, 1:] &= gaps[:, :-1]
    assert (rows[gaps] == ref_rows[gaps]).all() and gaps.mean() > 0.9


def test_exact_ties_smaller_row_first_and_padding():
    gallery, _ = clustered(20, 16, 4)
    gallery[[3, 7, 12]] = gallery[12]
    result = GalleryIndex.build(gallery, kind="exact").search(gallery[12], 3)
    assert result.rows.tolist() == [[3, 7, 12]]
    np.testing.assert_allclose(result.scores, 1.0, atol=1e-5)
    scores, rows = GalleryIndex.build(gallery[:4], kind="exact").search(gallery[:1], 6)
    assert rows[0, 4:].tolist() == [-1, -1] and np.isneginf(scores[0, 4:]).all() and (rows[0, :4] >= 0).all()


@pytest.fixture(scope="module")
def ivfpq_gallery() -> tuple:
    """A 2000 x 64 ivfpq index (PCA to 32, 16 lists, SQ8 codes, SQ8 re-rank) with metadata, and its features."""
    faiss.omp_set_num_threads(1)
    gallery, pids = clustered(2000, 64, 100, noise=2.0)
    meta = {"pid": pids, "camid": np.arange(2000) % 3, "name": [f"triple_{i}" for i in range(2000)]}
    return GalleryIndex.build(gallery, kind="ivfpq", metadata=meta, config=SMALL_IVFPQ), gallery, meta


@pytest.mark.slow
def test_ivfpq_recall_against_exact(ivfpq_gallery):
    index, gallery, _ = ivfpq_gallery
    queries, _ = clustered(100, 64, 100, seed=1, noise=2.0)
    _, rows = index.search(queries, 10)
    _, ref = brute_force(gallery, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, ref)])
    assert index.kind == "ivfpq" and recall >= 0.9, recall
    index.nprobe, index.k_factor = 1, 1
    _, rows_low = index.search(queries, 10)
    index.nprobe, index.k_factor = SMALL_IVFPQ.nprobe, SMALL_IVFPQ.k_factor
    recall_low = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows_low, ref)])
    assert recall_low < recall  # the knobs reach faiss


@pytest.mark.slow
def test_save_load_round_trip(tmp_path, ivfpq_gallery):
    ivfpq, gallery, meta = ivfpq_gallery
    for index in (ivfpq, GalleryIndex.build(gallery, kind="exact", metadata=meta)):
        index.save(tmp_path / f"{index.kind}.sgi")
        loaded = GalleryIndex.load(tmp_path / f"{index.kind}.sgi")
        assert (loaded.kind, loaded.dim, len(loaded), loaded.nprobe) == (index.kind, 64, 2000, index.nprobe)
        for a, b in zip(index.search(gallery[:20], 7), loaded.search(gallery[:20], 7)):
            np.testing.assert_array_equal(a, b)
        assert loaded.metadata["name"][5] == "triple_5" and (loaded.metadata["pid"] == meta["pid"]).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "missing"])
def test_corrupt_file_gives_clear_error(tmp_path, damage):
    path = tmp_path / "gallery.sgi"
    GalleryIndex.build(clustered(200, 16, 10)[0], kind="exact", metadata={"pid": np.arange(200)}).save(path)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:-100]))
    elif damage == "garbage":
        path.write_bytes(b"not an index at all" * 10)
    else:
        path.unlink()
    with pytest.raises(IndexFileError, match="corrupt|not a Signal gallery index|does not exist") as err:
        GalleryIndex.load(path)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_add_rows_and_metadata():
    gallery, pids = clustered(600, 32, 20)
    index = GalleryIndex.build(gallery[:400], kind="exact", metadata={"pid": pids[:400]})
    index.add(gallery[400:], metadata={"pid": pids[400:]})
    assert len(index) == 600 and (index.metadata["pid"] == pids).all()
    _, rows = index.search(gallery[450:460], 1)
    assert rows[:, 0].tolist() == list(range(450, 460))
    with pytest.raises(ValueError, match="metadata keys"):
        index.add(gallery[:2])
    with pytest.raises(ValueError, match=r"\[N, 32\]"):
        index.add(np.zeros((2, 31), np.float32), metadata={"pid": [0, 1]})

    ivf = GalleryIndex.build(gallery[:400], kind="ivfpq", config=IvfPqConfig(pca_dim=16, nlist=4, nprobe=4))
    ivf.add(gallery[400:])
    assert len(ivf) == 600 and ivf.search(gallery[500], 1).rows[0, 0] == 500


def test_junk_filtering_same_identity_and_camera_or_scene():
    n = 300
    gallery, _ = clustered(n, 32, 5)
    pids, camids, scenes = np.arange(n) % 5, np.arange(n) % 3, np.arange(n) % 2
    index = GalleryIndex.build(gallery, kind="exact", metadata={"pid": pids, "camid": camids, "sceneid": scenes})
    queries, q_pid, q_cam, q_scene = gallery[:30], pids[:30], camids[:30], scenes[:30]
    k = 50
    scores, rows = index.search(queries, k, query_pids=q_pid, query_camids=q_cam)
    assert (rows >= 0).all()  # over-fetching still returns k results
    assert not ((pids[rows] == q_pid[:, None]) & (camids[rows] == q_cam[:, None])).any()
    ref_scores = queries @ gallery.T
    ref_scores[(pids[None] == q_pid[:, None]) & (camids[None] == q_cam[:, None])] = -np.inf
    np.testing.assert_allclose(scores, -np.sort(-ref_scores, axis=1)[:, :k], atol=1e-5)

    _, rows = index.search(queries, k, exclude=JunkFilter(q_pid, sceneids=q_scene))
    assert not ((pids[rows] == q_pid[:, None]) & (scenes[rows] == q_scene[:, None])).any()
    assert ((pids[rows] == q_pid[:, None]) & (camids[rows] == q_cam[:, None])).any()  # scene rule only

    with pytest.raises(ValueError, match="camera ids"):
        index.search(queries, 5, query_pids=q_pid)
    with pytest.raises(ValueError, match="gallery metadata"):
        GalleryIndex.build(gallery, kind="exact").search(queries, 5, query_pids=q_pid, query_camids=q_cam)


@pytest.mark.slow
def test_auto_picks_by_size(monkeypatch):
    gallery, _ = clustered(600, 32, 20)
    assert GalleryIndex.build(gallery, kind="auto").kind == "exact"
    monkeypatch.setattr("signal_core.retrieval.index.AUTO_EXACT_MAX_ROWS", 500)
    tiny = IvfPqConfig(pca_dim=16, nlist=4, nprobe=4)
    assert GalleryIndex.build(gallery, kind="auto", config=tiny).kind == "ivfpq"
    assert AUTO_EXACT_MAX_ROWS == 50_000


def test_bad_input_messages():
    gallery, _ = clustered(100, 16, 5)
    with pytest.raises(ValueError, match="kind must be one of"):
        GalleryIndex.build(gallery, kind="hnsw")
    with pytest.raises(ValueError, match="NaN"):
        GalleryIndex.build(np.full((3, 16), np.nan, np.float32), kind="exact")
    with pytest.raises(ValueError, match="one per row"):
        GalleryIndex.build(gallery, kind="exact", metadata={"pid": [1, 2]})
    with pytest.raises(ValueError, match="pca_dim must be >= 1"):
        GalleryIndex.build(gallery, kind="ivfpq", config=IvfPqConfig(pca_dim=0))
