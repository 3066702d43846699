"""Video INPUT arguments (files, camera indices, stream URLs) and decoded frames turned
into the model's bands. OpenCV is imported only when a video is opened: effseg.predict
must stay importable on a machine that only predicts rasters."""
from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..runtime.images import fit_bands
from .inputs import RASTER_EXTENSIONS

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
STREAM_SCHEMES = ("rtsp", "http", "https")
CAMERA_PREFIX = "cam:"
INSTALL_HINT = 'pip install "effseg[video]"'


def cv2_or_raise():
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeError("video and camera input is decoded with OpenCV, which is not installed: "
                           f"{INSTALL_HINT} (or pip install opencv-python-headless)") from exc
    return cv2


@dataclass(frozen=True)
class VideoSource:
    """target: what cv2.VideoCapture opens (a path, a URL or a camera index); kind: file,
    camera or stream; stem: the output name (DIR/<stem>/, DIR/<stem>_overlay.mp4);
    label: how messages name it."""
    target: str | int
    kind: str
    stem: str
    label: str


def _scheme(arg: str) -> str:
    return arg.split("://", 1)[0].lower() if "://" in arg else ""


def is_video_input(arg) -> bool:
    """A video file (by its suffix), a camera (cam:N) or a stream URL: what `effseg
    predict` hands to OpenCV instead of GDAL."""
    a = str(arg)
    return (a.lower().startswith(CAMERA_PREFIX) or _scheme(a) in STREAM_SCHEMES
            or Path(a).suffix.lower() in VIDEO_EXTENSIONS)


def _safe_stem(text: str, fallback: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return s or fallback


def camera_source(index) -> VideoSource:
    if isinstance(index, str):
        index = index.strip()
        if not index.isdigit():
            raise ValueError(f"camera must be an index >= 0 (cam:0, --camera 0), got {index!r}")
        index = int(index)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"camera must be an index >= 0 (cam:0, --camera 0), got {index!r}")
    return VideoSource(index, "camera", f"cam{index}", f"camera {index}")


def video_source(arg) -> VideoSource:
    """One INPUT argument as a VideoSource; a file that does not exist is an error here,
    before any model runs."""
    a = str(arg)
    if a.lower().startswith(CAMERA_PREFIX):
        return camera_source(a[len(CAMERA_PREFIX):])
    if _scheme(a) in STREAM_SCHEMES:
        url = urlsplit(a)
        if not url.hostname:
            raise ValueError(f"stream URL {a!r} has no host (expected e.g. rtsp://HOST[:PORT]/PATH)")
        # The last path part names the stream (rtsp://drone/live/cam1 -> cam1); credentials
        # and query strings must never reach file names or messages.
        name = Path(url.path).stem if url.path.strip("/") else url.hostname
        label = f"{url.scheme}://{url.hostname}{f':{url.port}' if url.port else ''}{url.path}"
        return VideoSource(a, "stream", _safe_stem(name, "stream"), label)
    p = Path(a)
    if not p.exists():
        raise FileNotFoundError(f"video INPUT {a!r} does not exist")
    if not p.is_file():
        raise ValueError(f"video INPUT {a!r} is not a file")
    return VideoSource(str(p), "file", _safe_stem(p.stem, "video"), p.name)


def _has_suffix(p: Path, suffixes) -> bool:
    return p.is_file() and p.suffix.lower() in suffixes


def split_video_inputs(args, camera=None) -> tuple[list, list[VideoSource]]:
    """INPUT arguments -> (the raster arguments, for expand_inputs; the video sources),
    with --camera N added as the last source. A folder or glob gives its video files to
    the videos; a folder stays a raster argument when it holds rasters too, a glob gives
    its other files as such (GDAL must not be handed the videos). One video named twice
    is read once."""
    rasters, found = [], []
    for a in args:
        s = str(a)
        p = Path(s)
        if s.lower().startswith(CAMERA_PREFIX) or _scheme(s) in STREAM_SCHEMES:
            found.append(s)  # before globs: a URL's query string may hold a '?'
        elif glob.has_magic(s) and not p.exists():
            matches = sorted(Path(f) for f in glob.glob(s, recursive=True))
            vids = [f for f in matches if _has_suffix(f, VIDEO_EXTENSIONS)]
            found += vids
            if not vids:
                rasters.append(a)  # as it was: expand_inputs says when it matches nothing
            else:
                rasters += [str(f) for f in matches if f.is_file() and f not in vids]
        elif is_video_input(s) and not p.is_dir():
            found.append(s)
        elif p.is_dir():
            vids = sorted(f for f in p.iterdir() if _has_suffix(f, VIDEO_EXTENSIONS))
            found += vids
            if not vids or any(_has_suffix(f, RASTER_EXTENSIONS) for f in p.iterdir()):
                rasters.append(a)
        else:
            rasters.append(a)
    videos, seen = [], set()
    for v in [video_source(f) for f in found] + ([camera_source(camera)] if camera is not None else []):
        key = Path(v.target).resolve() if v.kind == "file" else v.target
        if key not in seen:
            seen.add(key)
            videos.append(v)
    return rasters, videos


def frame_bands(frame: np.ndarray, channels: int, *, bands=None, replicate_grey: bool = False,
                name: str = "video") -> np.ndarray:
    """A decoded OpenCV frame (BGR, BGRA or grey) -> (H, W, channels) in the order the
    model was trained on: R, G, B. --bands picks 1-based bands of that RGB frame."""
    if frame.ndim == 2:
        rgb = frame[:, :, None]
    elif frame.ndim == 3 and frame.shape[2] in (3, 4):
        rgb = frame[:, :, 2::-1]  # OpenCV decodes to B, G, R (, A): the model wants R, G, B
    elif frame.ndim == 3 and frame.shape[2] == 1:
        rgb = frame
    else:
        raise ValueError(f"{name}: decoded frames of shape {tuple(frame.shape)}; expected (H, W), (H, W, 3) "
                         "or (H, W, 4)")
    b = rgb.shape[2]
    if bands is None and b != channels and not (b == 1 and replicate_grey):
        what = "3 bands (R, G, B)" if b == 3 else "1 band (grey)"
        hint = (f"pick {channels} with --bands (1-based, of R, G, B)" if channels < b else
                "--replicate-grey repeats a grey frame in every channel" if b == 1 else
                "a video can feed only models of up to 3 channels")
        raise ValueError(f"{name}: its frames have {what}, but the model takes {channels} channel(s): {hint}")
    return fit_bands(rgb, channels, bands=bands, replicate_grey=replicate_grey, name=name)
