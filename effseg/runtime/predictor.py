"""Predictor: a bundle turned into class maps and colour masks, with numpy and ONNX
Runtime or TensorRT (no torch)."""
from __future__ import annotations

import warnings

import numpy as np

from .bundle import Bundle, BundleError, load_bundle
from .bundle_models import OrtModel, TrtModel, check_output
from .images import DEFAULT_MAX_PIXELS, check_bands, check_max_pixels, read_raster
from .native_scan import reason as native_scan_reason
from .pixels import PixelPrep
from .segmented import SegmentedModel, unavailable_reason
from .tiled import TileOptions, predict_array

BACKENDS = ("auto", "onnxruntime", "tensorrt")
_COLOR_ROWS = 256


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


class PredictorBase:
    """What every predictor does around its model: the image and pixel-type checks,
    normalisation and nodata (PixelPrep), the output checks against the metadata, the
    tile engine and the colours. The metadata is a Bundle (meta.json's schema); a
    subclass sets self._model, a callable (N, C, h, w) array -> output array with a
    `name` (Predictor: ONNX Runtime or TensorRT; effseg.predict's torch route: an
    nn.Module through effseg.compile). Arguments as Predictor's."""

    def __init__(self, bundle: Bundle, *, tile: bool | None = None, nonfinite: str = "nodata",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, bands=None, replicate_grey: bool = False):
        if tile not in (None, True, False):
            raise ValueError(f"tile must be None, True or False, got {tile!r}")
        self.max_pixels = check_max_pixels(max_pixels)
        self.bands = None if bands is None else check_bands(bands)
        self.replicate_grey = bool(replicate_grey)
        self.bundle = bundle
        self.tile = tile
        meta = self.bundle.meta
        self.channels = meta["input"]["channels"]
        self.dtype = np.dtype(meta["input"]["dtype"])
        self.mean, self.std = meta["normalize"]["mean"], meta["normalize"]["std"]
        self._prep = PixelPrep(self.mean, self.std, self.bundle.scale, nonfinite)
        self.nonfinite = nonfinite
        self._palette = np.asarray(self.bundle.palette, np.uint8)
        th, tw = self._tile_hw()
        overlap = meta["tile"]["overlap"]
        if overlap > min(th, tw) // 2:
            raise BundleError(f"meta.json: key 'tile.overlap' must be at most half of the {th}x{tw} tiles this "
                              f"model runs ({min(th, tw) // 2}), got {overlap}")
        self._model = None

    @property
    def backend(self) -> str:
        return self._model.name

    @property
    def label_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bundle.num_classes <= 255 else np.int32)

    @property
    def nodata_label(self) -> int:
        """The label of nodata pixels: 255 (uint8 maps, up to 255 classes), else 65535."""
        return 255 if self.bundle.num_classes <= 255 else 65535

    def check_image(self, image) -> np.ndarray:
        """image as an (H, W, C) array this model takes, or the error saying why not."""
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image must be a numpy array (H, W, C), got {type(image).__name__}")
        if image.ndim == 2 and self.channels == 1:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"image must be (H, W, {self.channels}), got shape {tuple(image.shape)}")
        if image.shape[-1] != self.channels:
            raise ValueError(f"image has {image.shape[-1]} channels, but the bundle's model takes "
                             f"{self.channels} (shape {tuple(image.shape)}, expected (H, W, {self.channels}))")
        if image.dtype.kind not in "uif":
            raise TypeError(f"image must hold integers or floats, got dtype {image.dtype}")
        want = self.bundle.pixel_dtype
        if image.dtype.kind in "ui" and image.dtype != np.dtype(want):
            # A 16-bit scene through 8-bit statistics is a confident wrong answer.
            raise ValueError(f"image holds {image.dtype} pixels, but the bundle's model takes {want} pixels "
                             f"(meta.json input.pixel_dtype {want!r}): export a bundle for {image.dtype} data "
                             "(pixel_dtype and scale or mean/std in its units), or convert the image")
        return image

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        """(C, h, w) -> the model's checked output, batch dimension removed."""
        out = np.asarray(self._model(x[None].astype(self.dtype, copy=False)))
        return check_output(out, self.bundle.output["kind"], self.bundle.num_classes, x.shape[1:])

    def prepare(self, block: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(h, w, C) native pixels -> (C, h, w) float32 model input (input.scale, then the
        bundle's mean/std); pixels under mask (nodata) -> 0, the band mean."""
        return self._prep(block, mask)

    def nodata_mask(self, block: np.ndarray, valid=None, nodata=None) -> np.ndarray | None:
        """(h, w) bool, True at nodata pixels of a (h, w, C) block (see predict); None: none."""
        return self._mask(block, valid, nodata)

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        """(N, C, h, w) model input -> (N, K, h, w) logits or (N, h, w) labels, checked
        against meta.json. One call when the model takes a batch (input.dynamic_batch),
        else one call per tile."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must be (N, {self.channels}, h, w), got shape {tuple(x.shape)}")
        if len(x) == 1 or not self.bundle.input["dynamic_batch"]:
            return np.stack([self._run_one(t) for t in x])
        out = np.asarray(self._model(x.astype(self.dtype, copy=False)))
        if out.ndim < 1 or out.shape[0] != len(x):
            raise BundleError(f"the model returned shape {tuple(out.shape)} for a batch of {len(x)}")
        kind, k = self.bundle.output["kind"], self.bundle.num_classes
        return np.stack([check_output(out[i:i + 1], kind, k, x.shape[2:]) for i in range(len(x))])

    def _tile_hw(self) -> tuple[int, int]:
        inp = self.bundle.input
        if inp["dynamic_hw"]:
            size = self.bundle.meta["tile"]["size"]
            return size, size
        return inp["height"], inp["width"]

    def _mask(self, image, valid, nodata):
        return self._prep.nodata_mask(image, valid, self.bundle.nodata if nodata is None else nodata)

    def predict_logits(self, image: np.ndarray, *, valid=None, nodata=None,
                       options: TileOptions | None = None) -> np.ndarray:
        """(H, W, C) image -> (K, H, W) float32 logits (bundles whose output kind is
        "logits"); NaN at nodata pixels (see predict)."""
        if self.bundle.output["kind"] != "logits":
            raise ValueError("this bundle's model outputs labels (output.kind 'labels'), not logits")
        return predict_array(self, image, valid=valid, nodata=nodata, options=options, logits=True)[0]

    def predict(self, image: np.ndarray, *, valid=None, nodata=None, options: TileOptions | None = None) -> np.ndarray:
        """(H, W, C) image in the bundle's pixel units (uint8 0-255 unless meta.json says
        otherwise) -> (H, W) class map, uint8 (int32 beyond 255 classes), nodata_label at
        nodata pixels: NaN/Inf ones, those whose bands all equal `nodata` (default: the
        bundle's input.nodata), and those where `valid` (H, W) is False. options
        (effseg.runtime.tiled.TileOptions): tile size, overlap, batch, TTA and blending,
        as `effseg predict` takes them."""
        return predict_array(self, image, valid=valid, nodata=nodata, options=options)[0]

    def read(self, path):
        """An image file as (pixels, valid, nodata) for predict, with this predictor's
        bands, replicate_grey and max_pixels."""
        r = read_raster(path, self.channels, bands=self.bands, replicate_grey=self.replicate_grey,
                        max_pixels=self.max_pixels)
        return r.pixels, r.valid, r.nodata

    def predict_file(self, path) -> np.ndarray:
        pixels, valid, nodata = self.read(path)
        return self.predict(pixels, valid=valid, nodata=nodata)

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """(H, W) class map -> (H, W, 3) uint8 colours from the bundle's palette; nodata
        pixels black (the colour PNGs of `effseg run` also make them transparent)."""
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be an (H, W) integer class map, got {labels.dtype} {tuple(labels.shape)}")
        k = len(self._palette)
        out = np.empty(labels.shape + (3,), np.uint8)
        # Row chunks: the index temporaries of a whole 4000x4000 map would be ~200 MB.
        for r0 in range(0, labels.shape[0], _COLOR_ROWS):
            lab = labels[r0:r0 + _COLOR_ROWS]
            nodata = lab == self.nodata_label
            bad = ((lab < 0) | (lab >= k)) & ~nodata
            if bad.any():
                raise ValueError(f"labels must lie in [0, {k}) (the bundle's {k} classes) or be the nodata label "
                                 f"{self.nodata_label}, got values {int(lab[bad].min())}..{int(lab[bad].max())}")
            out[r0:r0 + _COLOR_ROWS] = self._palette[np.where(nodata, 0, lab)]
            out[r0:r0 + _COLOR_ROWS][nodata] = 0
        return out


class Predictor(PredictorBase):
    """Runs a bundle on images of any size.

    backend: "onnxruntime", "tensorrt" (the bundle's engine; an error if it cannot run
    here), or "auto": the engine when it can run, else ONNX Runtime with a warning saying
    why. providers and threads go to ONNX Runtime. Images run through the one tile
    engine (effseg.runtime.tiled, the same as `effseg run` and `effseg predict`): tiles of
    the model's size (static) or of meta.json tile.size (dynamic), blended. tile: None
    cuts a dynamic model's tiles down to an image smaller than them (one pass, padded to
    a multiple of 32); True never does; False never tiles: a dynamic model takes the
    whole image in one pass, a static one only images of its own size.

    native_scan: for a bundle with a native-scan form (CM-UNet and other SS2D models),
    None runs it on the CPU where it can (effseg._C importable, no CUDA in ONNX Runtime)
    and model.onnx otherwise, True insists on it (a BundleError saying why it cannot
    run), False always runs model.onnx; `native_scan_reason` says why it did not run.

    nonfinite: "nodata" (NaN/Inf pixels become nodata: the nodata label in predict, NaN
    in predict_logits) or "error" (a ValueError). max_pixels, bands and replicate_grey
    apply to the files that read() and run() open (see effseg.runtime.images).
    """

    def __init__(self, bundle_or_path, backend: str = "auto", providers=None, threads: int | None = None,
                 tile: bool | None = None, *, nonfinite: str = "nodata",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, bands=None, replicate_grey: bool = False,
                 native_scan: bool | None = None):
        if native_scan not in (None, True, False):
            raise ValueError(f"native_scan must be None, True or False, got {native_scan!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
        super().__init__(bundle, tile=tile, nonfinite=nonfinite, max_pixels=max_pixels, bands=bands,
                         replicate_grey=replicate_grey)
        self.native_scan_reason = "TensorRT runs the engine"
        if backend in ("auto", "tensorrt"):
            why = _engine_refusal(self.bundle)
            if why is None:
                self._model = TrtModel(self.bundle)
            elif backend == "tensorrt":
                raise BundleError(f"backend='tensorrt' cannot run: {why}")
            else:
                if self.bundle.engine_path is not None:
                    warnings.warn(f"running model.onnx with ONNX Runtime: {why}", RuntimeWarning, stacklevel=2)
                self._model = self._ort_model(providers, threads, native_scan)
        else:
            self._model = self._ort_model(providers, threads, native_scan)

    def _ort_model(self, providers, threads, native_scan):
        """The native-scan form where asked for and possible, else model.onnx."""
        self.native_scan_reason = "native_scan=False" if native_scan is False else unavailable_reason(
            self.bundle, providers)
        if self.native_scan_reason is None:
            return SegmentedModel.from_bundle(self.bundle, threads)
        if native_scan:
            raise BundleError(f"native_scan=True cannot run: {self.native_scan_reason}")
        if native_scan is None and self.native_scan_reason == native_scan_reason():
            # The bundle was made to run its scans natively; ~10x slower without.
            warnings.warn(f"running model.onnx's standard-op scans (several times slower on a CPU): "
                          f"{self.native_scan_reason}", RuntimeWarning, stacklevel=3)
        return OrtModel(self.bundle, providers, threads)
