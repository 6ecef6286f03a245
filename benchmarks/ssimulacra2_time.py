"""How long SSIMULACRA 2 takes (the `ssimulacra2` package, through aecore.metrics), at two sizes.

    python benchmarks/ssimulacra2_time.py [--repeat 3]

A 768x512 and a 12 MP (4000x3000) picture, each against its JPEG at quality 50; the median of
--repeat runs in one process. Writes benchmarks/results/ssimulacra2_time.json. The Compare page
scores a copy of at most aecore.compare.SSIMULACRA2_PIXELS pixels because of these figures.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from aecore.codecs import get_codec  # noqa: E402
from aecore.metrics import ssimulacra2  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from skimage.data import astronaut
    photo = np.ascontiguousarray(astronaut())
    jpeg = get_codec("jpeg")
    result = {}
    for w, h in ((768, 512), (4000, 3000)):
        image = np.ascontiguousarray(cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC))
        decoded = jpeg.decode(jpeg.encode(image, 50))
        times, score = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            score = ssimulacra2(image, decoded)
            times.append(time.perf_counter() - t0)
        result[f"{w}x{h}"] = {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times],
                              "score_jpeg_q50": round(score, 2)}
        print(f"{w}x{h}: {statistics.median(times):.2f} s (median of {args.repeat}), score {score:.2f}")
    out = ROOT / "benchmarks" / "results" / "ssimulacra2_time.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
