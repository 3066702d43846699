"""ThinResNet18: ResNet-18's names and layout at a reduced width."""
import pytest
import torch

from effseg.models import count_parameters
from effseg.models.backbones import resnet18
from effseg.models.backbones.resnet_thin import ThinResNet18


def test_width_64_is_resnet18():
    thin = {k: v.shape for k, v in ThinResNet18(64).state_dict().items()}
    assert thin == {k: v.shape for k, v in resnet18().state_dict().items()}


def test_half_width_features():
    m = ThinResNet18(32, in_channels=4, out_indices=(0, 1, 2, 3, 4)).eval()
    feats = m(torch.randn(1, 4, 64, 96))
    assert [f.shape[1] for f in feats] == [32, 32, 64, 128, 256]
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
    assert m.channels == (32, 32, 64, 128, 256)
    # Convolutions scale with width squared: about a quarter of ResNet-18's 11.2 M.
    assert 2.7e6 < count_parameters(m) < 2.9e6


def test_bad_options():
    with pytest.raises(ValueError, match="width"):
        ThinResNet18(0)
    with pytest.raises(ValueError, match="out_indices"):
        ThinResNet18(32, out_indices=())
