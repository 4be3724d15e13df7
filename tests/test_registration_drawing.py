"""What registration did, drawn (signal_core/viz/registration.py, the demo's "registration" view): NIR / TIR
edges over RGB line up after registration and not before, the displacement's arrow is as long as the
displacement, and LAM's arrows are drawn at their true length (x1) for a model with registration."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from signal_core import SignalConfig, build_model
from signal_core.viz import lam_arrow_scale, overlay_size, registration_panels
from signal_core.viz.heatmaps import PANEL_GAP
from signal_core.viz.overlays import auto_offset_scale
from signal_core.viz.registration import (
    DISPLACEMENT_COLOUR,
    displacement_arrow,
    edge_overlay,
    registered_image,
)

SIZE = (128, 64)  # model input (H, W)
SHIFT = (6.0, -4.0)  # (x, y) px of the model input: modality(p + t) = RGB(p)


def scene(size=SIZE, seed: int = 0) -> np.ndarray:
    """[H, W, 3] uint8: bright rectangles on a dark ground (clear edges)."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = np.full((h, w, 3), 30, np.uint8)
    for _ in range(8):
        y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 14))
        out[y:y + int(rng.integers(8, 20)), x:x + int(rng.integers(6, 14))] = rng.integers(90, 255, 3)
    return out


def moved_copy(image: np.ndarray, shift) -> np.ndarray:
    """The image's content moved so that ``out(p + shift) = image(p)`` (integer shift)."""
    dx, dy = int(shift[0]), int(shift[1])
    return np.roll(image, (dy, dx), axis=(0, 1))


def colour_counts(drawing: np.ndarray) -> tuple[int, int]:
    """(pixels where both edge colours meet (near white), pixels of one colour only: green or magenta)."""
    r, g, b = (drawing[..., i].astype(int) for i in range(3))
    both = int(((r > 200) & (g > 200) & (b > 200)).sum())
    one = int((((g > 150) & (r < 100)) | ((r > 150) & (b > 150) & (g < 120))).sum())
    return both, one


def test_edges_line_up_after_registration_and_not_before():
    canvas = overlay_size(SIZE)
    scale = canvas[0] // SIZE[0]
    rgb = np.kron(scene(), np.ones((scale, scale, 1), np.uint8))
    nir = moved_copy(rgb, (SHIFT[0] * scale, SHIFT[1] * scale))
    before, after = edge_overlay(rgb, nir), edge_overlay(rgb, registered_image(nir, (SHIFT[0] * scale,
                                                                                      SHIFT[1] * scale)))
    (both_before, one_before), (both_after, one_after) = colour_counts(before), colour_counts(after)
    assert both_after > 5 * max(both_before, 1) and one_after < one_before / 3
    assert np.array_equal(registered_image(nir, (0.0, 0.0)), nir)  # no shift: an exact copy

    panels = registration_panels(rgb, nir, torch.tensor(SHIFT), SIZE, "NIR")
    assert panels.shape == (canvas[0], 2 * canvas[1] + PANEL_GAP, 3)
    right = panels[:, canvas[1] + PANEL_GAP:]
    assert colour_counts(right[:-40])[0] > 5 * max(colour_counts(panels[:-40, :canvas[1]])[0], 1)


@pytest.mark.parametrize("shift", [(30.0, -20.0), (-12.0, 25.0)])
def test_the_displacement_arrow_is_as_long_as_the_displacement(shift):
    image = np.zeros((200, 100, 3), np.uint8)
    drawn = displacement_arrow(image, shift)
    ys, xs = np.nonzero(np.all(drawn == DISPLACEMENT_COLOUR, axis=-1))
    centre = np.array([50.0, 100.0])  # (x, y)
    tip = max(zip(xs, ys), key=lambda p: np.hypot(p[0] - centre[0], p[1] - centre[1]))
    assert np.hypot(tip[0] - centre[0], tip[1] - centre[1]) == pytest.approx(np.hypot(*shift), abs=1.5)
    assert np.sign(tip[0] - centre[0]) == np.sign(shift[0]) and np.sign(tip[1] - centre[1]) == np.sign(shift[1])


def test_lam_arrows_are_drawn_at_their_true_length_with_registration():
    reference = np.array([[0.0, 0.0], [0.5, 0.5]])
    positions = reference + 0.001  # far under a pixel: lengthened without registration
    assert auto_offset_scale(reference, positions, (8, 4), SIZE) > 1
    assert lam_arrow_scale(reference, positions, (8, 4), SIZE, registered=False) == auto_offset_scale(
        reference, positions, (8, 4), SIZE)
    assert lam_arrow_scale(reference, positions, (8, 4), SIZE, registered=True) == 1.0


def test_the_demo_drawings_of_a_registered_model_have_the_registration_view():
    from demo.explain import REGISTRATION_VIEW, VIEWS, draw_explanation, views

    cfg = SignalConfig.preset("tiny", image_size=SIZE, patch_size=16, lam_stride=2)
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    registered = build_model(cfg.replace(registration="orientation")).eval()
    registered.load_state_dict(plain.state_dict())
    rgb = scene()
    nir = moved_copy(rgb, SHIFT)
    images = [rgb, nir, 255 - nir]
    batch = [torch.from_numpy(i).permute(2, 0, 1)[None].float() / 127.5 - 1 for i in images]
    assert views(False) == VIEWS and views(True) == (*VIEWS, REGISTRATION_VIEW)

    explanation = registered.explain(*batch)
    drawings = draw_explanation(images, explanation, registered.cfg.grid_size, SIZE)
    assert drawings.registered and drawings.offset_scales == [1.0, 1.0, 1.0]
    found = drawings.parts[1]["displacement"]
    assert found == pytest.approx(SHIFT, abs=0.5)
    shown = drawings.view(REGISTRATION_VIEW)
    canvas = overlay_size(SIZE)
    assert [s.shape[1] for s in shown] == [canvas[1], 2 * canvas[1] + PANEL_GAP, 2 * canvas[1] + PANEL_GAP]

    plain_explanation = plain.explain(*batch)
    unregistered = draw_explanation(images, plain_explanation, plain.cfg.grid_size, SIZE)
    assert not unregistered.registered and unregistered.view(REGISTRATION_VIEW) is unregistered.kept
