"""effseg.bench.model_bench: configuration, rows (a failing backend is a row with its
reason), the JSON schema, int8 rows, and the --model forms (module:callable, checkpoint)."""
import json

import pytest
import torch

from effseg.bench import contenders as C
from effseg.bench.model_bench import ROW_KEYS, BenchConfig, make_config, run_model_bench
from effseg.models.spec import resolve

TINY = "bench_nets:tiny_net"


def _cfg(**kw):
    base = {"models": [TINY], "sizes": [16], "batches": [1], "dtypes": ["fp32"],
            "backends": ["eager"], "device": "cpu", "warmup": 0, "iters": 2, "threads": 1}
    base.update(kw)
    return BenchConfig(**base)


def test_presets_and_explicit_options():
    cfg = make_config(device="cpu")
    assert cfg.models == ["unetformer", "abcnet", "cmunet"] and cfg.sizes == [512]
    assert cfg.backends == list(C.DEFAULT_CPU) and (cfg.warmup, cfg.iters) == (1, 5)
    assert cfg.setup_timeout == 60.0 and "torch.compile" not in cfg.backends
    quick = make_config(preset="quick", device="cpu", iters=7, backends=["peers"])
    assert quick.models == ["unetformer-dw"] and quick.iters == 7
    assert quick.backends == list(C.PEERS)
    full = make_config(preset="full", device="cpu")
    assert "effseg.inductor" in full.backends and "torch.compile" in full.backends
    assert len(full.models) > 3 and full.setup_timeout is None
    assert make_config(device="cpu", setup_timeout=0).setup_timeout is None


@pytest.mark.parametrize("kw, match", [
    ({"dtypes": ["fp8"]}, "--dtype"),
    ({"backends": ["tensorflow"]}, "--backends"),
    ({"iters": 0}, "--iters"),
    ({"sizes": [0]}, "--size"),
    ({"device": "tpu"}, "--device"),
])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        make_config(**{"device": "cpu", **kw})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA"):
        make_config(device="cuda")


def test_failing_backend_is_a_row_and_the_others_run():
    from bench_nets import failing_builder

    cfg = _cfg(backends=["eager", "broken", "effseg.eager"])
    result = run_model_bench(cfg, progress=False, builders={"broken": failing_builder})
    rows = {r["backend"]: r for r in result["rows"]}
    assert rows["broken"]["error"].startswith("Broken: this backend is broken on purpose")
    assert set(ROW_KEYS) <= set(rows["broken"]) and rows["broken"]["median_ms"] is None
    for name in ("eager", "effseg.eager"):
        r = rows[name]
        assert r["error"] is None and r["median_ms"] > 0 and r["fps"] > 0
        assert r["max_abs_err"] <= 1e-4 and r["argmax_agreement"] >= 0.99
        assert r["speedup_vs_eager"] == pytest.approx(rows["eager"]["median_ms"] / r["median_ms"])
        assert r["best_peer"] == "eager"
    assert rows["eager"]["speedup_vs_eager"] == pytest.approx(1.0)


def test_json_schema():
    result = run_model_bench(_cfg(backends=["eager", "effseg.eager"]), progress=False)
    text = json.dumps(result)  # serialisable as it stands
    data = json.loads(text)
    for key, typ in [("bench", str), ("schema", int), ("created", str), ("device", str),
                     ("machine", dict), ("versions", dict), ("threads", dict),
                     ("allocator", dict), ("config", dict), ("method", dict),
                     ("wall_s", float), ("rows", list)]:
        assert isinstance(data[key], typ), key
    assert data["bench"] == "model"
    assert {"torch", "onnxruntime", "triton", "effseg"} <= set(data["versions"])
    assert data["threads"]["torch"] == 1 and data["threads"]["requested"] == 1
    assert "MALLOC_MMAP_THRESHOLD_" in data["allocator"]["env"]
    assert {"timing", "memory", "parity", "setup"} <= set(data["method"])
    assert data["machine"]["processor"]
    for row in data["rows"]:
        assert set(ROW_KEYS) <= set(row), set(ROW_KEYS) - set(row)
        for key in ("median_ms", "p90_ms", "p99_ms", "fps", "mp_per_s", "host_peak_rss_mb",
                    "params_m", "gflops", "max_abs_err", "speedup_vs_eager", "setup_s"):
            assert isinstance(row[key], (int, float)), key
        assert row["p90_ms"] >= row["median_ms"] and row["p99_ms"] >= row["p90_ms"]
        assert row["gpu_peak_mb"] is None  # CPU run
    assert data["rows"][0]["gflops"] == pytest.approx(2 * 16 * 16 * (8 * 3 * 9 + 4 * 8) / 1e9,
                                                      rel=1e-3)


def test_int8_rows():
    pytest.importorskip("onnxruntime")
    result = run_model_bench(_cfg(dtypes=["int8"], backends=["eager", "effseg.eager", "onnxruntime"]),
                             progress=False)
    rows = {r["backend"]: r for r in result["rows"]}
    assert rows["eager"]["error"].startswith("unsupported: int8")
    assert rows["effseg.eager"]["error"].startswith("unsupported: int8")
    ort = rows["onnxruntime"]
    assert ort["error"] is None, ort["error"]
    assert ort["info"]["quantization"].startswith("onnxruntime.quantization")
    assert ort["argmax_agreement"] > 0.5   # quantised, so not exact; a sanity bound only


def test_model_spec_forms(tmp_path):
    from effseg import create_model

    spec = resolve(TINY)
    assert spec.source == "callable" and isinstance(spec.module, torch.nn.Sequential)
    with pytest.raises(ValueError, match="cannot import"):
        resolve("no_such_module_xyz:net")
    with pytest.raises(ValueError, match="no attribute"):
        resolve("bench_nets:nope")
    with pytest.raises(TypeError, match="nn.Module"):
        resolve("bench_nets:not_a_module")
    with pytest.raises(ValueError, match="unknown model"):
        resolve("unetformer-xl")
    path = tmp_path / "w.ckpt"
    with pytest.raises(ValueError, match="--arch"):
        resolve(str(path))
    with pytest.raises(ValueError, match="no checkpoint file"):
        resolve(str(path), arch="unetformer-dw")
    ref = create_model("unetformer-dw", 6, seed=1)
    torch.save({"state_dict": {f"net.{k}": v for k, v in ref.state_dict().items()}}, path)
    spec = resolve(str(path), arch="unetformer-dw")
    assert spec.source == "checkpoint" and spec.label == "unetformer-dw:w.ckpt"
    for a, b in zip(spec.module.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="--arch applies"):
        resolve("unetformer-dw", arch="unetformer")


def test_setup_timeout_is_a_row():
    import time

    from bench_nets import stubborn_builder

    t0 = time.perf_counter()
    result = run_model_bench(_cfg(backends=["stuck", "eager"], setup_timeout=0.3), progress=False,
                             builders={"stuck": stubborn_builder})
    assert time.perf_counter() - t0 < 30
    rows = {r["backend"]: r for r in result["rows"]}
    assert rows["stuck"]["error"].startswith("timeout: setup took over 0.3 s")
    assert rows["eager"]["error"] is None and rows["eager"]["median_ms"] > 0


def test_ort_peer_rejects_a_graph_that_ignores_its_input(tmp_path):
    """An export that froze part of the model into constants agrees with eager on the
    example only; the ORT peer checks a second input and refuses it."""
    pytest.importorskip("onnxruntime")
    from bench_nets import tiny_net

    x = torch.randn(1, 3, 16, 16)
    good = tiny_net().eval()
    path = tmp_path / "m.onnx"
    C.export_onnx_peer(good, x, path)
    ctx = C.Context(good, x, good, x, "cpu", "fp32", 1)
    assert C._follows_input(ctx, path) is True
    other = tiny_net().eval()
    with torch.no_grad():
        other[0].weight.mul_(-1.0)
    ctx = C.Context(other, x, other, x, "cpu", "fp32", 1)
    with pytest.raises(RuntimeError, match="second input"):
        C._follows_input(ctx, path)
