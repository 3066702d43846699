"""PyramidMamba (GeoSeg's EfficientPyramidMamba): checkpoint format, outputs, options,
and that its Mamba block scans through the C++ kernel on CPU."""

import pytest
import torch
from native_calls import count_native_calls, open_scan_branches, record_scan_outputs
from zoo_cases import manifest, state_keys

from effseg.models import PyramidMamba, create_model
from effseg.models.pyramidmamba import pool_scales


def test_state_dict_is_geoseg_efficientpyramidmamba():
    """Keys, shapes and order of GeoSeg's EfficientPyramidMamba(num_classes=6)
    (swsl_resnet18 from timm, features_only, out_indices (1, 4)), recorded from the
    original: a GeoSeg checkpoint loads strictly."""
    assert state_keys(PyramidMamba(6)) == manifest("pyramidmamba")


def test_pool_scales_follow_last_feat_size():
    assert pool_scales(16) == [1, 5, 9, 13]
    assert pool_scales(8) == [1, 3, 5, 7]
    assert pool_scales(32) == [1, 9, 17, 25]
    assert pool_scales(4) == [1, 2, 3]
    m = PyramidMamba(6, last_feat_size=4)
    assert m.decoder.b3.mamba.mamba.d_model == 512 + 3 * 128
    assert [p[0].output_size for p in m.decoder.b3.mamba.pool_layers[1:]] == [2, 3]


def test_training_returns_logits_only():
    m = create_model("pyramidmamba", 3, decoder_channels=32).train()
    y = m(torch.randn(2, 3, 64, 96))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 3, 64, 96)


@pytest.mark.parametrize("opts,d_model", [({"backbone": "resnet34"}, 512 + 4 * 128),
                                          ({"decoder_channels": 32}, 512 + 4 * 32)])
def test_options(opts, d_model):
    m = PyramidMamba(5, **opts).eval()
    assert m.decoder.b3.mamba.mamba.d_model == d_model
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)


def test_backbone_depth():
    assert sum(k.startswith("backbone.layer3.5.") for k in
               PyramidMamba(6, backbone="resnet34").state_dict())
    assert not any(k.startswith("backbone.layer3.2.") for k in PyramidMamba(6).state_dict())


def test_bad_options():
    with pytest.raises(ValueError, match="backbone"):
        PyramidMamba(6, backbone="swin_base")
    with pytest.raises(ValueError, match="last_feat_size"):
        PyramidMamba(6, last_feat_size=3)
    with pytest.raises(ValueError, match="decoder_channels"):
        PyramidMamba(6, decoder_channels=1)
    with pytest.raises(ValueError, match="backend"):
        PyramidMamba(6, backend="cuda")
    with pytest.raises(ValueError, match="num_classes"):
        PyramidMamba(0)


def test_cpu_inference_runs_the_cpp_scan(monkeypatch, require_backend):
    require_backend("cpp")
    fast, ref = (open_scan_branches(create_model("pyramidmamba", 6, decoder_channels=32,
                                                 backend=b)).eval() for b in ("auto", "ref"))
    inner = [record_scan_outputs(m) for m in (fast, ref)]
    x = torch.randn(1, 3, 96, 64)
    calls = count_native_calls(monkeypatch)
    with torch.no_grad():
        got = fast(x)
    assert calls["selective_scan_fwd"] == 1
    with torch.no_grad():
        want = ref(x)
    assert calls["selective_scan_fwd"] == 1  # the reference never enters the kernel
    # The Mamba block's own output, where the scan is most of the signal, then the logits.
    (a,), (b,) = inner
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


def test_cpu_training_runs_the_cpp_backward(monkeypatch, require_backend):
    require_backend("cpp")
    m = create_model("pyramidmamba", 6, decoder_channels=32).train()
    calls = count_native_calls(monkeypatch)
    m(torch.randn(2, 3, 64, 64)).square().mean().backward()
    assert calls["selective_scan_fwd"] == 1 and calls["selective_scan_bwd"] == 1
    assert m.decoder.b3.mamba.mamba.A_log.grad is not None
