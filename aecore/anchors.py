"""Kodak reference curves: other people's published results, and where our own benchmark lands.

    from aecore import anchors
    points = anchors.load_published()          # [{"codec": "mbt2018-mean (CompressAI, mse)", ...}, ...]
    ours = anchors.load_benchmark()            # rows of benchmarks/results/kodak_rd.csv, or None

The published points (package data, `data/kodak_published_rd.csv`) are mean results on the
24 Kodak images as CompressAI and TensorFlow Compression publish them in their repositories
(plus a few papers' tables). Each point keeps its `source`: they are cited facts, drawn as
reference curves beside our own measurements and never mixed up with them. See
`data/README.md`.
"""
from __future__ import annotations

import csv
from importlib import resources
import math
from pathlib import Path

from . import rd
from .metrics import ms_ssim_db

PUBLISHED_FILE = "kodak_published_rd.csv"
# What `python benchmarks/rd_kodak.py` writes: one row per (image, codec, quality).
BENCHMARK_CSV = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "kodak_rd.csv"
# The published JPEG that published codecs are compared with (Pillow's libjpeg, 4:2:0),
# as in CompressAI's own plots.
PUBLISHED_JPEG = "JPEG (PIL 7.1.2 / libjpeg)"


def load_published() -> list[dict]:
    """Every published point: codec, source, bpp, psnr, ms_ssim and ms_ssim_db (NaN where not given).

    Points are listed per codec in the file's order, which is ascending rate.
    """
    text = resources.files(__package__).joinpath("data", PUBLISHED_FILE).read_text(encoding="utf-8")
    points = []
    for row in csv.DictReader(text.splitlines()):
        ms = _float(row["ms_ssim"])
        points.append({"codec": row["codec"], "source": row["metric_source"], "bpp": _float(row["bpp"]),
                       "psnr": _float(row["psnr_rgb"]), "ms_ssim": ms, "ms_ssim_db": ms_ssim_db(ms)})
    return points


def load_benchmark(path: Path | str | None = None) -> list[dict] | None:
    """Our Kodak sweep (per-image rows, as `rd.read_csv` reads them), or None if it has not been run."""
    path = Path(path) if path is not None else BENCHMARK_CSV
    if not path.is_file():
        return None
    return rd.read_csv(path)


def _float(text: str) -> float:
    return float(text) if text and text.strip() else math.nan
