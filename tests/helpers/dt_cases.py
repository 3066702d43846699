"""Masks and the scipy definition shared by the distance-transform tests."""
from __future__ import annotations

import numpy as np
import torch


def random_mask(shape, p_fg=0.7, seed=0) -> torch.Tensor:
    """Independent pixels, foreground with probability p_fg."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < p_fg


def blob_mask(shape, cell=8, thr=0.3, seed=0) -> torch.Tensor:
    """Smoothed random field thresholded: blobs about `cell` pixels across, with
    background runs and foreground runs of many lengths."""
    *lead, H, W = shape
    n = int(np.prod(lead)) if lead else 1
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, H // cell + 2, W // cell + 2, generator=g)
    x = torch.nn.functional.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
    return (x[:, 0] > thr).reshape(shape)


def scipy_edt(mask: torch.Tensor, spacing=(1.0, 1.0)) -> np.ndarray:
    """scipy.ndimage.distance_transform_edt per image of (..., H, W), float64; images
    without zeros get +inf (the op's convention, not scipy's)."""
    from scipy.ndimage import distance_transform_edt

    m = (mask != 0).numpy()
    H, W = m.shape[-2:]
    flat = m.reshape(-1, H, W)
    out = np.empty(flat.shape, dtype=np.float64)
    for i, img in enumerate(flat):
        out[i] = distance_transform_edt(img, sampling=spacing) if (~img).any() else np.inf
    return out.reshape(m.shape)


def assert_edt_close(out: torch.Tensor, expected: np.ndarray, rtol=1e-5, what=""):
    """Equal infinities, and finite values within rtol relative (plus a float32 ulp at 0)."""
    o = out.detach().cpu().double().numpy()
    assert o.shape == expected.shape, f"{what}: shape {o.shape} != {expected.shape}"
    assert out.dtype == torch.float32, f"{what}: dtype {out.dtype}"
    inf_o, inf_e = np.isinf(o), np.isinf(expected)
    assert (inf_o == inf_e).all(), f"{what}: +inf at {np.argwhere(inf_o != inf_e)[:5].tolist()}"
    fin = ~inf_e
    if fin.any():
        err = np.abs(o[fin] - expected[fin]) / np.maximum(np.abs(expected[fin]), 1.0)
        worst = int(err.argmax())
        assert err.max() <= rtol, (f"{what}: relative error {err.max():.3g} > {rtol} "
                                   f"(got {o[fin][worst]}, expected {expected[fin][worst]})")
