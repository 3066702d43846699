"""The model of a bundle (ONNX Runtime or TensorRT), built from its verified bytes, and the
checks that the model's output is what meta.json says it is (output.kind, num_classes).

The model is read once, hashed, and the session is built from those same bytes: a file
swapped between the check and the open can never run. External-data weights are handed
to ONNX Runtime from memory the same way.
"""
from __future__ import annotations

import numpy as np

from .bundle import ENGINE_NAME, ONNX_NAME, Bundle, BundleError
from .segmented import section_files
from .sessions import import_ort, ort_session

_ORT_FLOATS = ("tensor(float)", "tensor(float16)", "tensor(double)", "tensor(bfloat16)")
_ORT_INTS = tuple(f"tensor({t})" for t in ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8"))


def check_output_signature(kind: str, num_classes: int, type_name: str, is_float: bool, is_int: bool, shape,
                           source: str) -> None:
    """At load: the model's declared output against meta.json. Unknown dimensions pass
    here; the first run checks the real ones (check_output)."""
    rank = len(shape) if shape is not None else None
    if kind == "logits":
        if not is_float:
            raise BundleError(f"meta.json says output.kind 'logits', but {source} outputs {type_name} "
                              "(class labels?): a model ending in ArgMax needs output.kind 'labels'")
        if rank is not None and rank != 4:
            raise BundleError(f"meta.json says output.kind 'logits' (N, num_classes, H, W), but {source} "
                              f"outputs rank {rank} {list(shape)}")
        if rank == 4 and isinstance(shape[1], int) and shape[1] >= 0 and shape[1] != num_classes:
            raise BundleError(f"meta.json says num_classes {num_classes}, but {source} outputs {shape[1]} "
                              f"classes (shape {list(shape)})")
    else:
        if not is_int:
            raise BundleError(f"meta.json says output.kind 'labels', but {source} outputs {type_name} "
                              "(logits?): a model without ArgMax needs output.kind 'logits'")
        if rank is not None and rank not in (3, 4):
            raise BundleError(f"meta.json says output.kind 'labels' ((N, H, W) or (N, 1, H, W)), but {source} "
                              f"outputs rank {rank} {list(shape)}")
        if rank == 4 and isinstance(shape[1], int) and shape[1] not in (-1, 1):
            raise BundleError(f"meta.json says output.kind 'labels' ((N, 1, H, W)), but {source} outputs "
                              f"{list(shape)}")


def check_output(out: np.ndarray, kind: str, num_classes: int, hw: tuple[int, int]) -> np.ndarray:
    """A model output for one (C, h, w) input, checked against meta.json; returns it
    without its batch dimension: (K, h, w) logits or (h, w) labels."""
    if kind == "logits":
        if out.dtype.kind != "f":
            raise BundleError(f"meta.json says output.kind 'logits', but the model returned {out.dtype} values")
        if out.ndim != 4 or out.shape[0] != 1 or tuple(out.shape[2:]) != tuple(hw):
            raise BundleError(f"meta.json says output.kind 'logits', (1, {num_classes}, {hw[0]}, {hw[1]}) for this "
                              f"input, but the model returned shape {tuple(out.shape)}")
        if out.shape[1] != num_classes:
            raise BundleError(f"meta.json says num_classes {num_classes}, but the model returned {out.shape[1]} "
                              f"classes (shape {tuple(out.shape)})")
        if np.isnan(out).any():
            raise ValueError(f"the model returned NaN logits at {int(np.isnan(out).sum())} values of a tile "
                             "whose input is finite: its class would be a guess, so nothing is written")
        return out[0]
    if out.dtype.kind not in "iu":
        raise BundleError(f"meta.json says output.kind 'labels', but the model returned {out.dtype} values")
    labels = out[:, 0] if out.ndim == 4 and out.shape[1] == 1 else out
    if labels.ndim != 3 or labels.shape[0] != 1 or tuple(labels.shape[1:]) != tuple(hw):
        raise BundleError(f"meta.json says output.kind 'labels', (1, {hw[0]}, {hw[1]}) or (1, 1, {hw[0]}, {hw[1]}) "
                          f"for this input, but the model returned shape {tuple(out.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise BundleError(f"meta.json says num_classes {num_classes}, but the model returned labels "
                          f"{int(labels.min())}..{int(labels.max())}")
    return labels[0]


class OrtModel:
    def __init__(self, bundle: Bundle, providers, threads):
        ort = import_ort()
        external = sorted(set(bundle.meta["files"]) - {ONNX_NAME, ENGINE_NAME} - section_files(bundle.meta))
        if external and not hasattr(ort.SessionOptions(), "add_external_initializers_from_files_in_memory"):
            raise BundleError(f"model.onnx keeps its weights in {', '.join(external)}; this onnxruntime "
                              f"{ort.__version__} can only read them by path, after they were checked, which "
                              "a swapped file could exploit: upgrade onnxruntime (1.20 or newer)")
        try:
            self.session = ort_session(bundle.read_verified(ONNX_NAME), device="auto", providers=providers,
                                       threads=threads, quiet=False,
                                       external={n: bundle.read_verified(n) for n in external})
        except Exception as exc:  # noqa: BLE001  ONNX Runtime's errors derive from Exception only
            raise BundleError(f"bundle file {ONNX_NAME} in {str(bundle.path)!r} matches its sha256 but ONNX Runtime "
                              f"{ort.__version__} cannot load it (truncated or not an ONNX model?): "
                              f"{type(exc).__name__}: {exc}") from exc
        self.name = "onnxruntime"
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        want = bundle.input["name"]
        if want not in inputs:
            raise BundleError(f"model.onnx has inputs {sorted(inputs)}, but meta.json names input {want!r}")
        shape = inputs[want]
        ch = bundle.input["channels"]
        if len(shape) == 4 and isinstance(shape[1], int) and shape[1] != ch:
            raise BundleError(f"model.onnx takes {shape[1]} channels, but meta.json says input.channels {ch}")
        hw = (bundle.input["height"], bundle.input["width"])
        if (len(shape) == 4 and not bundle.input["dynamic_hw"] and all(isinstance(d, int) for d in shape[2:])
                and tuple(shape[2:]) != hw):
            raise BundleError(f"model.onnx takes {shape[2]}x{shape[3]} images, but meta.json says input "
                              f"height x width {hw[0]}x{hw[1]}")
        self.input_name, self.output_name = want, bundle.output["name"]
        outputs = {o.name: o for o in self.session.get_outputs()}
        if self.output_name not in outputs:
            raise BundleError(f"model.onnx has outputs {list(outputs)}, but meta.json names output "
                              f"{self.output_name!r}")
        o = outputs[self.output_name]
        check_output_signature(bundle.output["kind"], bundle.num_classes, o.type, o.type in _ORT_FLOATS,
                               o.type in _ORT_INTS, o.shape, f"model.onnx's output {o.name!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]


class TrtModel:
    def __init__(self, bundle: Bundle):
        from .tensorrt_runner import TensorRTRunner

        self.runner = TensorRTRunner(bundle.engine_path, engine_bytes=bundle.read_verified(ENGINE_NAME))
        self.name = "tensorrt"
        self.input_name, self.output_name = bundle.input["name"], bundle.output["name"]
        for n, names in ((self.input_name, self.runner.inputs), (self.output_name, self.runner.outputs)):
            if n not in names:
                raise BundleError(f"model.engine has tensors {names}, but meta.json names {n!r}")
        dt = self.runner.dtypes[self.output_name]
        shape = [d if d >= 0 else None for d in self.runner.engine.get_tensor_shape(self.output_name)]
        check_output_signature(bundle.output["kind"], bundle.num_classes, str(dt), dt.kind == "f", dt.kind in "iu",
                               shape, f"model.engine's output {self.output_name!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.runner.run({self.input_name: x})[self.output_name]
