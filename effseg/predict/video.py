"""Video files, cameras and network streams through the raster predictor (`effseg predict
MODEL flight.mp4 --out DIR`): a decoder thread reads frames with OpenCV, the calling
thread runs each frame through predict_array (the tiles, TTA and blending of GeoTIFFs),
an encoder thread writes the per-frame class masks and the overlay video. Bounded queues
between them, as in the raster pipeline.

The summary puts end-to-end FPS (decode + infer + encode, wall clock) next to engine FPS
(the model calls alone): on an edge device the gap between the two, not the model, often
decides whether a stream keeps up.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..runtime.tiled import _DONE, _Stages, tile_geometry
from .arrays import predict_array
from .pipeline import PredictOptions, run_each
from .video_inputs import VideoSource, camera_source, cv2_or_raise, frame_bands, video_source

# Cameras and many streams report no frame rate (0) or a clock rate (90000): the overlay
# then plays at this one.
DEFAULT_FPS = 30.0
_MAX_FPS = 1000.0


@dataclass
class VideoOptions:
    """masks: write DIR/<stem>/frame_000000.png per frame; overlay: write
    DIR/<stem>_overlay.mp4, frames blended with the class colours at `alpha`;
    max_frames: stop after that many (a camera or live stream never ends by itself)."""
    masks: bool = True
    overlay: bool = True
    alpha: float = 0.5
    max_frames: int | None = None
    progress: bool = True
    prefetch: int = 4

    def check(self) -> None:
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool) or not 0 <= self.alpha <= 1:
            raise ValueError(f"--overlay-alpha must be a number between 0 and 1, got {self.alpha!r}")
        if self.max_frames is not None and (not isinstance(self.max_frames, int) or isinstance(self.max_frames, bool)
                                            or self.max_frames < 1):
            raise ValueError(f"--max-frames must be a positive integer, got {self.max_frames!r}")
        if not isinstance(self.prefetch, int) or isinstance(self.prefetch, bool) or self.prefetch < 1:
            raise ValueError(f"prefetch must be a positive integer, got {self.prefetch!r}")


@dataclass
class VideoResult:
    input: str
    kind: str
    frames: int
    width: int
    height: int
    source_fps: float | None
    overlay_fps: float
    seconds: float
    engine_seconds: float
    decode_seconds: float
    encode_seconds: float
    model_calls: int
    masks: str | None
    overlay: str | None
    summary: str
    backend: str
    tile: list
    overlap: int
    tta: str
    interrupted: bool = False

    @property
    def fps_end_to_end(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def fps_engine(self) -> float:
        return self.frames / self.engine_seconds if self.engine_seconds > 0 else float("inf")

    def to_json(self) -> dict:
        d = asdict(self)
        d["fps_end_to_end"], d["fps_engine"] = self.fps_end_to_end, self.fps_engine
        return d


@dataclass
class VideoRun:
    results: list[VideoResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class _TimedModel:
    """The predictor, with the time spent in its model calls counted: the engine-only
    figure. The pipeline calls run_batch from the calling thread only."""

    def __init__(self, predictor):
        self._predictor = predictor
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._predictor, name)

    def run_batch(self, x):
        t0 = time.perf_counter()
        try:
            return self._predictor.run_batch(x)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def write_mask(path: Path, labels: np.ndarray, palette: bytes | None) -> None:
    """A class-id PNG: palette PNG (the bundle's colours, nodata 255 black) up to 255
    classes, 16-bit grey beyond."""
    from PIL import Image

    im = Image.fromarray(labels)
    if palette is not None:
        im.putpalette(palette)
    # Level 1: class maps compress well anyway, and the encoder must keep up with the stream.
    im.save(path, compress_level=1)


def mask_palette(colours) -> bytes:
    pal = np.zeros((256, 3), np.uint8)
    pal[:len(colours)] = np.asarray(colours, np.uint8)[:256]
    pal[255] = 0  # the nodata label
    return pal.tobytes()


def overlay_bgr(frame_bgr: np.ndarray, colours_rgb: np.ndarray, nodata: np.ndarray, alpha: float) -> np.ndarray:
    """The frame blended with its class colours: (1 - alpha) frame + alpha colour, rounded;
    nodata pixels keep the frame. OpenCV writes B, G, R, so the colours are reversed."""
    a = int(round(alpha * 256))
    out = (frame_bgr.astype(np.uint16) * (256 - a) + colours_rgb[:, :, ::-1].astype(np.uint16) * a + 128) >> 8
    out = out.astype(np.uint8)
    if nodata.any():
        out[nodata] = frame_bgr[nodata]
    return out


def _display_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    return frame[:, :, :3] if frame.shape[2] >= 3 else np.repeat(frame, 3, axis=2)


def _as_source(source) -> VideoSource:
    if isinstance(source, VideoSource):
        return source
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return camera_source(int(source))
    return video_source(source)


def _fps(value) -> float | None:
    return float(value) if value and np.isfinite(value) and 0 < value < _MAX_FPS else None


def _open(cv2, source: VideoSource):
    cap = cv2.VideoCapture(source.target)
    if not cap.isOpened():
        cap.release()
        what = {"camera": "no such camera here, or it is busy",
                "stream": "the stream is unreachable, or not in a format OpenCV's FFmpeg reads",
                "file": "not a video OpenCV's FFmpeg can decode (or a broken file)"}[source.kind]
        raise ValueError(f"{source.label} cannot be opened: {what}")
    return cap


def _progress(total: int | None, name: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="frame", desc=name, file=sys.stderr, leave=False)


def predict_video(predictor, source, out_dir, opts: PredictOptions | None = None,
                  vopts: VideoOptions | None = None) -> VideoResult:
    """Segment every frame of a video file, camera (cam:N) or stream URL into out_dir:
    <stem>/frame_000000.png class masks, <stem>_overlay.mp4 (same size and fps, mp4v) and
    <stem>_video.json, the summary. opts: the tile, overlap, batch, tta, blend, bands and
    replicate_grey of `effseg predict`. Ctrl-C ends a stream cleanly: the frames done so
    far are kept and the summary says interrupted."""
    opts, vopts = opts or PredictOptions(), vopts or VideoOptions()
    opts.check()
    vopts.check()
    if opts.probs or opts.cog or opts.vector:
        raise ValueError("--probs, --cog and --vector make GeoTIFF and vector outputs of rasters; a video gets "
                         "frame masks, an overlay video and a summary")
    geometry = tile_geometry(predictor, opts.tile, opts.overlap)
    source = _as_source(source)
    cv2 = cv2_or_raise()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cap = _open(cv2, source)
    try:
        return _run(cv2, cap, predictor, source, out, opts, vopts, geometry)
    finally:
        cap.release()


def _run(cv2, cap, predictor, source, out, opts, vopts, geometry) -> VideoResult:
    timed = _TimedModel(predictor)
    frame_opts = replace(opts, progress=False)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if source.kind == "file" else 0
    if vopts.max_frames:
        total = min(total, vopts.max_frames) if total > 0 else 0
    source_fps = _fps(cap.get(cv2.CAP_PROP_FPS))
    fps = source_fps or DEFAULT_FPS
    mask_dir = out / source.stem if vopts.masks else None
    final = out / f"{source.stem}_overlay.mp4" if vopts.overlay else None
    part = out / f".{source.stem}_overlay.part.mp4" if vopts.overlay else None
    palette = mask_palette(predictor.bundle.palette) if predictor.bundle.num_classes <= 255 else None
    stages = _Stages()
    halt = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=vopts.prefetch)
    q_out: queue.Queue = queue.Queue(maxsize=vopts.prefetch)
    st = {"decode": 0.0, "encode": 0.0, "done": 0, "size": None, "writer": None}
    bar = _progress(total or None, source.label, vopts.progress)

    def decode():
        try:
            i = 0
            while not halt.is_set() and (vopts.max_frames is None or i < vopts.max_frames):
                t0 = time.perf_counter()
                ok, frame = cap.read()
                st["decode"] += time.perf_counter() - t0
                if not ok:
                    return  # end of file, or the stream stopped sending
                stages.put(q_in, (i, frame))
                i += 1
        except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
            stages.fail(exc)
        finally:
            stages.put(q_in, _DONE)

    def encode():
        try:
            while True:
                item = stages.get(q_out)
                if item is _DONE:
                    return
                i, frame, labels = item
                t0 = time.perf_counter()
                if mask_dir is not None:
                    write_mask(mask_dir / f"frame_{i:06d}.png", labels, palette)
                if st["writer"] is not None:
                    st["writer"].write(overlay_bgr(_display_bgr(frame), predictor.colorize(labels),
                                                   labels == predictor.nodata_label, vopts.alpha))
                st["encode"] += time.perf_counter() - t0
                st["done"] += 1
                if bar is not None:
                    bar.set_postfix_str(f"engine {st['done'] / max(timed.seconds, 1e-9):.1f} fps", refresh=False)
                    bar.update(1)
        except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
            stages.fail(exc)

    def start_outputs(frame_shape):
        h, w = frame_shape
        st["size"] = (h, w)
        if mask_dir is not None:
            mask_dir.mkdir(parents=True, exist_ok=True)
            for old in mask_dir.glob("frame_*.png"):  # a longer earlier run's frames would look like ours
                old.unlink()
        if part is not None:
            writer = cv2.VideoWriter(str(part), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write an mp4v video to {part} (its FFmpeg lacks the encoder?)")
            st["writer"] = writer

    t_start = time.perf_counter()
    threads = [threading.Thread(target=decode, name="effseg-decode", daemon=True),
               threading.Thread(target=encode, name="effseg-encode", daemon=True)]
    threads[0].start()
    interrupted = False
    try:
        while True:
            try:
                item = stages.get(q_in)
                if item is _DONE or stages.stop.is_set():
                    break
                i, frame = item
                name = f"{source.label} frame {i}"
                px = frame_bands(frame, predictor.channels, bands=opts.bands, replicate_grey=opts.replicate_grey,
                                 name=source.label)
                if st["size"] is not None and px.shape[:2] != st["size"]:
                    raise ValueError(f"{name} is {px.shape[1]}x{px.shape[0]}, but the video started at "
                                     f"{st['size'][1]}x{st['size'][0]}: one overlay video needs one frame size")
                labels = predict_array(timed, px, frame_opts, name=name)
                if st["size"] is None:  # after the first frame went through: a refused one leaves no outputs
                    start_outputs(px.shape[:2])
                    threads[1].start()
                stages.put(q_out, (i, frame, labels))
            except KeyboardInterrupt:
                interrupted = True
                halt.set()
                while stages.get(q_in) is not _DONE:  # unblock the decoder
                    pass
                break
    except BaseException as exc:  # noqa: BLE001
        stages.fail(exc)
    finally:
        halt.set()
        stages.put(q_out, _DONE)
        for t in threads:
            if t.is_alive():
                t.join()
        if st["writer"] is not None:
            st["writer"].release()
        if bar is not None:
            bar.close()
        if stages.errors and part is not None and part.exists():
            part.unlink()
    if stages.errors:
        raise stages.errors[0]
    seconds = time.perf_counter() - t_start
    if st["done"] == 0:
        if part is not None and part.exists():
            part.unlink()
        raise ValueError(f"{source.label}: no frame could be decoded")
    if part is not None:
        os.replace(part, final)
    h, w = st["size"]
    (th, tw), overlap = geometry
    result = VideoResult(
        input=source.label, kind=source.kind, frames=st["done"], width=w, height=h, source_fps=source_fps,
        overlay_fps=fps, seconds=seconds, engine_seconds=timed.seconds, decode_seconds=st["decode"],
        encode_seconds=st["encode"], model_calls=timed.calls, masks=None if mask_dir is None else str(mask_dir),
        overlay=None if final is None else str(final), summary=str(out / f"{source.stem}_video.json"),
        backend=predictor.backend, tile=[th, tw], overlap=overlap, tta=opts.tta, interrupted=interrupted)
    Path(result.summary).write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result


def predict_videos(predictor, sources, out_dir, opts: PredictOptions | None = None,
                   vopts: VideoOptions | None = None, *, on_error: str = "report", on_failure=None,
                   on_done=None) -> VideoRun:
    """Each source in turn, as predict_files does rasters: one that fails is recorded (and
    passed to on_failure(label, reason)) and the others go on, unless on_error is 'raise';
    a bad bundle ends the run. Two sources with one stem would write one output: the
    second is refused."""
    cv2_or_raise()  # once, before any source: without OpenCV every one would fail the same way
    sources = [_as_source(s) for s in sources]
    taken: dict[str, str] = {}

    def one(s):
        key = s.stem.casefold()
        if key in taken:
            raise FileExistsError(f"its outputs {s.stem}/ and {s.stem}_overlay.mp4 were already written in this "
                                  f"run for {taken[key]}; not overwriting (rename one of them)")
        taken[key] = s.label
        return predict_video(predictor, s, out_dir, opts, vopts)

    return run_each(sources, one, VideoRun(), on_error=on_error, on_failure=on_failure, on_done=on_done,
                    label=lambda s: s.label)
