"""CM-UNet and its half-width student: checkpoint format, training outputs, options, and
that the SS2D blocks scan through the C++ kernels on CPU."""

import pytest
import torch
from native_calls import count_native_calls, open_scan_branches, record_scan_outputs
from zoo_cases import manifest, state_keys

from effseg.models import CMUNet, CMUNetTiny, count_parameters, create_model
from effseg.models.backbones.rest import DropPath


def test_state_dict_is_the_authors_mambaunet():
    """Keys, shapes and order of CM-UNet's MambaUnet(num_classes=6) (VSSM of mamba_sys.py
    under `mamba_unet`, swsl_resnet18 from timm), recorded from the original: its
    checkpoints load strictly."""
    assert state_keys(CMUNet(6)) == manifest("cmunet")


def test_tiny_is_the_same_network_at_half_width():
    big, tiny = CMUNet(6), CMUNetTiny(6)
    assert list(tiny.state_dict()) == list(big.state_dict())
    assert tiny.mamba_unet.backbone.channels == (32, 64, 128, 256)
    assert tiny.state_dict()["mamba_unet.output.weight"].shape == (6, 32, 1, 1)
    assert count_parameters(tiny) < 0.3 * count_parameters(big)


@pytest.mark.parametrize("name", ["cmunet", "cmunet-tiny"])
def test_training_outputs(name):
    m = create_model(name, 5, depths=(1, 1, 1, 1)).train()
    out = m(torch.randn(2, 3, 64, 96))
    assert isinstance(out, tuple) and len(out) == 4
    # logits, then the original's aux list [h2, h3, h4]: strides 4, 4 and 8, not resized.
    assert [tuple(o.shape) for o in out] == [(2, 5, 64, 96), (2, 5, 16, 24), (2, 5, 16, 24),
                                             (2, 5, 8, 12)]
    m.eval()
    with torch.no_grad():
        y = m(torch.randn(1, 3, 64, 96))
    assert isinstance(y, torch.Tensor) and y.shape == (1, 5, 64, 96)


def test_options():
    m = CMUNet(6, depths=(1, 2, 1, 3), d_state=4, drop_path_rate=0.3, attn_drop_rate=0.1)
    core = m.mamba_unet
    assert [len(core.layers_up[0][0].blocks)] + [len(core.layers_up[i].blocks)
                                                 for i in (1, 2, 3)] == [3, 1, 2, 1]
    ss2d = core.layers_up[1].blocks[0].self_attention
    assert ss2d.A_logs.shape == (4 * ss2d.d_inner, 4)
    assert isinstance(ss2d.dropout, torch.nn.Dropout) and ss2d.dropout.p == 0.1
    # Stochastic depth rises linearly from the shallowest stage to the deepest.
    rates = [d.p for d in m.modules() if isinstance(d, DropPath)]
    stage_order = [b.drop_path.p for i in (3, 2, 1) for b in core.layers_up[i].blocks]
    stage_order += [b.drop_path.p for b in core.layers_up[0][0].blocks]
    assert sorted(rates) == stage_order
    assert stage_order[0] == 0.0 and stage_order[-1] == pytest.approx(0.3)


def test_bad_options():
    for bad in ({"width": 24}, {"width": 0}, {"depths": (2, 2, 2)}, {"depths": (2, 0, 2, 2)},
                {"d_state": 0}, {"drop_path_rate": 1.0}, {"attn_drop_rate": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            CMUNet(6, **bad)
    with pytest.raises(ValueError, match="backend"):
        CMUNet(6, backend="cuda")
    with pytest.raises(ValueError, match="num_classes"):
        CMUNetTiny(0)


def test_cpu_inference_runs_the_cpp_cross_selective_scan(monkeypatch, require_backend):
    require_backend("cpp")
    fast, ref = (open_scan_branches(create_model("cmunet-tiny", 6, depths=(1, 1, 1, 1),
                                                 backend=b)).eval() for b in ("auto", "ref"))
    inner = [record_scan_outputs(m) for m in (fast, ref)]
    x = torch.randn(1, 3, 64, 96)
    calls = count_native_calls(monkeypatch)
    with torch.no_grad():
        got = fast(x)
    assert calls["cross_selective_scan_fwd"] == 4  # one fused four-direction scan per block
    with torch.no_grad():
        want = ref(x)
    assert calls["cross_selective_scan_fwd"] == 4 and calls["selective_scan_fwd"] == 0
    # Each SS2D block's own output (the scan is most of its signal), then the logits.
    assert len(inner[0]) == len(inner[1]) == 4
    for a, b in zip(*inner):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


def test_cpu_training_runs_the_cpp_backward(monkeypatch, require_backend):
    require_backend("cpp")
    m = create_model("cmunet-tiny", 6, depths=(1, 1, 1, 1)).train()
    calls = count_native_calls(monkeypatch)
    sum(o.square().mean() for o in m(torch.randn(2, 3, 64, 64))).backward()
    assert calls["selective_scan_fwd"] == 4 and calls["selective_scan_bwd"] == 4
