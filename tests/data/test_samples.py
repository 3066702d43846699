import hashlib
import json
import re
import zipfile

import numpy as np
import pytest

from effseg.data import SegFolder, samples

MEMBERS = ("solaris/data/sample_geotiff.tif", "solaris/data/sample_fp_mask_from_geojson.tif")


def _buildings_inputs(tmp_path, tif):
    rng = np.random.default_rng(0)
    img = rng.integers(50, 6000, (1, 40, 90)).astype(np.uint16)
    img[0, :3, :] = 0                                        # nodata rows (the file's nodata is 0)
    fp = (rng.random((40, 90)) < 0.1).astype(np.uint8) * 255  # solaris' 0 / 255 footprints
    return (tif(tmp_path / "in" / "sample_geotiff.tif", img, nodata=0),
            tif(tmp_path / "in" / "sample_fp_mask_from_geojson.tif", fp), img[0], fp)


def _tiles(root, split):
    out = []
    for p in sorted((root / split / "masks").iterdir()):
        r, c = map(int, re.search(r"_r(\d+)_c(\d+)$", p.stem).groups())
        out.append((p, r, c))
    return out


def test_convert_buildings_layout_split_nodata(tmp_path, tif):
    import rasterio
    from affine import Affine

    img_path, fp_path, img, fp = _buildings_inputs(tmp_path, tif)
    with rasterio.open(img_path) as src:
        src_transform = src.transform
    root = tmp_path / "out"
    meta = samples.convert_buildings(img_path, fp_path, root, tile=16)
    assert meta["classes"] == ["background", "building"] and "CC BY-SA 4.0" in meta["licence"]
    assert "train = columns 0-59" in meta["split"] and "val = columns 60-89" in meta["split"]
    covered = np.zeros(img.shape, bool)
    for split, lo, hi in (("train", 0, 60), ("val", 60, 90)):
        tiles = _tiles(root, split)
        assert tiles and len(tiles) == meta[split]
        for p, r, c in tiles:
            assert lo <= c and c + 16 <= hi                  # no tile crosses the split line
            with rasterio.open(p) as src:
                m = src.read(1)
                assert src.transform.almost_equals(src_transform @ Affine.translation(c, r))  # georeferenced
            want = np.where(img[r:r + 16, c:c + 16] == 0, 255, fp[r:r + 16, c:c + 16] > 0)
            assert np.array_equal(m, want)
            assert (root / split / "images" / p.name).is_file()
            covered[r:r + 16, c:c + 16] = True
    assert covered.all()
    ds = SegFolder(root, "val")
    x, m = ds[0]
    assert ds.classes == ["background", "building"] and x.shape == (1, 16, 16)
    assert json.loads((root / "classes.json").read_text())["ignore_index"] == 255


def test_convert_landcover_stacks_bands_maps_strata(tmp_path, tif):
    import rasterio

    rng = np.random.default_rng(1)
    h, w = 40, 60
    border = np.zeros((h, w), bool)
    border[:, :6] = True
    paths = []
    for k in range(5):
        b = rng.uniform(10, 200, (h, w)).astype(np.float32)
        b[border] = -99999.0
        paths.append(tif(tmp_path / f"lsat7_2000_{k}0.tif", b, nodata=-99999.0))
    b70 = rng.integers(1, 255, (h, w)).astype(np.int16)
    b70[border] = -32768
    b70[-1, -1] = -32768                                    # nodata in one band only
    paths.append(tif(tmp_path / "lsat7_2000_70.tif", b70, nodata=-32768))
    strata = rng.integers(1, 8, (h, w)).astype(np.float32)
    strata[0, 20] = -99999.0
    strata_path = tif(tmp_path / "strata.tif", strata, nodata=-99999.0)
    root = tmp_path / "lc"
    meta = samples.convert_landcover(paths, strata_path, root, tile=16)
    assert meta["classes"][4] == "forest" and "GPL-3.0" in meta["licence"]
    image_bad = border.copy()
    image_bad[-1, -1] = True
    bad = image_bad.copy()
    bad[0, 20] = True
    for split in ("train", "val"):
        for p, r, c in _tiles(root, split):
            with rasterio.open(p) as src:
                m = src.read(1)
            with rasterio.open(root / split / "images" / p.name) as src:
                x, nodata = src.read(), src.nodata
            assert x.shape == (6, 16, 16) and nodata == -99999.0
            sl = np.s_[r:r + 16, c:c + 16]
            assert np.array_equal(m, np.where(bad[sl], 255, strata[sl] - 1))
            assert np.array_equal((x == nodata).any(0), image_bad[sl])
    x, m = SegFolder(root, "train")[0]
    assert x.shape == (6, 16, 16) and (x[:, m == 255] == 0).sum() > 0


def _wheel(tmp_path, files):
    path = tmp_path / "fake.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, src in files.items():
            z.write(src, member)
    return path


def test_extract_checks_sha256(tmp_path):
    f = tmp_path / "a.tif"
    f.write_bytes(b"abc")
    wheel = _wheel(tmp_path, {"pkg/data/a.tif": f})
    good = hashlib.sha256(b"abc").hexdigest()
    out = samples.extract(wheel, {"pkg/data/a.tif": good}, tmp_path / "x")
    assert out["pkg/data/a.tif"].read_bytes() == b"abc"
    with pytest.raises(ValueError, match="has sha256 .*; expected 0000"):
        samples.extract(wheel, {"pkg/data/a.tif": "0" * 64}, tmp_path / "y")
    with pytest.raises(FileNotFoundError, match="'pkg/data/b.tif' is not in"):
        samples.extract(wheel, {"pkg/data/b.tif": good}, tmp_path / "z")


def test_fetch_and_cli_offline(tmp_path, tif, monkeypatch, capsys):
    img_path, fp_path, *_ = _buildings_inputs(tmp_path, tif)
    wheel = _wheel(tmp_path, dict(zip(MEMBERS, (img_path, fp_path))))
    pins = {m: samples.sha256(p) for m, p in zip(MEMBERS, (img_path, fp_path))}
    monkeypatch.setitem(samples.SAMPLES["buildings"], "files", pins)
    calls = []
    monkeypatch.setattr(samples, "download_wheel", lambda name: calls.append(name) or wheel)
    monkeypatch.setenv("EFFSEG_CACHE", str(tmp_path / "cache"))
    from effseg.cli import main

    assert main(["data", "fetch", "buildings", "--tile", "16"]) == 0
    out = capsys.readouterr().out
    for text in ("solaris 0.4.0", "Apache-2.0", "CC BY-SA 4.0", "train = columns 0-59", "val = columns 60-89"):
        assert text in out
    root = tmp_path / "cache" / "datasets" / "buildings"
    assert len(SegFolder(root, "train")) > 0 and (root / "LICENSE-DATA.txt").is_file()
    assert samples.fetch_sample("buildings", tile=16)["root"] == str(root) and calls == ["buildings"]  # cached
    with pytest.raises(ValueError, match="sample 'roads' is unknown; expected one of buildings, landcover"):
        samples.fetch_sample("roads")


def test_download_checks_the_wheel(tmp_path, monkeypatch):
    # Whatever route the wheel comes by, a wrong sha256 is refused.
    def fake_run(cmd, **kw):
        (samples.Path(cmd[-1]) / samples.SAMPLES["landcover"]["wheel"]).write_bytes(b"not the wheel")

        class R:
            returncode, stderr = 0, ""
        return R()

    monkeypatch.setattr(samples.subprocess, "run", fake_run)
    with pytest.raises(ValueError, match="downloaded wheel .* has sha256 .*; expected d9b1f1f2"):
        samples.download_wheel("landcover", cache=tmp_path)


def test_download_retries_with_an_older_pip(tmp_path, monkeypatch):
    # pip >= 24.1 refuses solaris 0.4.0's metadata: the same download, by name, by a pip < 24.1.
    import hashlib

    body = b"a wheel"
    monkeypatch.setitem(samples.SAMPLES["buildings"], "wheel_sha256", hashlib.sha256(body).hexdigest())
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd[0])

        class R:
            returncode, stderr = (1, "invalid metadata") if cmd[0] != "oldpip" else (0, "")
        if cmd[0] == "oldpip":
            (samples.Path(cmd[-1]) / samples.SAMPLES["buildings"]["wheel"]).write_bytes(body)
        return R()

    monkeypatch.setattr(samples.subprocess, "run", fake_run)
    monkeypatch.setattr(samples, "_old_pip", lambda tmp: ["oldpip", "-m", "pip"])
    path = samples.download_wheel("buildings", cache=tmp_path)
    assert path.read_bytes() == body and calls[-1] == "oldpip" and len(calls) == 2


@pytest.mark.slow
def test_real_download(tmp_path, monkeypatch):
    pytest.importorskip("rasterio")
    monkeypatch.setenv("EFFSEG_CACHE", str(tmp_path))
    meta = samples.fetch_sample("buildings")
    assert (meta["train"], meta["val"]) == (40, 24)
    meta = samples.fetch_sample("landcover")
    assert SegFolder(meta["root"], "val").num_classes == 7
