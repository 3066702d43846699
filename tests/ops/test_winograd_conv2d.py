"""winograd_conv2d: every backend against F.conv2d (float64), the transform matrices,
gradients, torch.compile / torch.export / ONNX, and the argument errors.

Tolerances, as max|y - ref| / scale with ref computed in float64 from the same
(rounded) inputs and scale = max|conv2d(x, weight, bias)| (before the ReLU, so a
ReLU that zeroes a tiny output does not make the bound 0):
  float32: 1e-4 (F(4x4, 3x3)'s rounding; measured <= 1.5e-5 up to 512 channels)
  float64: 1e-10 (measured ~3e-14)
  float16 with a float32 weight_t (Triton): 2e-3; with a float16 weight_t: 1.5e-2
  (U's rounding, amplified by the output transform; measured 3e-4 and 5e-3).
"""
import importlib
import itertools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import effseg
from effseg.ops import winograd_conv2d, winograd_conv2d_ref, winograd_weight

# The module (effseg.ops.winograd_conv2d is the function, re-exported by effseg.ops).
wmod = importlib.import_module("effseg.ops.winograd_conv2d")

TOL = {torch.float32: 1e-4, torch.float64: 1e-10}
TOL_HALF_U32, TOL_HALF_U16 = 2e-3, 1.5e-2

BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
      [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
     [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def make(N, C, K, H, W, *, bias=True, dtype=torch.float32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(K, C, 3, 3, generator=g, dtype=torch.float64) / (3 * C ** 0.5)
    b = torch.randn(K, generator=g, dtype=torch.float64) if bias else None
    cast = {"dtype": dtype, "device": device}
    return x.to(**cast), w.to(**cast), None if b is None else b.to(**cast)


def check(y, x, w, b, padding, relu, tol, what=""):
    x64, w64 = x.double().cpu(), w.double().cpu()
    b64 = None if b is None else b.double().cpu()
    ref = winograd_conv2d_ref(x64, w64, b64, padding, relu)
    assert y.shape == ref.shape, f"{what}: shape {tuple(y.shape)} != {tuple(ref.shape)}"
    assert y.dtype == x.dtype, what
    if ref.numel() == 0:
        return
    scale = winograd_conv2d_ref(x64, w64, b64, padding).abs().max().clamp_min(1e-30)
    err = ((y.double().cpu() - ref).abs().max() / scale).item()
    assert err <= tol, f"{what}: error {err:.3g} > {tol}"


# ---- the algorithm ------------------------------------------------------------------

def test_matrices_compute_a_3x3_correlation():
    """A^T [(G g G^T) * (B^T d B)] A = the 4 x 4 valid correlation of d (6 x 6) with g,
    with the matrices written here independently of the kernels."""
    bt, g_, at = (torch.tensor(m, dtype=torch.float64) for m in (BT, G, AT))
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        d = torch.randn(6, 6, generator=gen, dtype=torch.float64)
        k = torch.randn(3, 3, generator=gen, dtype=torch.float64)
        y = at @ ((g_ @ k @ g_.T) * (bt @ d @ bt.T)) @ at.T
        ref = F.conv2d(d[None, None], k[None, None])[0, 0]
        torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_winograd_weight(dtype):
    w = make(1, 5, 7, 1, 1, dtype=dtype)[1]
    U = winograd_weight(w)
    assert U.shape == (36, 7, 5) and U.dtype == dtype and U.is_contiguous()
    g_ = torch.tensor(G, dtype=torch.float64)
    for k, c in [(0, 0), (6, 4), (3, 2)]:
        want = (g_ @ w[k, c].double() @ g_.T).reshape(36)
        # float64 sums in another order; then rounded once to the dtype
        torch.testing.assert_close(U[:, k, c].double(), want.to(dtype).double(), rtol=1e-14,
                                   atol=1e-16)
    assert winograd_weight(w, torch.float32).dtype == torch.float32


def test_winograd_weight_in_blocks():
    """Many input channels: computed in several blocks of output channels on CPU."""
    w = make(1, 1500, 5, 1, 1, dtype=torch.float64, seed=2)[1]
    U = winograd_weight(w)
    g_ = torch.tensor(G, dtype=torch.float64)
    want = torch.einsum("ia,kcab,jb->ijkc", g_, w, g_).reshape(36, 5, 1500)
    torch.testing.assert_close(U, want, rtol=1e-14, atol=1e-16)
    assert winograd_weight(w.to("meta")).shape == U.shape


def test_chunk_sizes():
    for C, K, P in [(64, 64, 1024), (512, 512, 16), (3, 1, 5), (96, 64, 475), (256, 256, 64)]:
        pc = wmod.chunk_tiles(C, K, P, 4)
        assert 1 <= pc <= P
        assert pc == P or pc % wmod.CHUNK_ALIGN == 0
        assert pc == P or 36 * (C + K) * pc * 4 <= max(wmod.CHUNK_BYTES, 36 * (C + K) * 4 * 16)


# ---- forward against the reference ----------------------------------------------------

SIZES = [(1, 1), (3, 5), (7, 13), (17, 9), (32, 32)]
CHANNELS = [1, 3, 17, 64]
PADS = [0, 1, 2, (1, 2)]


def _cases():
    """(H, W) x C x K x padding; bias, relu, batch and weight_t-given rotate through the
    cases so that every value of each meets every size and padding."""
    out = []
    for i, ((H, W), C, K, p) in enumerate(itertools.product(SIZES, CHANNELS, CHANNELS, PADS)):
        ph, pw = (p, p) if isinstance(p, int) else p
        if H + 2 * ph - 2 < 1 or W + 2 * pw - 2 < 1:
            continue  # an empty output: an error case, tested below
        out.append((H, W, C, K, p, i % 2 == 0, (i // 2) % 2 == 0, 1 + (i // 4) % 2, (i // 8) % 2 == 0))
    return out


CASES = _cases()


def test_case_grid_covers_the_issue():
    assert {(c[0], c[1]) for c in CASES} == set(SIZES)
    assert {c[2] for c in CASES} == set(CHANNELS) and {c[3] for c in CASES} == set(CHANNELS)
    assert {str(c[4]) for c in CASES} == {"0", "1", "2", "(1, 2)"}
    for j in (5, 6, 7, 8):
        assert {(c[0], c[1], c[j]) for c in CASES} == {(h, w, v) for (h, w) in SIZES
                                                       for v in {c[j] for c in CASES}}
    assert {c[7] for c in CASES} == {1, 2}


@pytest.mark.parametrize("H,W,C,K,padding,bias,relu,N,given", CASES)
def test_cpp_matches_reference(require_backend, H, W, C, K, padding, bias, relu, N, given):
    require_backend("cpp")
    x, w, b = make(N, C, K, H, W, bias=bias, seed=H * 100 + C * 7 + K)
    wt = winograd_weight(w) if given else None
    y = winograd_conv2d(x, w, b, padding, relu, weight_t=wt, backend="cpp")
    check(y, x, w, b, padding, relu, TOL[torch.float32], f"{N}x{C}x{H}x{W} K={K} p={padding}")


@pytest.mark.parametrize("backend", ["ref", "auto"])
def test_other_cpu_backends(require_backend, backend):
    for H, W, C, K, p, bias, relu, N, given in CASES[::17]:
        x, w, b = make(N, C, K, H, W, bias=bias)
        y = winograd_conv2d(x, w, b, p, relu, weight_t=winograd_weight(w) if given else None,
                            backend=backend)
        check(y, x, w, b, p, relu, TOL[torch.float32], f"{backend} {H}x{W} C={C} K={K} p={p}")


def test_float64_is_exact_to_rounding(require_backend):
    require_backend("cpp")
    for (H, W), C, K, p in [((17, 9), 17, 3, 1), ((32, 32), 64, 64, (1, 2)), ((3, 5), 3, 17, 2)]:
        x, w, b = make(2, C, K, H, W, dtype=torch.float64, seed=C)
        for relu in (False, True):
            y = winograd_conv2d(x, w, b, p, relu, backend="cpp")
            check(y, x, w, b, p, relu, TOL[torch.float64], f"{H}x{W} C={C} K={K} p={p}")


def test_many_chunks_across_rows_and_images(require_backend, monkeypatch):
    """Chunks of 16 tiles that start mid tile-row and span two images, a short last one."""
    require_backend("cpp")
    monkeypatch.setattr(wmod, "CHUNK_BYTES", 1)
    x, w, b = make(2, 5, 6, 23, 29, seed=3)
    assert wmod.chunk_tiles(5, 6, 2 * 6 * 8, 4) == 16  # 96 tiles: 6 chunks
    for p, relu in [(1, True), ((2, 0), False), (0, False)]:
        y = winograd_conv2d(x, w, b, p, relu, backend="cpp")
        check(y, x, w, b, p, relu, TOL[torch.float32], f"p={p}")


def test_threads_agree(require_backend):
    require_backend("cpp")
    from effseg import _native

    lib = _native.require()
    x, w, b = make(1, 24, 40, 45, 37, seed=4)
    n = lib.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            lib.set_num_threads(t)
            outs.append(winograd_conv2d(x, w, b, 1, True, backend="cpp"))
    finally:
        lib.set_num_threads(n)
    check(outs[0], x, w, b, 1, True, TOL[torch.float32])
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_non_contiguous_and_empty_batch(require_backend):
    require_backend("cpp")
    x, w, b = make(2, 8, 4, 19, 22, seed=5)
    for xi in (x.to(memory_format=torch.channels_last), x[:, :, ::2, 1:], x.transpose(2, 3)):
        check(winograd_conv2d(xi, w, b, backend="cpp"), xi, w, b, 1, False, TOL[torch.float32])
    y = winograd_conv2d(x[:0], w, b, backend="cpp")
    assert y.shape == (0, 4, 19, 22)


@pytest.mark.parametrize("simd, names", [("sse2", ("sse2", "neon", "generic")), ("avx2", ("avx2+fma",))])
def test_capped_isa_path_in_a_subprocess(simd, names, require_backend):
    """EFFSEG_SIMD selects the builds of the transforms below the widest one this CPU
    runs (the x86-64 baseline; AVX2 + FMA under AVX-512), which it never runs otherwise
    (read once per process, hence a fresh one)."""
    require_backend("cpp")
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if simd == "avx2" and not (" avx2" in flags and " fma" in flags):
        pytest.skip("this CPU has no AVX2 + FMA")
    code = f"""
import torch
from effseg import _native
from effseg.ops import winograd_conv2d, winograd_conv2d_ref
assert _native.require().winograd_conv2d_simd() in {names!r}, _native.require().winograd_conv2d_simd()
g = torch.Generator().manual_seed(0)
for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
    for N, C, K, H, W, p in [(2, 5, 7, 13, 11, 1), (1, 3, 2, 6, 9, (0, 2)), (1, 17, 9, 31, 33, 2)]:
        x = torch.randn(N, C, H, W, generator=g, dtype=dtype)
        w = torch.randn(K, C, 3, 3, generator=g, dtype=dtype)
        b = torch.randn(K, generator=g, dtype=dtype)
        y = winograd_conv2d(x, w, b, p, True, backend="cpp")
        ref = winograd_conv2d_ref(x.double(), w.double(), b.double(), p, True)
        scale = winograd_conv2d_ref(x.double(), w.double(), b.double(), p).abs().max()
        assert ((y.double() - ref).abs().max() / scale).item() <= tol, (dtype, C, H, W)
print("ok")
"""
    env = dict(os.environ, EFFSEG_SIMD=simd)
    r = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True,
                       text=True, timeout=120, cwd=tempfile.gettempdir())  # not the checkout
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_explicit_backend_is_used_with_grad(require_backend, monkeypatch):
    """The op's schema has no backend: an eager call passes it on to the op."""
    require_backend("cpp")

    def boom(*args):
        raise AssertionError("the cpp backend ran")

    monkeypatch.setattr(wmod, "_cpp_fwd", boom)
    x, w, b = make(1, 3, 2, 6, 7)
    x.requires_grad_()
    winograd_conv2d(x, w, b, backend="ref").sum().backward()
    assert x.grad is not None
    with pytest.raises(AssertionError, match="the cpp backend ran"):
        winograd_conv2d(x, w, b, backend="cpp")


# ---- Triton (interpreter on CPU: tiny shapes) ----------------------------------------

def _device():
    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("H,W,C,K,padding,bias,relu", [
    (8, 8, 4, 3, 1, True, True), (5, 7, 1, 4, 0, False, False), (1, 1, 3, 2, 2, True, False),
    (6, 3, 2, 1, (1, 2), False, True),
])
def test_triton_matches_reference(require_backend, H, W, C, K, padding, bias, relu):
    require_backend("triton")
    x, w, b = make(2, C, K, H, W, bias=bias, seed=H + W, device=_device())
    y = winograd_conv2d(x, w, b, padding, relu, backend="triton")
    check(y, x, w, b, padding, relu, TOL[torch.float32], f"{H}x{W} p={padding}")


def test_triton_float16(require_backend):
    require_backend("triton")
    x, w, b = make(1, 4, 3, 8, 7, dtype=torch.float16, seed=6, device=_device())
    y = winograd_conv2d(x, w, b, 1, False, backend="triton")  # weight_t computed in float32
    check(y, x, w, b, 1, False, TOL_HALF_U32, "float32 weight_t")
    y = winograd_conv2d(x, w, b, 1, False, weight_t=winograd_weight(w), backend="triton")
    check(y, x, w, b, 1, False, TOL_HALF_U16, "float16 weight_t")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bfloat16 needs CUDA (Triton's interpreter has no bf16)")
def test_triton_bfloat16_cuda(require_backend):
    require_backend("triton")
    x, w, b = make(2, 16, 8, 30, 31, dtype=torch.bfloat16, seed=7, device="cuda")
    y = winograd_conv2d(x, w, b, 1, True)
    check(y, x, w, b, 1, True, 1.5e-2, "bf16")


# ---- autograd, torch.compile, torch.export, ONNX --------------------------------------

@pytest.mark.parametrize("relu", [False, True])
def test_gradcheck(require_backend, relu):
    require_backend("cpp")
    x, w, b = make(2, 2, 2, 4, 5, dtype=torch.float64, seed=8)
    x, w, b = x.requires_grad_(), w.requires_grad_(), b.requires_grad_()
    # weight_t follows weight (the numerical Jacobian perturbs weight), no gradient.
    # fast_mode (random projections of the Jacobian): float64 convolution_backward
    # takes ~10 ms a call here, and the full Jacobian needs hundreds.
    assert torch.autograd.gradcheck(
        lambda x, w, b: winograd_conv2d(x, w, b, (1, 2), relu, weight_t=winograd_weight(w),
                                        backend="cpp"), (x, w, b), fast_mode=True)
    assert torch.autograd.gradcheck(
        lambda x, w: torch.ops.effseg.winograd_conv2d(x, w, winograd_weight(w), None, 0, 1, relu),
        (x, w), fast_mode=True)


def test_opcheck(require_backend):
    require_backend("cpp")
    x, w, b = make(2, 3, 4, 6, 7)
    args = (x.requires_grad_(), w.requires_grad_(), winograd_weight(w.detach()), b, 1, 2, True)
    torch.library.opcheck(torch.ops.effseg.winograd_conv2d.default, args)


class Block(torch.nn.Module):
    """conv3x3 + bias + ReLU through the op, with the transformed weight as a buffer."""

    def __init__(self, C=5, K=6, padding=1, relu=True):
        super().__init__()
        _, w, b = make(1, C, K, 1, 1, seed=C * K)
        self.weight, self.bias = torch.nn.Parameter(w), torch.nn.Parameter(b)
        self.register_buffer("weight_t", winograd_weight(w))
        self.padding, self.relu = padding, relu

    def forward(self, x):
        return winograd_conv2d(x, self.weight, self.bias, self.padding, self.relu,
                               weight_t=self.weight_t)

    def reference(self, x):
        return winograd_conv2d_ref(x, self.weight, self.bias, self.padding, self.relu)


def test_torch_compile_fullgraph_forward_and_backward(require_backend):
    require_backend("cpp")
    m = Block()
    x = make(2, 5, 1, 13, 11, seed=9)[0]
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    check(y.detach(), x, m.weight.detach(), m.bias.detach(), 1, True, TOL[torch.float32])
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(0))  # nonzero where y = 0
    y.backward(gy)
    got = (m.weight.grad.clone(), m.bias.grad.clone())
    m.zero_grad()
    m.reference(x).backward(gy)
    torch.testing.assert_close(got[0], m.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[1], m.bias.grad, rtol=1e-4, atol=1e-4)


def test_torch_compile_inductor_no_grad(require_backend):
    require_backend("cpp")
    m = Block(padding=(2, 0), relu=False)
    x = make(1, 5, 1, 9, 12, seed=10)[0]
    with torch.no_grad():
        y = torch.compile(m, fullgraph=True, backend="inductor")(x)
        check(y, x, m.weight, m.bias, (2, 0), False, TOL[torch.float32])


def test_torch_compile_computes_weight_t(require_backend):
    """Without weight_t the compiled graph computes it (winograd_weight) itself."""
    require_backend("cpp")
    _, w, b = make(1, 3, 4, 1, 1, seed=13)
    x = make(2, 3, 1, 7, 6, seed=14)[0]
    fn = torch.compile(lambda x: winograd_conv2d(x, w, b, 1, True), fullgraph=True,
                       backend="aot_eager")
    check(fn(x), x, w, b, 1, True, TOL[torch.float32])


def test_torch_export_keeps_the_custom_op(require_backend):
    require_backend("cpp")
    m = Block()
    x = make(2, 5, 1, 9, 10, seed=11)[0]
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("h", min=3, max=512),
            3: torch.export.Dim("w", min=3, max=512)}
    ep = torch.export.export(m, (x,), dynamic_shapes={"x": dims})
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("effseg.winograd_conv2d" in t for t in targets), targets
    with torch.no_grad():
        check(ep.module()(x), x, m.weight, m.bias, 1, True, TOL[torch.float32])
        x2 = make(3, 5, 1, 23, 6, seed=15)[0]  # another batch and map size
        check(ep.module()(x2), x2, m.weight, m.bias, 1, True, TOL[torch.float32])


@pytest.mark.parametrize("padding,relu", [(1, True), ((0, 2), False)])
def test_onnx_export_runtime_parity(require_backend, tmp_path, padding, relu):
    pytest.importorskip("onnx", reason="onnx is not installed (the export extra)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the export extra)")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (the export extra)")
    m = Block(C=4, K=3, padding=padding, relu=relu)
    x = make(2, 4, 1, 12, 9, seed=12)[0]
    proto = effseg.export.export_onnx(m, (x,), tmp_path / "wino.onnx")
    types = effseg.export.onnx_op_types(proto)
    assert "Conv" in types and ("Relu" in types) == relu, types
    assert not any(n.domain not in ("", "ai.onnx") for n in proto.graph.node), "standard ops only"
    assert sorted(list(i.dims) for i in proto.graph.initializer) == [[3], [3, 4, 3, 3]], \
        "the original weight and bias only (weight_t unused, dropped)"
    sess = ort.InferenceSession(str(tmp_path / "wino.onnx"), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        check(torch.from_numpy(got), x, m.weight, m.bias, padding, relu, TOL[torch.float32])


# ---- argument errors --------------------------------------------------------------------

def _run(x=None, w=None, b="default", **kw):
    x0, w0, b0 = make(1, 4, 5, 8, 8)
    return winograd_conv2d(x0 if x is None else x, w0 if w is None else w,
                           b0 if isinstance(b, str) else b, **kw)


@pytest.mark.parametrize("args,exc,needle", [
    ({"x": torch.randn(4, 8, 8)}, ValueError, "x must be 4-D"),
    ({"x": torch.randn(1, 4, 8, 8).long()}, TypeError, "x must be float16"),
    ({"x": [[1.0]]}, TypeError, "x must be a torch.Tensor"),
    ({"x": torch.randn(1, 4, 0, 8)}, ValueError, "x must be (batch, channels, height, width)"),
    ({"w": torch.randn(5, 4, 3)}, ValueError, "weight must be 4-D"),
    ({"w": torch.randn(5, 3, 3, 3)}, ValueError, "weight must have shape (out_channels, in_channels, 3, 3) = (K, 4, 3, 3)"),
    ({"w": torch.randn(5, 4, 5, 5)}, ValueError, "weight must have shape"),
    ({"w": torch.randn(0, 4, 3, 3), "b": None}, ValueError, "weight must have shape"),
    ({"w": torch.randn(5, 4, 3, 3).int()}, TypeError, "weight must be float16"),
    ({"w": torch.randn(5, 4, 3, 3).double()}, TypeError, "weight has dtype torch.float64 but x has torch.float32"),
    ({"weight_t": torch.randn(36, 4, 5)}, ValueError, "weight_t must have shape (36, out_channels, in_channels) = (36, 5, 4)"),
    ({"weight_t": torch.randn(36, 5)}, ValueError, "weight_t must be 3-D"),
    ({"weight_t": torch.randn(36, 5, 4).double()}, TypeError, "weight_t has dtype torch.float64"),
    ({"b": torch.randn(4)}, ValueError, "bias must have shape (out_channels,) = (5,)"),
    ({"b": torch.randn(5, 1)}, ValueError, "bias must be 1-D"),
    ({"b": torch.randn(5).half()}, TypeError, "bias has dtype torch.float16"),
    ({"padding": -1}, ValueError, "padding must be >= 0"),
    ({"padding": (1, -2)}, ValueError, "padding must be >= 0"),
    ({"padding": (1, 2, 3)}, TypeError, "padding must be an int or a pair"),
    ({"padding": 1.0}, TypeError, "padding must be an int or a pair"),
    ({"padding": "same"}, TypeError, "padding must be an int or a pair"),
    ({"padding": True}, TypeError, "padding must be an int or a pair"),
    ({"x": torch.randn(1, 4, 2, 8), "padding": 0}, ValueError, "smaller than the 3 x 3 kernel"),
    ({"x": torch.randn(1, 4, 8, 1), "padding": (1, 0)}, ValueError, "smaller than the 3 x 3 kernel"),
    ({"relu": 1}, TypeError, "relu must be a bool"),
    ({"backend": "cuda"}, ValueError, "backend must be one of"),
    ({"x": torch.randn(1, 4, 8, 8).half(), "w": torch.randn(5, 4, 3, 3).half(), "b": None,
      "backend": "cpp"}, TypeError, "x must be float32 or float64 for backend='cpp'"),
    ({"x": torch.randn(1, 4, 8, 8).double(), "w": torch.randn(5, 4, 3, 3).double(), "b": None,
      "backend": "triton"}, TypeError, "x must be float32, float16 or bfloat16 for backend='triton'"),
])
def test_bad_input_names_argument(args, exc, needle):
    with pytest.raises(exc, match=re.escape(needle)):
        _run(**args)


def test_mixed_devices_are_rejected_meta():
    """Checked without a GPU through the meta device, which every torch build has."""
    _, w, _ = make(1, 4, 5, 8, 8)
    with pytest.raises(ValueError, match="weight is on meta but x is on cpu"):
        _run(w=w.to("meta"))
    with pytest.raises(ValueError, match="weight_t is on meta"):
        _run(weight_t=torch.zeros(36, 5, 4, device="meta"))
    with pytest.raises(ValueError, match="bias is on meta"):
        _run(b=torch.zeros(5, device="meta"))


def test_the_op_checks_its_arguments(require_backend):
    """Graph passes call torch.ops.effseg.winograd_conv2d directly."""
    require_backend("cpp")
    x, w, b = make(1, 4, 5, 8, 8)
    with pytest.raises(ValueError, match=re.escape("weight_t must have shape")):
        torch.ops.effseg.winograd_conv2d(x, w, torch.zeros(36, 4, 5), b, 1, 1, False)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        torch.ops.effseg.winograd_conv2d(x, w, winograd_weight(w), b, -1, 1, False)


def test_winograd_weight_errors():
    with pytest.raises(ValueError, match=re.escape("weight must have shape (out_channels, in_channels, 3, 3)")):
        winograd_weight(torch.randn(2, 3, 5, 5))
    with pytest.raises(TypeError, match="weight must be float16"):
        winograd_weight(torch.zeros(2, 3, 3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        winograd_weight(torch.randn(2, 3, 3, 3), torch.int32)


def test_native_transforms_check_sizes(require_backend):
    require_backend("cpp")
    from effseg import _native

    lib = _native.require()
    v = torch.empty(36 * 4)
    vb = _native.buf(v)
    with pytest.raises(ValueError, match="tiles_h, tiles_w must be"):
        lib.winograd_input_transform("float32", vb, 1, 1, 8, 8, 1, 1, 3, 2, 0, 1, vb)
    with pytest.raises(ValueError, match="p0 <= p1"):
        lib.winograd_output_transform("float32", vb, 1, 0, 5, 1, 1, (0, 0), False, vb, 1, 4, 4)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        lib.winograd_input_transform("float16", (0, 0), 1, 1, 8, 8, 1, 1, 2, 2, 0, 0, (0, 0))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_finite_input_gives_the_reference_answer(require_backend, relu, bad, dtype):
    """One bad pixel: only the outputs whose 3x3 window holds it are non-finite, exactly
    as direct convolution; ReLU does not turn a NaN into 0."""
    require_backend("cpp")
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 13, 11, generator=g, dtype=dtype)
    w, b = torch.randn(7, 5, 3, 3, generator=g, dtype=dtype), torch.randn(7, generator=g, dtype=dtype)
    x[1, 2, 6, 5] = bad
    want = winograd_conv2d_ref(x, w, b, 1, relu)
    got = winograd_conv2d(x, w, b, 1, relu, backend="cpp")
    assert torch.equal(torch.isnan(got), torch.isnan(want)) and torch.equal(torch.isinf(got), torch.isinf(want))
    fin = torch.isfinite(want)
    assert (~fin).sum() <= 9 * 7 and torch.allclose(got[fin], want[fin], rtol=1e-5, atol=1e-5)


def test_huge_finite_input_does_not_overflow(require_backend):
    """|x| near 1e37: Winograd's transforms would overflow where the exact conv is finite."""
    require_backend("cpp")
    x = torch.full((1, 2, 8, 8), 1e37)
    w = torch.ones(1, 2, 3, 3) * 0.01
    want = winograd_conv2d_ref(x, w, None, 1)
    got = winograd_conv2d(x, w, None, 1, backend="cpp")
    assert torch.isfinite(want).all() and torch.isfinite(got).all()
    assert torch.allclose(got, want, rtol=1e-5)


def test_native_output_transform_reports_non_finite(require_backend):
    require_backend("cpp")
    from effseg import _native

    lib = _native.require()
    m, y = torch.zeros(36, 1, 1), torch.empty(1, 1, 4, 4)
    assert lib.winograd_output_transform("float32", _native.buf(m), 1, 0, 1, 1, 1, (0, 0), True,
                                         _native.buf(y), 1, 4, 4) is True
    m[7, 0, 0] = float("nan")
    assert lib.winograd_output_transform("float32", _native.buf(m), 1, 0, 1, 1, 1, (0, 0), True,
                                         _native.buf(y), 1, 4, 4) is False
