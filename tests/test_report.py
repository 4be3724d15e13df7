"""The evaluation report (train/report) and the shared drawing module (signal_core/viz)."""
from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from signal_core import SignalConfig, build_model, save_checkpoint, with_registration
from signal_core.data import load_dataset
from signal_core.retrieval.split_features import extract_dataset_features
from signal_core.viz import (
    ARROW_COLOUR,
    BOTH_COLOUR,
    INTER_COLOUR,
    INTRA_COLOUR,
    REFERENCE_COLOUR,
    RankedTriple,
    auto_offset_scale,
    explanation_overlay,
    overlay_size,
    ranklist_image,
    sampling_overlay,
    selection_overlay,
)
from signal_core.viz.overlays import TINT_ALPHA
from signal_core.viz.ranklist import BORDER, MATCH_COLOUR, MISMATCH_COLOUR
from train import protocol
from train.report import SETTINGS, write_report
from train.report.__main__ import main as report_main
from train.report.features import extract_all_settings
from train.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(train_ids=3, test_ids=6, cameras=3, per_camera=2, height=64, width=32)
GRID = (8, 4)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny synthetic benchmark in the RGBNT201 layout and a tiny random model of its input size."""
    tmp = tmp_path_factory.mktemp("report")
    generate(SPEC, tmp / "data", progress=False)
    torch.manual_seed(0)
    model = build_model(SignalConfig.preset("tiny", num_cameras=SPEC.cameras)).eval()
    return tmp, load_dataset("rgbnt201", tmp / "data"), model


@pytest.fixture(scope="module")
def report(setup):
    tmp, dataset, model = setup
    history = tmp / "history.jsonl"
    history.write_text(json.dumps({"epoch": 1, "loss": 3.0, "id_fused": 2.0, "lr": 1e-3}) + "\n"
                       + json.dumps({"epoch": 2, "loss": 2.0, "id_fused": 1.5, "lr": 1e-3, "test": {"mAP": 40.0}})
                       + "\n{not json\n")
    out = tmp / "report"
    return out, write_report(model, dataset, out, batch_size=8, history=history, num_ranklists=3,
                             num_tsne_ids=4, num_explained=2, progress=False)


@pytest.mark.slow
def test_report_writes_the_page_and_every_figure(report):
    out, result = report
    page = (out / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    expected = {"cmc.png", "ranklist_01.png", "ranklist_02.png", "ranklist_03.png", "tsne.png", "similarity.png",
                "selection.png", "lam.png", "training.png"}
    assert set(images) == expected
    for name in images:
        assert "/" not in name  # relative, beside the page: readable offline
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 100 and im.height > 100
    assert {p.name for p in result.files} == expected | {"index.html", "metrics.json"}
    assert "Missing modalities" in page and "M(RGB+NIR)" in page and "1 unreadable lines skipped" in page


@pytest.mark.slow
def test_metrics_cover_every_setting_and_the_full_one_equals_a_plain_evaluation(setup, report):
    _, dataset, model = setup
    out, result = report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert set(metrics["missing"]) == {"none", "rgb", "nir", "tir", "rgb+nir", "rgb+tir", "nir+tir"}
    for values in metrics["missing"].values():
        assert set(values) == {"mAP", "mINP", "R1", "R5", "R10"}
        assert all(0.0 <= v <= 100.0 for v in values.values())
    plain = protocol.evaluate_model(model, dataset, torch.device("cpu"), batch_size=8, num_workers=0,
                           progress=False).as_percent_dict()
    assert metrics["missing"]["none"] == plain  # exactly, not approximately
    assert {k: metrics[k] for k in plain} == plain
    sim = metrics["similarity"]
    assert 0.0 <= sim["overlap"] <= 1.0 and sim["num_positive"] > 0 and sim["num_negative"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("registration", ["none", "orientation"])
def test_every_setting_equals_extracting_with_those_modalities_zeroed(setup, registration):
    """Also with image-level registration (NIR / TIR registered to the RGB each setting keeps), through the
    shared encoding: its check against extract_features does not fall back (that warns, here an error)."""
    _, dataset, model = setup
    model = with_registration(model, registration)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feats = extract_all_settings(model, dataset.query, torch.device("cpu"), batch_size=8, num_workers=0,
                                     progress=False)
    assert set(feats) == set(SETTINGS)
    for name, letters in SETTINGS.items():
        loader = protocol.test_loader(dataset.query, model.cfg.image_size, 8, 0)
        ref = extract_dataset_features(model, loader, "cpu", missing=letters, progress=False)
        if letters is None:
            assert torch.equal(feats[name].feats, ref.feats)
        else:  # the zero images are encoded in a batch of their own: equal up to float rounding
            torch.testing.assert_close(feats[name].feats, ref.feats, rtol=1e-4, atol=1e-5)
        assert torch.equal(feats[name].pids, ref.pids) and torch.equal(feats[name].camids, ref.camids)
    assert not torch.allclose(feats["none"].feats, feats["rgb"].feats)


@pytest.mark.slow
def test_cli_writes_a_report_and_rejects_a_bad_folder(setup, tmp_path, capsys):
    tmp, _, model = setup
    weights = tmp_path / "run" / "epoch_001.safetensors"
    save_checkpoint(model, weights)
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {preset: tiny}\ntrain: {dataset: rgbnt201, eval_batch_size: 8, num_workers: 0}\n")
    common = ["--config", str(config), "--weights", str(weights), "--no-progress"]
    assert report_main(common + ["--data-root", str(tmp / "data"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").is_file() and "nir+tir" in capsys.readouterr().out
    cost = json.loads((tmp_path / "r" / "metrics.json").read_text())["complexity"]  # measured from the model
    assert cost["total"]["params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert "M learnable parameters" in (tmp_path / "r" / "index.html").read_text()
    assert report_main(common + ["--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _patch_centre(canvas_hw, r, c):
    h, w = canvas_hw
    return (2 * r + 1) * h // (2 * GRID[0]), (2 * c + 1) * w // (2 * GRID[1])


def test_selection_overlay_tints_kept_patches_and_blacks_out_removed_ones():
    image = np.full((128, 64, 3), 100, dtype=np.uint8)
    intra, inter = np.zeros(32, bool), np.zeros(32, bool)
    intra[[0, 5]] = True  # (0, 0) intra only, (1, 1) both
    inter[[5, 10]] = True  # (2, 2) inter only
    for removed in ("keep", "dim", "black"):
        out = selection_overlay(image, GRID, intra, inter, removed=removed)
        assert out.shape == image.shape and out.dtype == np.uint8
        for (r, c), colour in (((0, 0), INTRA_COLOUR), ((1, 1), BOTH_COLOUR), ((2, 2), INTER_COLOUR)):
            expected = np.round((1 - TINT_ALPHA) * 100 + TINT_ALPHA * np.array(colour))
            assert np.array_equal(out[_patch_centre(image.shape[:2], r, c)], expected)
        removed_pixel = out[_patch_centre(image.shape[:2], 7, 3)]
        assert np.array_equal(removed_pixel, {"keep": [100] * 3, "dim": [35] * 3, "black": [0] * 3}[removed])
    assert np.array_equal(image, np.full((128, 64, 3), 100))  # input untouched
    final = intra.copy()  # final mask given: only (0, 0) and (1, 1) kept
    final[10] = False
    out = selection_overlay(image, GRID, intra, inter, final, removed="black")
    assert not out[_patch_centre(image.shape[:2], 2, 2)].any()


def test_explanation_overlay_shape_and_missing_modality():
    size = (64, 32)
    canvas = overlay_size(size)
    assert canvas == (384, 192)
    image = np.random.default_rng(0).integers(0, 256, (100, 50, 3), dtype=np.uint8)
    masks = torch.zeros(32, dtype=torch.bool)
    masks[3] = True
    out = explanation_overlay(image, GRID, size, masks, masks, masks, torch.zeros(2, 2), torch.zeros(2, 2),
                              removed="black")
    assert out.shape == (*canvas, 3) and out.dtype == np.uint8
    assert not out[_patch_centre(canvas, 7, 0)].any()
    missing = explanation_overlay(None, GRID, size)
    assert missing.shape == (*canvas, 3) and (missing == 96).mean() > 0.9


def test_sampling_overlay_draws_scaled_arrows_from_the_reference_points():
    image = np.zeros((384, 192, 3), dtype=np.uint8)
    reference = np.array([[0.0, 0.0]])  # the centre of the grid
    positions = np.array([[0.02, 0.0]])  # 0.02 * 1.5 patches * 48 px = 1.44 px to the right: sub-pixel at scale 1
    assert auto_offset_scale(reference, positions, GRID, (384, 192), max_scale=None) == 20.0  # 28.8 px: 3/4 patch
    assert auto_offset_scale(reference, positions, GRID, (384, 192)) == 5.0  # never lengthened more than x5
    assert auto_offset_scale(reference, positions * 10, GRID, (384, 192)) == 2.0  # 14.4 px -> x2 (28.8 px)
    assert auto_offset_scale(reference, reference, GRID, (384, 192)) == 1.0
    out = sampling_overlay(image, GRID, reference, positions, offset_scale=20.0)
    assert out.shape == image.shape
    assert np.array_equal(out[192, 96], REFERENCE_COLOUR)  # the dot at the grid centre
    assert np.array_equal(out[192, 96 + 20], ARROW_COLOUR)  # the arrow along the scaled offset
    assert not out[192, 96 - 20].any() and not out[192 + 20, 96].any()
    unscaled = sampling_overlay(image, GRID, reference, positions)
    assert not np.array_equal(unscaled[192, 96 + 20], ARROW_COLOUR)


def test_ranklist_borders_are_green_for_matches_and_red_otherwise():
    tile = np.full((64, 32, 3), 128, dtype=np.uint8)
    query = RankedTriple([tile] * 3, pid=1, camid=0)
    results = [RankedTriple([tile] * 3, pid=p, camid=1, rank=i + 1, score=0.9 - 0.1 * i, is_match=p == 1)
               for i, p in enumerate([1, 2])]
    out = ranklist_image(query, results, tile_hw=(64, 32), title="query 0")
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[0] > 3 * 64
    row = out[out.shape[0] - 20]  # through the TIR tiles: the columns' left and right borders
    greens = np.flatnonzero((row == MATCH_COLOUR).all(axis=1))
    reds = np.flatnonzero((row == MISMATCH_COLOUR).all(axis=1))
    assert len(greens) == len(reds) == 2 * BORDER and greens.max() < reds.min()  # rank 1 (match) before rank 2
