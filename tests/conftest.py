import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_cfg():
    from signal_core import SignalConfig

    return SignalConfig.preset("tiny", num_classes=6, num_cameras=3)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny random checkpoint and a triples folder (the demo tests)."""
    from tests.demo_helpers import make_checkpoint, make_triples_folder

    root = tmp_path_factory.mktemp("demo_assets")
    return make_checkpoint(root / "model.safetensors"), make_triples_folder(root / "gallery")


@pytest.fixture(scope="module")
def engine(assets, tmp_path_factory):
    """A demo SearchEngine over ``assets``."""
    from demo.feature_cache import FeatureCache
    from demo.gallery import load_gallery
    from demo.search import SearchEngine
    from demo.startup import load_model

    weights, gallery_dir = assets
    model, _ = load_model(weights, None, torch.device("cpu"))
    return SearchEngine.from_gallery(model, load_gallery(gallery_dir), "cpu", weights=weights,
                                     cache=FeatureCache(tmp_path_factory.mktemp("cache")), progress=False)
