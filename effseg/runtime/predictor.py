"""Predictor: a bundle turned into class maps and colour masks, with numpy and ONNX
Runtime or TensorRT (no torch)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from .bundle import ENGINE_NAME, ONNX_NAME, Bundle, BundleError, load_bundle
from .images import list_images, normalize, read_image
from .tiling import pad_reflect, tiled_labels, tiled_logits

BACKENDS = ("auto", "onnxruntime", "tensorrt")
# Whole-image runs of dynamic-size models pad to this multiple: the stride of the
# deepest feature map of the zoo's encoders.
PAD_MULTIPLE = 32


class _OrtModel:
    def __init__(self, bundle: Bundle, providers, threads):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise RuntimeError("onnxruntime is not installed: pip install onnxruntime "
                               "(or onnxruntime-gpu)") from exc
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
        if providers is None:
            # TensorRT's provider would build an engine at start-up: only when asked for.
            avail = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        # Run the bytes that were hashed, unless the weights sit in external-data files
        # (ORT finds those next to the model path; load_bundle hashed them too).
        if set(bundle.meta["files"]) - {ONNX_NAME, ENGINE_NAME}:
            model = str(bundle.onnx_path)
        else:
            model = bundle.read_verified(ONNX_NAME)
        self.session = ort.InferenceSession(model, sess_options=opts, providers=list(providers))
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
        outputs = [o.name for o in self.session.get_outputs()]
        if self.output_name not in outputs:
            raise BundleError(f"model.onnx has outputs {outputs}, but meta.json names output {self.output_name!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]


class _TrtModel:
    def __init__(self, bundle: Bundle):
        from .tensorrt_runner import TensorRTRunner

        self.runner = TensorRTRunner(bundle.engine_path, engine_bytes=bundle.read_verified(ENGINE_NAME))
        self.name = "tensorrt"
        self.input_name, self.output_name = bundle.input["name"], bundle.output["name"]
        for n, names in ((self.input_name, self.runner.inputs), (self.output_name, self.runner.outputs)):
            if n not in names:
                raise BundleError(f"model.engine has tensors {names}, but meta.json names {n!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.runner.run({self.input_name: x})[self.output_name]


def engine_mismatch(built: str, installed: tuple[int, int, int] | None) -> str | None:
    """Why an engine built by TensorRT `built` cannot run with the `installed` one
    (None: not installed), or None when it can. Engines are not portable across
    TensorRT versions: major.minor.patch must match."""
    from .tensorrt_runner import NOT_INSTALLED, parse_version

    if installed is None:
        return NOT_INSTALLED
    if parse_version(built) != parse_version(installed):
        return (f"model.engine was built with TensorRT {built}, but TensorRT {'.'.join(map(str, installed))} "
                "is installed: an engine only runs on the TensorRT version that built it; rebuild it here")
    return None


def _engine_refusal(bundle: Bundle) -> str | None:
    from .tensorrt_runner import tensorrt_version

    if bundle.engine_path is None:
        return "the bundle has no model.engine"
    return engine_mismatch(bundle.engine_tensorrt_version, tensorrt_version())


class Predictor:
    """Runs a bundle on images of any size.

    backend: "onnxruntime", "tensorrt" (the bundle's engine; an error if it cannot run
    here), or "auto": the engine when it can run, else ONNX Runtime with a warning saying
    why. providers and threads go to ONNX Runtime. tile: None tiles only when a
    static-size model gets another size; True also tiles dynamic-size models (large
    images), False never tiles (the image must then match a static model's size).
    """

    def __init__(self, bundle_or_path, backend: str = "auto", providers=None, threads: int | None = None,
                 tile: bool | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if tile not in (None, True, False):
            raise ValueError(f"tile must be None, True or False, got {tile!r}")
        self.bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
        self.tile = tile
        meta = self.bundle.meta
        self.channels = meta["input"]["channels"]
        self.dtype = np.dtype(meta["input"]["dtype"])
        self.mean, self.std = meta["normalize"]["mean"], meta["normalize"]["std"]
        self._palette = np.asarray(self.bundle.palette, np.uint8)
        if backend in ("auto", "tensorrt"):
            why = _engine_refusal(self.bundle)
            if why is None:
                self._model = _TrtModel(self.bundle)
            elif backend == "tensorrt":
                raise BundleError(f"backend='tensorrt' cannot run: {why}")
            else:
                if self.bundle.engine_path is not None:
                    warnings.warn(f"running model.onnx with ONNX Runtime: {why}", RuntimeWarning, stacklevel=2)
                self._model = _OrtModel(self.bundle, providers, threads)
        else:
            self._model = _OrtModel(self.bundle, providers, threads)

    @property
    def backend(self) -> str:
        return self._model.name

    @property
    def label_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bundle.num_classes <= 256 else np.int32)

    def _check_image(self, image) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image must be a numpy array (H, W, C), got {type(image).__name__}")
        if image.ndim == 2 and self.channels == 1:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"image must be (H, W, {self.channels}), got shape {tuple(image.shape)}")
        if image.shape[-1] != self.channels:
            raise ValueError(f"image has {image.shape[-1]} channels, but the bundle's model takes "
                             f"{self.channels} (shape {tuple(image.shape)}, expected (H, W, {self.channels}))")
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
            raise TypeError(f"image must hold numbers in 0-255 units, got dtype {image.dtype}")
        return image

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        """(C, h, w) -> the model's output for one image, batch dimension removed."""
        out = np.asarray(self._model(x[None].astype(self.dtype, copy=False)))
        return out[0]

    def _labels_of(self, out: np.ndarray) -> np.ndarray:
        """A "labels" output, (h, w) or (1, h, w), as an (h, w) array."""
        return out[0] if out.ndim == 3 else out

    def _plan(self, h: int, w: int) -> str:
        inp = self.bundle.input
        if self.tile:
            return "tile"
        if inp["dynamic_hw"]:
            return "whole"
        if (h, w) == (inp["height"], inp["width"]):
            return "exact"
        if self.tile is False:
            raise ValueError(f"image is {h}x{w}, but the model takes {inp['height']}x{inp['width']} "
                             "and tiling is off (tile=False)")
        return "tile"

    def _tile_hw(self) -> tuple[int, int]:
        inp = self.bundle.input
        if inp["dynamic_hw"]:
            size = self.bundle.meta["tile"]["size"]
            return size, size
        return inp["height"], inp["width"]

    def _forward(self, x: np.ndarray) -> np.ndarray:
        _, h, w = x.shape
        kind = self.bundle.output["kind"]
        plan = self._plan(h, w)
        if plan == "tile":
            overlap = self.bundle.meta["tile"]["overlap"]
            if kind == "logits":
                return tiled_logits(x, self._run_one, self._tile_hw(), overlap)
            return tiled_labels(x, lambda t: self._labels_of(self._run_one(t)), self._tile_hw(), overlap)
        if plan == "whole":
            ph, pw = -(-h // PAD_MULTIPLE) * PAD_MULTIPLE, -(-w // PAD_MULTIPLE) * PAD_MULTIPLE
            out = self._run_one(pad_reflect(x, ph, pw))
        else:
            out = self._run_one(x)
        if kind == "logits":
            return out[:, :h, :w].astype(np.float32, copy=False)
        return self._labels_of(out)[:h, :w]

    def predict_logits(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) image in 0-255 units -> (K, H, W) float32 logits (bundles whose
        output kind is "logits")."""
        if self.bundle.output["kind"] != "logits":
            raise ValueError("this bundle's model outputs labels (output.kind 'labels'), not logits")
        image = self._check_image(image)
        return self._forward(normalize(image, self.mean, self.std))

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) image in 0-255 units (uint8 usually) -> (H, W) class map, uint8
        (int32 beyond 256 classes)."""
        image = self._check_image(image)
        out = self._forward(normalize(image, self.mean, self.std))
        labels = out.argmax(axis=0) if self.bundle.output["kind"] == "logits" else out
        return labels.astype(self.label_dtype, copy=False)

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """(H, W) class map -> (H, W, 3) uint8 colours from the bundle's palette."""
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be an (H, W) integer class map, got {labels.dtype} {tuple(labels.shape)}")
        k = len(self._palette)
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"labels must lie in [0, {k}) (the bundle's {k} classes), "
                             f"got values {int(labels.min())}..{int(labels.max())}")
        return self._palette[labels]

    def run(self, input_path, out_dir, progress: bool = True) -> list[Path]:
        """Predict an image file or every image of a folder; writes <name>_labels.png (the
        class indices) and <name>_color.png in out_dir. Returns the files written."""
        from PIL import Image

        files = list_images(input_path)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stems = [f.stem for f in files]
        written = []
        for i, f in enumerate(_progress(files, progress)):
            # a.png and a.tif in one folder must not overwrite each other's results.
            stem = f.stem if stems.count(f.stem) == 1 else f.name.replace(".", "_")
            labels = self.predict(read_image(f, self.channels))
            lab = labels if labels.dtype == np.uint8 else labels.astype(np.uint16)
            paths = (out / f"{stem}_labels.png", out / f"{stem}_color.png")
            Image.fromarray(lab).save(paths[0])
            Image.fromarray(self.colorize(labels)).save(paths[1])
            written += paths
            if progress and _tqdm() is None:
                print(f"{i + 1}/{len(files)} {f.name}", file=sys.stderr, flush=True)
        return written


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _progress(files, progress: bool):
    tqdm = _tqdm() if progress else None
    if tqdm is None:
        return files
    return tqdm(files, unit="img", file=sys.stderr)
