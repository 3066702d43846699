"""Real data out (issue 18): MP/s and peak RSS of effseg's windowed GeoTIFF path, one
whole-image pass and a GeoSeg-style non-overlapping tiler on the solaris SpaceNet tile
(fetched by package name and version, like effseg's samples) and on VRT mosaics of it
(default 10,000 and 20,000 px square), each row in a fresh torch-free process; and the
seam error of blended and non-overlapping tiles against one whole-image pass.

Prints the seams, each row, and after the rows on the image the estimated time of the
mosaics; writes bench/results/predict-<device>.json (-quick.json with --quick). Run:
    python bench/bench_predict.py [--vrt-sides 10000,20000] [--threads 2] [--weights trained|random]
        [--train-budget 90] [--train-loss ce+dice] [--tile 512] [--overlap 64] [--batch 4]
        [--rss-bound-mb 1500] [--plan-only] [--image TIF] [--bundle DIR] [--quick]
"""
import sys
from pathlib import Path

from effseg.bench.script import run_script

if __name__ == "__main__":
    sys.exit(run_script("predict", __doc__, Path(__file__).resolve().parent / "results"))
