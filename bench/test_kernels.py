"""Kernel benchmarks as pytest-benchmark cases: each op against its reference and the
peers its issue names, at modest sizes (the whole file takes a few minutes on 2 cores).

    pytest bench/ --benchmark-only [--benchmark-group-by=group]

Cases are grouped by op and shape (benchmark.group); compare within a group. A peer that
is not installed (scipy, OpenCV, cupy) or a backend unusable here skips with the reason.
"""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("pytest_benchmark", reason="pip install pytest-benchmark (the dev extra)")


def _usable(name: str):
    from effseg import _native, _triton

    ok, why = {"cpp": (_native.available(), getattr(_native, "reason", "")),
               "triton": _triton.status()}.get(name, (True, ""))
    if not ok:
        pytest.skip(f"backend {name} unusable here: {why}")


def _fast(device):
    return "cpp" if device == "cpu" else "triton"


# ---- selective scan: B1 D256 N16 L1024 ---------------------------------------------------

@pytest.mark.parametrize("impl", ["ref", "chunked", "fast"])
def test_selective_scan(bench, benchmark, device, impl):
    from effseg.bench.selective_scan import scan_inputs
    from effseg.ops import selective_scan, selective_scan_ref

    backend = _fast(device) if impl == "fast" else impl
    _usable(backend)
    kw = scan_inputs(1024, device, batch=1, dim=256, dstate=16)
    benchmark.group = "selective_scan B1 D256 N16 L1024 fwd"
    benchmark.extra_info["backend"] = backend
    if impl == "ref":
        bench(lambda: selective_scan_ref(**kw, delta_softplus=True))
    else:
        bench(lambda: selective_scan(**kw, delta_softplus=True, backend=backend))


# ---- cross selective scan (SS2D's four directions): D64 at 32x32 -------------------------

def _cross_inputs(device, d=64, side=32, n=16):
    g = torch.Generator().manual_seed(0)
    L = side * side

    def r(*shape, s=1.0):
        return (s * torch.randn(*shape, generator=g)).to(device)
    A = -torch.arange(1, n + 1, dtype=torch.float32).repeat(4 * d, 1).to(device)
    return {"u": r(1, d, side, side), "delta": r(1, 4 * d, L, s=0.5), "A": A,
            "B": r(1, 4, n, L), "C": r(1, 4, n, L), "D": r(4 * d), "delta_bias": r(4 * d, s=0.1),
            "H": side, "W": side}


@pytest.mark.parametrize("impl", ["ref", "chunked", "fast"])
def test_cross_selective_scan(bench, benchmark, device, impl):
    from effseg.ops import cross_selective_scan, cross_selective_scan_ref

    backend = _fast(device) if impl == "fast" else impl
    _usable(backend)
    kw = _cross_inputs(device)
    benchmark.group = "cross_selective_scan D64 32x32 N16"
    benchmark.extra_info["backend"] = backend
    if impl == "ref":
        bench(lambda: cross_selective_scan_ref(**kw))
    else:
        bench(lambda: cross_selective_scan(**kw, backend=backend))


# ---- SS2D block: CM-UNet's last decoder stage scaled down (d_model 64 at 32x32) ---------

@pytest.mark.parametrize("variant", ["composed_ref", "composed_fast", "effseg"])
def test_ss2d(bench, benchmark, device, variant):
    from effseg.bench.cross_selective_scan import _block, _run

    core = {"composed_ref": "ref", "composed_fast": "cpp" if device == "cpu" else "chunked",
            "effseg": None}[variant]
    if core == "cpp":
        _usable("cpp")
    m, x = _block(64, 32, device)
    benchmark.group = "ss2d d_model64 32x32"
    bench(lambda: _run(m, x, core))


# ---- linear attention: Ck 8, Cv 64, N 64^2 ------------------------------------------------

@pytest.mark.parametrize("kind", ["taylor", "softplus"])
@pytest.mark.parametrize("impl", ["einsum", "ref", "fast"])
def test_linear_attention(bench, benchmark, device, kind, impl):
    from effseg.bench.linear_attention import _call

    backend = _fast(device) if impl == "fast" else impl
    _usable(backend)
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 8, 4096, generator=g).to(device) for _ in range(2))
    v = torch.randn(1, 64, 4096, generator=g).to(device)
    benchmark.group = f"linear_attention {kind} Ck8 Cv64 N4096 fwd"
    benchmark.extra_info["impl"] = backend
    bench(_call(backend, kind, q, k, v, grad=False))


# ---- depthwise conv: (1, 64, 128, 128), k 3 and 7, bias + ReLU6 ---------------------------

@pytest.mark.parametrize("k", [3, 7])
@pytest.mark.parametrize("impl", ["torch", "effseg"])
def test_depthwise_conv2d(bench, benchmark, device, k, impl):
    from effseg.bench.depthwise_conv2d import _calls, dw_inputs

    if impl == "effseg":
        _usable(_fast(device))
    x, w, b = dw_inputs((1, 64, 128, 128), k, device)
    peer, ours = _calls(x, w, b, "relu6", "auto")
    benchmark.group = f"depthwise_conv2d 1x64x128x128 k{k} bias+relu6"
    bench(peer if impl == "torch" else ours)


# ---- Winograd 3x3 conv: (1, 64, 128, 128) -> 64, bias + ReLU, vs F.conv2d ----------------

@pytest.mark.parametrize("impl", ["torch", "effseg"])
def test_winograd_conv2d(bench, benchmark, device, impl):
    from effseg.ops import winograd_conv2d, winograd_weight

    if impl == "effseg":
        _usable(_fast(device))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 128, 128, generator=g).to(device)
    w = (torch.randn(64, 64, 3, 3, generator=g) / 24).to(device)
    b = torch.randn(64, generator=g).to(device)
    wt = winograd_weight(w)
    benchmark.group = "winograd_conv2d 1x64x128x128 -> 64, bias+relu"
    if impl == "torch":
        bench(lambda: F.relu(F.conv2d(x, w, b, padding=1)))
    else:
        bench(lambda: winograd_conv2d(x, w, b, 1, True, weight_t=wt))


# ---- exact Euclidean distance transform: 2 blob masks of 256^2 ----------------------------

@pytest.mark.parametrize("impl", ["ref", "effseg", "scipy", "opencv", "cupyx"])
def test_distance_transform(bench, benchmark, device, impl):
    from effseg.bench.distance_transform import _peers, blob_masks
    from effseg.ops import distance_transform_ref

    masks = blob_masks(2, 256)
    benchmark.group = "distance_transform 2x256x256"
    if impl == "ref":
        m = masks.to(device)
        bench(lambda: distance_transform_ref(m))
        return
    peers = _peers(masks, device)
    name = {"effseg": "effseg_cpp" if device == "cpu" else "effseg_triton"}.get(impl, impl)
    if name not in peers:
        pytest.skip(f"{impl} not available on {device} here (scipy / opencv-python-headless "
                    "on CPU, cupy on CUDA; effseg_cpp needs the native module)")
    fn, note = peers[name]
    benchmark.extra_info["note"] = note
    bench(fn)


# ---- losses: one training step of a small net, CE alone and with each boundary loss -------

@pytest.mark.parametrize("variant", ["ce", "ce+distance", "ce+boundary", "ce+hausdorff"])
def test_loss_training_step(bench, benchmark, device, variant):
    from effseg.bench.losses import SmallSegNet, _variants, blocky_labels

    torch.manual_seed(0)
    net = SmallSegNet(6).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(2, 3, 64, 64, device=device)
    target = blocky_labels(2, 64, 6, device=device)
    loss_fn = _variants(6)[variant]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), target)
        loss.backward()
        opt.step()
        return loss

    benchmark.group = "loss training step 2x64x64, 6 classes"
    bench(step, grad=True)


def test_loss_distance_maps(bench, benchmark, device):
    from effseg.bench.losses import blocky_labels
    from effseg.losses import _common

    target = blocky_labels(2, 64, 6, device=device)
    valid = target != 255
    benchmark.group = "loss training step 2x64x64, 6 classes"
    bench(lambda: _common.label_distances(target, valid, 6))


# ---- the same conv block on PyTorch's own ops, for scale ----------------------------------

def test_reference_conv(bench, benchmark, device):
    x = torch.randn(1, 64, 128, 128, device=device)
    w = torch.randn(64, 64, 3, 3, device=device)
    benchmark.group = "scale: dense conv 64->64 3x3 at 128x128"
    bench(lambda: F.conv2d(x, w, padding=1))
