"""One row of bench/bench_predict.py, run in a process of its own so that its peak
resident set (VmHWM) is its own: a bundle through effseg's windowed GeoTIFF path, one
whole-image pass, or a GeoSeg-style non-overlapping tiler, on one raster.

Torch-free (numpy, rasterio, effseg.runtime and effseg.predict), as on a device that
runs bundles only: the parent blocks torch in the child (ROW_PRELUDE), so the figures
are the engine's, not an idle torch's.

    python -c "$ROW_PRELUDE" '{"mode": "windowed", "bundle": ..., "input": ..., "out": ...}'
prints one JSON line: the row's figures.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

MODES = ("windowed", "whole", "tiler")

# The child's program: torch cannot be imported (a finder refuses it), then main().
ROW_PRELUDE = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in a bench_predict row")
sys.meta_path.insert(0, _NoTorch())
from effseg.bench.predict_rows import main
main(sys.argv[1])
"""


def status_mb(field: str) -> float | None:
    """A /proc/self/status figure (VmHWM: peak resident set, VmRSS: now) in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb() -> tuple[float, str]:
    hwm = status_mb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (r / 2**20 if sys.platform == "darwin" else r / 1024), "ru_maxrss"


def read_whole(path, channels: int, replicate_grey: bool):
    """The whole raster as (H, W, C) native pixels, its (H, W) validity (None: no mask)
    and nodata value: what a whole-image tool holds in memory."""
    import rasterio

    with rasterio.open(path) as src:
        px = np.moveaxis(src.read(), 0, -1)
        masked = any(f != [rasterio.enums.MaskFlags.all_valid] for f in src.mask_flag_enums)
        valid = src.read_masks().any(axis=0) if masked else None
        nodata = src.nodata if src.nodata is not None and np.isfinite(src.nodata) else None
        profile = {"crs": src.crs, "transform": src.transform}
    if px.shape[-1] != channels:
        if px.shape[-1] == 1 and replicate_grey:
            px = np.broadcast_to(px, px.shape[:2] + (channels,))
        else:
            raise ValueError(f"{path}: {px.shape[-1]} band(s), the model takes {channels}")
    return px, valid, nodata, profile


def write_labels(path, labels: np.ndarray, profile: dict) -> None:
    """The class map as a tiled, deflate-compressed GeoTIFF, as the windowed path writes."""
    import rasterio

    h, w = labels.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", tiled=True,
                       blockxsize=512, blockysize=512, compress="deflate", nodata=255, BIGTIFF="IF_SAFER",
                       **profile) as dst:
        dst.write(labels[None])


def run_windowed(predictor, cfg: dict) -> dict:
    from ..predict.geotiff import gdal_env
    from ..predict.pipeline import PredictOptions, predict_files

    opts = PredictOptions(tile=cfg["tile"], overlap=cfg["overlap"], batch=cfg["batch"],
                          replicate_grey=cfg.get("replicate_grey", False), progress=False)
    with gdal_env():
        run = predict_files(predictor, [cfg["input"]], cfg["out"], opts, on_error="raise")
    r = run.results[0]
    return {"tiles": r.tiles, "output": str(r.output)}


def run_whole(predictor, cfg: dict) -> dict:
    """effseg's Predictor on the whole image at once: padded (reflection) to a multiple of
    32, one model pass (Predictor(tile=False) on a dynamic-size bundle)."""
    from ..predict.geotiff import gdal_env

    with gdal_env():
        px, valid, nodata, profile = read_whole(cfg["input"], predictor.channels, cfg.get("replicate_grey", False))
        labels = predictor.predict(px, valid=valid, nodata=nodata)
        write_labels(Path(cfg["out"]) / f"{Path(cfg['input']).stem}.tif", labels, profile)
    return {"tiles": 1}


def tiler_logits(predictor, px: np.ndarray, tile: int, batch: int):
    """GeoSeg-style: the (H, W, C) image padded with zeros at the bottom/right to whole
    tiles, cut into non-overlapping tile x tile pieces, each run on its own; yields
    (y, x, (K, tile, tile) logits) in row-major order. No overlap, no blending."""
    h, w = px.shape[:2]
    ph, pw = -(-h // tile) * tile, -(-w // tile) * tile
    padded = np.zeros((ph, pw, px.shape[2]), px.dtype)
    padded[:h, :w] = px
    starts = [(y, x) for y in range(0, ph, tile) for x in range(0, pw, tile)]
    for b in range(0, len(starts), batch):
        part = starts[b:b + batch]
        x = np.stack([predictor.prepare(padded[y:y + tile, x0:x0 + tile]) for y, x0 in part])
        out = predictor.run_batch(x)
        for (y, x0), logits in zip(part, out):
            yield y, x0, logits


def run_tiler(predictor, cfg: dict) -> dict:
    from ..predict.geotiff import gdal_env

    tile = cfg["tile"]
    with gdal_env():
        px, _, _, profile = read_whole(cfg["input"], predictor.channels, cfg.get("replicate_grey", False))
        h, w = px.shape[:2]
        labels = np.empty((-(-h // tile) * tile, -(-w // tile) * tile), np.uint8)
        n = 0
        for y, x, logits in tiler_logits(predictor, px, tile, cfg["batch"]):
            labels[y:y + tile, x:x + tile] = logits.argmax(axis=0)
            n += 1
        write_labels(Path(cfg["out"]) / f"{Path(cfg['input']).stem}.tif", labels[:h, :w], profile)
    return {"tiles": n}


RUNNERS = {"windowed": run_windowed, "whole": run_whole, "tiler": run_tiler}


def run_row(cfg: dict) -> dict:
    """cfg: mode, bundle, input, out (a folder), tile, overlap, batch, threads; returns
    seconds, megapixels, MP/s and peak RSS (MB) of this process."""
    import rasterio

    from ..runtime.predictor import Predictor

    if cfg["mode"] not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {cfg['mode']!r}")
    with rasterio.open(cfg["input"]) as src:
        h, w = src.height, src.width
    Path(cfg["out"]).mkdir(parents=True, exist_ok=True)
    predictor = Predictor(cfg["bundle"], backend="onnxruntime", threads=cfg.get("threads"),
                          tile=False if cfg["mode"] == "whole" else None, max_pixels=None)
    # Warm-up outside the timing: ONNX Runtime plans its first call of a shape.
    predictor.run_batch(np.zeros((1, predictor.channels, 64, 64), np.float32))
    rss_ready = status_mb("VmRSS")
    t0 = time.perf_counter()
    extra = RUNNERS[cfg["mode"]](predictor, cfg)
    seconds = time.perf_counter() - t0
    peak, method = peak_rss_mb()
    mp = h * w / 1e6
    return {"mode": cfg["mode"], "input": str(cfg["input"]), "height": h, "width": w, "megapixels": mp,
            "seconds": seconds, "mp_per_s": mp / seconds, "peak_rss_mb": peak, "rss_method": method,
            "rss_before_mb": rss_ready, "torch_loaded": "torch" in sys.modules, **extra}


def main(arg: str) -> None:
    print(json.dumps(run_row(json.loads(arg))), flush=True)
