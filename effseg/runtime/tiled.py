"""The one tile engine: Predictor.predict, `effseg run`, `effseg predict` and evaluate's
checkpoint path all go through run_tiles, so tiling, blending, batching, test-time
augmentation and nodata handling exist once.

A reader thread reads and normalises tiles, the calling thread runs the model on
batches of them (with TTA), a writer thread blends them row by row (blend.RowBlender)
and hands each finished band of rows to `emit`. Bounded queues between the three keep
the model busy while I/O runs and keep memory to a few batches plus one tile row of
logits, whatever the image's area.

Where the tiles go (plan_tiles): a static-size model takes its own size; a dynamic-size
one takes meta.json tile.size (or --tile), cut down to the image rounded up to a
multiple of 32 along an axis the image does not fill, so an image smaller than a tile
is one pass over itself, not a pass over a mostly reflected tile.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from .blend import RAMPS, RowBlender
from .tiling import reflect_index
from .tta import TTA, run_tta

# The stride of the zoo encoders' deepest feature map: dynamic-size models take multiples of it.
TILE_MULTIPLE = 32
# Columns per step when turning blended logits into classes: bounds the float temporaries.
_CHUNK = 2048
_DONE = object()


def _positive_int(v, minimum: int) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum


@dataclass
class TileOptions:
    """tile: tile side for dynamic-size bundles (default meta.json tile.size); overlap:
    pixels shared by neighbouring tiles (default tile.overlap, at most half a tile);
    batch: tiles per model call; tta: none | flip | d4; blend: cosine | linear ramps;
    prefetch: batches queued between the stages."""
    tile: int | None = None
    overlap: int | None = None
    batch: int = 4
    tta: str = "none"
    blend: str = "cosine"
    prefetch: int = 4

    def check(self) -> None:
        for name, least in (("tile", 1), ("overlap", 0)):
            v = getattr(self, name)
            if v is not None and not _positive_int(v, least):
                raise ValueError(f"--{name} must be an integer >= {least}, got {v!r}")
        if not _positive_int(self.batch, 1):
            raise ValueError(f"--batch must be a positive integer (tiles per model call), got {self.batch!r}")
        if self.tta not in TTA:
            raise ValueError(f"--tta must be one of {', '.join(TTA)}, got {self.tta!r}")
        if self.blend not in RAMPS:
            raise ValueError(f"--blend must be one of {', '.join(RAMPS)}, got {self.blend!r}")
        if not _positive_int(self.prefetch, 1):
            raise ValueError(f"prefetch must be a positive integer, got {self.prefetch!r}")


def tile_geometry(predictor, tile: int | None, overlap: int | None) -> tuple[tuple[int, int], int]:
    """The tile size and overlap the options ask for, checked against the bundle."""
    inp = predictor.bundle.input
    meta_tile = predictor.bundle.meta["tile"]
    if inp["dynamic_hw"]:
        if tile is not None and tile % TILE_MULTIPLE:
            raise ValueError(f"--tile must be a multiple of {TILE_MULTIPLE} (the stride of the encoders' deepest "
                             f"feature map), got {tile}")
        th = tw = tile or meta_tile["size"]
    else:
        th, tw = inp["height"], inp["width"]
        if tile is not None and (tile, tile) != (th, tw):
            raise ValueError(f"--tile {tile}: this bundle's model takes only {th}x{tw} tiles (a static input size); "
                             "leave --tile out, or export with --dynamic-hw for other tile sizes")
    ov = meta_tile["overlap"] if overlap is None else overlap
    ov = min(ov, min(th, tw) // 2) if overlap is None else ov
    if not 0 <= ov <= min(th, tw) // 2:
        raise ValueError(f"--overlap must be between 0 and half the {th}x{tw} tile ({min(th, tw) // 2}), got {ov}")
    return (th, tw), ov


def _round_up(n: int) -> int:
    return -(-n // TILE_MULTIPLE) * TILE_MULTIPLE


def plan_tiles(predictor, h: int, w: int, opts: TileOptions) -> tuple[tuple[int, int], tuple[int, int]]:
    """((tile rows, tile columns), (overlap rows, overlap columns)) for an h x w image.
    predictor.tile: None cuts dynamic tiles down to the image, True never does, False
    makes a dynamic model take the whole image in one pass and refuses a static model an
    image of another size."""
    (th, tw), ov = tile_geometry(predictor, opts.tile, opts.overlap)
    mode = getattr(predictor, "tile", None)
    if predictor.bundle.input["dynamic_hw"]:
        if mode is False:
            th, tw = _round_up(h), _round_up(w)
        elif mode is None:
            th, tw = min(th, _round_up(h)), min(tw, _round_up(w))
        if opts.tta == "d4":  # rotations need square tiles
            th = tw = max(th, tw)
    elif mode is False and (h, w) != (th, tw):
        raise ValueError(f"image is {h}x{w}, but the model takes {th}x{tw} and tiling is off (tile=False)")
    # An axis cut down to the image holds one tile, so a smaller overlap there changes nothing.
    return (th, tw), (min(ov, th // 2), min(ov, tw // 2))


class ArraySource:
    """An in-memory (or memory-mapped) (H, W, C) image read tile by tile like a raster:
    pixels past the bottom/right come back reflected, with the nodata mask of the whole
    image (computed once, so errors name image coordinates)."""

    def __init__(self, image: np.ndarray, mask: np.ndarray | None = None, nodata=None):
        self.image, self.mask, self.nodata = image, mask, nodata
        self.height, self.width = image.shape[:2]

    def read_tile(self, y: int, x: int, th: int, tw: int) -> tuple[np.ndarray, np.ndarray | None]:
        ri, ci = reflect_index(y, y + th, self.height), reflect_index(x, x + tw, self.width)
        r0, r1, c0, c1 = int(ri.min()), int(ri.max()) + 1, int(ci.min()), int(ci.max()) + 1

        def take(a):
            # Slice first: a memory map then reads the tile's window, not whole rows.
            a = a[r0:r1, c0:c1]
            if r1 - r0 != th or c1 - c0 != tw or ri[0] != r0 or ci[0] != c0:
                a = a[ri - r0][:, ci - c0]
            return np.asarray(a)

        return take(self.image), None if self.mask is None else ~take(self.mask)


def tile_reader(predictor, source, blender):
    """read_tile(i, j) for run_tiles: the tile's pixels from `source` (anything with
    read_tile(y, x, th, tw) -> (pixels, valid) and nodata), nodata-masked and normalised
    by the predictor."""
    def read(i: int, j: int):
        px, valid = source.read_tile(blender.ys[i], blender.xs[j], blender.th, blender.tw)
        mask = predictor.nodata_mask(px, valid, source.nodata)
        return predictor.prepare(px, mask), mask
    return read


class _Stages:
    """Error plumbing for the three stages: the first exception stops them all and is
    re-raised in the calling thread."""

    def __init__(self):
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    def put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                pass

    def get(self, q: queue.Queue):
        while True:
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                if self.stop.is_set():
                    return _DONE


def row_range_plan(blender: RowBlender, rows: tuple[int, int] | None, batch: int) -> tuple[int, int, int, int]:
    """(first, stop, lo, hi): indices into blender.tiles (row-major) of the tiles run
    through the model, [first, stop), and of those blended, [lo, hi), when only tile rows
    [a, b) = rows are asked for (None: all of them).

    What tile rows [a, b) complete then comes out exactly as in the whole run, bit for
    bit, however the rows are cut (`effseg predict --ray` computes a raster in strips):
    - the tile rows above a whose tiles reach down into row ys[a] (the halo) are blended
      too, in the same order onto the same zeroed accumulator, so every emitted pixel
      gets the same float sum; rows further up add nothing below ys[a];
    - the model gets the whole run's batches, tiles [k * batch, (k + 1) * batch), also
      where they stick out of the range (those answers are dropped): a model's answer
      for a tile can depend on the others in its call (batch size, fused kernels)."""
    n_rows, n_cols = len(blender.ys), len(blender.xs)
    a, b = (0, n_rows) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= a < b <= n_rows:
        raise ValueError(f"tile rows [{a}, {b}) are not within the raster's {n_rows} tile rows")
    a0 = a
    while a0 > 0 and blender.ys[a0 - 1] + blender.th > blender.ys[a]:
        a0 -= 1
    lo, hi = a0 * n_cols, b * n_cols
    return lo - lo % batch, min(-(-hi // batch) * batch, n_rows * n_cols), lo, hi


def run_tiles(blender: RowBlender, read_tile, run_batch, emit, *, classes: int, labels_model: bool = False,
              batch: int = 4, tta: str = "none", prefetch: int = 4, bar=None,
              rows: tuple[int, int] | None = None) -> int:
    """Every tile of `blender` through the model (or those tile rows [a, b) = rows need,
    see row_range_plan); returns the number of tiles run through the model.

    read_tile(i, j) -> ((C, th, tw) model input, (th, tw) nodata mask or None);
    run_batch((N, C, th, tw)) -> (N, K, th, tw) logits, or (N, th, tw) labels when
    labels_model (blended as one-hot votes); emit(i) is called, in the writer thread,
    once tile row i is blended (only for i in rows): blender.row_span(i) / blended(i) /
    nodata_rows(i) hold its rows until emit returns. blender must be fresh (nothing
    added). bar: a tqdm-like progress bar over the tiles run, or None."""
    th, tw = blender.th, blender.tw
    first, stop, lo, hi = row_range_plan(blender, rows, batch)
    a = 0 if rows is None else int(rows[0])
    stages = _Stages()
    q_in: queue.Queue = queue.Queue(maxsize=prefetch)
    q_out: queue.Queue = queue.Queue(maxsize=prefetch)
    tiles = blender.tiles[first:stop]

    def reader():
        try:
            items = []
            for i, j in tiles:
                if stages.stop.is_set():
                    return
                x, mask = read_tile(i, j)
                items.append((i, j, x, mask))
                if len(items) == batch:
                    stages.put(q_in, items)
                    items = []
            if items:
                stages.put(q_in, items)
        except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
            stages.fail(exc)
        finally:
            stages.put(q_in, _DONE)

    t_start = time.perf_counter()

    def write():
        try:
            per_row, y0 = len(blender.xs), blender.ys[a]
            while True:
                item = stages.get(q_out)
                if item is _DONE:
                    return
                for i, j, logits, mask in item:
                    if not lo <= i * per_row + j < hi:
                        continue  # run only to keep the whole run's batch (see row_range_plan)
                    blender.add(i, j, logits, mask)
                    if j == per_row - 1:
                        if i >= a:  # the halo rows above a are someone else's
                            emit(i)
                        r1 = blender.row_span(i)[1]
                        blender.advance(i)
                        if bar is not None and i >= a:
                            mp = (r1 - y0) * blender.w / 1e6 / max(time.perf_counter() - t_start, 1e-9)
                            bar.set_postfix_str(f"{mp:.2f} MP/s", refresh=False)
                if bar is not None:
                    bar.update(len(item))
        except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
            stages.fail(exc)

    threads = [threading.Thread(target=reader, name="effseg-read", daemon=True),
               threading.Thread(target=write, name="effseg-write", daemon=True)]
    for t in threads:
        t.start()
    try:
        while True:
            item = stages.get(q_in)
            if item is _DONE or stages.stop.is_set():
                break
            live = [n for n, t in enumerate(item) if t[3] is None or not t[3].all()]
            logits = np.zeros((len(item), classes, th, tw), np.float32)
            if live:
                # A tile that is nodata throughout has no answer to compute.
                x = np.stack([item[n][2] for n in live])
                logits[live] = run_tta(run_batch, x, tta, classes, labels_model)
            stages.put(q_out, [(i, j, logits[n], mask) for n, (i, j, _, mask) in enumerate(item)])
    except BaseException as exc:  # noqa: BLE001
        stages.fail(exc)
    finally:
        stages.put(q_out, _DONE)
        for t in threads:
            t.join()
    if stages.errors:
        raise stages.errors[0]
    return len(tiles)


def finished_labels(blender: RowBlender, i: int, dtype, nodata_label: int, probs: bool = False):
    """(r0, r1, (r1 - r0, W) class map, (K, r1 - r0, W) uint8 probabilities x 255 or
    None) of the rows tile row i completed, nodata_label (and probability 0) at nodata.
    Computed in column chunks: a full-width float copy of the strip would be the largest
    buffer of the run."""
    r0, r1 = blender.row_span(i)
    nodata = blender.nodata_rows(i)
    labels = np.empty((r1 - r0, blender.w), dtype)
    p = np.empty((blender.acc.shape[0], r1 - r0, blender.w), np.uint8) if probs else None
    for c0 in range(0, blender.w, _CHUNK):
        c1 = min(c0 + _CHUNK, blender.w)
        logits = blender.blended(i, c0, c1)
        labels[:, c0:c1] = logits.argmax(axis=0)
        if p is not None:
            e = np.exp(logits - logits.max(axis=0, keepdims=True))
            p[:, :, c0:c1] = np.rint(e * (255.0 / e.sum(axis=0, keepdims=True)))
    labels[nodata] = nodata_label
    if p is not None:
        p[:, nodata] = 0
    return r0, r1, labels, p


def predict_array(predictor, image: np.ndarray, *, valid=None, nodata=None, options: TileOptions | None = None,
                  logits: bool = False, bar=None) -> tuple[np.ndarray, int]:
    """(H, W, C) image -> ((H, W) class map, or (K, H, W) logits with NaN at nodata when
    logits=True; the number of tiles run). The image is checked and its nodata mask
    computed before any model run (nonfinite='error' names the first bad pixel)."""
    opts = options or TileOptions()
    opts.check()
    image = predictor.check_image(image)
    nd = predictor.bundle.nodata if nodata is None else nodata
    mask = predictor.nodata_mask(image, valid, nd)
    h, w = image.shape[:2]
    tile_hw, overlap = plan_tiles(predictor, h, w, opts)
    k = predictor.bundle.num_classes
    blender = RowBlender(h, w, tile_hw, overlap, k, opts.blend)
    if logits:
        out = np.empty((k, h, w), np.float32)

        def emit(i):
            r0, r1 = blender.row_span(i)
            out[:, r0:r1] = blender.blended(i)
            out[:, r0:r1][:, blender.nodata_rows(i)] = np.nan
    else:
        out = np.empty((h, w), predictor.label_dtype)

        def emit(i):
            r0, r1, labels, _ = finished_labels(blender, i, out.dtype, predictor.nodata_label)
            out[r0:r1] = labels

    tiles = run_tiles(blender, tile_reader(predictor, ArraySource(image, mask, nd), blender), predictor.run_batch,
                      emit, classes=k, labels_model=predictor.bundle.output["kind"] == "labels", batch=opts.batch,
                      tta=opts.tta, prefetch=opts.prefetch, bar=bar)
    return out, tiles
