"""Distance-transform benchmark: effseg vs scipy and OpenCV (CPU), vs cupyx (CUDA),
side by side in one process on one batch of blobby masks."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .._timing import machine, median_ms
from .progress import progress as _progress

BATCH, SIZE = 8, 1024
MASKS_DOC = ("Gaussian noise N(0,1) on a (size/16 + 2)^2 grid, bilinearly upsampled to "
             "size^2 (align_corners=False), foreground where > 0.3: blobs some 10-100 px "
             "across, ~32% foreground; torch.Generator seed 0")


def blob_masks(n: int = BATCH, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """(n, size, size) bool masks as described by MASKS_DOC."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size // 16 + 2, size // 16 + 2, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x[:, 0] > 0.3


def _peers(masks: torch.Tensor, device: str) -> dict[str, tuple[Callable, str]]:
    """name -> (call returning (n, H, W) distances, note), for what is installed."""
    from ..ops import distance_transform

    out: dict[str, tuple[Callable, str]] = {}
    if device == "cpu":
        from .. import _native

        if _native.available():
            threads = _native.require().get_num_threads()
            out["effseg_cpp"] = (lambda: distance_transform(masks, backend="cpp"),
                                 f"one call for the batch, {threads} OpenMP threads")
        host = masks.numpy()
        try:
            from scipy.ndimage import distance_transform_edt

            out["scipy"] = (lambda: [distance_transform_edt(m) for m in host],
                            "distance_transform_edt looped over the masks (single-threaded)")
        except ImportError:
            pass
        try:
            import cv2

            u8 = [np.ascontiguousarray(m, dtype=np.uint8) for m in host]
            note = (f"cv2.distanceTransform(DIST_L2, DIST_MASK_PRECISE) looped over the masks, "
                    f"{cv2.getNumThreads()} OpenCV threads, opencv {cv2.__version__}")
            out["opencv"] = (
                lambda: [cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) for m in u8],
                note)
        except ImportError:
            pass
    else:
        dm = masks.to(device)
        out["effseg_triton"] = (lambda: distance_transform(dm, backend="triton"),
                                "one call for the batch")
        try:
            import cupy
            from cupyx.scipy.ndimage import distance_transform_edt as cupy_edt

            cm = [cupy.asarray(m) for m in dm]
            out["cupyx"] = (lambda: [cupy_edt(m, float64_distances=False) for m in cm],
                            f"cupyx.scipy.ndimage.distance_transform_edt (PBA+) looped, cupy {cupy.__version__}")
        except (ImportError, RuntimeError):  # not installed, or no usable CUDA runtime
            out.pop("cupyx", None)
    return out


def _as_tensor(result) -> torch.Tensor:
    if isinstance(result, torch.Tensor):
        return result.float().cpu()
    return torch.stack([torch.as_tensor(np.asarray(r.get() if hasattr(r, "get") else r)).float()
                        for r in result])


def _reference(masks: torch.Tensor):
    """scipy's distances (float64, then float32) when scipy is installed: what every
    backend is checked against."""
    try:
        from scipy.ndimage import distance_transform_edt
    except ImportError:
        return None, None
    d = np.stack([distance_transform_edt(m) for m in masks.numpy()])
    return torch.from_numpy(d).float(), "scipy"


def bench_distance_transform(device: str = "cpu", n: int = BATCH, size: int = SIZE,
                             repeats: int = 5, progress: bool = True,
                             only: tuple | None = None) -> dict:
    masks = blob_masks(n, size)
    peers = _peers(masks, device)
    if only is not None:
        peers = {k: v for k, v in peers.items() if k in only}
    bar = _progress(len(peers), progress)
    want, ref_name = _reference(masks)
    rows = []
    for name, (fn, note) in peers.items():
        got = _as_tensor(fn())
        if want is None:
            want, ref_name = got, name
        err = ((got - want).abs() / want.clamp_min(1.0)).max().item()
        t = median_ms(fn, device, repeats=repeats)
        rows.append(dict(backend=name, note=note, **t,
                         masks_per_s=n / (t["median_ms"] * 1e-3),
                         max_rel_err=err))
        bar(f"{name}: {t['median_ms']:.2f} ms")
    for r in rows:
        for other in rows:
            if other is not r:
                r[f"speedup_vs_{other['backend']}"] = other["median_ms"] / r["median_ms"]
    return {"op": "distance_transform", "device": device, "machine": machine(device),
            "shape": {"batch": n, "H": size, "W": size, "dtype": "bool", "masks": MASKS_DOC},
            "method": (f"median of at least {repeats} timed calls of the whole batch (more "
                       "for fast calls, up to 50) after 2 warm-ups, side by side in one process"),
            "max_rel_err_reference": ref_name,
            "results": rows}


QUICK_HELP = "2 masks of 256x256, 3 repeats"


def add_arguments(p) -> None:
    p.add_argument("--batch", type=int, default=BATCH, help=f"masks (default {BATCH})")
    p.add_argument("--size", type=int, default=SIZE, help=f"mask side (default {SIZE})")


def run(args) -> dict:
    batch, size, repeats = (2, 256, 3) if args.quick else (args.batch, args.size, args.repeats)
    return bench_distance_transform(args.device, batch, size, repeats=repeats)


def targets(result: dict) -> dict:
    """The issue's CPU targets on 8 masks of 1024x1024: effseg's C++ throughput >= OpenCV
    DIST_MASK_PRECISE's and >= 4x scipy's; outputs equal to float32 rounding."""
    rows = {r["backend"]: r for r in result["results"]}
    cpp = rows.get("effseg_cpp")
    shape = result["shape"]
    if cpp is None or result["device"] != "cpu" or (shape["batch"], shape["H"]) != (BATCH, SIZE):
        return {}
    t = {"max_rel_err": cpp["max_rel_err"], "max_rel_err_reference": result["max_rel_err_reference"]}
    if "opencv" in rows:
        t["speedup_vs_opencv"] = cpp["speedup_vs_opencv"]
        t["opencv_met"] = cpp["speedup_vs_opencv"] >= 1
    if "scipy" in rows:
        t["speedup_vs_scipy"] = cpp["speedup_vs_scipy"]
        t["scipy_met"] = cpp["speedup_vs_scipy"] >= 4
    t["exact_met"] = t["max_rel_err"] <= 1e-5
    return t
