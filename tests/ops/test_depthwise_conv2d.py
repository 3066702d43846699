"""depthwise_conv2d forward: every backend against the float64 reference (F.conv2d)."""
import itertools

import pytest
import torch
from dw_cases import TOL, assert_close, make

from effseg.ops import depthwise_conv2d, depthwise_conv2d_ref

ACTS = [None, "relu", "relu6", "gelu", "silu"]


def _ref64(x, w, b, **kw):
    return depthwise_conv2d_ref(x.double(), w.double(), None if b is None else b.double(), **kw)


def _cases():
    """k x (C, H, W) x stride x dilation x padding, trimmed to a few hundred calls;
    activation and bias rotate through the cases so every pairing appears."""
    shapes = [(1, 1, 1), (3, 7, 33), (17, 33, 7), (64, 65, 65), (64, 7, 33), (3, 1, 65),
              (17, 65, 1)]
    pads = [0, 1, (2, 1), "valid", "same"]
    out = []
    for i, (k, (C, H, W), s, d, p) in enumerate(itertools.product(
            [3, 4, 5, 7, 8, 31], shapes, [1, 2], [1, 2, 3], pads)):
        if p == "same" and s != 1:
            continue
        # Skip sizes F.conv2d rejects (input smaller than the dilated kernel).
        pH, pW = ((d * (k - 1), d * (k - 1)) if p == "same" else (0, 0) if p == "valid"
                  else (2 * p, 2 * p) if isinstance(p, int) else (2 * p[0], 2 * p[1]))
        if H + pH < d * (k - 1) + 1 or W + pW < d * (k - 1) + 1:
            continue
        # The float64 reference is slow on the big plane: it gets dilation 1 and two
        # padding forms (the 64 x 7 x 33 plane takes the rest).
        if (C, H) == (64, 65) and (d > 1 or p not in (0, "same")):
            continue
        out.append((k, C, H, W, s, d, p, ACTS[i % 5], i % 3 != 0))
    return out


CASES = _cases()


@pytest.mark.parametrize("k,C,H,W,s,d,p,act,bias", CASES)
def test_cpp_matches_reference(require_backend, k, C, H, W, s, d, p, act, bias):
    require_backend("cpp")
    x, w, b = make(2 if C < 17 else 1, C, H, W, k, bias=bias, seed=k * 100 + C)
    kw = {"stride": s, "padding": p, "dilation": d, "activation": act}
    y = depthwise_conv2d(x, w, b, **kw, backend="cpp")
    assert y.dtype == torch.float32
    assert_close(y, _ref64(x, w, b, **kw), torch.float32, f"k={k} C={C} {H}x{W} s={s} d={d} p={p} {act}")


def test_case_grid_covers_the_issue():
    ks = {c[0] for c in CASES}
    assert ks == {3, 4, 5, 7, 8, 31}
    assert {c[1] for c in CASES} == {1, 3, 17, 64}
    assert {1, 7, 33, 65} <= {c[2] for c in CASES} and {1, 7, 33, 65} <= {c[3] for c in CASES}
    assert {(c[4], c[5]) for c in CASES} >= {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)}
    assert {c[7] for c in CASES} == set(ACTS) and {c[8] for c in CASES} == {True, False}
    assert {str(c[6]) for c in CASES} == {"0", "1", "(2, 1)", "valid", "same"}
    assert len(CASES) > 300


@pytest.mark.parametrize("backend", ["cpp", "ref", "triton"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bias", [True, False])
def test_every_activation_and_bias(require_backend, backend, act, bias):
    require_backend(backend)
    # Triton's interpreter is slow: a smaller map for it.
    shape = (1, 3, 5, 7) if backend == "triton" and not torch.cuda.is_available() else (2, 9, 11, 13)
    x, w, b = make(*shape, 3, bias=bias, seed=7)
    x = 3 * x  # reach relu6's upper clip and the GELU / SiLU tails
    y = depthwise_conv2d(x, w, b, padding=1, activation=act, backend=backend)
    assert_close(y, _ref64(x, w, b, padding=1, activation=act), torch.float32, f"{backend} {act}")


@pytest.mark.parametrize("k", [(1, 1), (2, 5), (8, 3), (4, 4), (31, 2)])
@pytest.mark.parametrize("d", [1, 2, (3, 1)])
def test_same_padding_rectangular_and_even_kernels(require_backend, k, d):
    """PyTorch's "same": total d*(k-1), total//2 before, the rest after (even kernels)."""
    require_backend("cpp")
    x, w, b = make(1, 10, 37, 19, *k, seed=3)
    y = depthwise_conv2d(x, w, b, padding="same", dilation=d, activation="relu")
    assert y.shape == x.shape
    assert_close(y, _ref64(x, w, b, padding="same", dilation=d, activation="relu"), torch.float32)


@pytest.mark.parametrize("stride,padding", [((1, 2), (0, 3)), ((2, 1), (1, 0)), (3, 2), ((3, 2), 4)])
def test_pairs_and_strides_beyond_two(require_backend, stride, padding):
    require_backend("cpp")
    x, w, b = make(2, 11, 23, 29, 5, 4, seed=4)
    kw = {"stride": stride, "padding": padding, "dilation": (2, 1), "activation": "silu"}
    assert_close(depthwise_conv2d(x, w, b, **kw), _ref64(x, w, b, **kw), torch.float32)


def test_float64_is_exact_to_rounding(require_backend):
    require_backend("cpp")
    x, w, b = make(2, 13, 17, 21, 7, dtype=torch.float64, seed=5)
    for act in ACTS:
        kw = {"stride": 2, "padding": 3, "dilation": 1, "activation": act}
        y = depthwise_conv2d(x, w, b, **kw, backend="cpp")
        assert y.dtype == torch.float64
        assert_close(y, depthwise_conv2d_ref(x, w, b, **kw), torch.float64, str(act))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", ["cpp", "ref"])
def test_half_inputs_computed_in_float32(require_backend, dtype, backend):
    require_backend(backend)
    x, w, b = make(1, 19, 15, 18, 5, dtype=dtype, seed=6)
    y = depthwise_conv2d(x, w, b, padding="same", activation="gelu", backend=backend)
    assert y.dtype == dtype
    assert_close(y, _ref64(x, w, b, padding="same", activation="gelu"), dtype)


def test_weight_and_bias_may_have_another_dtype(require_backend):
    require_backend("cpp")
    x, w, b = make(1, 8, 9, 9, 3, dtype=torch.bfloat16)
    y = depthwise_conv2d(x, w.float(), b.double(), padding=1)
    assert y.dtype == torch.bfloat16
    assert_close(y, _ref64(x, w, b, padding=1), torch.bfloat16)


def test_non_contiguous_input(require_backend):
    require_backend("cpp")
    x, w, b = make(2, 16, 20, 24, 3, seed=8)
    for xi in (x.to(memory_format=torch.channels_last), x[:, :, ::2, 1:], x.transpose(2, 3)):
        assert_close(depthwise_conv2d(xi, w, b, padding=1), _ref64(xi, w, b, padding=1), torch.float32)


def test_threads_and_row_blocks_agree(require_backend):
    """Few planes and many rows: the kernel cuts planes into row blocks across threads."""
    require_backend("cpp")
    from effseg import _native

    C_ = _native.require()
    x, w, b = make(1, 9, 300, 40, 5, seed=9)  # one 8-channel block + one row-path channel
    ref = _ref64(x, w, b, padding=2, activation="relu6")
    n = C_.get_num_threads()
    try:
        for threads in (1, 2, 3):
            C_.set_num_threads(threads)
            y = depthwise_conv2d(x, w, b, padding=2, activation="relu6", backend="cpp")
            assert_close(y, ref, torch.float32, f"{threads} threads")
    finally:
        C_.set_num_threads(n)


def test_empty_batch(require_backend):
    require_backend("cpp")
    x, w, b = make(0, 4, 5, 5, 3)
    assert depthwise_conv2d(x, w, b, padding=1).shape == (0, 4, 5, 5)


def test_eager_fast_path_equals_the_custom_op(require_backend):
    require_backend("cpp")
    x, w, b = make(1, 12, 14, 10, 4, seed=10)
    with torch.no_grad():
        fast = depthwise_conv2d(x, w, b, padding="same", activation="gelu")
    op = torch.ops.effseg.depthwise_conv2d(x, w, b, [1, 1], [1, 2, 1, 2], [1, 1], 3, "auto")
    assert torch.equal(fast, op)


# ---- Triton (interpreter on CPU: tiny shapes) -----------------------------------------

TRITON_CASES = [
    # (C, H, W, kH, kW, stride, padding, dilation, activation, dtype)
    (3, 7, 9, 3, 3, 1, "same", 1, "gelu", torch.float32),
    (2, 9, 6, 4, 4, 1, "same", 2, "relu6", torch.float32),
    (2, 10, 11, 5, 3, 2, (2, 1), 1, "silu", torch.float32),
    (1, 5, 7, 8, 8, 1, 4, 1, "relu", torch.float64),
    (4, 6, 5, 1, 1, 2, 0, 1, None, torch.float16),
    (2, 7, 7, 7, 2, (1, 2), "valid", (1, 2), "gelu", torch.float32),
]


@pytest.mark.parametrize("C,H,W,kH,kW,s,p,d,act,dtype", TRITON_CASES)
def test_triton_matches_reference(require_backend, C, H, W, kH, kW, s, p, d, act, dtype):
    require_backend("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, w, b = make(2, C, H, W, kH, kW, dtype=dtype, device=device, seed=C * H)
    kw = {"stride": s, "padding": p, "dilation": d, "activation": act}
    y = depthwise_conv2d(x, w, b, **kw, backend="triton")
    assert y.dtype == dtype and y.device == x.device
    assert_close(y, _ref64(x.cpu(), w.cpu(), b.cpu(), **kw), dtype, f"triton {act}")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("k", [3, 8, 31])
def test_triton_cuda_larger(k):
    x, w, b = make(2, 64, 65, 33, k, device="cuda")
    for act in ACTS:
        y = depthwise_conv2d(x, w, b, padding="same", activation=act)
        assert_close(y, _ref64(x.cpu(), w.cpu(), b.cpu(), padding="same", activation=act),
                     torch.float32, f"cuda k={k} {act}")


def test_tolerances_are_stated():
    assert TOL[torch.float32] <= 2e-5 and TOL[torch.float64] <= 1e-12


def test_baseline_isa_path_in_a_subprocess(require_backend):
    """EFFSEG_SIMD=sse2 selects the x86-64 baseline code (4 float / 2 double lanes, other
    transposes) that AVX2 machines never run otherwise."""
    require_backend("cpp")
    import os
    import subprocess
    import tempfile
    import sys
    from pathlib import Path

    code = """
import torch
from dw_cases import TOL, make, rel_err
from effseg import _native
from effseg.ops import depthwise_conv2d, depthwise_conv2d_ref
assert _native.require().depthwise_conv2d_simd() in ("sse2", "neon"), _native.require().depthwise_conv2d_simd()
worst = {}
for dtype in (torch.float32, torch.float64):
    for C, H, W, k, s, p, act in [(9, 13, 11, 3, 1, 1, "gelu"), (6, 7, 9, 4, 1, "same", "silu"),
                                  (5, 12, 17, 5, 2, 2, "relu6"), (3, 5, 5, 2, 1, 0, None)]:
        x, w, b = make(2, C, H, W, k, dtype=dtype, seed=C)
        kw = dict(stride=s, padding=p, activation=act)
        y = depthwise_conv2d(x, w, b, backend="cpp", **kw)
        ref = depthwise_conv2d_ref(x.double(), w.double(), b.double(), **kw)
        worst[dtype] = max(worst.get(dtype, 0.0), rel_err(y, ref))
assert all(e <= TOL[d] for d, e in worst.items()), worst
print("ok")
"""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, EFFSEG_SIMD="sse2",
               PYTHONPATH=os.pathsep.join([str(root / "tests" / "helpers"),
                                           os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True,
                       text=True, timeout=120, cwd=tempfile.gettempdir())  # not the checkout
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


# ---- large kernels on every x86 ISA path ----------------------------------------------

_ISA_RANK = {"generic": 0, "sse2": 1, "neon": 1, "avx2+fma": 2, "avx512f": 3}
_CAP_NAME = {"sse2": "sse2", "avx2": "avx2+fma", "avx512": "avx512f"}

# k >= 5 through the column-reuse tiles of the channel-blocked path (AVX2: 8 outputs,
# taps in groups of <= 4; AVX-512: 16 outputs, groups of <= 8) and their fallbacks:
# C = 27 leaves channels to the row path at every lane count (16 + 11, 3 x 8 + 3,
# 6 x 4 + 3); widths give outputs just over / under the 8- and 16-pixel tiles and the
# 32-pixel column blocks; k = 9 and 11 split a kernel row into several tap groups;
# column stride 2 has its own reuse tile, other strides / column dilation fall back.
_LARGE_K_CASES = [
    # (C, H, W, (kH, kW), stride, padding, dilation, activation)
    (27, 19, 47, 5, 1, "same", 1, "gelu"),
    (27, 13, 33, 7, 1, "same", 1, None),
    (16, 21, 16, 7, 1, 3, 1, "relu6"),
    (24, 9, 71, 7, 1, (1, 4), 1, "silu"),
    (27, 11, 40, 5, 2, 2, 1, "relu"),
    (17, 23, 67, 7, 2, 3, 1, None),
    (27, 12, 35, 7, (1, 2), "valid", 1, "gelu"),
    (27, 12, 35, 7, (2, 1), (0, 3), 1, None),
    (16, 15, 50, 5, 1, "same", (1, 2), "silu"),
    (16, 15, 50, 5, 1, 4, (2, 1), None),
    (8, 17, 37, 5, 3, 2, 1, "relu"),
    (27, 20, 45, 9, 1, "same", 1, None),
    (16, 14, 39, 11, 1, 5, 1, "relu6"),
    (16, 9, 29, (3, 7), 1, (1, 3), 1, "gelu"),
    (16, 9, 29, (7, 5), 1, "same", 1, None),
    (32, 30, 130, 7, 1, "same", 1, None),  # several 32-pixel column blocks
    (16, 300, 37, 7, 1, "same", 1, "relu"),  # several row blocks (halo rows refilled)
    (16, 301, 37, 5, 2, 2, 1, None),
]

_LARGE_K_SCRIPT = """
import sys
import torch
from dw_cases import TOL, make, rel_err
from effseg import _native
from effseg.ops import depthwise_conv2d, depthwise_conv2d_ref
from test_depthwise_conv2d_cases import CASES
print(_native.require().depthwise_conv2d_simd())
worst = {}
for dtype in (torch.float32, torch.float64):
    for i, (C, H, W, k, s, p, d, act) in enumerate(CASES):
        k = k if isinstance(k, tuple) else (k, k)
        x, w, b = make(2, C, H, W, *k, dtype=dtype, seed=i, bias=i % 3 != 2)
        kw = dict(stride=s, padding=p, dilation=d, activation=act)
        y = depthwise_conv2d(x, w, b, backend="cpp", **kw)
        ref = depthwise_conv2d_ref(x.double(), w.double(), None if b is None else b.double(), **kw)
        e = rel_err(y, ref)
        if e > TOL[dtype]:
            print("FAIL", dtype, C, H, W, k, s, p, d, act, e)
        worst[dtype] = max(worst.get(dtype, 0.0), e)
print("worst", {str(t): e for t, e in worst.items()})
print("ok" if all(e <= TOL[t] for t, e in worst.items()) else "bad")
"""


def _run_capped(simd, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "test_depthwise_conv2d_cases.py").write_text(f"CASES = {_LARGE_K_CASES!r}\n")
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root / "tests" / "helpers"), str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    env.pop("EFFSEG_SIMD", None)
    if simd:
        env["EFFSEG_SIMD"] = simd
    r = subprocess.run([sys.executable, "-c", _LARGE_K_SCRIPT], check=False, env=env,
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split("\n")


@pytest.mark.parametrize("simd", ["avx512", "avx2", "sse2"])
def test_large_kernels_on_each_isa_path(require_backend, simd, tmp_path):
    """k = 5..11, odd widths and channel counts, strides, dilations and paddings against
    the float64 reference, with EFFSEG_SIMD forcing each x86 kernel build in turn (a
    level above this CPU's is skipped rather than silently run on a lower one)."""
    require_backend("cpp")
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86 ISA levels")
    from effseg import _native

    top = _native.require().depthwise_conv2d_simd()
    if _ISA_RANK[_CAP_NAME[simd]] > _ISA_RANK[top]:
        pytest.skip(f"this CPU's kernel level is {top}")
    out = _run_capped(simd, tmp_path)
    assert out[0] == _CAP_NAME[simd], out[0]
    assert "ok" in out, "\n".join(out)
