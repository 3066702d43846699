"""bench/bench_predict.py (effseg/bench/predict*.py): the VRT mosaics, the seam figures on
a net whose exact answer is known, and a --quick run end to end on a tiny bundle and a
synthetic GeoTIFF (no download, no training)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio", reason="the predict bench reads and writes GeoTIFFs with rasterio")

from bundle_cases import make_bundle  # noqa: E402
from raster_cases import write_tif  # noqa: E402

from effseg.bench import predict_seams as ps  # noqa: E402
from effseg.bench.predict import linear_fit, peak_estimates  # noqa: E402
from effseg.bench.predict_data import mosaic_vrt  # noqa: E402
from effseg.runtime.predictor import Predictor  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _image(path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    field = 20000 + 8000 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 1500, (h, w))
    return write_tif(path, np.clip(field, 1, 65535).astype(np.uint16)[None], nodata=0)


def _bundle(tmp_path, kernel=3):
    return make_bundle(tmp_path, f"b{kernel}", channels=1, classes=2, dynamic_hw=True, dynamic_batch=True,
                       kernel=kernel, tile_size=64, tile_overlap=16, stats_scale=257.0, pixel_dtype="uint16")


def test_mosaic_vrt_tiles_the_source_and_cuts_the_last_copies(tmp_path):
    src = _image(tmp_path / "img.tif", 30, 40)
    info = mosaic_vrt(src, tmp_path / "m.vrt", 100)
    assert info["copies"] == 4 * 3 and info["megapixels"] == pytest.approx(0.01)
    with rasterio.open(src) as s:
        px, t = s.read(1), s.transform
    with rasterio.open(tmp_path / "m.vrt") as m:
        got = m.read(1)
        assert (m.width, m.height, m.nodata, m.crs) == (100, 100, 0, s.crs) and m.transform == t
    assert np.array_equal(got, np.tile(px, (4, 3))[:100, :100])


def test_near_borders_and_blended_borders():
    assert ps.near_borders(20, [0, 10, 20], px=2).nonzero()[0].tolist() == [8, 9, 10, 11]
    # tiles of 64 at 0, 48, 96 on 128 px: inner edges at 48 and 96 (starts), 64 and 112 (ends)
    assert ps.blended_borders([0, 48, 96], 64, 128) == [48, 64, 96, 112]


def test_compare_splits_near_border_from_elsewhere():
    ref = np.zeros((2, 4, 4), np.float32)
    ref[1] = 1.0  # class 1 everywhere
    test = ref.copy()
    test[0, 0, 0] = 3.0  # one near-border pixel flips, by 3
    test[1, 3, 3] = 0.5  # one pixel elsewhere moves by 0.5, keeps its class
    ref[:, 2, 0] = np.nan  # nodata in the reference: left out
    near = np.zeros((4, 4), bool)
    near[0] = True
    c = ps.compare(test, ref, near)
    assert c["pixels"] == 15 and c["nodata_pixels"] == 1 and c["near_border_pixels"] == 4
    assert c["class_differs_fraction"] == pytest.approx(1 / 15)
    assert c["near_border"] == {"pixels": 4, "class_differs_fraction": 0.25, "mean_abs_logit_diff": 0.75,
                                "max_abs_logit_diff": 3.0}
    assert c["elsewhere"]["max_abs_logit_diff"] == 0.5 and c["elsewhere"]["class_differs_fraction"] == 0.0
    edge = np.zeros((4, 4), bool)
    edge[:, 3] = True  # the last column: its pixel in row 0 counts as image edge, not near a border
    e = ps.compare(test, ref, near, edge)
    assert e["image_edge"]["pixels"] == 4 and e["image_edge"]["max_abs_logit_diff"] == 0.5
    assert e["near_border"]["pixels"] == 3 and e["near_border"]["max_abs_logit_diff"] == 3.0
    assert e["elsewhere"]["pixels"] == 8 and e["elsewhere"]["max_abs_logit_diff"] == 0.0


def test_linear_fit_needs_two_sizes():
    assert linear_fit([(1.0, 100.0), (1.0, 110.0)]) is None
    assert linear_fit([(1.0, 100.0), (3.0, 140.0)]) == pytest.approx((80.0, 20.0))


def test_peak_estimates_line_for_whole_and_held_bytes_for_the_tiler():
    rows = [{"mode": "whole", "raster": "image", "megapixels": 1.0, "peak_rss_mb": 300.0},
            {"mode": "whole", "raster": "mosaic-2", "megapixels": 4.0, "peak_rss_mb": 900.0},
            {"mode": "tiler", "raster": "image", "megapixels": 1.0, "peak_rss_mb": 320.0},
            {"mode": "tiler", "raster": "mosaic-2", "megapixels": 4.0, "peak_rss_mb": 480.0}]
    est = peak_estimates(rows, pixel_bytes=2)
    assert est["whole"](100.0) == pytest.approx(100 + 200 * 100.0)
    # 2 B raster + 2 B padded copy + 2 B of class maps per pixel beyond the image's
    assert est["tiler"](401.0) == pytest.approx(320.0 + 400e6 * 6 / 2**20)
    assert peak_estimates(rows[2:], 2)["whole"](10.0) is None and peak_estimates(rows[:2], 2)["tiler"](1.0) is None


def test_seams_of_a_3x3_net_lie_at_the_tile_borders_and_blending_shrinks_them(tmp_path):
    # A 3x3 conv with zero padding answers differently only within 1 px of a tile edge
    # (or of the image's edge, where the windowed path's last tiles see reflected pixels);
    # 128 = 2 tiles of 64 and a multiple of 32, so the whole pass needs no padding.
    img = _image(tmp_path / "img.tif", 128, 128)
    b = _bundle(tmp_path)
    pred = Predictor(b, backend="onnxruntime", max_pixels=None)
    whole = Predictor(b, backend="onnxruntime", tile=False, max_pixels=None)
    r = ps.seam_error(pred, whole, img, 64, 16)
    tiler, blended = r["tiler_vs_whole"], r["blended_vs_whole"]
    assert tiler["elsewhere"]["max_abs_logit_diff"] < 1e-4
    assert tiler["near_border"]["max_abs_logit_diff"] > 1e-2
    assert blended["elsewhere"]["max_abs_logit_diff"] < 1e-4
    assert blended["near_border"]["max_abs_logit_diff"] < 0.1 * tiler["near_border"]["max_abs_logit_diff"]
    with pytest.raises(ValueError, match="larger than the tile"):
        ps.seam_error(pred, whole, img, 128, 16)


def test_quick_run_writes_rows_with_positive_figures(tmp_path):
    img = _image(tmp_path / "img.tif", 96, 96)
    out = tmp_path / "predict.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_predict.py"), "--quick", "--image", str(img),
                           "--bundle", str(_bundle(tmp_path)), "--out", str(out), "--work-dir", str(tmp_path / "w")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["op"] == "predict" and res["quick"] is True
    assert [m["side"] for m in res["mosaics"]] == [192, 288]
    got = {(r["mode"], r["raster"]) for r in res["rows"]}
    assert got == {(m, r) for m in ("windowed", "whole", "tiler") for r in ("image", "mosaic-192", "mosaic-288")}
    for r in res["rows"]:
        assert r["peak_rss_mb"] > 0 and r["mp_per_s"] > 0 and r["seconds"] > 0 and not r["torch_loaded"]
        assert r["megapixels"] == pytest.approx(r["height"] * r["width"] / 1e6)
        with rasterio.open(tmp_path / "w" / "out" / r["mode"] / r["raster"] / f"{Path(r['input']).stem}.tif") as m:
            assert (m.width, m.height) == (r["width"], r["height"])
    seam = res["seams"][0]
    assert seam["tile"] == 64 and 0 <= seam["pipeline_agreement"] <= 1
    assert seam["pipeline_agreement"] > 0.99  # the replica of the pipeline's blending is the pipeline's
    t = res["targets"]
    assert set(t["windowed_peak_rss_mb"]) == {"image", "mosaic-192", "mosaic-288"}
    assert t["windowed_rss_largest_over_smallest_mosaic"] > 0 and t["rss_bound_mb"] == 1500.0
    assert set(t["windowed_over_tiler_mp_per_s"]) == {"image", "mosaic-192", "mosaic-288"}
    assert res["memory_fits"]["whole"]["mb_per_megapixel"] is not None and res["model"]["num_classes"] == 2
    assert t["windowed_width_buffers_mb"]["mosaic-288"] == pytest.approx((2 * 64 * (288 + 64) * 4 + 512 * 288) / 2**20)
