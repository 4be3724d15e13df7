"""The explanation of a search: the score split by feature part (library and demo), SIM's score maps,
the heatmap and LAM drawings, the modality switch and the JSON answer (no server; see test_demo_app)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from signal_core.metrics.parts import feature_layout, part_scores
from signal_core.model.sim import topk_mask
from signal_core.retrieval.index import GalleryIndex, IvfPqConfig
from signal_core.viz import annotate, score_heatmap, score_maps_overlay
from signal_core.viz.overlays import overlay_size


# --- library: the part decomposition -------------------------------------------------------------
def test_part_scores_cosines_shares_and_a_zero_part():
    rng = np.random.default_rng(0)
    d = 8
    layout = feature_layout(6 * d, d)
    assert list(layout) == ["rgb", "nir", "tir", "fused"] and layout["fused"] == slice(24, 48)
    query = rng.normal(size=6 * d) * 3.0  # any scale: it cancels
    gallery = rng.normal(size=(5, 6 * d)) + 0.5 * query
    gallery[2, layout["nir"]] = 0.0  # e.g. a part that is all zeros
    got = part_scores(query, gallery, layout)
    assert got.cosine.shape == got.share.shape == (5, 4)
    for i in range(5):
        for j, s in enumerate(layout.values()):
            q, g = query[s], gallery[i, s]
            norm = np.linalg.norm(q) * np.linalg.norm(g)
            assert got.cosine[i, j] == pytest.approx(q @ g / norm if norm else 0.0, abs=1e-12)
    whole = (gallery / np.linalg.norm(gallery, axis=1, keepdims=True)) @ (query / np.linalg.norm(query))
    np.testing.assert_allclose(got.score, whole, atol=1e-12)
    np.testing.assert_allclose(got.contribution.sum(axis=1), whole, atol=1e-12)
    np.testing.assert_allclose(got.share.sum(axis=1), 1.0, atol=1e-12)
    assert got.cosine[2, 1] == 0.0 and got.share[2, 1] == 0.0 and got.contribution[2, 1] == 0.0
    scaled = part_scores(torch.tensor(query * 0.01), torch.tensor(gallery * 7.0), layout)  # torch, other scales
    np.testing.assert_allclose(scaled.share, got.share, atol=1e-5)
    row = got.row(0)
    assert set(row) == set(layout) and row["rgb"].cosine == pytest.approx(got.cosine[0, 0])
    without_sim = part_scores(query[:3 * d], gallery[:, :3 * d], feature_layout(3 * d, d))
    assert without_sim.names == ("rgb", "nir", "tir")
    with pytest.raises(ValueError, match="not 3 or 6 tokens"):
        feature_layout(40, d)


@pytest.mark.parametrize("kind", ["exact", "ivfpq"])
def test_gallery_index_vectors(kind):
    x = np.random.default_rng(1).normal(size=(600, 32)).astype(np.float32)
    index = GalleryIndex.build(x, kind=kind, config=IvfPqConfig(pca_dim=8, nlist=4, train_rows=600))
    rows = np.array([3, 0, 599])
    unit = x[rows] / np.linalg.norm(x[rows], axis=1, keepdims=True)
    np.testing.assert_allclose(index.vectors(rows), unit, atol=1e-6 if kind == "exact" else 2e-2)
    assert index.vectors([]).shape == (0, 32)
    with pytest.raises(ValueError, match="rows must be in 0..599"):
        index.vectors([600])


def test_explain_returns_the_scores_the_masks_select(tiny_cfg):
    from signal_core import build_model

    torch.manual_seed(0)
    model = build_model(tiny_cfg).eval()
    images = [torch.randn(2, 3, *tiny_cfg.image_size) for _ in range(3)]
    explanation = model.explain(*images)
    for name in ("rgb", "nir", "tir"):
        e = explanation[name]
        assert e.intra_scores.shape == e.inter_scores.shape == e.intra.shape
        torch.testing.assert_close(e.intra_scores.sum(dim=1), torch.ones(2))  # a softmax over the patches
        assert torch.equal(topk_mask(e.intra_scores, tiny_cfg.k1), e.intra)
        assert (e.inter_scores > 0).all() and (e.inter_scores.sum(dim=1) < 2).all()  # 2 queries, own keys dropped


# --- drawings ------------------------------------------------------------------------------------
def test_heatmap_is_bright_where_the_score_is_high():
    grid, size = (8, 4), (64, 32)
    canvas = np.full((*overlay_size(size), 3), 128, np.uint8)
    scores = np.zeros(32)
    scores[0] = 1.0  # top-left patch
    out = score_heatmap(canvas, grid, scores)
    h, w = canvas.shape[:2]
    assert out[h // 16, w // 8].sum() > 3 * out[-h // 16, -w // 8].sum()
    pair = score_maps_overlay(None, grid, size, scores, scores[::-1])
    assert pair.shape[0] == h and pair.shape[1] > 2 * w
    labelled = annotate(canvas, "LAM arrows x20")
    assert labelled[-3, 2].sum() < 20 and np.array_equal(labelled[0], canvas[0])  # a dark box at the bottom


# --- the demo engine -----------------------------------------------------------------------------
def test_matches_carry_their_parts(engine):
    entry = engine.gallery.entries[5]
    result = engine.search(*entry.paths, top_k=4, camera=str(entry.camid + 1), explain=False)
    g = engine.gallery_features[[m.index for m in result.matches]]
    q = engine.gallery_features[5]  # the query is this gallery entry, encoded the same way (its camera)
    assert result.matches[0].index == 5
    for m in result.matches:
        assert set(m.parts) == {"rgb", "nir", "tir", "fused"} and m.previous_rank is None and m.name
        assert sum(p.share for p in m.parts.values()) == pytest.approx(1.0, abs=1e-6)
        assert sum(p.contribution for p in m.parts.values()) == pytest.approx(m.similarity, abs=1e-5)
    for name, s in engine.layout.items():
        assert result.matches[0].parts[name].cosine == pytest.approx(1.0, abs=1e-5)
        for i in (1, 2, 3):
            direct = F.cosine_similarity(g[i, s], q[s], dim=0).item()
            assert result.matches[i].parts[name].cosine == pytest.approx(direct, abs=1e-4)
            share = (g[i, s] @ q[s] / (g[i] @ q)).item()
            assert result.matches[i].parts[name].share == pytest.approx(share, abs=1e-4)


def test_index_path_gives_the_same_parts(engine):
    from demo.search import SearchEngine

    entry = engine.gallery.entries[2]
    in_memory = engine.search(*entry.paths, top_k=5, explain=False, switched_on=("rgb", "tir"),
                              gallery_too=False)  # an index keeps the gallery's features as they are
    for kind in ("exact", "ivfpq"):
        index = GalleryIndex.build(engine.gallery_features.cpu().numpy(), kind=kind,
                                   config=IvfPqConfig(pca_dim=4096, nlist=1))  # no PCA on 12 rows
        via_index = SearchEngine(engine.model, engine.gallery, index).search(
            *entry.paths, top_k=5, explain=False, switched_on=("rgb", "tir"))
        tol = 1e-5 if kind == "exact" else 3e-2
        for a, b in zip(in_memory.matches, via_index.matches):
            assert a.index == b.index and a.previous_rank == b.previous_rank
            for name in a.parts:
                assert b.parts[name].share == pytest.approx(a.parts[name].share, abs=tol)
                assert b.parts[name].cosine == pytest.approx(a.parts[name].cosine, abs=tol)


def test_modality_switch_zeroes_and_compares_ranks(engine):
    from demo import text
    from demo.search import QueryError

    entry = engine.gallery.entries[7]
    full = engine.search(*entry.paths, top_k=12, explain=False)
    off = engine.search(*entry.paths, top_k=12, switched_on=("rgb",))
    assert off.switched_off == ("nir", "tir") and off.missing == ()
    rgb_only = engine.search(entry.paths[0], None, None, top_k=12, explain=False)  # same as not giving them
    assert [m.index for m in off.matches] == [m.index for m in rgb_only.matches]
    before = {m.index: m.rank for m in full.matches}  # top 12 = the whole gallery: every old rank is known
    assert all(m.previous_rank == before[m.index] for m in off.matches) and off.previous_depth == 12
    moved = next(m for m in off.matches if m.previous_rank != m.rank)
    assert f"(was {moved.previous_rank}, " in text.caption(moved) and "Switched off: **NIR and TIR**" in text.summary(
        off, 12)
    assert len(off.drawings.scores) == 3
    same = engine.search(entry.paths[0], None, None, top_k=3, explain=False, switched_on=("rgb", "nir"))
    assert same.switched_off == () and same.previous_depth == 0  # NIR was not given: nothing switched off
    with pytest.raises(QueryError, match="every given modality is switched off: switch on at least one of RGB"):
        engine.search(entry.paths[0], None, None, switched_on=("nir", "tir"))


def test_json_answer_and_texts(engine):
    from demo import text

    entry = engine.gallery.entries[4]
    result = engine.search(entry.paths[0], None, entry.paths[2], top_k=3, camera="2", explain=False)
    answer = text.result_json(result)
    assert answer["missing"] == ["nir"] and answer["query_identity"] == entry.pid and answer["camera"] == 2
    first = answer["matches"][0]
    assert set(first) == {"rank", "name", "score", "identity", "camera", "parts"} and first["rank"] == 1
    assert set(first["parts"]) == {"rgb", "nir", "tir", "fused"}
    assert sum(p["share"] for p in first["parts"].values()) == pytest.approx(1.0, abs=1e-5)
    caption = text.caption(result.matches[0])
    assert caption.count("·") == 3 and " R#" in caption and " F#" in caption
    table = text.parts_table(result.matches[0])
    assert "| fused SIM tokens |" in table and "100 %" in table and "rank by this part alone" in table
    assert answer["gallery"] == {"name": "default gallery", "triples": None}


def test_each_part_ranks_the_match_among_the_whole_gallery(engine):
    """A match's per-part rank and z-score, against a serial oracle: every gallery row's part cosine, one by one."""
    from demo import text

    entry = engine.gallery.entries[6]
    result = engine.search(entry.paths[0], entry.paths[1], None, top_k=6, camera="1", explain=False)
    query = engine._encode(triple_batch_of(engine, [entry.paths[0], entry.paths[1], None]),
                           torch.tensor([0]), explain=False)[0][0]
    g = engine.zeroed.features(("tir",))  # the gallery loses TIR too (the missing-modality protocol)
    assert result.gallery_zeroed == ("tir",)
    for m in result.matches:
        assert set(m.standing) == {"rgb", "nir", "tir", "fused"}
        for name, s in engine.layout.items():
            cosines = [F.cosine_similarity(g[row, s], query[s], dim=0).item() for row in range(len(g))]
            own = cosines[m.index]
            # (near-ties within float noise either way: the zeroed TIR inputs give nearly equal TIR tokens)
            assert 1 + sum(c > own + 1e-6 for c in cosines) <= m.standing[name][0] <= sum(c > own - 1e-6
                                                                                          for c in cosines)
            z = (own - np.mean(cosines)) / max(np.std(cosines), 1e-12)
            assert m.standing[name][1] == pytest.approx(z, abs=1e-3)
    ranks = {(name, m.standing[name][0]) for m in result.matches for name in m.standing}
    assert len({r for _, r in ranks}) > 1  # not a constant: the parts rank the matches differently
    answer = text.result_json(result, "default gallery", len(engine.gallery))
    first = answer["matches"][0]["parts"]
    assert {k: v["rank"] for k, v in first.items()} == {k: r for k, (r, _) in result.matches[0].standing.items()}
    assert answer["gallery"] == {"name": "default gallery", "triples": len(engine.gallery)}
    caption = text.caption(result.matches[0])
    ranks = " ".join(f"{letter}#{result.matches[0].standing[name][0]}" for name, letter in zip(engine.layout, "RNTF"))
    assert caption.endswith(f" · {ranks}")


def triple_batch_of(engine, paths):
    from demo.features import triple_batch

    return triple_batch(engine.decode_query(paths), engine.transform)
