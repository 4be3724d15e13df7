"""LAM offset tracking (train/offsets.py): the fit on hand-made numbers, the true shifts from synthetic.json,
and the measurement on a tiny model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from signal_core import SignalConfig, build_model
from signal_core.data import load_dataset
from train.offsets import fit, lam_tracking, predicted_offsets, tracking_summary, true_shifts
from train.synthetic import SyntheticSpec, generate


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    spec = SyntheticSpec.preset("alignment", train_ids=2, test_ids=2, cameras=2, per_camera=2)
    generate(spec, root, progress=False)
    return root


def test_fit_ignores_a_bias_per_axis_and_finds_the_slope():
    true = np.array([[1.0, -2.0], [2.0, 0.0], [3.0, 2.0], [4.0, 4.0]])
    res = fit(2.0 * true + np.array([5.0, -7.0]), true)
    assert res["r"] == pytest.approx(1.0) and res["slope"] == pytest.approx(2.0) and res["n"] == 4
    assert res["r_x"] == pytest.approx(1.0) and res["r_y"] == pytest.approx(1.0)
    per_axis = fit(true * np.array([0.5, 3.0]), true)
    assert per_axis["slope_x"] == pytest.approx(0.5) and per_axis["slope_y"] == pytest.approx(3.0)
    # a constant offset per axis is no tracking, even if the axes' means differ
    assert math.isnan(fit(np.tile([[3.0, -3.0]], (4, 1)), true)["r"])
    assert fit(-true, true)["r"] == pytest.approx(-1.0)


def test_true_shifts_come_from_synthetic_json(bench, tmp_path):
    ds = load_dataset("rgbnt201", bench)
    shifts = true_shifts(bench, ds.query)
    assert shifts.shape == (8, 3, 2) and np.all(shifts[:, 0] == 0) and np.abs(shifts[:, 1:]).max() > 1
    with pytest.raises(ValueError, match="synthetic.json"):
        true_shifts(tmp_path, ds.query)


def test_zero_offsets_are_measured_as_zero_and_perfect_tracking_as_r_one(bench):
    ds = load_dataset("rgbnt201", bench)
    torch.manual_seed(0)
    model = build_model(SignalConfig.preset("tiny", reference_points="centred", offset_channels=2))
    for sampler in model.lam.samplers:
        torch.nn.init.zeros_(sampler.offset_net[-1].weight)
    pred = predicted_offsets(model, ds.query)
    assert pred.shape == (8, 3, 2) and np.abs(pred).max() < 1e-5
    summary = tracking_summary(pred, true_shifts(bench, ds.query))
    assert summary["nir"]["mean_offset_px"] == 0 and math.isnan(summary["nir"]["relative"]["r"])
    true = true_shifts(bench, ds.query)
    perfect = tracking_summary(true + 0.5, true)  # every modality samples exactly where its content went
    assert perfect["tir"]["relative"]["r"] == pytest.approx(1.0)
    assert perfect["tir"]["relative"]["slope"] == pytest.approx(1.0)


def test_report_tracking_only_with_lam_and_a_generated_benchmark(bench, tmp_path):
    ds = load_dataset("rgbnt201", bench)
    torch.manual_seed(0)
    model = build_model(SignalConfig.preset("tiny"))
    tracking = lam_tracking(model, ds, bench, untrained_seed=0)
    assert set(tracking) == {"model", "untrained"}
    assert tracking["model"]["nir"]["relative"] == tracking["untrained"]["nir"]["relative"]  # same seed, same init
    assert lam_tracking(build_model(SignalConfig.preset("tiny", use_lam=False)), ds, bench) is None
