"""TensorRT engine building: the pure decisions are tested here; building and running an
engine needs TensorRT, which cannot be installed on these machines, so those tests skip."""
import numpy as np
import pytest
from bundle_cases import conv_net
from onnx import TensorProto, helper

from effseg.export.engine import (
    InputSpec,
    build_engine,
    builder_flags,
    onnx_input_specs,
    parse_size,
    parse_version,
    precision_problem,
    profile_shapes,
    strongly_typed,
)
from effseg.runtime import tensorrt_version
from effseg.runtime.tensorrt_runner import NOT_INSTALLED

needs_tensorrt = pytest.mark.skipif(tensorrt_version() is None, reason=NOT_INSTALLED)


@pytest.mark.parametrize(("text", "n"), [("1GiB", 2**30), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9),
                                         ("1.5GiB", 3 * 2**29), ("64kib", 64 * 1024), (" 100 B ", 100),
                                         ("4096", 4096), (1 << 20, 1 << 20)])
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["1 GigaB", "GiB", "-1GiB", "1e9", "", "0", 0, -5])
def test_parse_size_errors_name_workspace(bad):
    with pytest.raises(ValueError, match="workspace"):
        parse_size(bad)


@pytest.mark.parametrize("bad", [True, 1.5, None, [1]])
def test_parse_size_type_errors_name_workspace(bad):
    with pytest.raises(TypeError, match="workspace"):
        parse_size(bad)


@pytest.mark.parametrize(("text", "v"), [("10.3.0.26", (10, 3, 0)), ("10.3.0", (10, 3, 0)), ("11.0", (11, 0, 0)),
                                         ("10", (10, 0, 0)), ("10.8.0.43.post1", (10, 8, 0)),
                                         ("10.0.1b1", (10, 0, 1)), ((10, 3), (10, 3, 0)), ([11, 1, 2, 3], (11, 1, 2))])
def test_parse_version(text, v):
    assert parse_version(text) == v


@pytest.mark.parametrize("bad", ["ten", "", "v10.3", "10..3", (10, "3"), (), (True,)])
def test_parse_version_errors(bad):
    with pytest.raises(ValueError, match="version must be like"):
        parse_version(bad)


def test_builder_flags_per_version():
    assert builder_flags("10.3.0.26", "fp32") == []
    assert builder_flags((10, 3, 0), "fp16") == ["FP16"]
    assert builder_flags("10.8", "int8") == ["FP16", "INT8"]
    # TensorRT 11 is strongly typed: no precision flags at all.
    for precision in ("fp32", "fp16", "int8"):
        assert builder_flags("11.0.0", precision) == []
    assert strongly_typed("11.0") and not strongly_typed("10.13.3")
    with pytest.raises(ValueError, match="precision must be one of"):
        builder_flags("10.3", "bf16")
    with pytest.raises(ValueError, match="TensorRT 8.6.1 is not supported"):
        builder_flags("8.6.1", "fp16")


def test_profile_shapes_static_input():
    spec = InputSpec("input", (1, 3, 512, 512))
    assert profile_shapes(spec) == ((1, 3, 512, 512),) * 3
    assert profile_shapes(spec, max_shape=(1, 3, 512, 512)) == ((1, 3, 512, 512),) * 3
    with pytest.raises(ValueError, match=r"max_shape\[2\] is 640, but dim 2 of input 'input' is static: 512"):
        profile_shapes(spec, max_shape=(1, 3, 640, 512))


def test_profile_shapes_dynamic_dims():
    spec = InputSpec("input", (None, 3, None, None))
    mn, op, mx = profile_shapes(spec, min_shape=(1, 3, 256, 256), opt_shape=(1, 3, 512, 512),
                                max_shape=(4, 3, 1024, 1024))
    assert (mn, op, mx) == ((1, 3, 256, 256), (1, 3, 512, 512), (4, 3, 1024, 1024))
    # opt defaults to max.
    assert profile_shapes([-1, 3, "h", 64], min_shape=(1, 3, 32, 64), max_shape=(2, 3, 96, 64))[1] == (2, 3, 96, 64)
    with pytest.raises(ValueError, match=r"dim 0 of input 'input' is dynamic \(shape \(\?, 3, \?, \?\)\): give "
                                         r"min_shape and max_shape"):
        profile_shapes(spec)
    with pytest.raises(ValueError, match="dim 2 of input 'input' is dynamic.*give max_shape"):
        profile_shapes(InputSpec("input", (1, 3, None, 64)), min_shape=(1, 3, 32, 64))
    with pytest.raises(ValueError, match=r"dim 2 .* min_shape <= opt_shape <= max_shape, got 256, 128, 512"):
        profile_shapes(spec, min_shape=(1, 3, 256, 256), opt_shape=(1, 3, 128, 256), max_shape=(1, 3, 512, 512))
    with pytest.raises(ValueError, match="min_shape must be a sequence of 4 dims for input 'input'"):
        profile_shapes(spec, min_shape=(3, 256, 256), max_shape=(1, 3, 512, 512))
    with pytest.raises(ValueError, match="max_shape must hold positive integers"):
        profile_shapes(spec, min_shape=(1, 3, 256, 256), max_shape=(1, 3, 512, 0))
    with pytest.raises(ValueError, match="opt_shape must be a sequence"):
        profile_shapes(spec, opt_shape="1x3x512x512")


def test_onnx_input_specs(tmp_path):
    import onnx

    static = onnx.load(str(conv_net(tmp_path / "s.onnx", height=16, width=24)))
    dynamic = onnx.load(str(conv_net(tmp_path / "d.onnx", dynamic_hw=True)))
    assert onnx_input_specs(static) == [InputSpec("input", (1, 3, 16, 24))]
    assert onnx_input_specs(dynamic) == [InputSpec("input", (1, 3, None, None))]


def test_precision_problem(tmp_path):
    import onnx

    fp32 = onnx.load(str(conv_net(tmp_path / "f.onnx")))
    fp16 = onnx.load(str(conv_net(tmp_path / "h.onnx", fp16_input=True)))
    assert precision_problem(fp32, "10.3", "fp32") is None
    assert precision_problem(fp32, "10.3", "fp16") is None  # the FP16 flag lowers it
    assert "fp16 ONNX" in precision_problem(fp32, "11.0", "fp16")
    assert precision_problem(fp16, "11.0", "fp16") is None
    for version in ("10.3", "11.0"):
        assert "QuantizeLinear/DequantizeLinear" in precision_problem(fp32, version, "int8")
    q = helper.make_node("QuantizeLinear", ["x", "s"], ["q"])
    fp32.graph.node.insert(0, q)
    assert precision_problem(fp32, "11.0", "int8") is None
    assert TensorProto.FLOAT16 == 10  # the constant precision_problem relies on without importing onnx
    with pytest.raises(ValueError, match="precision must be one of"):
        precision_problem(fp32, "10.3", "int4")


def test_build_engine_checks_arguments_before_tensorrt(tmp_path):
    onnx_path = conv_net(tmp_path / "m.onnx", dynamic_hw=True)
    with pytest.raises(ValueError, match="workspace"):
        build_engine(onnx_path, tmp_path / "m.engine", workspace="lots")
    with pytest.raises(ValueError, match="precision must be one of"):
        build_engine(onnx_path, tmp_path / "m.engine", precision="half")
    with pytest.raises(FileNotFoundError, match="onnx_path"):
        build_engine(tmp_path / "none.onnx", tmp_path / "m.engine")
    with pytest.raises(ValueError, match="dim 2 of input 'input' is dynamic"):
        build_engine(onnx_path, tmp_path / "m.engine")


def test_build_engine_without_tensorrt_says_so(tmp_path):
    if tensorrt_version() is not None:
        pytest.skip("tensorrt is installed")
    with pytest.raises(RuntimeError, match="tensorrt is not installed"):
        build_engine(conv_net(tmp_path / "m.onnx"), tmp_path / "m.engine")


@pytest.mark.gpu
@needs_tensorrt
@pytest.mark.parametrize("dynamic", [False, True])
def test_engine_round_trip_matches_onnxruntime(tmp_path, dynamic):
    from bundle_cases import ort_run

    from effseg.runtime import TensorRTRunner

    onnx_path = conv_net(tmp_path / "m.onnx", height=32, width=32, dynamic_hw=dynamic)
    shapes = {"min_shape": (1, 3, 16, 16), "opt_shape": (1, 3, 32, 32), "max_shape": (1, 3, 64, 64)} if dynamic else {}
    engine = build_engine(onnx_path, tmp_path / "m.engine", workspace="256MiB", timing_cache=tmp_path / "tc.bin",
                          progress=False, **shapes)
    assert engine.stat().st_size > 0 and (tmp_path / "tc.bin").stat().st_size > 0
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with TensorRTRunner(engine) as runner:
        assert runner.inputs == ["input"] and runner.outputs == ["logits"]
        got = runner.run({"input": x})["logits"]
        np.testing.assert_allclose(got, ort_run(onnx_path, x), rtol=1e-3, atol=1e-3)
        if dynamic:
            y = x[:, :, :24, :40].copy()
            np.testing.assert_allclose(runner.run({"input": y})["logits"], ort_run(onnx_path, y),
                                       rtol=1e-3, atol=1e-3)
            with pytest.raises(ValueError, match="outside the engine's profile"):
                runner.run({"input": np.zeros((1, 3, 8, 8), np.float32)})


@pytest.mark.gpu
@needs_tensorrt
def test_bundle_with_a_real_engine_runs_on_tensorrt(tmp_path):
    from effseg.export.bundle import bundle_meta, write_bundle
    from effseg.runtime import Predictor

    onnx_path = conv_net(tmp_path / "m.onnx", height=32, width=32)
    engine = build_engine(onnx_path, tmp_path / "m.engine", progress=False)
    meta = bundle_meta(architecture="tinyconv", num_classes=4, input_shape=(3, 32, 32))
    folder = write_bundle(tmp_path / "b", onnx_path, meta=meta, engine_path=engine)
    img = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    trt = Predictor(folder, backend="tensorrt")
    ort = Predictor(folder, backend="onnxruntime")
    assert trt.backend == "tensorrt"
    assert (trt.predict(img) == ort.predict(img)).mean() >= 0.99
