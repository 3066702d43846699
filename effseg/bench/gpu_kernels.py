"""Each GPU kernel against the anchors that exist on the machine, at a few GPU-sized
shapes, fp32 / fp16 / bf16 (stage 2 of bench/gpu_check.sh; bench/gpu_kernels.py is the
command). Rows: one per (case, dtype, impl) with its median time and how far its output
is from effseg's; a kernel that raises becomes an error entry and the others still run."""
from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from .._timing import machine, median_ms

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The sequential references loop over L in Python: seconds per call on a GPU, so they
# anchor only the smallest fp32 case (correctness); the chunked form anchors the rest.
REF_MAX_L = 4096


def make_timer(device: str) -> tuple[Callable, str]:
    if device.startswith("cuda"):
        try:
            from triton.testing import do_bench

            return (lambda fn: float(do_bench(fn, warmup=10, rep=50, return_mode="median")),
                    "triton.testing.do_bench (L2 flushed per call), median")
        except ImportError:
            pass
        return (lambda fn: median_ms(fn, device, repeats=20)["median_ms"],
                "CUDA events (effseg._timing.median_ms), median")
    # CPU runs are the dry run: one call, to prove the path, not to measure it.
    return (lambda fn: median_ms(fn, device, repeats=1, warmup=0)["median_ms"],
            "one time.perf_counter call (dry run)")


def _rel(a, b) -> float:
    a, b = _as_torch(a).detach().float().cpu(), _as_torch(b).detach().float().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _as_torch(x) -> torch.Tensor:
    """A tensor from what an impl returns: a tensor, a cupy array, or a list of either
    (the anchors that loop over a batch)."""
    if isinstance(x, (list, tuple)):
        return torch.stack([_as_torch(o) for o in x])
    if isinstance(x, torch.Tensor):
        return x
    return torch.as_tensor(x.get() if hasattr(x, "get") else x)


def compare(rows: list, timer, case: str, dtype: str, ours: tuple[str, Callable],
            anchors: dict[str, Callable]) -> None:
    """Time effseg's call and each anchor; anchor rows carry their distance to effseg's
    output. One impl that raises is a row with its error, not the end of the kernel."""
    name, fn = ours

    def run(impl, call, role):
        row = {"case": case, "dtype": dtype, "impl": impl, "role": role}
        try:
            with torch.no_grad():
                out = call()
                row["median_ms"] = timer(call)
        except Exception as exc:  # noqa: BLE001  recorded, so the next impl still runs
            row["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
            out = None
        rows.append(row)
        return row, out

    _, want = run(name, fn, "effseg")
    for impl, call in anchors.items():
        row, got = run(impl, call, "anchor")
        if got is not None and want is not None:
            row["max_rel_diff_vs_effseg"] = _rel(got, want)


def _gen(seed: int = 0):
    return torch.Generator().manual_seed(seed)


# ---- kernels: each returns {"rows": [...], "skipped": {anchor: reason}} ----------------------

def selective_scan(device, dtypes, tiny, timer) -> dict:
    from ..ops import selective_scan as scan
    from .selective_scan import scan_inputs

    shapes = [(1, 8, 4, 32)] if tiny else [(4, 768, 16, 1024), (2, 1536, 16, 4096)]
    mamba, why = _mamba_scan(device)
    rows, skipped = [], ({} if mamba else {"mamba_ssm": why})
    for i, (b, d, n, length) in enumerate(shapes):
        kw32 = scan_inputs(length, device, batch=b, dim=d, dstate=n)
        for dt in dtypes:
            kw = {k: (v.to(DTYPES[dt]) if k in ("u", "delta", "B", "C", "z") else v)
                  for k, v in kw32.items()}
            anchors = {"torch_chunked": lambda kw=kw: scan(**kw, delta_softplus=True, backend="chunked")}
            if i == 0 and dt == "fp32" and length <= REF_MAX_L:
                anchors["torch_ref"] = lambda kw=kw: scan(**kw, delta_softplus=True, backend="ref")
            if mamba:
                anchors["mamba_ssm"] = lambda kw=kw: mamba(**kw, delta_softplus=True)
            compare(rows, timer, f"B{b} D{d} N{n} L{length}", dt,
                    ("effseg_triton", lambda kw=kw: scan(**kw, delta_softplus=True, backend="triton")),
                    anchors)
    return {"rows": rows, "skipped": skipped}


def _mamba_scan(device):
    """mamba_ssm's selective_scan_fn from a source copy carried in an ignored folder
    (EFFSEG_MAMBA_SRC, else third_party/mamba); its CUDA path needs the extension built."""
    if not device.startswith("cuda"):
        return None, "mamba's selective scan runs on CUDA only"
    root = Path(os.environ.get("EFFSEG_MAMBA_SRC") or
                Path(__file__).resolve().parents[2] / "third_party" / "mamba")
    if not (root / "mamba_ssm").is_dir():
        return None, f"no mamba source at {root} (set EFFSEG_MAMBA_SRC to carry one)"
    sys.path.insert(0, str(root))
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as exc:  # noqa: BLE001  usually the unbuilt selective_scan_cuda
        return None, f"mamba at {root} does not import: {type(exc).__name__}: {exc}"
    return selective_scan_fn, ""


def cross_selective_scan(device, dtypes, tiny, timer) -> dict:
    from ..ops import cross_selective_scan

    shapes = [(1, 4, 4, 4, 4)] if tiny else [(8, 32, 64, 64, 16), (8, 16, 128, 128, 16)]
    rows = []
    for i, (b, d, h, w, n) in enumerate(shapes):
        g, length = _gen(i), h * w

        def r(*shape, s=1.0):
            return (s * torch.randn(*shape, generator=g)).to(device)

        a = -torch.rand(4 * d, n, generator=g).add(0.5).to(device)
        base = dict(u=r(b, d, h, w), delta=r(b, 4 * d, length, s=0.5), A=a,
                    B=r(b, 4, n, length), C=r(b, 4, n, length), D=r(4 * d), delta_bias=r(4 * d, s=0.1))
        for dt in dtypes:
            kw = {k: (v.to(DTYPES[dt]) if k in ("u", "delta", "B", "C") else v) for k, v in base.items()}

            def call(backend, kw=kw):
                return cross_selective_scan(**kw, delta_softplus=True, H=h, W=w, backend=backend)

            anchors = {"torch_chunked": lambda call=call: call("chunked")}
            if i == 0 and dt == "fp32" and length <= REF_MAX_L:
                anchors["torch_ref"] = lambda call=call: call("ref")
            compare(rows, timer, f"B{b} D{d} {h}x{w} N{n}", dt,
                    ("effseg_triton", lambda call=call: call("triton")), anchors)
    return {"rows": rows, "skipped": {}}


def linear_attention(device, dtypes, tiny, timer) -> dict:
    from ..ops import linear_attention as la
    from ..ops import linear_attention_ref
    from .linear_attention import EINSUM

    shapes = [(1, 2, 8, 16)] if tiny else [(8, 32, 256, 64 * 64), (8, 16, 128, 128 * 128)]
    rows = []
    for i, (b, ck, cv, n) in enumerate(shapes):
        g = _gen(i)
        q32, k32, v32 = (torch.randn(b, c, n, generator=g).to(device) for c in (ck, ck, cv))
        for kind in ("taylor", "softplus"):
            for dt in dtypes:
                q, k, v = (t.to(DTYPES[dt]) for t in (q32, k32, v32))
                args = (q, k, v)
                compare(rows, timer, f"{kind} B{b} Ck{ck} Cv{cv} N{n}", dt,
                        ("effseg_triton", lambda a=args, kind=kind: la(*a, kind=kind, backend="triton")),
                        {"geoseg_einsum": lambda a=args, kind=kind: EINSUM[kind](*a),
                         "torch_ref": lambda a=args, kind=kind: linear_attention_ref(*a, kind=kind)})
    return {"rows": rows, "skipped": {}}


def _conv_anchor(device) -> str:
    return "cudnn_conv2d" if device.startswith("cuda") else "F.conv2d"


def depthwise_conv2d(device, dtypes, tiny, timer) -> dict:
    from ..ops import depthwise_conv2d as dw

    shapes = [(1, 4, 8, 8, 3)] if tiny else [(8, 64, 128, 128, 7), (8, 256, 32, 32, 5)]
    rows = []
    for i, (b, c, h, w, k) in enumerate(shapes):
        g = _gen(i)
        x32, wt32, bias32 = (torch.randn(b, c, h, w, generator=g), torch.randn(c, 1, k, k, generator=g) / k,
                             torch.randn(c, generator=g))
        for dt in dtypes:
            x, wt, bias = (t.to(device, DTYPES[dt]) for t in (x32, wt32, bias32))
            compare(rows, timer, f"{b}x{c}x{h}x{w} k={k} bias+relu6", dt,
                    ("effseg_triton", lambda x=x, wt=wt, bias=bias: dw(x, wt, bias, padding="same",
                                                                       activation="relu6", backend="triton")),
                    {_conv_anchor(device): lambda x=x, wt=wt, bias=bias: F.relu6(
                        F.conv2d(x, wt, bias, padding=k // 2, groups=c))})
    return {"rows": rows, "skipped": {}}


def winograd_conv2d(device, dtypes, tiny, timer) -> dict:
    from ..ops import winograd_conv2d as wino
    from ..ops import winograd_weight

    shapes = [(1, 4, 4, 8, 8)] if tiny else [(8, 64, 64, 128, 128), (8, 256, 256, 32, 32)]
    rows = []
    for i, (b, c, k, h, w) in enumerate(shapes):
        g = _gen(i)
        x32 = torch.randn(b, c, h, w, generator=g)
        w32 = torch.randn(k, c, 3, 3, generator=g) / (3 * c ** 0.5)
        bias32 = torch.randn(k, generator=g)
        for dt in dtypes:
            x, wt, bias = (t.to(device, DTYPES[dt]) for t in (x32, w32, bias32))
            u = winograd_weight(wt, torch.float32)  # once per weight, as the graph pass does
            compare(rows, timer, f"{b}x{c}->{k}x{h}x{w} bias+relu", dt,
                    ("effseg_triton", lambda x=x, wt=wt, bias=bias, u=u: wino(
                        x, wt, bias, 1, True, weight_t=u, backend="triton")),
                    {_conv_anchor(device): lambda x=x, wt=wt, bias=bias: F.relu(
                        F.conv2d(x, wt, bias, padding=1))})
    return {"rows": rows, "skipped": {}}


def distance_transform(device, dtypes, tiny, timer) -> dict:
    from ..ops import distance_transform as edt
    from .distance_transform import blob_masks

    shapes = [(2, 32)] if tiny else [(8, 1024), (64, 256)]
    anchors, skipped = _edt_anchors(device)
    rows = []
    for n, size in shapes:
        m = blob_masks(n, size).to(device)
        compare(rows, timer, f"{n} masks {size}x{size}", "bool",
                ("effseg_triton", lambda m=m: edt(m, backend="triton")),
                {name: (lambda m=m, make=make: make(m)) for name, make in anchors.items()})
    return {"rows": rows, "skipped": skipped}


def _edt_anchors(device):
    if device.startswith("cuda"):
        try:
            import cupy
            from cupyx.scipy.ndimage import distance_transform_edt
        except Exception as exc:  # noqa: BLE001  not installed, or no usable CUDA runtime
            return {}, {"cupyx": f"cupy does not import: {type(exc).__name__}: {exc}"}

        def run(m):
            return [distance_transform_edt(cupy.asarray(x), float64_distances=False)
                for x in m]
        return {"cupyx_edt": run}, {}
    try:
        from scipy.ndimage import distance_transform_edt
    except ImportError as exc:
        return {}, {"scipy": f"scipy does not import: {exc}"}
    def run(m):
        return [torch.from_numpy(distance_transform_edt(x)) for x in m.numpy()]
    return {"scipy_edt": run}, {}


def losses(device, dtypes, tiny, timer) -> dict:
    """The distance loss's share of a training step (effseg.bench.losses as it is)."""
    from .losses import bench_losses

    kw = dict(batch=1, size=32, repeats=1) if tiny else dict(batch=8, size=512, repeats=20)
    return bench_losses(device, progress=False, **kw)


KERNELS = {"selective_scan": selective_scan, "cross_selective_scan": cross_selective_scan,
           "linear_attention": linear_attention, "depthwise_conv2d": depthwise_conv2d,
           "winograd_conv2d": winograd_conv2d, "distance_transform": distance_transform,
           "losses": losses}


def machine_info(device: str) -> dict:
    info = machine(device)
    info["triton_interpret"] = os.environ.get("TRITON_INTERPRET")
    for mod in ("triton", "cupy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001  absent, or a broken binary wheel
            info[mod] = None
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        info.update(gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}")
    return info


def cuda_poisoned(device: str) -> bool:
    """After an error on CUDA: is the context unusable (an illegal access is sticky), so
    that the remaining kernels need a fresh process?"""
    if not device.startswith("cuda"):
        return False
    try:
        torch.cuda.synchronize()
        return False
    except Exception:  # noqa: BLE001
        return True


def run_kernel(name: str, device: str, dtypes, tiny: bool, timer) -> dict:
    t0 = time.perf_counter()
    try:
        entry = KERNELS[name](device, dtypes, tiny, timer)
    except Exception as exc:  # noqa: BLE001  recorded; the other kernels still run
        entry = {"error": f"{type(exc).__name__}: {str(exc)[:400]}",
                 "traceback": traceback.format_exc(limit=-4)[-2000:]}
    entry["wall_s"] = round(time.perf_counter() - t0, 2)
    return entry
