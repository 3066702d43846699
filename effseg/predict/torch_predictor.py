"""`effseg predict --backend torch`: a checkpoint's nn.Module run through effseg.compile as
the predictor's model, inside the same tile engine as a bundle.

TorchPredictor is a runtime PredictorBase: image checks, normalisation, nodata, output
checks, tiling and colours are the bundle predictor's own code. Only the model differs,
and its metadata is what `effseg export` would write for the same checkpoint
(effseg.export.pipeline.options_meta), so both routes cut the same tiles and normalise
with the same statistics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..compile import compile as effseg_compile
from ..runtime.bundle import Bundle
from ..runtime.predictor import PredictorBase

# effseg.compile's backends that make sense for predict; tensorrt runs through a bundle's
# engine (--backend tensorrt) instead.
COMPILE_BACKENDS = ("eager", "inductor", "onnxruntime", "openvino")
DEFAULT_COMPILE_BACKEND = "eager"


def torch_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchModel:
    """module through effseg.compile, called like the bundle models: a numpy (N, C, h, w)
    array in, a numpy array out (float32 logits)."""

    def __init__(self, module: torch.nn.Module, example_shape, *, backend: str = DEFAULT_COMPILE_BACKEND,
                 device=None, threads: int | None = None):
        if backend not in COMPILE_BACKENDS:
            raise ValueError(f"--compile-backend must be one of {', '.join(COMPILE_BACKENDS)}, got {backend!r}")
        dev = torch_device(device)
        options = {}
        if threads is not None:
            if backend == "onnxruntime":
                options["intra_op_num_threads"] = threads
            elif backend == "openvino":
                options["inference_num_threads"] = threads
            else:
                # eager and inductor run on torch's intra-op pool, a process-wide setting.
                torch.set_num_threads(threads)
        # One graph per tile shape (not dynamic=True): the tile engine uses a handful of
        # shapes (the batch sizes at one tile size), and each is checked against eager.
        self.compiled = effseg_compile(module.eval().to(dev), input_shape=tuple(example_shape), device=dev,
                                       backend=backend, **options)
        self.device = dev
        self.name = f"torch ({backend} via effseg.compile, {dev.type})"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.compiled(torch.from_numpy(np.ascontiguousarray(x)))
        if isinstance(out, (tuple, list)):  # nets with auxiliary heads return the main output first
            out = out[0]
        return out.detach().float().cpu().numpy()


class TorchPredictor(PredictorBase):
    """A checkpoint's module with its metadata (meta: meta.json's schema without files,
    from options_meta) on images of any size. Arguments as effseg.runtime.Predictor's,
    plus compile_backend and device (auto: CUDA when available)."""

    def __init__(self, module: torch.nn.Module, meta: dict, source, *, compile_backend: str = DEFAULT_COMPILE_BACKEND,
                 device=None, threads: int | None = None, tile: bool | None = None, nonfinite: str = "nodata",
                 max_pixels=None, bands=None, replicate_grey: bool = False):
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        # No files: nothing here is a bundle on disk (engine_path is None; --ray refuses it).
        bundle = Bundle(Path(source), {**meta, "files": {}})
        super().__init__(bundle, tile=tile, nonfinite=nonfinite, max_pixels=max_pixels, bands=bands,
                         replicate_grey=replicate_grey)
        inp = bundle.input
        self._model = TorchModel(module, (1, inp["channels"], inp["height"], inp["width"]),
                                 backend=compile_backend, device=device, threads=threads)
