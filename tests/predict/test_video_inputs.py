"""Which INPUT arguments are videos, cameras or streams, the output names they get, and
decoded frames turned into model bands (B, G, R -> R, G, B). No OpenCV needed."""
import sys

import numpy as np
import pytest

from effseg.predict.video_inputs import (INSTALL_HINT, camera_source, cv2_or_raise, frame_bands, is_video_input,
                                         split_video_inputs, video_source)


def test_is_video_input():
    for a in ("flight.mp4", "a/B.MOV", "x.avi", "y.mkv", "cam:0", "CAM:2", "rtsp://h/s", "http://h/v",
              "HTTPS://h/v.m3u8"):
        assert is_video_input(a), a
    for a in ("scene.tif", "tiles/", "**/*.tif", "mosaic.vrt", "a.png", "ftp://h/a.tif", "camera.tif"):
        assert not is_video_input(a), a


def test_sources_and_stems(tmp_path):
    f = tmp_path / "flight 1.mp4"
    f.write_bytes(b"")
    s = video_source(f)
    assert (s.kind, s.target, s.stem, s.label) == ("file", str(f), "flight_1", "flight 1.mp4")
    assert video_source("cam:3") == camera_source(3) == camera_source("3")
    assert camera_source(0).target == 0 and camera_source(0).stem == "cam0"
    s = video_source("rtsp://user:secret@drone.local:8554/live/cam1?token=abc")
    assert (s.kind, s.stem) == ("stream", "cam1") and s.target.startswith("rtsp://user:secret@")
    assert "secret" not in s.label and "token" not in s.label and s.label == "rtsp://drone.local:8554/live/cam1"
    assert video_source("http://10.0.0.2:8080/").stem == "10.0.0.2"
    assert video_source("https://h/v/index.m3u8").stem == "index"


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"video INPUT '.*nope.mp4' does not exist"):
        video_source(tmp_path / "nope.mp4")
    (tmp_path / "d.mp4").mkdir()
    with pytest.raises(ValueError, match=r"video INPUT '.*d.mp4' is not a file"):
        video_source(tmp_path / "d.mp4")
    for bad in ("cam:x", "cam:-1", "cam:"):
        with pytest.raises(ValueError, match=r"camera must be an index >= 0 \(cam:0, --camera 0\)"):
            video_source(bad)
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="camera must be an index >= 0"):
            camera_source(bad)
    with pytest.raises(ValueError, match=r"stream URL 'rtsp:///x' has no host"):
        video_source("rtsp:///x")


def test_split_keeps_rasters_and_adds_the_camera(tmp_path):
    v = tmp_path / "a.mp4"
    v.write_bytes(b"")
    rasters, videos = split_video_inputs(["s.tif", str(v), "cam:1", "d/*.tif"], camera=0)
    assert rasters == ["s.tif", "d/*.tif"]
    assert [x.stem for x in videos] == ["a", "cam1", "cam0"]
    assert split_video_inputs([], None) == ([], [])
    rasters, videos = split_video_inputs([str(v), str(tmp_path / "." / "a.mp4"), "rtsp://h/live?x=1"])
    assert rasters == [] and [x.label for x in videos] == ["a.mp4", "rtsp://h/live"]  # named twice: read once


def test_folders_and_globs_give_their_videos(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for n in ("b.mp4", "a.MKV", "s.tif", "notes.txt"):
        (d / n).write_bytes(b"")
    only = tmp_path / "only"
    only.mkdir()
    (only / "c.avi").write_bytes(b"")
    rasters, videos = split_video_inputs([str(d), str(only)])
    assert rasters == [str(d)] and [v.label for v in videos] == ["a.MKV", "b.mp4", "c.avi"]
    rasters, videos = split_video_inputs([str(d / "*")])
    assert rasters == [str(d / "notes.txt"), str(d / "s.tif")] and [v.stem for v in videos] == ["a", "b"]
    assert split_video_inputs([str(d / "*.mov")]) == ([str(d / "*.mov")], [])  # expand_inputs reports it
    assert split_video_inputs([str(d / "*.tif")]) == ([str(d / "*.tif")], [])


def test_frames_become_rgb():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R as OpenCV decodes
    np.testing.assert_array_equal(frame_bands(bgr, 3)[0, 0], [30, 20, 10])
    bgra = np.dstack([bgr, np.full((2, 3), 255, np.uint8)])
    np.testing.assert_array_equal(frame_bands(bgra, 3)[0, 0], [30, 20, 10])
    np.testing.assert_array_equal(frame_bands(bgr, 1, bands=[2])[..., 0], bgr[..., 1])  # band 2 is green
    np.testing.assert_array_equal(frame_bands(bgr, 2, bands="3,1")[0, 0], [10, 30])
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(frame_bands(grey, 3, replicate_grey=True)[..., 2], grey)
    np.testing.assert_array_equal(frame_bands(grey, 1)[..., 0], grey)


def test_band_count_mismatch_is_explained():
    bgr = np.zeros((2, 3, 3), np.uint8)
    with pytest.raises(ValueError, match=r"v.mp4: its frames have 3 bands \(R, G, B\), but the model takes 4 "
                                         r"channel\(s\): a video can feed only models of up to 3 channels"):
        frame_bands(bgr, 4, name="v.mp4")
    with pytest.raises(ValueError, match=r"takes 1 channel\(s\): pick 1 with --bands"):
        frame_bands(bgr, 1, name="v.mp4")
    with pytest.raises(ValueError, match=r"its frames have 1 band \(grey\).*--replicate-grey"):
        frame_bands(np.zeros((2, 3), np.uint8), 3, name="v.mp4")
    with pytest.raises(ValueError, match=r"bands \[4\] asks for band 4, but image v.mp4 has 3 band\(s\)"):
        frame_bands(bgr, 1, bands=[4], name="v.mp4")
    with pytest.raises(ValueError, match=r"decoded frames of shape \(2, 3, 2\)"):
        frame_bands(np.zeros((2, 3, 2), np.uint8), 3, name="v.mp4")


def test_missing_opencv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what `import cv2` meets when it is not installed
    with pytest.raises(RuntimeError, match=r"OpenCV, which is not installed: pip install \"effseg\[video\]\""):
        cv2_or_raise()
    assert INSTALL_HINT == 'pip install "effseg[video]"'


def test_predict_without_opencv_names_the_extra(tmp_path):
    from bundle_cases import make_bundle
    from no_torch import run_without_torch

    bundle = make_bundle(tmp_path, kernel=1, dynamic_hw=True, tile_size=32, tile_overlap=8, height=32, width=32)
    (tmp_path / "v.mp4").write_bytes(b"")
    r = run_without_torch(f"""
sys.modules["cv2"] = None  # OpenCV not installed
import effseg.predict  # importable all the same
from effseg.cli import main
sys.exit(main({["predict", str(bundle), str(tmp_path / "v.mp4"), "--out", str(tmp_path / "o")]!r}))
""")
    assert r.returncode == 2, r.stderr
    assert 'OpenCV, which is not installed: pip install "effseg[video]"' in r.stderr
