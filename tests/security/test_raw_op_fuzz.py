"""torch.ops.effseg.* called directly with inconsistent arguments raises a clean Python
exception: never a crash (a segfault kills pytest), never a returned result."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import effseg  # noqa: F401  (registers the ops)
from effseg.ops.cross_selective_scan import cross_scan_maps

CLEAN = (ValueError, TypeError, RuntimeError)
FUZZ = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
ops = torch.ops.effseg


def _broken(shape, how, by):
    """shape with one size changed by `by` (how = dim index), or its rank changed."""
    if how == "drop":
        return shape[:-1]
    if how == "add":
        return (*shape, 1)
    s = list(shape)
    s[how % len(s)] = max(0, s[how % len(s)] + by)
    return tuple(s) if tuple(s) != tuple(shape) else (*shape[:-1], shape[-1] + 1)


def _raises(fn, *args):
    with pytest.raises(CLEAN):
        fn(*args)


HOW = st.sampled_from([0, 1, 2, 3, "drop", "add"])
BY = st.sampled_from([-3, -1, 1, 5])


@pytest.fixture(autouse=True)
def _cpp(require_backend):
    require_backend("cpp")


@FUZZ
@given(which=st.sampled_from("kv"), how=HOW, by=BY, n=st.integers(1, 64), kind=st.sampled_from(["taylor", "softplus"]))
def test_linear_attention(which, how, by, n, kind):
    shapes = {"q": (2, 4, n), "k": (2, 4, n), "v": (2, 3, n)}
    if which == "v" and how == 1:
        how = 0  # v's channel count is free
    shapes[which] = _broken(shapes[which], how, by)
    q, k, v = (torch.randn(shapes[x]) for x in "qkv")
    _raises(ops.linear_attention, q, k, v, kind, 1e-6, "cpp")


def test_linear_attention_audit_reproducer():
    q, k, v = torch.randn(1, 4, 4096), torch.randn(1, 1, 1), torch.randn(1, 4, 4096)
    with pytest.raises(ValueError, match="k has 1 channels but q has 4"):
        ops.linear_attention(q, k, v, "taylor", 1e-6, "cpp")


@FUZZ
@given(which=st.sampled_from(["dout", "out", "stats", "k"]), how=HOW, by=BY)
def test_linear_attention_backward(which, how, by):
    t = {"dout": (2, 3, 9), "q": (2, 4, 9), "k": (2, 4, 9), "v": (2, 3, 9), "out": (2, 3, 9),
         "stats": (2, 4, 5)}
    t[which] = _broken(t[which], how, by)
    x = {name: torch.randn(s) for name, s in t.items()}
    _raises(ops.linear_attention_bwd, x["dout"], x["q"], x["k"], x["v"], x["out"], x["stats"],
            "taylor", 1e-6, "cpp")


@FUZZ
@given(which=st.sampled_from(["weight", "bias", "x"]), how=HOW, by=BY,
       dtype=st.sampled_from([torch.float32, torch.int32]))
def test_depthwise_conv2d(which, how, by, dtype):
    shapes = {"x": (1, 8, 10, 10), "weight": (8, 1, 3, 3), "bias": (8,)}
    if which == "x" and how in (0, 2, 3):
        how = 1  # x's batch and spatial sizes are free
    if dtype == torch.float32:
        shapes[which] = _broken(shapes[which], how, by)
    t = {k: torch.randn(s) for k, s in shapes.items()}
    t[which] = t[which].to(dtype)
    _raises(ops.depthwise_conv2d, t["x"], t["weight"], t["bias"], [1, 1], [1, 1, 1, 1], [1, 1], 0, "cpp")


@pytest.mark.parametrize("stride,padding,dilation,act", [
    ([0, 1], [1, 1, 1, 1], [1, 1], 0), ([1], [1, 1, 1, 1], [1, 1], 0),
    ([1, 1], [1, 0, 1, 1], [1, 1], 0), ([1, 1], [-1, 1, 1, 1], [1, 1], 0),
    ([1, 1], [1, 1, 1, 1], [1, 0], 0), ([1, 1], [1, 1, 1, 1], [1, 1], 9),
    ([1, 1], [0, 0, 0, 0], [9, 9], 0),
])
def test_depthwise_conv2d_geometry(stride, padding, dilation, act):
    x, w = torch.randn(1, 8, 10, 10), torch.randn(8, 1, 3, 3)
    _raises(ops.depthwise_conv2d, x, w, None, stride, padding, dilation, act, "cpp")


def _scan_inputs(bt=2, dm=8, n=4, length=16):
    return {"u": (bt, dm, length), "delta": (bt, dm, length), "A": (dm, n), "B": (bt, n, length),
            "C": (bt, n, length), "D": (dm,), "z": (bt, dm, length), "delta_bias": (dm,),
            "initial_state": (bt, dm, n)}


@FUZZ
@given(which=st.sampled_from(list(_scan_inputs())), how=HOW, by=BY)
def test_selective_scan(which, how, by):
    shapes = _scan_inputs()
    shapes[which] = _broken(shapes[which], how, by)
    if which in ("B", "C") and len(shapes[which]) == 2 and shapes[which] == (8, 4):
        shapes[which] = (8, 5)  # (dim, dstate) is a valid constant B / C
    t = {k: torch.randn(s) for k, s in shapes.items()}
    _raises(ops.selective_scan, *t.values(), True, "cpp")


@FUZZ
@given(which=st.sampled_from(["dout", "dlast", "A"]), how=HOW, by=BY)
def test_selective_scan_backward(which, how, by):
    shapes = {"dout": (2, 8, 16), "dlast": (2, 8, 4), **_scan_inputs()}
    shapes[which] = _broken(shapes[which], how, by)
    t = {k: torch.randn(s) for k, s in shapes.items()}
    _raises(ops.selective_scan_bwd, *t.values(), True, "cpp")


def test_selective_scan_short_A_reproducer():
    u = torch.randn(1, 64, 32)
    with pytest.raises(ValueError, match=r"A must have shape \(dim, dstate\) = \(64, N\)"):
        ops.selective_scan(u, u.abs(), -torch.rand(1, 16), torch.randn(1, 16, 32),
                           torch.randn(1, 16, 32), None, None, None, None, False, "cpp")


@FUZZ
@given(which=st.sampled_from(["u", "delta", "A", "B", "C", "D", "tmap"]), how=HOW, by=BY)
def test_cross_selective_scan(which, how, by):
    shapes = {"u": (1, 4, 16), "delta": (1, 16, 16), "A": (16, 3), "B": (1, 4, 3, 16),
              "C": (1, 4, 3, 16), "D": (16,)}
    if which != "tmap":
        shapes[which] = _broken(shapes[which], how, by)
    t = {k: torch.randn(s) for k, s in shapes.items()}
    tmap = cross_scan_maps(4, 4)
    if which == "tmap":
        tmap = torch.zeros(_broken(tuple(tmap.shape), how, by), dtype=torch.int32)
    _raises(ops.cross_selective_scan, *t.values(), None, tmap, True, "cpp")


def test_cross_scan_cpp_refuses_non_permutation():
    t = [torch.randn(s) for s in ((1, 4, 16), (1, 16, 16), (16, 3), (1, 4, 3, 16), (1, 4, 3, 16))]
    tmap = cross_scan_maps(4, 4).clone()
    tmap[0, 0] = 99
    with pytest.raises(ValueError, match="permutations"):
        ops.cross_selective_scan(*t, None, None, tmap, True, "cpp")


@pytest.mark.parametrize("mask,sy", [(torch.zeros(5), 1.0), (torch.zeros(3, 3), 0.0),
                                     (torch.zeros(3, 3), float("nan")), (torch.zeros(3, 3, dtype=torch.complex64), 1.0)])
def test_distance_transform(mask, sy):
    _raises(ops.distance_transform, mask, sy, 1.0, "cpp")


@FUZZ
@given(which=st.sampled_from(["weight", "weight_t", "bias"]), how=HOW, by=BY)
def test_winograd_conv2d(which, how, by):
    shapes = {"x": (1, 3, 8, 8), "weight": (4, 3, 3, 3), "weight_t": (36, 4, 3), "bias": (4,)}
    shapes[which] = _broken(shapes[which], how, by)
    t = {k: torch.randn(s) for k, s in shapes.items()}
    _raises(ops.winograd_conv2d, *t.values(), 1, 1, False)


# ---- effseg._C: every buffer carries its element count, checked before the kernel runs

def _native_cases():
    from native_cases import all_cases

    return all_cases()


def test_native_cases_are_valid():
    """Unbroken, every case runs: the fuzz below breaks exactly one buffer."""
    from effseg import _native

    cases = _native_cases()
    assert len(cases) == 9  # test_native_buffer_too_short runs each
    for name, args, _, _keep in cases:
        getattr(_native.require(), name)(*args)


@pytest.mark.parametrize("case", range(9))
@FUZZ
@given(data=st.data(), short=st.sampled_from([1, 2, 7, 10**6]), absent=st.booleans())
def test_native_buffer_too_short(case, data, short, absent):
    from effseg import _native

    name, args, bufs, _keep = _native_cases()[case]
    # Absent (0, 0) is valid for optional buffers; the first buffer is always required.
    i = bufs[0] if absent else data.draw(st.sampled_from(bufs), label="buffer")
    addr, n = args[i]
    args[i] = (0, 0) if absent else (addr, max(0, n - short))
    with pytest.raises(ValueError):
        getattr(_native.require(), name)(*args)


@pytest.mark.parametrize("count", [-1, -(2**62)])
def test_native_negative_count(count):
    from effseg import _native

    name, args, bufs, _keep = _native_cases()[0]
    args[bufs[0]] = (args[bufs[0]][0], count)
    with pytest.raises(ValueError, match="element count must be >= 0"):
        getattr(_native.require(), name)(*args)


def test_native_size_overflow_is_refused():
    """Sizes whose product wraps int64 must not make a small buffer look large enough."""
    from effseg import _native

    x = torch.empty(16)
    with pytest.raises(ValueError, match="too large|holds"):
        _native.require().linear_attention_fwd("float32", 2**32, 2**32, 1, 4, "taylor", 1e-6,
                                               *[_native.buf(x)] * 5)
