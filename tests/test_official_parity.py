"""The authors' checkpoints: key conversion, and features equal to their code's.

The expected features in tests/fixtures/official_features_*.safetensors were produced by running
the authors' code (github.com/010129/Signal @18a162d, fp32, CPU) on the seeded state dict and
inputs that tests/official_format.py rebuilds here; their code is not imported by the tests.
"""
import pytest
import torch
from safetensors.torch import load_file

from signal_core import CheckpointError, SignalConfig, load_official_checkpoint
from signal_core.checkpoint import official_key_to_ours
from tests.official_format import FIXTURES, official_keys, official_state, seeded_inputs

CASES = [("concat", "rgbnt201", 171, 4), ("per_modality", "rgbnt100", 50, 8)]


@pytest.mark.parametrize("layout", ["concat", "per_modality"])
def test_every_official_key_maps_to_a_distinct_parameter(layout):
    keys = official_keys(layout)
    ours = [official_key_to_ours(k) for k in keys]
    assert len(set(ours)) == len(ours)
    cfg = SignalConfig.preset("rgbnt201" if layout == "concat" else "rgbnt100", num_classes=10, num_cameras=3)
    with torch.device("meta"):
        from signal_core.model.signal_model import SignalModel

        model_keys = set(SignalModel(cfg).state_dict())
    assert set(ours) == model_keys


@pytest.mark.slow
@pytest.mark.parametrize("layout,preset,classes,cams", CASES)
def test_features_match_the_authors_code(layout, preset, classes, cams):
    model = load_official_checkpoint(official_state(layout, seed=0), SignalConfig.preset(preset))
    assert (model.cfg.head_layout, model.cfg.num_classes, model.cfg.num_cameras) == (layout, classes, cams)
    inputs = seeded_inputs(model.cfg.image_size, batch=2, num_cameras=cams, seed=0)
    feats = model.extract_features(inputs["rgb"], inputs["nir"], inputs["tir"], inputs["cam"])
    expected = load_file(str(FIXTURES / f"official_features_{layout}.safetensors"))["feature"]
    assert feats.shape == (2, 3072)
    assert (feats - expected).abs().max().item() <= 1e-4


def test_missing_key_is_a_clear_error():
    state = official_state("concat", seed=1)
    del state["SIM.modal_interactive.norm1.weight"]
    with pytest.raises(CheckpointError, match="sim.interaction.norm1.weight"):
        load_official_checkpoint(state, SignalConfig.preset("rgbnt201"))


def test_unknown_key_is_a_clear_error():
    state = official_state("concat", seed=1)
    state["prompt_learner.ctx"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="prompt_learner.ctx"):
        load_official_checkpoint(state, SignalConfig.preset("rgbnt201"))


def test_conflicting_config_and_wrong_geometry_are_clear_errors():
    state = official_state("concat", seed=1)
    with pytest.raises(CheckpointError, match="num_classes"):
        load_official_checkpoint(state, SignalConfig.preset("rgbnt201", num_classes=5))
    with pytest.raises(CheckpointError, match="positional embedding"):
        load_official_checkpoint(state, SignalConfig.preset("rgbnt201", image_size=(256, 256)))
    with pytest.raises(CheckpointError, match="no place in the model"):
        load_official_checkpoint(state, SignalConfig.preset("rgbnt201", use_lam=False))


def test_reads_a_module_prefixed_file(tmp_path):
    state = {f"module.{k}": v for k, v in official_state("concat", seed=1).items()}
    path = tmp_path / "Signal_model.pth"
    torch.save(state, path)
    model = load_official_checkpoint(path, SignalConfig.preset("rgbnt201"))
    assert torch.equal(model.gam.tau.detach(), torch.tensor(0.07))
    assert not model.training


def test_load_weights_takes_either_kind_of_file(tmp_path, tiny_cfg):
    from signal_core import build_model, load_weights, save_checkpoint

    pth = tmp_path / "Signal_model.pth"
    torch.save(official_state("concat", seed=0), pth)
    ours = load_weights(pth, SignalConfig.preset("rgbnt201"))
    ref = load_official_checkpoint(pth, SignalConfig.preset("rgbnt201"))
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in ours.state_dict().items())
    with pytest.raises(CheckpointError, match="preset config"):
        load_weights(pth)
    save_checkpoint(build_model(tiny_cfg), tmp_path / "tiny.safetensors")
    assert load_weights(tmp_path / "tiny.safetensors").cfg == tiny_cfg
