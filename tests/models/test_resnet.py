"""The ResNet encoders: torchvision/timm parameter names, counts, feature strides."""
from __future__ import annotations

import pytest
import torch

from effseg.models import count_parameters
from effseg.models.backbones import ResNet, resnet18, resnet50


def test_counts_and_names():
    # Published sizes: ResNet-18 11,689,512 and ResNet-50 25,557,032 with the 1000-way fc.
    assert count_parameters(resnet18(num_classes=1000)) == 11_689_512
    assert count_parameters(resnet50(num_classes=1000)) == 25_557_032
    keys = set(resnet18().state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.weight"} <= keys
    assert not any(k.startswith("fc.") for k in keys)


@pytest.mark.parametrize("make,chans", [(resnet18, (64, 128, 256, 512)),
                                        (resnet50, (256, 512, 1024, 2048))])
def test_features(make, chans):
    m = make(in_channels=5, out_indices=(0, 1, 2, 3, 4)).eval()
    feats = m(torch.randn(2, 5, 96, 64))
    assert [f.shape[1] for f in feats] == [64, *chans]
    assert [tuple(f.shape[-2:]) for f in feats] == [(48, 32), (24, 16), (12, 8), (6, 4), (3, 2)]
    assert m.channels == (64, *chans)


def test_bad_options():
    with pytest.raises(ValueError, match="depth"):
        ResNet(depth=20)
    with pytest.raises(ValueError, match="out_indices"):
        ResNet(out_indices=(1, 5))
