"""Bad input raises an error that names the argument."""
import pytest
import torch
from scan_cases import call, make_inputs

from effseg.ops import selective_scan


def _run(**changes):
    kw = make_inputs(bt=2, dm=4, length=5, n=3, b_form="var", c_form="var")
    kw.update(changes)
    return call(selective_scan, kw)


@pytest.mark.parametrize("changes,exc,needle", [
    (dict(u=torch.randn(2, 4)), ValueError, "u must be 3-D"),
    (dict(u=torch.randn(2, 4, 5).to(torch.int64)), TypeError, "u must be float16"),
    (dict(u=[[1.0]]), TypeError, "u must be a torch.Tensor"),
    (dict(delta=torch.randn(2, 4, 6)), ValueError, "delta must have shape"),
    (dict(A=torch.randn(5, 3)), ValueError, "A must have shape (dim, dstate)"),
    (dict(A=torch.randn(4, 3, dtype=torch.complex64)), TypeError, "A must be real"),
    (dict(B=torch.randn(2, 3, 6)), ValueError, "B must have shape (batch, dstate, seqlen)"),
    (dict(C=torch.randn(4, 2)), ValueError, "C must have shape (dim, dstate)"),
    (dict(B=torch.randn(2, 3, 3, 5)), ValueError, "B has 3 groups but dim D=4"),
    (dict(C=torch.randn(2, 2, 4, 5)), ValueError, "C must have shape (batch, groups, dstate, seqlen)"),
    (dict(B=torch.randn(2, 1, 1, 3, 5)), ValueError, "B must be 2-D or 3-D or 4-D"),
    (dict(D=torch.randn(3)), ValueError, "D must have shape"),
    (dict(z=torch.randn(2, 4, 4)), ValueError, "z must have shape"),
    (dict(delta_bias=torch.randn(4, 1)), ValueError, "delta_bias must be 1-D"),
    (dict(initial_state=torch.randn(2, 4, 2)), ValueError, "initial_state must have shape"),
    (dict(delta=torch.full((2, 4, 5), float("nan"))), ValueError, "delta contains NaN"),
    (dict(delta=torch.full((2, 4, 5), float("inf"))), ValueError, "delta contains NaN or Inf"),
    (dict(u=torch.randn(2, 4, 0), delta=torch.randn(2, 4, 0)), ValueError, "every size >= 1"),
])
def test_bad_input_names_argument(changes, exc, needle):
    with pytest.raises(exc, match=needle.replace("(", r"\(").replace(")", r"\)")):
        _run(**changes)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of"):
        call(selective_scan, make_inputs(), backend="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mixed devices need a CUDA device")
def test_mixed_devices_are_rejected():
    kw = make_inputs()
    kw["A"] = kw["A"].cuda()
    with pytest.raises(ValueError, match="A is on cuda"):
        call(selective_scan, kw)


def test_mixed_devices_are_rejected_meta():
    """Checked without a GPU through the meta device, which every torch build has."""
    kw = make_inputs()
    kw["D"] = kw["D"].to("meta")
    with pytest.raises(ValueError, match="D is on meta but u is on cpu"):
        call(selective_scan, kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_triton_on_cpu_without_interpreter_is_explained(monkeypatch):
    import effseg._triton as T

    monkeypatch.setattr(T, "interpreting", lambda: False)
    with pytest.raises((ValueError, RuntimeError), match="triton"):
        call(selective_scan, make_inputs(), backend="triton")


@pytest.mark.parametrize("backend", ["cpp", "chunked"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("softplus", [True, False])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_one_non_finite_delta_anywhere_is_rejected(backend, dtype, softplus, bad, require_backend):
    """The C++ kernel checks delta as it reads it (no separate pass): one bad value in the
    last channel's last step (a vector tail at L=37) must still be found."""
    require_backend(backend)
    kw = make_inputs(bt=2, dm=3, length=37, n=4, dtype=dtype,
                     flags=("z", "D", "delta_bias") + (("softplus",) if softplus else ()))
    kw["delta"][1, 2, 36] = bad
    with pytest.raises(ValueError, match="delta contains NaN or Inf"):
        call(selective_scan, kw, backend=backend)
    kw["delta"][1, 2, 36] = 0.1
    y, _ = call(selective_scan, kw, backend=backend)  # the flag does not stick
    assert torch.isfinite(y).all()


def test_native_forward_reports_non_finite_delta(require_backend):
    """The binding's own answer, without the Python wrapper in between."""
    require_backend("cpp")
    from effseg.ops.selective_scan import _cpp_fwd

    kw = make_inputs(bt=1, dm=2, length=20, n=16, flags=("softplus",))
    args = [kw[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")]
    _cpp_fwd(*args, True)
    args[1] = args[1].clone()
    args[1][0, 1, 19] = float("nan")
    with pytest.raises(ValueError, match="delta contains NaN or Inf"):
        _cpp_fwd(*args, True)
