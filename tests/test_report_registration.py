"""The report's registration figure (registration.png): drawn only for a model with image-level registration,
with the displacements it found, on the bundled demo model and rigs shifted by up to 8 px."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from signal_core import load_checkpoint, with_registration
from signal_core.data import load_dataset
from signal_core.viz.heatmaps import PANEL_GAP
from signal_core.viz.overlays import overlay_size
from train.report import write_report
from train.report.figures import explain_records, write_registration
from train.synthetic import SyntheticSpec, generate

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "demo_model.safetensors"
SPEC = SyntheticSpec(train_ids=1, test_ids=3, cameras=2, per_camera=1, rig_shift=8.0, misalign=0.0)
DPI, PANEL_WIDTH = 110, 1.9  # plots.save_figure's, write_registration's


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """Six test triples from two camera rigs whose NIR / TIR are shifted by up to 8 px, and the demo model."""
    root = tmp_path_factory.mktemp("report_registration") / "data"
    generate(SPEC, root, progress=False)
    frames = json.loads((root / "synthetic.json").read_text())["frames"]
    return load_dataset("rgbnt201", root), frames, load_checkpoint(WEIGHTS)


def _true_shift(frames: dict, record, modality: str) -> np.ndarray:
    """(x, y) px the generator moved ``modality`` by (at the model's 128 x 64 input: the images' own size)."""
    return np.array(frames[f"test/{Path(record.paths[0]).name}"][f"{modality}_shift"])


def test_registration_figure_states_the_displacements_the_rigs_have(shifted, tmp_path):
    dataset, frames, model = shifted
    model = with_registration(model, "orientation")
    records = [next(r for r in dataset.query if r.camid == cam) for cam in range(SPEC.cameras)]
    fig = write_registration(model, records, explain_records(model, records, "cpu"), tmp_path)
    assert fig.file == "registration.png" and "(orientation)" in fig.title
    found = dict(re.findall(r"(NIR|TIR) (\d+\.\d+) px", fig.caption.split("model input:")[1]))
    assert set(found) == {"NIR", "TIR"} and "true length (x1)" in fig.caption
    for label in ("NIR", "TIR"):
        true = np.mean([np.linalg.norm(_true_shift(frames, r, label.lower())) for r in records])
        assert true > 4 and float(found[label]) == pytest.approx(true, abs=0.5), label
    h, w = overlay_size(tuple(model.cfg.image_size))  # columns: RGB | NIR before, after | TIR before, after
    width = PANEL_WIDTH * (1 + 2 * (2 * w + PANEL_GAP) / w) + 0.6
    height = PANEL_WIDTH * len(records) * h / w + 0.7
    with Image.open(tmp_path / "registration.png") as png:
        assert png.format == "PNG"
        assert png.width == pytest.approx(width * DPI, abs=1) and png.height == pytest.approx(height * DPI, abs=1)


@pytest.mark.slow
@pytest.mark.parametrize("registration", ["none", "orientation"])
def test_report_shows_registration_only_when_the_model_registers(shifted, tmp_path, registration):
    dataset, _, model = shifted
    model = with_registration(model, registration)
    report = write_report(model, dataset, tmp_path, batch_size=8, num_ranklists=1, num_tsne_ids=2, num_explained=2,
                          progress=False)
    images = re.findall(r'<img src="([^"]+)"', (tmp_path / "index.html").read_text())
    registered = registration != "none"
    assert ("registration.png" in images) == registered == (tmp_path / "registration.png").is_file()
    assert ("registration" in report.timings) == registered and "lam.png" in images
    if registered:
        assert images.index("registration.png") == images.index("lam.png") + 1  # beside Fig. 9
        assert tmp_path / "registration.png" in report.files
        page = (tmp_path / "index.html").read_text()
        assert re.search(r"Mean \|displacement\| found over the 2 triples.*: NIR \d+\.\d\d px, TIR \d+\.\d\d px", page)
