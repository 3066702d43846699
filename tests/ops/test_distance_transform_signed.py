"""signed_distance against Kervadec et al.'s scipy-based one_hot2dist."""
import numpy as np
import pytest
import torch

from effseg.ops import signed_distance


def kervadec_signed(onehot: torch.Tensor, spacing=(1.0, 1.0)) -> np.ndarray:
    """The boundary-loss paper's construction, written out with scipy per (b, k): an
    absent class stays 0 (as in their code); a class covering the image also gets 0
    here (the op's documented choice; scipy has no zero pixel to measure to)."""
    from scipy.ndimage import distance_transform_edt as edt

    seg = (onehot != 0).numpy()
    out = np.zeros(seg.shape, dtype=np.float64)
    for b in range(seg.shape[0]):
        for k in range(seg.shape[1]):
            pos = seg[b, k]
            if pos.any() and not pos.all():
                neg = ~pos
                out[b, k] = edt(neg, sampling=spacing) * neg - (edt(pos, sampling=spacing) - 1) * pos
    return out


def labels_onehot(B, K, H, W, seed=0, absent=(), full_image=None):
    """One-hot of argmax over K smoothed random fields: K blobby classes."""
    fields = torch.stack([_field(B, H, W, seed + k) for k in range(K)], 1)
    for k in absent:
        fields[:, k] = -1e9
    lab = fields.argmax(1)
    if full_image is not None:
        lab[full_image] = 0
    return torch.nn.functional.one_hot(lab, K).permute(0, 3, 1, 2)


def _field(B, H, W, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 1, H // 6 + 2, W // 6 + 2, generator=g)
    return torch.nn.functional.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)[:, 0]


def _close(out, expected, rtol=1e-5):
    o = out.double().cpu().numpy()
    assert out.dtype == torch.float32 and o.shape == expected.shape
    assert np.isfinite(o).all(), "signed_distance returned inf or NaN"
    err = np.abs(o - expected) / np.maximum(np.abs(expected), 1.0)
    assert err.max() <= rtol, f"relative error {err.max():.3g}"


@pytest.mark.parametrize("backend", ["cpp", "ref", "triton"])
def test_matches_kervadec(require_backend, backend):
    require_backend(backend)
    small = backend != "cpp"
    B, K, H, W = (2, 3, 14, 17) if small else (3, 5, 61, 47)
    oh = labels_onehot(B, K, H, W, seed=1, absent=(K - 1,), full_image=1)
    dev = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    out = signed_distance(oh.to(dev), backend=backend)
    _close(out, kervadec_signed(oh))


@pytest.mark.parametrize("spacing", [(0.5, 2.0), 3.0])
def test_spacing(require_backend, spacing):
    require_backend("cpp")
    oh = labels_onehot(2, 3, 33, 29, seed=2)
    sp = spacing if isinstance(spacing, tuple) else (spacing, spacing)
    _close(signed_distance(oh, spacing=spacing), kervadec_signed(oh, sp))


def _four_neighbours_all(m: torch.Tensor, fill: bool) -> torch.Tensor:
    p = torch.nn.functional.pad(m, (1, 1, 1, 1), value=fill)
    return p[..., 1:-1, :-2] & p[..., 1:-1, 2:] & p[..., :-2, 1:-1] & p[..., 2:, 1:-1]


def test_sign_and_boundary_values(require_backend):
    require_backend("cpp")
    inside = labels_onehot(2, 4, 40, 36, seed=3).bool()
    phi = signed_distance(inside)
    # Unit spacing: a class pixel with a non-class 4-neighbour has d_in = 1, phi = 0;
    # deeper ones d_in >= sqrt(2), phi < 0. Outside pixels 4-adjacent to the class: 1.
    # (The image border is not a boundary: pad with "inside" / "outside".)
    deep = inside & _four_neighbours_all(inside, True)
    assert (phi[inside & ~deep] == 0).all() and (phi[deep] < 0).all()
    far = ~inside & _four_neighbours_all(~inside, True)
    assert (phi[~inside & ~far] == 1).all() and (phi[far] > 1).all()


def test_empty_and_full_classes_are_zero(require_backend):
    require_backend("cpp")
    oh = torch.zeros(2, 3, 8, 9, dtype=torch.bool)
    oh[0, 0] = True            # image 0: class 0 everywhere, classes 1 and 2 absent
    oh[1, 1, :4] = True        # image 1: classes 1 and 2 split the image, class 0 absent
    oh[1, 2, 4:] = True
    phi = signed_distance(oh)
    assert torch.isfinite(phi).all()
    assert (phi[0] == 0).all() and (phi[1, 0] == 0).all()
    assert (phi[1, 1] != 0).any() and (phi[1, 2] != 0).any()


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float64])
def test_onehot_dtypes(require_backend, dtype):
    require_backend("cpp")
    oh = labels_onehot(1, 3, 20, 22, seed=4)
    assert torch.equal(signed_distance(oh.to(dtype)), signed_distance(oh.bool()))


def test_one_transform_call_for_all_maps(require_backend, monkeypatch):
    require_backend("cpp")
    import sys

    mod = sys.modules["effseg.ops.distance_transform"]  # the name is the function

    calls = []
    real = mod.distance_transform

    def spy(mask, **kw):
        calls.append(tuple(mask.shape))
        return real(mask, **kw)

    monkeypatch.setattr(mod, "distance_transform", spy)
    signed_distance(labels_onehot(2, 3, 10, 12, seed=5))
    assert calls == [(2, 2, 3, 10, 12)]


@pytest.mark.parametrize("bad,exc,needle", [
    (torch.rand(1, 2, 5, 5), ValueError, "onehot must hold only 0 and 1"),
    (torch.zeros(2, 5, 5, dtype=torch.bool), ValueError, r"onehot must be \(B, K, H, W\)"),
    (torch.zeros(1, 2, 2, 5, 5, dtype=torch.bool), ValueError, r"onehot must be \(B, K, H, W\)"),
    (torch.zeros(1, 2, 5, 5, dtype=torch.complex64), TypeError, "onehot must be bool, integer"),
    (np.zeros((1, 2, 5, 5)), TypeError, "onehot must be a torch.Tensor"),
])
def test_bad_onehot(bad, exc, needle):
    with pytest.raises(exc, match=needle):
        signed_distance(bad)
