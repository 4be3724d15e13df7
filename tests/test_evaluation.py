"""Tests for signal_core.metrics (CPU only, no network, no authors' code)."""
import dataclasses
import math
import os

import numpy as np
import pytest
import torch

from signal_core.metrics import RankResult, evaluate_rank, pairwise_distance, re_ranking

# ---------------------------------------------------------------------------------------
# A tiny hand-built setup shared by the two protocol tests.
#
# gallery   pid  cam  scene
#   g0       1    0    0
#   g1       1    1    0
#   g2       2    1    1
#   g3       2    0    0
#   g4       3    1    1
#   g5       1    2    1
G_PIDS = np.array([1, 1, 2, 2, 3, 1])
G_CAMS = np.array([0, 1, 1, 0, 1, 2])
G_SCENES = np.array([0, 0, 1, 0, 1, 1])
# query     pid  cam  scene   distances to g0..g5
#   q0       1    0    0      0.1 0.5 0.2 0.7 0.3 0.9
#   q1       2    0    1      0.4 0.3 0.1 0.2 0.6 0.5
#   q2       4    0    0      (identity absent from the gallery)
#   q3       3    1    0      0.2 0.1 0.4 0.3 0.6 0.5
Q_PIDS = np.array([1, 2, 4, 3])
Q_CAMS = np.array([0, 0, 0, 1])
Q_SCENES = np.array([0, 1, 0, 0])
DIST = np.array([
    [0.1, 0.5, 0.2, 0.7, 0.3, 0.9],
    [0.4, 0.3, 0.1, 0.2, 0.6, 0.5],
    [0.3, 0.2, 0.1, 0.4, 0.5, 0.6],
    [0.2, 0.1, 0.4, 0.3, 0.6, 0.5],
], dtype=np.float32)


def test_camera_protocol_hand_built():
    # q0: order g0 g2 g4 g1 g3 g5; g0 (pid 1, cam 0) dropped -> kept g2 g4 g1* g3 g5*
    #     matches at ranks 3 and 5: AP = (1/3 + 2/5) / 2 = 11/30, INP = 2/5, first hit rank 3
    # q1: order g2 g3 g1 g0 g5 g4; g3 (pid 2, cam 0) dropped -> kept g2* ...: AP = 1, INP = 1, rank 1
    # q2: pid 4 absent -> skipped
    # q3: only pid-3 item is g4 with the same camera 1 -> dropped -> skipped
    res = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert isinstance(res, RankResult)
    assert res.num_valid_queries == 2
    assert res.mAP == pytest.approx((11 / 30 + 1) / 2)
    assert res.mINP == pytest.approx((2 / 5 + 1) / 2)
    # gallery (6) smaller than max_rank (50) -> curve of length 6
    np.testing.assert_allclose(res.cmc, [0.5, 0.5, 1, 1, 1, 1])
    pct = res.as_percent_dict()
    assert set(pct) == {"mAP", "mINP", "R1", "R5", "R10"}
    assert pct["mAP"] == pytest.approx(100 * 41 / 60)
    assert pct["mINP"] == pytest.approx(70.0)
    assert pct["R1"] == pytest.approx(50.0)
    assert pct["R5"] == pytest.approx(100.0)
    assert pct["R10"] == pytest.approx(100.0)  # curve already at 1 -> known beyond its end


def test_scene_protocol_hand_built():
    # Drop same pid AND same scene, whatever the camera.
    # q0 (pid 1, scene 0): g0 and g1 dropped (g1 has another camera but the same scene)
    #     kept g2 g4 g3 g5*: AP = 1/4, INP = 1/4, first hit rank 4
    # q1 (pid 2, scene 1): g2 dropped, g3 kept although it has the same camera 0
    #     order g2 g3* g1 g0 g5 g4 -> kept g3* ...: AP = 1, INP = 1, rank 1
    # q2: skipped (pid absent)
    # q3 (pid 3, scene 0): g4 is scene 1 -> kept; order g1 g0 g3 g2 g5 g4*: AP = 1/6, rank 6
    res = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, Q_SCENES, G_SCENES)
    assert res.num_valid_queries == 3
    assert res.mAP == pytest.approx((1 / 4 + 1 + 1 / 6) / 3)  # = 17/36
    assert res.mINP == pytest.approx(17 / 36)
    np.testing.assert_allclose(res.cmc, [1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])


def test_max_rank_argument_and_percent_beyond_curve():
    res = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=2)
    np.testing.assert_allclose(res.cmc, [0.5, 0.5])
    assert res.mAP == pytest.approx(41 / 60)  # mAP does not depend on max_rank
    pct = res.as_percent_dict()
    assert math.isnan(pct["R5"]) and math.isnan(pct["R10"])  # unknown beyond a curve < 1
    assert res.rank(1) == pytest.approx(0.5)


def test_skipped_query_does_not_change_metrics():
    full = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    sub = evaluate_rank(DIST[:2], Q_PIDS[:2], G_PIDS, Q_CAMS[:2], G_CAMS)
    assert full.num_valid_queries == sub.num_valid_queries == 2
    assert full.mAP == pytest.approx(sub.mAP)
    assert full.mINP == pytest.approx(sub.mINP)
    np.testing.assert_allclose(full.cmc, sub.cmc)


def test_all_queries_invalid_raises():
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate_rank(DIST[2:], Q_PIDS[2:], G_PIDS, Q_CAMS[2:], G_CAMS)


def test_ties_broken_by_gallery_index():
    # g0 (other id) and g1 (the match) tie at 0.5; g2 is closer.  Stable order: g2 g0 g1*
    gp = np.array([7, 1, 8])
    gc = np.array([1, 1, 1])
    d = np.array([[0.5, 0.5, 0.1]])
    res = evaluate_rank(d, np.array([1]), gp, np.array([0]), gc)
    assert res.mAP == pytest.approx(1 / 3)
    np.testing.assert_allclose(res.cmc, [0, 0, 1])
    # swap the two tied items' gallery positions -> the match comes first among the tie
    res2 = evaluate_rank(d, np.array([1]), gp[[1, 0, 2]], np.array([0]), gc)
    assert res2.mAP == pytest.approx(1 / 2)


def test_infinite_distances_are_ranked_last():
    d = np.array([[np.inf, 0.2, 0.1]])
    res = evaluate_rank(d, np.array([1]), np.array([1, 2, 3]), np.array([0]), np.array([1, 1, 1]))
    assert res.mAP == pytest.approx(1 / 3)
    assert res.mINP == pytest.approx(1 / 3)


def test_no_side_effect_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, Q_SCENES, G_SCENES)
    evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert os.listdir(tmp_path) == []


def test_result_is_frozen():
    res = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.mAP = 1.0
    assert not res.cmc.flags.writeable
    assert isinstance(res.mAP, float) and isinstance(res.mINP, float)
    assert isinstance(res.num_valid_queries, int)


# ---------------------------------------------------------------------------------------
# Straightforward per-query reference (a loop is fine here).


def reference_eval(dist, qp, gp, qc, gc, qs=None, gs=None, max_rank=50):
    dist = np.asarray(dist)
    num_q, num_g = dist.shape
    max_rank = min(max_rank, num_g)
    aps, inps, cmcs = [], [], []
    for i in range(num_q):
        order = np.argsort(dist[i], kind="stable")
        same_id = gp[order] == qp[i]
        same_group = (gs[order] == qs[i]) if qs is not None else (gc[order] == qc[i])
        keep = ~(same_id & same_group)
        hits = same_id[keep]
        if not hits.any():
            continue
        pos = np.flatnonzero(hits) + 1  # 1-based ranks of the correct matches
        aps.append(np.mean(np.arange(1, len(pos) + 1) / pos))
        inps.append(len(pos) / pos[-1])
        cmc = np.zeros(max_rank)
        if pos[0] <= max_rank:
            cmc[pos[0] - 1:] = 1
        cmcs.append(cmc)
    return np.mean(aps), np.mean(inps), np.mean(cmcs, axis=0), len(aps)


def random_case(rng, nq, ng, nid, ncam, nscene, ties):
    qp = rng.integers(0, nid, nq)
    gp = rng.integers(0, nid, ng)
    qc = rng.integers(0, ncam, nq)
    gc = rng.integers(0, ncam, ng)
    qs = rng.integers(0, nscene, nq)
    gs = rng.integers(0, nscene, ng)
    if ties:
        dist = rng.integers(0, 6, (nq, ng)).astype(np.float32)  # many exact ties
    else:
        dist = rng.random((nq, ng)) + 0.4 * (qp[:, None] != gp[None, :])
    return dist, qp, gp, qc, gc, qs, gs


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("scene", [False, True])
def test_matches_per_query_reference(seed, ties, scene):
    rng = np.random.default_rng(seed)
    nq, ng = int(rng.integers(5, 40)), int(rng.integers(8, 120))
    dist, qp, gp, qc, gc, qs, gs = random_case(rng, nq, ng, int(rng.integers(2, 12)), 3, 2, ties)
    scenes = (qs, gs) if scene else (None, None)
    max_rank = int(rng.integers(1, 60))
    ref_map, ref_minp, ref_cmc, ref_n = reference_eval(dist, qp, gp, qc, gc, *scenes, max_rank=max_rank)
    res = evaluate_rank(dist, qp, gp, qc, gc, *scenes, max_rank=max_rank, chunk_size=int(rng.integers(1, 9)))
    assert res.num_valid_queries == ref_n
    assert res.mAP == pytest.approx(ref_map, abs=1e-12)
    assert res.mINP == pytest.approx(ref_minp, abs=1e-12)
    np.testing.assert_allclose(res.cmc, ref_cmc, atol=1e-12)


TRANSFORMS = {
    "float16": lambda d: d.astype(np.float16),
    "float32": lambda d: d.astype(np.float32),
    "float64": lambda d: d.astype(np.float64),
    "int32": lambda d: d.astype(np.int32),
    "int64": lambda d: d.astype(np.int64),
    # not exactly representable in float32 -> the generic (argsort) path, still with ties
    "float64_generic": lambda d: d.astype(np.float64) * 0.1,
    "int64_large": lambda d: d.astype(np.int64) * 2**40,
}


@pytest.mark.parametrize("kind", sorted(TRANSFORMS))
def test_dtypes_and_tensor_inputs_agree_with_reference(kind):
    rng = np.random.default_rng(123)
    dist, qp, gp, qc, gc, _, _ = random_case(rng, 30, 90, 8, 3, 2, ties=True)
    dist = TRANSFORMS[kind](dist * 3 - 7)  # negative values too
    ref = reference_eval(dist, qp, gp, qc, gc)
    res = evaluate_rank(torch.from_numpy(dist), torch.from_numpy(qp), gp, qc, torch.from_numpy(gc), chunk_size=7)
    assert res.mAP == pytest.approx(ref[0], abs=1e-12)
    assert res.mINP == pytest.approx(ref[1], abs=1e-12)
    np.testing.assert_allclose(res.cmc, ref[2], atol=1e-12)


def test_float64_not_representable_in_float32_path():
    # Distances that collapse in float32 must still be ranked by their float64 values.
    gp = np.array([5, 1, 6])
    d = np.array([[1.0 + 2e-12, 1.0 + 1e-12, 1.0]])  # all equal in float32
    res = evaluate_rank(d, np.array([1]), gp, np.array([0]), np.array([1, 1, 1]))
    assert res.mAP == pytest.approx(1 / 2)


def test_string_labels():
    res = evaluate_rank(DIST, Q_PIDS.astype(str), G_PIDS.astype(str), Q_CAMS.astype(str), G_CAMS.astype(str))
    assert res.mAP == pytest.approx(41 / 60)


def test_chunked_equals_unchunked_random():
    rng = np.random.default_rng(7)
    dist, qp, gp, qc, gc, qs, gs = random_case(rng, 97, 400, 30, 4, 3, ties=False)
    dist = dist.astype(np.float32)
    for scenes in ((None, None), (qs, gs)):
        base = evaluate_rank(dist, qp, gp, qc, gc, *scenes, chunk_size=10_000)
        for chunk in (1, 5, 32, 96, None):
            res = evaluate_rank(dist, qp, gp, qc, gc, *scenes, chunk_size=chunk)
            assert res.num_valid_queries == base.num_valid_queries
            assert res.mAP == pytest.approx(base.mAP, abs=1e-12)
            assert res.mINP == pytest.approx(base.mINP, abs=1e-12)
            np.testing.assert_array_equal(res.cmc, base.cmc)


def test_kept_list_shorter_than_max_rank():
    # Query keeps 3 of 5 gallery items (< max_rank = 5); the curve still has 5 entries.
    gp = np.array([1, 1, 1, 2, 3])
    gc = np.array([0, 0, 1, 1, 1])
    d = np.array([[0.1, 0.2, 0.5, 0.3, 0.4]])
    res = evaluate_rank(d, np.array([1]), gp, np.array([0]), gc, max_rank=5)
    # order g0 g1 g3 g4 g2; g0 g1 dropped -> kept g3 g4 g2*: first hit at rank 3
    np.testing.assert_allclose(res.cmc, [0, 0, 1, 1, 1])
    assert res.mAP == pytest.approx(1 / 3)


# ---------------------------------------------------------------------------------------
# Input validation


def test_validation_errors():
    qp, gp, qc, gc = Q_PIDS, G_PIDS, Q_CAMS, G_CAMS
    with pytest.raises(ValueError, match="2-D"):
        evaluate_rank(DIST[0], qp, gp, qc, gc)
    with pytest.raises(ValueError, match="q_pids"):
        evaluate_rank(DIST, qp[:3], gp, qc, gc)
    with pytest.raises(ValueError, match="g_camids"):
        evaluate_rank(DIST, qp, gp, qc, gc[:5])
    with pytest.raises(ValueError, match="1-D"):
        evaluate_rank(DIST, qp[:, None], gp, qc, gc)
    with pytest.raises(ValueError, match="both"):
        evaluate_rank(DIST, qp, gp, qc, gc, q_sceneids=Q_SCENES)
    with pytest.raises(ValueError, match="g_sceneids"):
        evaluate_rank(DIST, qp, gp, qc, gc, Q_SCENES, G_SCENES[:2])
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_rank(DIST, qp, gp, qc, gc, max_rank=0)
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_rank(DIST, qp, gp, qc, gc, chunk_size=0)
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_rank(np.zeros((0, 6)), qp[:0], gp, qc[:0], gc)
    bad = DIST.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(first in query row 3\)"):
        evaluate_rank(bad, qp, gp, qc, gc, chunk_size=2)


# ---------------------------------------------------------------------------------------
# pairwise_distance


def test_pairwise_distance_normalized_and_raw():
    rng = np.random.default_rng(0)
    q = torch.from_numpy(rng.normal(size=(5, 8)).astype(np.float32))
    g = torch.from_numpy(rng.normal(size=(7, 8)).astype(np.float32))
    d = pairwise_distance(q, g)
    assert isinstance(d, np.ndarray) and d.dtype == np.float32 and d.shape == (5, 7)
    qn = torch.nn.functional.normalize(q, dim=1)
    gn = torch.nn.functional.normalize(g, dim=1)
    np.testing.assert_allclose(d, (torch.cdist(qn, gn) ** 2).numpy(), atol=1e-5)
    assert d.min() >= -1e-5 and d.max() <= 4 + 1e-5
    raw = pairwise_distance(q.numpy(), g.numpy(), normalize=False)
    np.testing.assert_allclose(raw, (torch.cdist(q, g) ** 2).numpy(), rtol=1e-4, atol=1e-4)
    assert pairwise_distance(q.double(), g.double()).dtype == np.float64
    with pytest.raises(ValueError, match="feature dims"):
        pairwise_distance(q, g[:, :4])


# ---------------------------------------------------------------------------------------
# re_ranking, against a plain loop implementation of Zhong et al. (2017)


def reference_re_ranking(q_g, q_q, g_g, k1, k2, lam):
    nq = q_g.shape[0]
    full = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64)
    n = full.shape[0]
    dist = (full / full.max(axis=0)).T
    rank = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(i, k):
        fwd = rank[i, :k + 1]
        return np.array([j for j in fwd if i in rank[j, :k + 1]], dtype=int)

    V = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r.tolist())
        for j in r:
            rj = reciprocal(j, int(np.around(k1 / 2)))
            if len(set(rj.tolist()) & set(r.tolist())) > 2 / 3 * len(rj):
                expanded |= set(rj.tolist())
        idx = np.array(sorted(expanded), dtype=int)
        w = np.exp(-dist[i, idx])
        V[i, idx] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jac = np.zeros((nq, n))
    for i in range(nq):
        inter = np.minimum(V[i][None, :], V).sum(axis=1)
        jac[i] = 1 - inter / (2 - inter)
    final = jac * (1 - lam) + dist[:nq] * lam
    return final[:, nq:]


@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (5, 3, 0.5), (4, 1, 0.0)])
def test_re_ranking_matches_loop_reference(k1, k2, lam):
    rng = np.random.default_rng(k1)
    nq, ng, dim = 12, 40, 6
    ids_q = rng.integers(0, 6, nq)
    ids_g = rng.integers(0, 6, ng)
    centers = rng.normal(size=(6, dim))
    qf = torch.tensor(centers[ids_q] + 0.7 * rng.normal(size=(nq, dim)))
    gf = torch.tensor(centers[ids_g] + 0.7 * rng.normal(size=(ng, dim)))
    q_g = pairwise_distance(qf, gf)
    q_q = pairwise_distance(qf, qf)
    g_g = pairwise_distance(gf, gf)
    ours = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    ref = reference_re_ranking(q_g, q_q, g_g, k1, k2, lam)
    assert ours.shape == (nq, ng) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_re_ranking_lambda_one_is_normalized_distance():
    rng = np.random.default_rng(3)
    qf = torch.tensor(rng.normal(size=(4, 5)), dtype=torch.float32)
    gf = torch.tensor(rng.normal(size=(9, 5)), dtype=torch.float32)
    q_g, q_q, g_g = pairwise_distance(qf, gf), pairwise_distance(qf, qf), pairwise_distance(gf, gf)
    out = re_ranking(q_g, q_q, g_g, k1=3, k2=2, lambda_value=1.0)
    row_max = np.maximum(q_q.max(axis=0), q_g.max(axis=1))  # column maxima of the full matrix
    np.testing.assert_allclose(out, q_g / row_max[:, None], rtol=1e-6)
    with pytest.raises(ValueError, match="g_g_dist"):
        re_ranking(q_g, q_q, g_g[:3], k1=3, k2=2)
