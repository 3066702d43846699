"""The rasters of bench/bench_predict.py: the solaris building scene (a real SpaceNet
GeoTIFF, fetched by package name and version like effseg's samples) and VRT mosaics
that tile it to any size without writing its pixels again."""
from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import escape

SCENE_MEMBER = "solaris/data/sample_geotiff.tif"

_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
               "float32": "Float32", "float64": "Float64"}


def solaris_scene(dest) -> Path:
    """The 900 x 900 1-band uint16 SpaceNet tile of the buildings sample, sha256-checked,
    extracted from the cached wheel into dest."""
    from ..data.samples import SAMPLES, download_wheel, extract

    spec = SAMPLES["buildings"]
    return extract(download_wheel("buildings"), {SCENE_MEMBER: spec["files"][SCENE_MEMBER]}, dest)[SCENE_MEMBER]


def mosaic_vrt(source, out, side: int) -> dict:
    """A side x side VRT (plain XML: VRTDataset with one SimpleSource per copy) tiling
    `source` in a grid, the last row and column of copies cut to fit. The georeference is
    the source's, extended; the source path is relative to the VRT when they share a folder."""
    import rasterio

    source, out = Path(source).resolve(), Path(out)
    with rasterio.open(source) as src:
        h, w, count = src.height, src.width, src.count
        dtypes, nodata, crs, t = src.dtypes, src.nodata, src.crs, src.transform
        bh, bw = src.block_shapes[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = out.parent.resolve() == source.parent
    name = escape(source.name if rel else str(source))
    n_y, n_x = math.ceil(side / h), math.ceil(side / w)
    lines = [f'<VRTDataset rasterXSize="{side}" rasterYSize="{side}">']
    if crs is not None:
        lines.append(f"  <SRS>{escape(crs.to_wkt())}</SRS>")
    lines.append(f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>")
    for b in range(1, count + 1):
        gdal_type = _GDAL_TYPES[dtypes[b - 1]]
        lines.append(f'  <VRTRasterBand dataType="{gdal_type}" band="{b}">')
        if nodata is not None:
            lines.append(f"    <NoDataValue>{nodata!r}</NoDataValue>")
        for i in range(n_y):
            for j in range(n_x):
                ch, cw = min(h, side - i * h), min(w, side - j * w)
                lines += ["    <SimpleSource>",
                          f'      <SourceFilename relativeToVRT="{int(rel)}">{name}</SourceFilename>',
                          f"      <SourceBand>{b}</SourceBand>",
                          (f'      <SourceProperties RasterXSize="{w}" RasterYSize="{h}" DataType="{gdal_type}" '
                           f'BlockXSize="{bw}" BlockYSize="{bh}"/>'),
                          f'      <SrcRect xOff="0" yOff="0" xSize="{cw}" ySize="{ch}"/>',
                          f'      <DstRect xOff="{j * w}" yOff="{i * h}" xSize="{cw}" ySize="{ch}"/>',
                          "    </SimpleSource>"]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    out.write_text("\n".join(lines) + "\n")
    return {"path": str(out), "side": side, "copies": n_y * n_x, "megapixels": side * side / 1e6}
