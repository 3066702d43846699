"""distance_transform against scipy.ndimage.distance_transform_edt, every backend.

Tolerance: exact up to float32 rounding, 1e-5 relative (1e-5 absolute below 1)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from dt_cases import assert_edt_close, blob_mask, random_mask, scipy_edt

from effseg.ops import distance_transform, distance_transform_ref

RTOL = 1e-5
SPACINGS = [None, (0.7, 1.9), 2.5]


def _sp(spacing):
    if spacing is None:
        return (1.0, 1.0)
    return (float(spacing),) * 2 if np.isscalar(spacing) else spacing


def _single_zero(shape, at):
    m = torch.ones(shape, dtype=torch.bool)
    m[(..., *at)] = False
    return m


def _frame(H, W):
    """Foreground inside a one-pixel zero border: long runs closed by zeros."""
    m = torch.ones(H, W, dtype=torch.bool)
    m[0], m[-1], m[:, 0], m[:, -1] = False, False, False, False
    return m


def _disk_in_noise(H, W):
    """A foreground disk of radius 120 on random background: long runs closed by zeros
    at many distances."""
    y, x = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    disk = (y - H / 2) ** 2 + (x - W / 2) ** 2 < 120 ** 2
    return disk | random_mask((H, W), 0.5, seed=16)


# Small enough for the reference (O(H W (H + W)) memory) and for Triton's interpreter.
SMALL = {
    "random_37x53": lambda: random_mask((37, 53), 0.7, seed=1),
    "random_sparse_zeros": lambda: random_mask((2, 24, 40), 0.97, seed=2),
    "blobs": lambda: blob_mask((2, 3, 32, 40), cell=8, seed=3),
    "one_pixel_zero": lambda: torch.zeros(1, 1, dtype=torch.bool),
    "one_row": lambda: random_mask((3, 1, 29), 0.8, seed=4),
    "one_row_single_zero": lambda: _single_zero((1, 31), (0, 30)),
    "one_column": lambda: random_mask((3, 29, 1), 0.8, seed=5),
    "one_column_single_zero": lambda: _single_zero((23, 1), (0, 0)),
    "all_zero": lambda: torch.zeros(2, 5, 7, dtype=torch.bool),
    "single_zero_pixel": lambda: _single_zero((19, 23), (7, 15)),
    "all_ones_one_image": lambda: torch.stack([torch.ones(9, 11, dtype=torch.bool),
                                               random_mask((9, 11), 0.6, seed=6)]),
}

# Larger: every path of the C++ kernel (window step, direct runs, the envelope on open
# and closed runs longer than 96 pixels, the thread splits); scipy only.
LARGE = {
    "blobs_300x257": lambda: blob_mask((2, 300, 257), cell=64, seed=7),
    "blobs_fine": lambda: blob_mask((3, 128, 160), cell=8, thr=0.0, seed=8),
    "frame_130x140": lambda: _frame(130, 140),
    "frame_230x250": lambda: _frame(230, 250),  # distances > 96: the envelope, capped
    "disk_in_noise": lambda: _disk_in_noise(260, 270),
    "single_zero_wide": lambda: _single_zero((40, 333), (11, 2)),
    "random_half": lambda: random_mask((4, 96, 100), 0.5, seed=9),
    "column_without_zero": lambda: _single_zero((64, 150), (0, 75)),
}


@pytest.mark.parametrize("case", list(SMALL) + list(LARGE))
@pytest.mark.parametrize("spacing", SPACINGS)
def test_cpp_matches_scipy(require_backend, case, spacing):
    require_backend("cpp")
    m = {**SMALL, **LARGE}[case]()
    out = distance_transform(m, spacing=spacing, backend="cpp")
    assert_edt_close(out, scipy_edt(m, _sp(spacing)), RTOL, case)


@pytest.mark.parametrize("case", list(SMALL))
@pytest.mark.parametrize("spacing", SPACINGS)
def test_ref_matches_scipy(case, spacing):
    m = SMALL[case]()
    assert_edt_close(distance_transform_ref(m, spacing=spacing), scipy_edt(m, _sp(spacing)), RTOL, case)
    assert_edt_close(distance_transform(m, spacing=spacing, backend="ref"),
                     scipy_edt(m, _sp(spacing)), RTOL, case)


def test_ref_in_row_steps(monkeypatch):
    import effseg.ops.distance_transform  # noqa: F401  (the module, for sys.modules)

    monkeypatch.setattr(sys.modules["effseg.ops.distance_transform"], "_REF_CANDIDATES", 3000)
    m = blob_mask((2, 37, 29), cell=8, seed=15)  # 3000 // (29 * 66) = 1 row per step
    assert_edt_close(distance_transform_ref(m, spacing=(1.5, 1.0)), scipy_edt(m, (1.5, 1.0)), RTOL)


@pytest.mark.parametrize("case", ["random_37x53", "blobs", "one_row", "one_column",
                                  "one_pixel_zero", "single_zero_pixel", "all_ones_one_image"])
@pytest.mark.parametrize("spacing", [None, (0.7, 1.9)])
def test_triton_matches_scipy(require_backend, case, spacing):
    require_backend("triton")
    m = SMALL[case]()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    out = distance_transform(m.to(dev), spacing=spacing, backend="triton")
    assert out.device.type == dev
    assert_edt_close(out, scipy_edt(m, _sp(spacing)), RTOL, case)


GROWING = {
    "single_zero_corner": lambda: _single_zero((3, 27), (2, 1)),
    "sparse_zeros": lambda: random_mask((2, 4, 22), 0.9, seed=17),
    "no_zero_and_one_zero": lambda: torch.stack([torch.ones(3, 9, dtype=torch.bool),
                                                 _single_zero((3, 9), (1, 8))]),
}


@pytest.mark.parametrize("case", list(GROWING))
def test_triton_growing_window(require_backend, monkeypatch, case):
    """Tiny tiles: the row kernel's window has to double several times (and to stop
    early) before every pixel is exact."""
    require_backend("triton")
    from effseg import _triton

    K = _triton.load("distance_transform")
    monkeypatch.setattr(K, "_BLOCK_X", 4)
    monkeypatch.setattr(K, "_BLOCK_J", 2)
    monkeypatch.setattr(K, "_BLOCK_W", 8)
    m = GROWING[case]()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    out = distance_transform(m.to(dev), spacing=(1.0, 0.8), backend="triton")
    assert_edt_close(out, scipy_edt(m, (1.0, 0.8)), RTOL, case)


@pytest.mark.parametrize("backend", ["cpp", "ref", "triton"])
def test_image_without_zero_is_inf(require_backend, backend):
    require_backend(backend)
    m = torch.ones(2, 4, 6, dtype=torch.bool)
    m[1, 2, 3] = False
    out = distance_transform(m, backend=backend)
    assert torch.isinf(out[0]).all() and (out[0] > 0).all()
    assert torch.isfinite(out[1]).all()


@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (1, 1, 2)])
def test_leading_dims(require_backend, lead):
    require_backend("cpp")
    m = blob_mask((*lead, 21, 17), cell=4, seed=10)
    out = distance_transform(m)
    assert out.shape == m.shape
    assert_edt_close(out, scipy_edt(m), RTOL)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64,
                                   torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_nonzero_is_foreground(require_backend, dtype):
    require_backend("cpp")
    g = torch.Generator().manual_seed(11)
    vals = torch.randint(-3, 4, (2, 15, 18), generator=g)
    vals[torch.rand(vals.shape, generator=g) < 0.5] = 0
    m = vals.to(dtype) if dtype != torch.bool else vals != 0
    if dtype.is_floating_point:
        m = m * 0.5  # nonzero, not 1, still foreground
    out = distance_transform(m)
    assert out.dtype == torch.float32
    assert_edt_close(out, scipy_edt(vals != 0), RTOL, str(dtype))
    assert torch.equal(out, distance_transform(vals != 0))


def test_non_contiguous_mask(require_backend):
    require_backend("cpp")
    m = blob_mask((2, 30, 26), cell=4, seed=12)
    t = m.transpose(-1, -2)
    assert not t.is_contiguous()
    assert_edt_close(distance_transform(t), scipy_edt(t.contiguous()), RTOL)


@pytest.mark.parametrize("shape", [(0, 5, 5), (2, 0, 5), (2, 5, 0), (0, 0)])
@pytest.mark.parametrize("backend", ["cpp", "ref"])
def test_empty_shapes(require_backend, shape, backend):
    require_backend(backend)
    out = distance_transform(torch.zeros(shape, dtype=torch.bool), backend=backend)
    assert out.shape == shape and out.dtype == torch.float32


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_cpp_same_result_for_every_thread_count(require_backend, n):
    """Whole images per thread and images split between threads give one answer."""
    require_backend("cpp")
    from effseg import _native

    m = blob_mask((n, 160, 190), cell=32, seed=13)
    C = _native.require()
    outs = []
    try:
        for threads in (1, 2, 3):
            C.set_num_threads(threads)
            outs.append(distance_transform(m, backend="cpp"))
    finally:
        C.set_num_threads(0)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    assert_edt_close(outs[0], scipy_edt(m), RTOL)


@pytest.mark.parametrize("simd", ["sse2"])
def test_cpp_baseline_isa_matches_scipy(require_backend, tmp_path, simd):
    """The x86-64 baseline build of the kernel (what EFFSEG_SIMD caps to), in a fresh
    process since the level is read once."""
    require_backend("cpp")
    m = torch.cat([blob_mask((2, 150, 170), cell=32, seed=14), _frame(150, 170)[None]])
    torch.save(m, tmp_path / "m.pt")
    code = ("import sys, torch; from effseg.ops import distance_transform; "
            "m = torch.load(sys.argv[1]); torch.save(distance_transform(m, spacing=(1.0, 1.3), backend='cpp'), sys.argv[2])")
    env = dict(os.environ, EFFSEG_SIMD=simd)
    # cwd: not the checkout (its effseg has no _C when the package is installed).
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.pt"), str(tmp_path / "o.pt")],
                   env=env, check=True, cwd=tmp_path)
    assert_edt_close(torch.load(tmp_path / "o.pt"), scipy_edt(m, (1.0, 1.3)), RTOL, simd)


def test_no_gradient_flows(require_backend):
    require_backend("cpp")
    m = (torch.rand(2, 9, 9) > 0.5).float().requires_grad_()
    out = distance_transform(m)
    assert not out.requires_grad and out.grad_fn is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", ["blobs_300x257", "frame_130x140", "single_zero_wide",
                                  "column_without_zero", "random_half"])
@pytest.mark.parametrize("spacing", [None, (0.7, 1.9)])
def test_triton_cuda_matches_scipy_large(require_backend, case, spacing):
    require_backend("triton")
    m = LARGE[case]()
    out = distance_transform(m.cuda(), spacing=spacing, backend="triton")
    assert out.is_cuda
    assert_edt_close(out, scipy_edt(m, _sp(spacing)), RTOL, case)
    auto = distance_transform(m.cuda(), spacing=spacing)  # auto picks Triton on CUDA
    assert torch.equal(auto, out)
