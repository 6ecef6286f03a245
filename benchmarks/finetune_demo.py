"""Fine-tuning on one kind of image: does 200 steps on 10 pictures buy a measurable gain?

    python benchmarks/finetune_demo.py --base hyperprior --steps 200

The domain is synthetic screenshots (text lines, flat panels, buttons, thin rules: sharp
edges and large flat areas, unlike the training photos), generated here with Pillow, so
the benchmark needs no data. 12 images are made: the job holds out a fifth of them
and reports the BD-rate of the fine-tuned weights against the base on those.
Writes benchmarks/results/finetune_demo.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aecore import jobs  # noqa: E402


def screenshot(rng: np.random.Generator, size=(512, 384)) -> np.ndarray:
    """A fake application window: title bar, side panel, text lines, buttons."""
    w, h = size
    bg = tuple(int(v) for v in rng.integers(225, 256, 3))
    im = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(im)
    accent = tuple(int(v) for v in rng.integers(20, 200, 3))
    d.rectangle([0, 0, w, 28], fill=accent)
    d.text((10, 8), "Report %d - Quarterly results" % rng.integers(100), fill=(255, 255, 255))
    panel = int(rng.integers(90, 160))
    d.rectangle([0, 28, panel, h], fill=tuple(max(0, c - 25) for c in bg))
    for i in range(int(rng.integers(6, 12))):
        d.text((10, 40 + 22 * i), f"Item {i + 1}", fill=(40, 40, 40))
    y = 44
    words = ["revenue", "growth", "margin", "customer", "quarter", "forecast", "region", "total", "units"]
    while y < h - 60:
        line = " ".join(rng.choice(words, int(rng.integers(4, 10))))
        d.text((panel + 14, y), line.capitalize() + ".", fill=(30, 30, 30))
        y += int(rng.integers(16, 24))
        if rng.random() < 0.15:
            d.line([panel + 14, y, w - 14, y], fill=(180, 180, 180))
            y += 8
    for i in range(int(rng.integers(1, 4))):
        x0 = panel + 14 + 110 * i
        d.rounded_rectangle([x0, h - 44, x0 + 96, h - 16], radius=6, fill=accent)
        d.text((x0 + 20, h - 36), "Button", fill=(255, 255, 255))
    return np.asarray(im)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="hyperprior")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", default="screens-demo")
    ap.add_argument("--images", type=int, default=12)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    images = {f"screen{i:02d}": screenshot(rng) for i in range(args.images)}
    with tempfile.TemporaryDirectory() as tmp:
        import os
        os.environ.setdefault("AECORE_JOBS_DIR", str(Path(tmp) / "jobs"))
        config = jobs.JobConfig(base=args.base, out=args.out, steps=args.steps, overwrite=True,
                                description="synthetic screenshots")
        t0 = time.time()
        job = jobs.create_job(config, images)
        jobs.run(job)
        result = job.reload().result()
    report = {"base": args.base, "steps": args.steps, "images": args.images, "minutes": round((time.time() - t0) / 60, 2),
              "bd_rate_vs_base_psnr": result.get("bd_rate"), "bd_rate_vs_base_ms_ssim": result.get("bd_rate_ms_ssim"),
              "base_rd": result.get("base_rd"), "new_rd": result.get("new_rd")}
    out = ROOT / "benchmarks" / "results" / "finetune_demo.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("base", "steps", "minutes", "bd_rate_vs_base_psnr")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
