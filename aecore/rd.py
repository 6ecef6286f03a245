"""Rate-distortion: sweeps over images, averaged curves, CSV, BD-rate (matched sizes: `aecore.target`).

    rows = sweep({"kodim01": img}, default_plan(["jpeg", "hyperprior"]))
    bd_table(rows, anchor="jpeg", metric="psnr")   # {"hyperprior": -23.1}: % bits saved

Rate is bits per pixel of the whole file, 8 * bytes / (H * W). Curves are averaged per
(codec, quality) over images, the way results on Kodak are reported (as CompressAI's eval does).
BD-rate is Bjøntegaard's average rate difference (VCEG-M33, 2001) with piecewise cubic
Hermite (PCHIP) interpolation in place of his cubic polynomial fit, as the FAU-LMS
`bjontegaard` package's "pchip" method does: it never overshoots between points.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
import csv
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator

from .codecs import get_codec, with_effort
from .measure import measure

# Sweep qualities per classical codec name; learned weights sweep their own trained levels.
_CLASSICAL_SWEEP = list(range(5, 100, 5))  # 100 is left out: lossless for AVIF, near it elsewhere
DEFAULT_QUALITIES: dict[str, list[float]] = {
    "jpeg": _CLASSICAL_SWEEP,
    "webp": _CLASSICAL_SWEEP,
    "avif": _CLASSICAL_SWEEP,
    "jpeg2000": _CLASSICAL_SWEEP,
    "jxl": _CLASSICAL_SWEEP,
    "heic": _CLASSICAL_SWEEP,
    "classical": _CLASSICAL_SWEEP,
}

METRICS = ("bytes", "bpp", "psnr", "ssim", "ms_ssim", "ms_ssim_db", "ssimulacra2", "blockiness")
_TEXT_COLUMNS = {"image", "codec", "effort"}


def default_codecs() -> list[str]:
    """The codecs a sweep starts with: the shipped learned models (or every learned model
    where none is shipped) and the classical codecs. Fine-tuned weights are one choice away
    but not swept by default: each one adds a whole curve of learned coding to the wait."""
    from . import weights
    from .codecs import classical_names
    learned = weights.available()
    shipped = [n for n, path in learned.items() if path.parent == weights.SHIPPED_DIR]
    return (shipped or list(learned)) + classical_names()


def default_plan(names: list[str]) -> dict[str, list[float]]:
    """{codec: its default sweep qualities} for codec names."""
    return {name: sweep_qualities(name) for name in names}


def sweep_qualities(name: str) -> list[float]:
    """Learned weights: each trained rate level, 1..levels (the model's own count); a classical
    codec: DEFAULT_QUALITIES."""
    codec = get_codec(name)
    if codec.kind == "learned":
        return list(range(1, codec.model.levels + 1))
    return DEFAULT_QUALITIES.get(name, DEFAULT_QUALITIES["classical"])


def sweep(images: dict[str, np.ndarray], codecs: dict[str, list[float]], progress=None,
          perceptual: bool = True, effort: str = "fast") -> list[dict]:
    """One row per (image, codec, quality): size, metrics and coding times.

    `progress(done, total, label)` is called after each encode/decode pair. `perceptual=False`
    skips SSIMULACRA 2 (NaN), the one metric slower than the coding itself. `effort` is the
    learned codecs' (recorded in an "effort" column); classical codecs are coded as always.
    """
    plan = [(_at_effort(get_codec(name), effort), qualities) for name, qualities in codecs.items()]
    total = len(images) * sum(len(q) for _, q in plan)
    rows, done = [], 0
    for image_name, image in images.items():
        for codec, qualities in plan:
            for quality in qualities:
                rows.append(point(codec, image_name, image, quality, perceptual))
                done += 1
                if progress:
                    progress(done, total, f"{codec.name} q={quality:g} {image_name}")
    return rows


# Points measured at once by `in_parallel`: most classical encoders (OpenJPEG, x265, libjxl's
# default effort, libwebp) code on one thread, so two points fill both cores of a small machine.
POINT_WORKERS = 2


def in_parallel(calls: list, workers: int = POINT_WORKERS, initializer=None):
    """Runs the zero-argument `calls` on `workers` threads, started in list order; yields
    (index, result) as each finishes, so a caller can draw what is done while the rest runs.
    An exception is raised where its call's result is yielded; the calls not yet started are
    then dropped. Timings measured inside concurrent calls include their contention, so the
    benchmarks sweep one point at a time (`sweep`)."""
    with ThreadPoolExecutor(max(1, workers), initializer=initializer) as pool:
        futures = {pool.submit(call): i for i, call in enumerate(calls)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()


def point(codec, image_name: str, image: np.ndarray, quality: float, perceptual: bool = True) -> dict:
    """One sweep row: `image` coded by `codec` (a Codec or its name) at `quality`, measured."""
    codec = get_codec(codec) if isinstance(codec, str) else codec
    m = measure(codec, image, quality, perceptual=perceptual)
    return {"image": image_name, "codec": codec.name, "quality": quality, "effort": getattr(codec, "effort", "fast"),
            **{k: m.metrics[k] for k in METRICS},
            "encode_ms": round(m.encode_ms, 2), "decode_ms": round(m.decode_ms, 2)}


def _at_effort(codec, effort: str):
    return with_effort(codec, effort) if codec.kind == "learned" else codec


def average(rows: list[dict]) -> list[dict]:
    """Mean of every numeric column per (codec, quality) over images, with the image count."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["codec"], row["quality"]), []).append(row)
    order = list(dict.fromkeys(row["codec"] for row in rows))
    out = []
    for (codec, quality), group in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        columns = [k for k in dict.fromkeys(k for r in group for k in r) if k not in _TEXT_COLUMNS and k != "quality"]
        out.append({"codec": codec, "quality": quality, "images": len(group),  # a metric some rows lack: NaN
                    **{k: float(np.mean([r.get(k, np.nan) for r in group])) for k in columns}})
    return out


def write_csv(rows: list[dict], path) -> None:
    """Rows to CSV at a path or into an open text file (columns in first-seen order)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if isinstance(path, (str, Path)):
        with open(path, "w", newline="") as f:
            write_csv(rows, f)
        return
    writer = csv.DictWriter(path, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def read_csv(path) -> list[dict]:
    """Rows written by `write_csv` (a path or an open text file), numbers parsed back."""
    if isinstance(path, (str, Path)):
        with open(path, newline="") as f:
            return read_csv(f)
    return [{k: v if k in _TEXT_COLUMNS else _number(v) for k, v in row.items()} for row in csv.DictReader(path)]


def _number(text: str):
    if text == "":  # a column some rows lack (a metric added after they were swept)
        return float("nan")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _curve(rate, metric, who: str) -> tuple[np.ndarray, np.ndarray]:
    """The efficient points of an RD curve, ascending: both rate and metric strictly increase.

    Non-finite values (a lossless point's infinite PSNR) are dropped, and so is any point
    another one beats (no more rate for at least as much quality), ties included.
    """
    rate, metric = np.asarray(rate, float).ravel(), np.asarray(metric, float).ravel()
    if rate.size != metric.size:
        raise ValueError(f"{who}: {rate.size} rates but {metric.size} metric values")
    ok = np.isfinite(rate) & np.isfinite(metric) & (rate > 0)
    rate, metric = rate[ok], metric[ok]
    keep: list[int] = []
    for i in np.lexsort((rate, -metric)):  # best metric first, cheapest first among ties
        if not keep or rate[i] < rate[keep[-1]]:
            keep.append(i)
    keep.reverse()
    if len(keep) < 2:
        raise ValueError(f"{who}: need at least 2 distinct rate-distortion points, got {len(keep)}; "
                         "sweep more qualities")
    return rate[keep], metric[keep]


def _mean_gap(x_anchor, y_anchor, x_test, y_test, axis: str) -> float:
    """Mean of test(x) - anchor(x) over the x range both cover, each curve PCHIP-interpolated."""
    lo, hi = max(x_anchor[0], x_test[0]), min(x_anchor[-1], x_test[-1])
    if lo >= hi:
        raise ValueError(f"the curves do not overlap in {axis} (anchor {x_anchor[0]:.4g}..{x_anchor[-1]:.4g}, "
                         f"test {x_test[0]:.4g}..{x_test[-1]:.4g}); sweep qualities that cover a common range")
    area_anchor = PchipInterpolator(x_anchor, y_anchor).integrate(lo, hi)
    area_test = PchipInterpolator(x_test, y_test).integrate(lo, hi)
    return float((area_test - area_anchor) / (hi - lo))


def bd_rate(anchor_bpp, anchor_metric, test_bpp, test_metric) -> float:
    """Average rate difference at equal quality, in percent (negative: the test needs fewer bits).

    log(rate) is interpolated as a function of the metric (higher = better, e.g. PSNR dB).
    """
    ra, ma = _curve(anchor_bpp, anchor_metric, "anchor")
    rt, mt = _curve(test_bpp, test_metric, "test")
    return (float(np.exp(_mean_gap(ma, np.log(ra), mt, np.log(rt), "quality"))) - 1) * 100


def bd_table(rows: list[dict], anchor: str = "jpeg", metric: str = "psnr") -> dict[str, float]:
    """BD-rate (%) of every other codec against `anchor`, from sweep rows or their averages.

    A codec whose curve has too few points or no overlap with the anchor gets NaN.
    """
    curves = _curves_by_codec(rows, metric)
    if anchor not in curves:
        raise ValueError(f"no rows for the anchor codec {anchor!r}; include it in the sweep")
    table = {}
    for name, (bpp, values) in curves.items():
        if name == anchor:
            continue
        try:
            table[name] = bd_rate(*curves[anchor], bpp, values)
        except ValueError:
            table[name] = float("nan")
    return table


def metric_at_rate(bpp, values, rate: float) -> float:
    """A curve's metric at `rate` bpp (PCHIP in log-rate through its efficient points); NaN outside it."""
    r, m = _curve(bpp, values, "curve")
    if not r[0] <= rate <= r[-1]:
        return float("nan")
    return float(PchipInterpolator(np.log(r), m)(np.log(rate)))


def at_rate_table(rows: list[dict], rate: float, metric: str = "psnr") -> dict[str, float]:
    """Every codec's `metric` at `rate` bpp, from sweep rows or their averages (NaN where out of range)."""
    table = {}
    for name, (bpp, values) in _curves_by_codec(rows, metric).items():
        try:
            table[name] = metric_at_rate(bpp, values, rate)
        except ValueError:  # fewer than two points
            table[name] = float("nan")
    return table


def _curves_by_codec(rows: list[dict], metric: str) -> dict[str, tuple[list, list]]:
    """{codec: (bpp values, metric values)} of the mean curves (sweep rows are averaged first)."""
    if any("image" in row for row in rows):
        rows = average(rows)
    curves: dict[str, tuple[list, list]] = {}
    for row in rows:
        bpp, values = curves.setdefault(row["codec"], ([], []))
        bpp.append(row["bpp"])
        values.append(row.get(metric, float("nan")))  # rows swept before a metric existed lack it
    return curves
