"""Forward parity of every selective-scan backend with selective_scan_ref."""
import itertools

import pytest
import torch
from scan_cases import FLAG_NAMES, assert_close, call, make_inputs

from effseg.ops import selective_scan, selective_scan_chunked, selective_scan_ref

FP32_REL = 1e-4
HALF_REL = {torch.float16: 4e-3, torch.bfloat16: 2e-2}
GRID = list(itertools.product([1, 7, 63, 1000], [1, 4, 16], [1, 2, 4]))
# Every flag subset appears across the grid: case i switches flag k on when bit k of i is set.
FLAG_SETS = [tuple(f for k, f in enumerate(FLAG_NAMES) if (i * 7 + 3) >> k & 1) for i in range(len(GRID))]


def _forms(groups, i):
    """Cycle B/C through constant, variable and grouped forms (mixed forms too)."""
    forms = ["const", "var", groups]
    return forms[i % 3], forms[(i // 3) % 3] if groups > 1 else forms[(i + 1) % 3]


@pytest.mark.parametrize("backend", ["cpp", "chunked"])
@pytest.mark.parametrize("case", range(len(GRID)), ids=lambda i: "L{}-N{}-G{}".format(*GRID[i]))
def test_forward_matches_ref(backend, case, require_backend):
    require_backend(backend)
    length, n, groups = GRID[case]
    b_form, c_form = _forms(groups, case)
    kw = make_inputs(bt=2, dm=4, length=length, n=n, b_form=b_form, c_form=c_form,
                     flags=FLAG_SETS[case], seed=case)
    y_ref, h_ref = call(selective_scan_ref, kw)
    y, h = call(selective_scan, kw, backend=backend)
    assert y.dtype == kw["u"].dtype and h.dtype == torch.float32
    assert_close(y, y_ref, FP32_REL, f"y {backend} {b_form}/{c_form} {FLAG_SETS[case]}")
    assert_close(h, h_ref, FP32_REL, "last_state")


TRITON_GRID = [(1, 4, 1), (7, 1, 2), (63, 16, 4), (33, 4, 2), (1000, 16, 1), (300, 3, 4)]


@pytest.mark.parametrize("case", range(len(TRITON_GRID)))
def test_triton_forward_matches_ref(case, require_backend):
    require_backend("triton")
    length, n, groups = TRITON_GRID[case]
    b_form, c_form = _forms(groups, case)
    kw = make_inputs(bt=2, dm=4, length=length, n=n, b_form=b_form, c_form=c_form,
                     flags=FLAG_SETS[case * 5], seed=case)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    kw = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    y_ref, h_ref = call(selective_scan_ref, kw)
    y, h = call(selective_scan, kw, backend="triton")
    assert_close(y.cpu(), y_ref.cpu(), FP32_REL, f"y triton {b_form}/{c_form}")
    assert_close(h.cpu(), h_ref.cpu(), FP32_REL, "last_state triton")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", ["cpp", "chunked", "triton"])
def test_half_inputs_use_fp32_state(dtype, backend, require_backend):
    require_backend(backend)
    dev = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    kw = make_inputs(bt=1, dm=6, length=50, n=8, b_form=2, c_form="var", dtype=dtype, device=dev)
    y_ref, h_ref = call(selective_scan_ref, kw)
    y, h = call(selective_scan, kw, backend=backend)
    assert y.dtype == dtype and h.dtype == torch.float32
    assert_close(y, y_ref, HALF_REL[dtype], f"{dtype} y")
    assert_close(h, h_ref, 1e-4, f"{dtype} last_state")


def test_half_result_close_to_fp64_truth():
    """The fp32 state keeps half inputs accurate: compare against fp64 on the same values."""
    kw = make_inputs(bt=1, dm=4, length=300, n=16, dtype=torch.bfloat16)
    kw64 = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    y, _ = call(selective_scan, kw)
    y64, _ = call(selective_scan_ref, kw64)
    assert_close(y, y64, HALF_REL[torch.bfloat16], "bf16 vs fp64")


def test_return_last_state_off_returns_tensor():
    kw = make_inputs()
    init = kw.pop("initial_state")
    y = selective_scan(**{k: kw[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")},
                       delta_softplus=kw["delta_softplus"], initial_state=init)
    assert isinstance(y, torch.Tensor) and y.shape == kw["u"].shape


def test_initial_state_continues_a_split_sequence():
    """Scanning L in two halves with the carried state equals one scan over L."""
    kw = make_inputs(length=40, flags=("D", "softplus", "delta_bias"))
    y_full, h_full = call(selective_scan, kw)
    first = {k: (v[..., :25] if k in ("u", "delta") or (k in ("B", "C") and v.dim() > 2) else v)
             for k, v in kw.items()}
    second = {k: (v[..., 25:] if k in ("u", "delta") or (k in ("B", "C") and v.dim() > 2) else v)
              for k, v in kw.items()}
    y1, h1 = call(selective_scan, first)
    second["initial_state"] = h1
    y2, h2 = call(selective_scan, second)
    assert_close(torch.cat([y1, y2], -1), y_full, FP32_REL, "split y")
    assert_close(h2, h_full, FP32_REL, "split last state")


def test_chunked_stable_for_long_sharp_decay():
    """Long L with large dt*|A|: the masked chunk form must stay finite and accurate."""
    kw = make_inputs(bt=1, dm=3, length=3000, n=16, dtype=torch.float64, flags=("softplus",))
    kw["delta"] = kw["delta"] * 4 + 2
    kw["A"] = kw["A"] * 8
    y64, _ = call(selective_scan_ref, kw)
    kw32 = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    y, _ = call(selective_scan_chunked, kw32, chunk_size=64)
    assert torch.isfinite(y).all()
    assert_close(y, y64, FP32_REL, "chunked long L")


def test_chunk_size_does_not_change_result():
    kw = make_inputs(length=77, n=4)
    ys = [call(selective_scan_chunked, kw, chunk_size=c)[0] for c in (1, 5, 16, 77, 200)]
    for y in ys[1:]:
        assert_close(y, ys[0], FP32_REL, "chunk size")


@pytest.mark.parametrize("length", [1, 8, 13])
def test_cpp_softplus_is_accurate_over_its_whole_range(length, require_backend):
    """The C++ kernel's own softplus (exp + a fitted log1p polynomial) against fp64, across
    the exp clamp, 0 and the x > 20 cut-off. With A = 0, B = C = 1 the state is the running
    sum of dt*u; u = 1 at the last step only makes y there dt itself. One value per
    channel, in a vector lane (length 8), a scalar tail (1) or both (13)."""
    require_backend("cpp")
    x = torch.cat([torch.tensor([-150.0, -87.5, -87.0, -30.0, -20.0, -1e-3, 0.0, 1e-3, 19.99,
                                 20.0, 20.01, 60.0, 1e30]),
                   torch.linspace(-25, 25, 1001, dtype=torch.float64).float()])
    dm = x.numel()
    delta = x[None, :, None].expand(1, dm, length).contiguous()
    u = torch.zeros(1, dm, length)
    u[..., -1] = 1.0
    y = selective_scan(u, delta, torch.zeros(dm, 1), torch.ones(dm, 1), torch.ones(dm, 1),
                       delta_softplus=True, backend="cpp")[0, :, -1].double()
    want = torch.nn.functional.softplus(x.double(), threshold=1e9)
    tiny = want < torch.finfo(torch.float32).tiny  # exp(x) clamped: at most FLT_MIN, not 0
    assert tiny.sum() == 2 and (y[tiny] <= torch.finfo(torch.float32).tiny).all()
    rel = ((y - want).abs() / want)[~tiny].max()
    assert rel <= 4e-7, f"softplus max relative error {rel:.2e} (fp32 eps 6e-8)"
