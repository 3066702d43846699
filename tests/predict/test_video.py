"""Video through `effseg predict`: a small mp4v clip made here with OpenCV, a tiny
exported bundle, and the outputs checked against the predictor run on the decoded frames
(exactly), the raster path (exactly) and the class colours (within the codec's loss)."""
import json

import numpy as np
import pytest
import rasterio
from bundle_cases import make_bundle
from no_torch import run_without_torch
from raster_cases import rgb, write_tif

from effseg.cli import main
from effseg.predict import PredictOptions, predict_raster
from effseg.predict.arrays import predict_array
from effseg.predict.model import load_predictor
from effseg.predict.video import VideoOptions, overlay_bgr, predict_video, predict_videos

cv2 = pytest.importorskip("cv2", reason="the video tests need OpenCV: pip install opencv-python-headless")
PIL = pytest.importorskip("PIL.Image", reason="mask PNGs are read with Pillow")

KW = dict(dynamic_hw=True, tile_size=32, tile_overlap=8, height=32, width=32)
JSON_KEYS = {"input", "kind", "frames", "width", "height", "source_fps", "overlay_fps", "seconds", "engine_seconds",
             "decode_seconds", "encode_seconds", "model_calls", "masks", "overlay", "summary", "backend", "tile",
             "overlap", "tta", "interrupted", "fps_end_to_end", "fps_engine"}


def write_clip(path, frames_bgr, fps=10.0):
    h, w = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames_bgr:
        writer.write(f)
    writer.release()
    return path


def read_clip(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    fps, size = cap.get(cv2.CAP_PROP_FPS), (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    return frames, fps, size


def gradient_frames(n=12, h=80, w=96):
    yy, xx = np.mgrid[0:h, 0:w]
    return [np.dstack([(xx * 2 + i * 5) % 256, (yy * 3 + i * 2) % 256, ((xx + yy) * 2 + i * 9) % 256])
            .astype(np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("video")
    bundle = make_bundle(tmp, kernel=3, **KW)
    clip = write_clip(tmp / "flight.mp4", gradient_frames())
    return bundle, load_predictor(bundle), clip


@pytest.fixture(scope="module")
def run(case, tmp_path_factory):
    _, pred, clip = case
    out = tmp_path_factory.mktemp("out")
    return predict_video(pred, clip, out, PredictOptions(batch=3), VideoOptions(progress=False)), out


def _mask(path):
    with PIL.open(path) as im:
        return im.mode, np.array(im), im.getpalette()


def test_masks_are_the_predictor_on_the_decoded_frames(case, run, tmp_path):
    _, pred, clip = case
    r, out = run
    frames, _, _ = read_clip(clip)
    masks = sorted((out / "flight").iterdir())
    assert len(frames) == 12 and [m.name for m in masks] == [f"frame_{i:06d}.png" for i in range(12)]
    swapped_differs = False
    for f, m in zip(frames, masks):
        mode, got, palette = _mask(m)
        assert mode == "P" and palette[:3 * 4] == [v for c in pred.bundle.palette for v in c]
        np.testing.assert_array_equal(got, predict_array(pred, f[:, :, ::-1].copy(), PredictOptions(batch=3)))
        swapped_differs |= not np.array_equal(got, predict_array(pred, f))
    assert swapped_differs, "B, G, R fed as is gives the same masks: the clip cannot tell the channel order"
    assert len(np.unique(got)) > 1
    # The same decoded pixels saved as a PNG, through the raster path, give the same map.
    for i in (0, 11):
        PIL.fromarray(frames[i][:, :, ::-1].copy()).save(tmp_path / f"f{i}.png")
        with rasterio.open(predict_raster(pred, tmp_path / f"f{i}.png", tmp_path / "o",
                                          PredictOptions(progress=False)).output) as d:
            np.testing.assert_array_equal(d.read(1), _mask(masks[i])[1])


def test_overlay_video_and_summary(case, run):
    _, pred, clip = case
    r, out = run
    frames, _, _ = read_clip(clip)
    over, fps, size = read_clip(out / "flight_overlay.mp4")
    assert len(over) == 12 and size == (96, 80) and fps == pytest.approx(10.0)
    assert not list(out.glob(".*part*")), "the temporary overlay was left behind"
    errs = []
    for f, o, m in zip(frames, over, sorted((out / "flight").iterdir())):
        labels = _mask(m)[1]
        want = overlay_bgr(f, pred.colorize(labels), labels == 255, 0.5)
        errs.append(np.abs(o.astype(int) - want.astype(int)).mean())
    assert max(errs) < 6.0, errs  # mp4v re-encodes the overlay: a few levels of loss, not a wrong colour
    summary = json.loads((out / "flight_video.json").read_text())
    assert set(summary) == JSON_KEYS
    assert summary["frames"] == r.frames == 12 and (summary["width"], summary["height"]) == (96, 80)
    assert summary["source_fps"] == summary["overlay_fps"] == pytest.approx(10.0)
    assert summary["fps_end_to_end"] > 0 and summary["fps_engine"] > 0
    # The model calls are a part of the wall time, so the engine figure can only be higher.
    assert summary["fps_engine"] >= summary["fps_end_to_end"]
    assert summary["model_calls"] == 12 * 4  # 12 tiles of 32 px per 96x80 frame, 3 per call
    assert summary["tile"] == [32, 32] and summary["overlap"] == 8 and summary["interrupted"] is False
    assert summary["overlay"] == str(out / "flight_overlay.mp4") and summary["masks"] == str(out / "flight")


def test_red_frames_reach_the_model_and_the_overlay_as_red(tmp_path, monkeypatch):
    # Colours with no red and some blue: a frame or a colour with R and B swapped shows.
    pred = load_predictor(make_bundle(tmp_path, kernel=3, palette=[[0, 200, 90], [0, 160, 120], [10, 220, 80],
                                                                   [0, 255, 100]], **KW))
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 2] = 255  # B, G, R
    clip = write_clip(tmp_path / "red.mp4", [red] * 4)
    seen = []
    prepare = pred.prepare
    monkeypatch.setattr(pred, "prepare", lambda px, mask=None: seen.append(px.reshape(-1, 3).mean(0))
                        or prepare(px, mask))
    predict_video(pred, clip, tmp_path / "o", vopts=VideoOptions(progress=False))
    means = np.array(seen)
    assert len(means) == 4 * 6 and (means[:, 0] > 230).all() and (means[:, 2] < 25).all(), means
    over, _, _ = read_clip(tmp_path / "o" / "red_overlay.mp4")
    colours = pred.colorize(_mask(tmp_path / "o" / "red" / "frame_000001.png")[1]).astype(float)
    want_rgb = 0.5 * np.array([255.0, 0, 0]) + 0.5 * colours
    got_rgb = over[1][:, :, ::-1].astype(float)
    assert np.abs(got_rgb - want_rgb).mean() < 8
    assert np.abs(got_rgb - want_rgb[:, :, ::-1]).mean() > 40  # what a swapped order would give


def test_overlay_blend_keeps_nodata_pixels():
    frame = np.full((2, 2, 3), 100, np.uint8)
    colours = np.array([[[255, 0, 0], [0, 0, 0]], [[0, 255, 0], [10, 20, 30]]], np.uint8)
    nodata = np.array([[False, True], [False, False]])
    out = overlay_bgr(frame, colours, nodata, 0.25)
    np.testing.assert_array_equal(out[0, 0], [75, 75, 139])  # B, G, R: red lands in the last channel
    np.testing.assert_array_equal(out[0, 1], [100, 100, 100])
    np.testing.assert_array_equal(out[1, 1], [83, 80, 78])
    np.testing.assert_array_equal(overlay_bgr(frame, colours, nodata, 0.0), frame)


def test_no_masks_and_max_frames(case, tmp_path):
    _, pred, clip = case
    r = predict_video(pred, clip, tmp_path, vopts=VideoOptions(masks=False, max_frames=5, progress=False))
    assert r.frames == 5 and r.masks is None and not (tmp_path / "flight").exists()
    assert len(read_clip(tmp_path / "flight_overlay.mp4")[0]) == 5
    r = predict_video(pred, clip, tmp_path / "m", vopts=VideoOptions(overlay=False, progress=False))
    assert r.overlay is None and sorted(p.name for p in (tmp_path / "m").iterdir()) == ["flight", "flight_video.json"]


def test_progress_bar_counts_frames(case, tmp_path, capsys):
    _, pred, clip = case
    predict_video(pred, clip, tmp_path, vopts=VideoOptions(masks=False, overlay=False))
    err = capsys.readouterr().err
    assert "flight.mp4" in err and "/12 [" in err and "frame/s" in err


def test_errors_are_named(case, tmp_path):
    bundle, pred, clip = case
    with pytest.raises(FileNotFoundError, match=r"video INPUT '.*missing.mp4' does not exist"):
        predict_video(pred, tmp_path / "missing.mp4", tmp_path / "o")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 64)
    with pytest.raises(ValueError, match=r"junk.mp4 cannot be opened: not a video OpenCV's FFmpeg can decode"):
        predict_video(pred, tmp_path / "junk.mp4", tmp_path / "o")
    four = load_predictor(make_bundle(tmp_path, "four", channels=4, kernel=1, **KW))
    with pytest.raises(ValueError, match=r"flight.mp4: its frames have 3 bands \(R, G, B\), but the model takes 4"):
        predict_video(four, clip, tmp_path / "o4", vopts=VideoOptions(progress=False))
    assert sorted(p.name for p in (tmp_path / "o4").iterdir()) == [], "a failed video left outputs"
    u16 = load_predictor(make_bundle(tmp_path, "u16", kernel=1, pixel_dtype="uint16", stats_scale=257.0, **KW))
    with pytest.raises(ValueError, match=r"flight.mp4 frame 0 holds uint8 pixels, but the model takes uint16"):
        predict_video(u16, clip, tmp_path / "o5", vopts=VideoOptions(progress=False))
    with pytest.raises(ValueError, match=r"--probs, --cog and --vector make GeoTIFF and vector outputs"):
        predict_video(pred, clip, tmp_path / "o", PredictOptions(probs=True))
    for bad, msg in ((dict(alpha=1.5), "--overlay-alpha must be a number between 0 and 1"),
                     (dict(max_frames=0), "--max-frames must be a positive integer")):
        with pytest.raises(ValueError, match=msg):
            predict_video(pred, clip, tmp_path / "o", vopts=VideoOptions(**bad))
    run = predict_videos(pred, [clip, tmp_path / "junk.mp4", clip], tmp_path / "o6",
                         vopts=VideoOptions(progress=False, masks=False))
    assert [r.frames for r in run.results] == [12]
    # the same reasons as rasters get (predict.pipeline.failure_reason: the type named for I/O errors)
    assert [(label, reason.split(":")[0]) for label, reason in run.failed] == [
        ("junk.mp4", "junk.mp4 cannot be opened"), ("flight.mp4", "FileExistsError")]
    assert run.failed[1][1] == ("FileExistsError: its outputs flight/ and flight_overlay.mp4 were already written in "
                                "this run for flight.mp4; not overwriting (rename one of them)")


def test_cli_video_and_raster_without_torch(case, tmp_path):
    bundle, _, clip = case
    write_tif(tmp_path / "s1.tif", rgb(40, 50))
    out = tmp_path / "out"
    r = run_without_torch(f"""
from effseg.cli import main
code = main({["predict", str(bundle), str(clip), str(tmp_path / "s1.tif"), "--out", str(out), "--no-progress",
              "--max-frames", "3", "--tta", "flip"]!r})
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was loaded"
sys.exit(code)
""")
    assert r.returncode == 0, r.stderr
    assert "flight.mp4 -> " in r.stdout and "3 frames 96x80" in r.stdout and "1 video(s)" in r.stdout
    assert "fps end-to-end (decode + infer + encode)" in r.stdout and "fps engine only (model calls)" in r.stdout
    assert "s1.tif -> " in r.stdout and "1 raster(s)" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["flight", "flight_overlay.mp4", "flight_video.json", "s1.tif"]
    assert json.loads((out / "flight_video.json").read_text())["tta"] == "flip"


def test_cli_errors(case, tmp_path, capsys):
    bundle, _, clip = case
    assert main(["predict", str(bundle), "--out", str(tmp_path)]) == 2
    assert "no INPUT: give raster or video files, cam:N, a stream URL, or --camera N" in capsys.readouterr().err
    assert main(["predict", str(bundle), str(clip), "--out", str(tmp_path), "--probs"]) == 2
    assert "--probs, --cog and --vector make GeoTIFF" in capsys.readouterr().err
    assert main(["predict", str(bundle), str(tmp_path / "gone.mkv"), "--out", str(tmp_path)]) == 2
    assert "video INPUT" in capsys.readouterr().err
    assert main(["predict", str(bundle), "--camera", "63", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "effseg predict: error: camera 63: camera 63 cannot be opened: no such camera here" in err


def test_ctrl_c_keeps_what_was_done(case, tmp_path, monkeypatch):
    bundle, _, clip = case
    pred = load_predictor(bundle)
    calls = []
    run_batch = pred.run_batch

    def interrupt_on_frame_2(x):
        calls.append(len(x))
        if len(calls) == 9:  # 3 calls of 4 tiles per frame: the first call of frame 2
            raise KeyboardInterrupt
        return run_batch(x)

    monkeypatch.setattr(pred, "run_batch", interrupt_on_frame_2)
    r = predict_video(pred, clip, tmp_path, vopts=VideoOptions(progress=False))
    assert r.interrupted and r.frames == 2 and r.model_calls == 9
    assert len(read_clip(tmp_path / "flight_overlay.mp4")[0]) == 2 and len(list((tmp_path / "flight").iterdir())) == 2
    assert json.loads((tmp_path / "flight_video.json").read_text())["interrupted"] is True
