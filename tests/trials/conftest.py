import pytest
import torch
from torch import nn


def _tiny_cnn(in_chans: int = 1, num_classes: int = 10) -> nn.Module:
    """A few-thousand-parameter CNN that trains in seconds on CPU."""
    return nn.Sequential(
        nn.Conv2d(in_chans, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
    )


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_cnn():
    """Factory fixture: tiny_cnn(in_chans=1, num_classes=10) -> a small fresh CNN."""
    return _tiny_cnn
