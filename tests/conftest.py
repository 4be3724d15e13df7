import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_cfg():
    from signal_core import SignalConfig

    return SignalConfig.preset("tiny", num_classes=6, num_cameras=3)
