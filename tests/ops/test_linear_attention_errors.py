"""Argument errors of linear_attention name the argument and what was expected."""
import pytest
import torch
from attention_cases import make_qkv

from effseg.ops import linear_attention


def _qkv():
    return make_qkv(2, 4, 6, 10)


def test_rank_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="q must be 3-D"):
        linear_attention(q[0], k, v, kind="taylor")
    with pytest.raises(ValueError, match="k must be 3-D"):
        linear_attention(q, k.unsqueeze(0), v, kind="taylor")
    with pytest.raises(ValueError, match="v must be 3-D"):
        linear_attention(q, k, v.flatten(1), kind="taylor")


def test_shape_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="k has 3 channels but q has 4"):
        linear_attention(q, k[:, :3], v, kind="taylor")
    with pytest.raises(ValueError, match=r"k must have shape \(batch, Ck, N\)"):
        linear_attention(q, k[:1], v, kind="taylor")
    with pytest.raises(ValueError, match=r"k must have shape \(batch, Ck, N\)"):
        linear_attention(q, k[..., :9], v, kind="taylor")
    with pytest.raises(ValueError, match="v must have shape"):
        linear_attention(q, k, v[:1], kind="taylor")
    with pytest.raises(ValueError, match="v must have shape"):
        linear_attention(q, k, v[..., :9], kind="softplus")
    with pytest.raises(ValueError, match="q must have every size >= 1"):
        linear_attention(q[..., :0], k[..., :0], v[..., :0], kind="taylor")


def test_kind_eps_backend_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="kind must be one of 'taylor', 'softplus'"):
        linear_attention(q, k, v, kind="softmax")
    with pytest.raises(TypeError, match="kind"):
        linear_attention(q, k, v)
    for bad in (0.0, -1e-6, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be a finite number > 0"):
            linear_attention(q, k, v, kind="taylor", eps=bad)
    with pytest.raises(TypeError, match="eps must be a float"):
        linear_attention(q, k, v, kind="taylor", eps=torch.tensor(1e-6))
    with pytest.raises(ValueError, match="backend must be one of"):
        linear_attention(q, k, v, kind="taylor", backend="cuda")


def test_dtype_errors():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="q must be float16, bfloat16, float32 or float64"):
        linear_attention(q.long(), k, v, kind="taylor")
    with pytest.raises(TypeError, match="v must be float16"):
        linear_attention(q, k, v.int(), kind="taylor")
    with pytest.raises(TypeError, match="k must be a torch.Tensor"):
        linear_attention(q, k.numpy(), v, kind="taylor")
    with pytest.raises(TypeError, match="k is torch.float64 but q is torch.float32"):
        linear_attention(q, k.double(), v, kind="taylor")


def test_device_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="v is on meta but q is on cpu"):
        linear_attention(q, k, v.to("meta"), kind="taylor")
    with pytest.raises(ValueError, match="backend='cpp' runs on CPU tensors"):
        linear_attention(*(x.to("meta") for x in (q, k, v)), kind="taylor", backend="cpp")


def test_kernel_checks_its_own_arguments(require_backend):
    """The C++ entry points refuse bad sizes / kind / eps even when called directly."""
    require_backend("cpp")
    from effseg import _native

    C = _native.require()
    q, k, v = _qkv()
    out, stats = torch.empty(2, 6, 10), torch.empty(2, 7, 5)
    ptrs = tuple(_native.buf(t) for t in (q, k, v, out, stats))
    with pytest.raises(ValueError, match="kind must be 'taylor' or 'softplus'"):
        C.linear_attention_fwd("float32", 2, 4, 6, 10, "elu", 1e-6, *ptrs)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        C.linear_attention_fwd("float32", 2, 4, 6, 10, "taylor", 0.0, *ptrs)
    with pytest.raises(ValueError, match="must all be >= 1"):
        C.linear_attention_fwd("float32", 2, 0, 6, 10, "taylor", 1e-6, *ptrs)
    with pytest.raises(ValueError, match="dtype must be"):
        C.linear_attention_fwd("float16", 2, 4, 6, 10, "taylor", 1e-6, *ptrs)
    with pytest.raises(ValueError, match="out is required"):
        C.linear_attention_fwd("float32", 2, 4, 6, 10, "taylor", 1e-6, *ptrs[:3], (0, 0), (0, 0))
    C.linear_attention_fwd("float32", 2, 4, 6, 10, "taylor", 1e-6, *ptrs)
    g = torch.randn(2, 6, 10)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    with pytest.raises(ValueError, match="stats do not come from a forward over N = 9"):
        C.linear_attention_bwd("float32", 2, 4, 6, 9, "taylor", 1e-6, *ptrs,
                               *(_native.buf(t) for t in (g, dq, dk, dv)))
