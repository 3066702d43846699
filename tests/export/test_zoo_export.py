"""Every zoo model (the Mamba ones included) exports at a small size, matches PyTorch in
ONNX Runtime, and passes the TensorRT check for 10.3 (JetPack 6) and 11.x."""
import onnx
import pytest

import effseg
from effseg.export import check_tensorrt, fatal, format_findings, to_onnx

SIZE = 64
FORBIDDEN = {"Loop", "Scan", "Einsum", "SequenceConstruct", "SequenceAt"}


def _unfoldable_batchnorms(proto) -> list:
    """BatchNormalization nodes right after a Conv that feeds nothing else: those the
    optimiser should have folded."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    readers = {}
    for n in proto.graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    return [n.name for n in proto.graph.node if n.op_type == "BatchNormalization"
            and (p := producer.get(n.input[0])) is not None and p.op_type == "Conv"
            and readers[n.input[0]] == 1]


@pytest.mark.parametrize("name", effseg.list_models())
def test_zoo_model_exports_matches_and_passes_tensorrt_check(tmp_path, name):
    model = effseg.create_model(name, num_classes=6)
    rep = to_onnx(model, tmp_path / f"{name}.onnx", input_shape=(1, 3, SIZE, SIZE))
    assert rep.parity["ok"] and rep.parity["rel_err"] <= 1e-4, rep.parity
    proto = onnx.load(tmp_path / f"{name}.onnx")
    types = {n.op_type for n in proto.graph.node}
    assert not types & FORBIDDEN, sorted(types & FORBIDDEN)
    assert all(n.domain in ("", "ai.onnx") for n in proto.graph.node), "custom-domain node left"
    assert not _unfoldable_batchnorms(proto)
    for version in ("10.3", "11"):
        findings = check_tensorrt(proto, trt_version=version)
        assert not fatal(findings), format_findings(findings)


@pytest.mark.slow  # ~2 min each on 2 cores: the Mamba graphs trace with symbolic scan lengths
@pytest.mark.parametrize("name", ["cmunet-tiny", "pyramidmamba"])
def test_mamba_zoo_model_dynamic_hw_export_runs_at_other_sizes(tmp_path, name):
    import numpy as np
    import torch

    from effseg.export.to_onnx import ort_run

    model = effseg.create_model(name, num_classes=6).eval()
    path = tmp_path / f"{name}.onnx"
    rep = to_onnx(model, path, input_shape=(1, 3, SIZE, SIZE), dynamic_batch=True, dynamic_hw=True, max_hw=256)
    assert rep.parity["second_shape"]["ok"], rep.parity
    for shape in [(2, 3, 96, 128), (1, 3, 160, 96)]:  # /32 maps of 3x4 and 5x3: scan lengths not multiples of 4
        x = torch.randn(shape)
        with torch.no_grad():
            want = model(x).numpy()
        got = ort_run(path, x.numpy())
        assert got.shape == want.shape
        assert float(np.abs(got - want).max() / np.abs(want).max()) <= 1e-4, shape
