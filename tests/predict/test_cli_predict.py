"""`effseg predict` in a subprocess where torch cannot be imported: a bundle and GeoTIFFs
need only numpy, onnxruntime and rasterio."""
import rasterio
from bundle_cases import make_bundle
from no_torch import run_without_torch
from raster_cases import rgb, transform, write_tif

_MAIN = """
from effseg.cli import main
code = main({args!r})
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was loaded"
sys.exit(code)
"""


def test_effseg_predict_without_torch(tmp_path):
    bundle = make_bundle(tmp_path, kernel=3, dynamic_hw=True, tile_size=32, tile_overlap=8, height=32, width=32)
    src = tmp_path / "in"
    src.mkdir()
    img = rgb(45, 70)
    img[:, :3, :3] = 0
    write_tif(src / "s1.tif", img, nodata=0, tiled=True, block=32)
    write_tif(src / "broken.tif", rgb(10, 10, bands=2))
    out = tmp_path / "out"
    r = run_without_torch(_MAIN.format(args=["predict", str(bundle), str(src / "*.tif"), "--out", str(out),
                                             "--tta", "flip", "--batch", "2", "--probs", "--cog", "--threads", "1"]))
    assert r.returncode == 1, r.stderr  # one raster failed, the other was written
    assert "broken.tif: input broken.tif has 2 band(s)" in r.stderr
    assert "s1.tif -> " in r.stdout and "1 raster(s)" in r.stdout and "1 failed" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["s1.tif", "s1_probs.tif"]
    with rasterio.open(out / "s1.tif") as d:
        assert d.transform == transform() and d.crs.to_epsg() == 32616 and (d.read(1)[:3, :3] == 255).all()
        assert d.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    r = run_without_torch(_MAIN.format(args=["predict", str(bundle), str(src / "s1.tif"), "--out", str(out),
                                             "--overlap", "30"]))
    assert r.returncode == 2 and "--overlap must be between 0 and half" in r.stderr
    r = run_without_torch(_MAIN.format(args=["predict", str(tmp_path / "in"), str(src / "s1.tif"), "--out",
                                             str(out)]))
    assert r.returncode == 2 and "is not a bundle folder" in r.stderr and "--arch" in r.stderr
