"""Forward parity of every linear-attention backend with linear_attention_ref."""
import pytest
import torch
from attention_cases import (
    KINDS,
    SHAPES,
    TRITON_SHAPES,
    assert_close,
    make_qkv,
    well_posed,
)

from effseg import _native
from effseg.ops import linear_attention, linear_attention_ref
from effseg.ops.linear_attention_ref import einsum_softplus, einsum_taylor, summary_ref

FP32_REL = 1e-5  # fp32 kernels vs the fp64 reference, relative to max |out|
FP64_REL = 1e-12
HALF_REL = {torch.float16: 2e-3, torch.bfloat16: 1e-2}  # ~4 ulps of the output's rounding


def _seeded(shape, kind, dtype=torch.float32, **kw):
    for seed in range(20):
        qkv = make_qkv(*shape, dtype=dtype, seed=seed, **kw)
        if well_posed(qkv[0], qkv[1], kind):
            return qkv
    raise AssertionError("no well-posed inputs")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-Ck{}-Cv{}-N{}".format(*s))
def test_cpp_matches_ref(kind, shape, require_backend):
    require_backend("cpp")
    q, k, v = _seeded(shape, kind)
    want = linear_attention_ref(q.double(), k.double(), v.double(), kind=kind)
    out = linear_attention(q, k, v, kind=kind, backend="cpp")
    assert out.dtype == torch.float32 and out.is_contiguous()
    assert_close(out, want, FP32_REL, f"cpp {kind} {shape}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(2, 3, 17, 100), (1, 17, 3, 33), (3, 17, 64, 531)])
def test_cpp_float64(kind, shape, require_backend):
    require_backend("cpp")
    q, k, v = _seeded(shape, kind, dtype=torch.float64)
    want = linear_attention_ref(q, k, v, kind=kind)
    out = linear_attention(q, k, v, kind=kind, backend="cpp")
    assert out.dtype == torch.float64
    assert_close(out, want, FP64_REL, f"cpp float64 {kind}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_cpp_half_inputs(kind, dtype, require_backend):
    require_backend("cpp")
    q, k, v = _seeded((2, 17, 33, 300), kind, dtype=dtype)
    want = linear_attention_ref(q.double(), k.double(), v.double(), kind=kind)
    out = linear_attention(q, k, v, kind=kind, backend="cpp")
    assert out.dtype == dtype
    assert_close(out, want, HALF_REL[dtype], f"cpp {dtype} {kind}")


@pytest.mark.parametrize("kind", KINDS)
def test_cpp_summary_and_eps(kind, require_backend):
    """The op's second output is the summary the backward reads; eps enters the
    denominator only (a large eps must change the output as the reference says)."""
    require_backend("cpp")
    q, k, v = _seeded((2, 5, 7, 77), kind, dtype=torch.float64)
    from effseg.ops.linear_attention import _linear_attention_op

    out, stats = _linear_attention_op(q, k, v, kind, 0.25, "cpp")
    assert_close(stats, summary_ref(k, v, kind), FP64_REL, "stats")
    assert_close(out, linear_attention_ref(q, k, v, kind=kind, eps=0.25), FP64_REL, "eps=0.25")


@pytest.mark.parametrize("kind", KINDS)
def test_cpp_thread_count_does_not_change_the_result(kind, require_backend):
    require_backend("cpp")
    C = _native.require()
    q, k, v = _seeded((3, 17, 40, 1500), kind)
    before = C.get_num_threads()
    try:
        C.set_num_threads(1)
        one = linear_attention(q, k, v, kind=kind, backend="cpp")
        C.set_num_threads(3)
        three = linear_attention(q, k, v, kind=kind, backend="cpp")
    finally:
        C.set_num_threads(before)
    want = linear_attention_ref(q.double(), k.double(), v.double(), kind=kind)
    assert_close(one, want, FP32_REL, "1 thread")
    assert_close(three, want, FP32_REL, "3 threads")


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_inputs(kind, require_backend):
    require_backend("cpp")
    q, k, v = _seeded((2, 9, 12, 50), kind)
    qt, kt, vt = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))
    assert not qt.is_contiguous()
    assert_close(linear_attention(qt, kt, vt, kind=kind, backend="cpp"),
                 linear_attention_ref(q, k, v, kind=kind), FP32_REL, "strided")


@pytest.mark.parametrize("backend", ["ref", "cpp", "triton"])
@pytest.mark.parametrize("kind", KINDS)
def test_zero_and_constant_inputs_give_no_nan(kind, backend, require_backend):
    require_backend(backend)
    B, Ck, Cv, N = 1, 3, 5, 37
    v = torch.randn(B, Cv, N)
    cases = {
        "zeros": (torch.zeros(B, Ck, N), torch.zeros(B, Ck, N)),
        "ones": (torch.ones(B, Ck, N), torch.ones(B, Ck, N)),
        "constant": (torch.full((B, Ck, N), -3.0), torch.full((B, Ck, N), -2.5)),
        "some zero columns": (torch.randn(B, Ck, N).index_fill_(2, torch.tensor([0, 5, 36]), 0.0),
                              torch.randn(B, Ck, N).index_fill_(2, torch.tensor([1, 5]), 0.0)),
    }
    for name, (q, k) in cases.items():
        out = linear_attention(q, k, v, kind=kind, backend=backend)
        assert bool(torch.isfinite(out).all()), f"{name}: NaN/Inf"
        assert_close(out, linear_attention_ref(q.double(), k.double(), v.double(), kind=kind),
                     FP32_REL, f"{backend} {name}")
    if kind == "taylor":
        # q = k = 0: every feature is zero and each output is the mean of v.
        out = linear_attention(torch.zeros(B, Ck, N), torch.zeros(B, Ck, N), v, kind=kind,
                               backend=backend)
        assert_close(out, v.mean(-1, keepdim=True).expand_as(v), FP32_REL, "mean of v")


@pytest.mark.parametrize("kind", KINDS)
def test_ref_equals_the_geoseg_einsum_formulation(kind):
    """The reference is GeoSeg's computation (on inputs without zero columns)."""
    q, k, v = make_qkv(2, 6, 10, 49, dtype=torch.float64, seed=3)
    geoseg = einsum_taylor if kind == "taylor" else einsum_softplus
    assert_close(linear_attention_ref(q, k, v, kind=kind), geoseg(q, k, v), FP64_REL, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", TRITON_SHAPES, ids=lambda s: "B{}-Ck{}-Cv{}-N{}".format(*s))
def test_triton_matches_ref(kind, shape, require_backend):
    require_backend("triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v = _seeded(shape, kind, device=dev)
    want = linear_attention_ref(q.double(), k.double(), v.double(), kind=kind)
    out = linear_attention(q, k, v, kind=kind, backend="triton")
    assert out.dtype == torch.float32
    assert_close(out, want, FP32_REL, f"triton {kind} {shape}")


@pytest.mark.parametrize("kind", KINDS)
def test_triton_float16_and_float64(kind, require_backend):
    require_backend("triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v = _seeded((2, 5, 18, 40), kind, dtype=torch.float16, device=dev)
    want = linear_attention_ref(q.double(), k.double(), v.double(), kind=kind)
    out = linear_attention(q, k, v, kind=kind, backend="triton")
    assert out.dtype == torch.float16
    assert_close(out, want, HALF_REL[torch.float16], "triton float16")
    q, k, v = (x.double() for x in (q, k, v))
    assert_close(linear_attention(q, k, v, kind=kind, backend="triton"), want, FP64_REL,
                 "triton float64")


def test_auto_picks_cpp_on_cpu(require_backend, monkeypatch):
    require_backend("cpp")
    import importlib

    la = importlib.import_module("effseg.ops.linear_attention")  # the attribute is the function

    calls = []
    real = la._cpp_fwd
    monkeypatch.setattr(la, "_cpp_fwd", lambda *a: calls.append(1) or real(*a))
    q, k, v = make_qkv(1, 2, 3, 4)
    linear_attention(q, k, v, kind="taylor")
    assert calls == [1]


_BASELINE_SCRIPT = """
import torch
from effseg import _native
from effseg.ops import linear_attention, linear_attention_ref
import sys
assert _native.require().linear_attention_simd() in sys.argv[1].split(","), _native.require().linear_attention_simd()
torch.manual_seed(0)
worst = 0.0
for dtype in (torch.float32, torch.float64):
    for kind in ("taylor", "softplus"):
        q, k = torch.randn(2, 17, 301, dtype=dtype), torch.randn(2, 17, 301, dtype=dtype)
        v = torch.randn(2, 9, 301, dtype=dtype)
        for t in (q, k, v):
            t.requires_grad_(True)
        out = linear_attention(q, k, v, kind=kind, backend="cpp")
        g = torch.randn_like(out)
        got = (out, *torch.autograd.grad(out, (q, k, v), g))
        ref = linear_attention_ref(q.double(), k.double(), v.double(), kind=kind)
        want = (ref, *torch.autograd.grad(ref, (q, k, v), g.double()))
        for a, b in zip(got, want):
            worst = max(worst, float((a.double() - b).abs().max() / b.abs().max()))
print(worst)
"""


def _avx2_cpu() -> bool:
    from pathlib import Path

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return " avx2" in flags and " fma" in flags


@pytest.mark.parametrize("simd, names", [("sse2", "sse2,neon"), ("avx2", "avx2+fma")])
def test_cpp_capped_instruction_set(simd, names, require_backend):
    """The builds below the widest one this CPU runs (the x86-64 baseline, 16-byte
    vectors, and AVX2 + FMA, 32-byte, under the AVX-512 one), which EFFSEG_SIMD selects,
    give the same results (run in a fresh process: the instruction set is chosen once per
    process). Ck = 17 floats takes the AVX-512 build where it is not capped."""
    require_backend("cpp")
    import os
    import subprocess
    import sys
    import tempfile

    if simd == "avx2" and not _avx2_cpu():
        pytest.skip("this CPU has no AVX2 + FMA")
    env = dict(os.environ, EFFSEG_SIMD=simd)
    res = subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT, names], env=env, capture_output=True,
                         text=True, timeout=300, check=False,
                         cwd=tempfile.gettempdir())  # not the checkout: its effseg has no _C
    assert res.returncode == 0, res.stderr[-2000:]
    assert float(res.stdout.strip().splitlines()[-1]) < 2e-5


def test_eager_inference_skips_the_dispatcher_but_not_autograd(require_backend, monkeypatch):
    """Without gradients the kernel is called directly; with them the custom op (and its
    autograd) runs. Both give the same values."""
    require_backend("cpp")
    import importlib

    la = importlib.import_module("effseg.ops.linear_attention")
    q, k, v = make_qkv(2, 3, 5, 40)
    calls = []
    real = la._linear_attention_op
    monkeypatch.setattr(la, "_linear_attention_op", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        fast = linear_attention(q, k, v, kind="softplus", backend="cpp")
    assert calls == []
    vg = v.clone().requires_grad_(True)
    slow = linear_attention(q, k, vg, kind="softplus", backend="cpp")
    assert calls == [1] and slow.grad_fn is not None
    assert torch.equal(fast, slow.detach())
