"""distance_transform: argument errors, the custom op's fake kernel, torch.compile."""
import numpy as np
import pytest
import torch
from dt_cases import assert_edt_close, blob_mask, scipy_edt

from effseg.ops import distance_transform


@pytest.mark.parametrize("mask,exc,needle", [
    (np.zeros((4, 4)), TypeError, "mask must be a torch.Tensor"),
    (torch.zeros(5, dtype=torch.bool), ValueError, r"mask must be \(\.\.\., H, W\) with at least 2 dims"),
    (torch.zeros((), dtype=torch.bool), ValueError, "mask must be"),
    (torch.zeros(3, 3, dtype=torch.complex64), TypeError, "mask must be bool, integer or real"),
    (torch.tensor([[0.0, float("nan")], [1.0, 0.0]]), ValueError, "mask contains NaN"),
    (torch.tensor([[0.0, float("nan")]], dtype=torch.float16), ValueError, "mask contains NaN"),
])
def test_bad_mask(mask, exc, needle):
    with pytest.raises(exc, match=needle):
        distance_transform(mask)


@pytest.mark.parametrize("spacing,exc,needle", [
    (0.0, ValueError, "spacing must be finite and > 0"),
    (-1.0, ValueError, "spacing must be finite and > 0"),
    ((1.0, float("inf")), ValueError, "spacing must be finite and > 0"),
    ((1.0, float("nan")), ValueError, "spacing must be finite and > 0"),
    ((1.0, 2.0, 3.0), ValueError, r"spacing must be one number or a pair \(sy, sx\), got 3"),
    ((1.0,), ValueError, "spacing must be one number or a pair"),
    ("1", TypeError, "spacing must be None, a number or a pair"),
    (True, TypeError, "spacing must be None, a number or a pair"),
    ((1.0, None), TypeError, "spacing values must be real numbers"),
])
def test_bad_spacing(spacing, exc, needle):
    with pytest.raises(exc, match=needle):
        distance_transform(torch.zeros(3, 3, dtype=torch.bool), spacing=spacing)


def test_spacing_accepts_ints_and_lists(require_backend):
    require_backend("cpp")
    m = blob_mask((12, 14), cell=4, seed=1)
    assert torch.equal(distance_transform(m, spacing=[2, 3]), distance_transform(m, spacing=(2.0, 3.0)))
    assert torch.equal(distance_transform(m, spacing=2), distance_transform(m, spacing=(2.0, 2.0)))


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'ref', 'cpp', 'triton'"):
        distance_transform(torch.zeros(3, 3, dtype=torch.bool), backend="cuda")


def test_cpp_backend_rejects_non_cpu_tensors():
    """Checked without a GPU through the meta device, which every torch build has."""
    with pytest.raises(ValueError, match="backend='cpp' runs on CPU tensors, got a mask on meta"):
        distance_transform(torch.zeros(3, 3, dtype=torch.bool, device="meta"), backend="cpp")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpp_backend_rejects_cuda_tensors():
    with pytest.raises(ValueError, match="backend='cpp' runs on CPU tensors, got a mask on cuda"):
        distance_transform(torch.zeros(3, 3, dtype=torch.bool, device="cuda"), backend="cpp")


def test_fake_kernel_shape_and_dtype():
    m = torch.zeros(2, 3, 7, 5, dtype=torch.uint8, device="meta")
    out = torch.ops.effseg.distance_transform(m, 1.0, 1.0, "auto")
    assert out.shape == m.shape and out.dtype == torch.float32 and out.device.type == "meta"


def test_opcheck(require_backend):
    require_backend("cpp")
    m = blob_mask((2, 9, 11), cell=4, seed=2)
    torch.library.opcheck(torch.ops.effseg.distance_transform.default, (m, 1.0, 2.0, "cpp"))


def test_torch_compile_fullgraph(require_backend):
    require_backend("cpp")

    def boundary_weight(mask, logits):
        d = distance_transform(mask, spacing=(1.0, 0.5))
        return (logits * torch.exp(-d)).sum()

    m = blob_mask((2, 17, 23), cell=4, seed=3)
    logits = torch.randn(2, 17, 23, requires_grad=True)
    compiled = torch.compile(boundary_weight, fullgraph=True, backend="aot_eager")
    got = compiled(m, logits)
    torch.testing.assert_close(got, boundary_weight(m, logits))
    got.backward()  # gradients reach the logits; none is asked of the mask
    torch.testing.assert_close(logits.grad, torch.exp(-distance_transform(m, spacing=(1.0, 0.5))))
    assert_edt_close(distance_transform(m, spacing=(1.0, 0.5)), scipy_edt(m, (1.0, 0.5)))


@pytest.mark.slow  # covered by the aot_eager test above; inductor compiles for seconds
def test_torch_compile_inductor(require_backend):
    require_backend("cpp")
    m = blob_mask((3, 16, 16), cell=4, seed=4)
    compiled = torch.compile(lambda x: distance_transform(x) * 2.0, fullgraph=True)
    torch.testing.assert_close(compiled(m), distance_transform(m) * 2.0)
