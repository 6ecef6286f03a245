"""Rate-distortion benchmark on Kodak: every codec's curve, BD-rates against JPEG, a chart.

    python benchmarks/rd_kodak.py                      # ../shared/data/kodak, all codecs
    python benchmarks/rd_kodak.py DIR --limit 6        # a quicker look at 6 images
    python benchmarks/rd_kodak.py DIR --update-cards   # also record the results in the model cards
    python benchmarks/rd_kodak.py --samples            # held-out check: the app's built-in photos
    python benchmarks/rd_kodak.py DIR --codecs jxl,heic --add   # sweep these, keep the others' rows
    python benchmarks/rd_kodak.py DIR --add-ssimulacra2 --jobs 2  # score the CSV's points that lack it
    python benchmarks/rd_kodak.py DIR --codecs hyperprior --effort balanced,best --add  # refined curves too

Writes benchmarks/results/kodak_rd.csv (one row per image, codec and quality),
kodak_bdrate.json (BD-rate by PSNR, by MS-SSIM in dB and by SSIMULACRA 2 of every codec
against OpenCV JPEG, over the overlapping range; each codec's PSNR at 0.25 bpp) and kodak_rd.html
(interactive Plotly chart); with --samples, samples_rd.csv, samples_bdrate.json and
samples_rd.html. JPEG is swept at every quality from 2 to 30, where the low-rate curves
meet, and in steps of 5 above.

Each point measured is appended to OUT/cache/PREFIX_points.jsonl as soon as it is done,
so an interrupted run resumes where it stopped (a learned codec's points are kept only
for the weights that made them); --jobs N measures N points at a time in worker processes
(their coding times then include the sharing of the cores). --add-ssimulacra2 codes each
point of the CSV that has no SSIMULACRA 2 score again, checks that the file has the CSV's
size and the decode its PSNR and MS-SSIM, and adds only the score: every other column stays.
--effort balanced,best adds the learned codecs' refined curves (hyperprior@balanced, ...;
minutes per point on 2 cores), and the JSON gives every curve's encode seconds per image.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor, as_completed
import json
import math
import multiprocessing
import os
from pathlib import Path
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from aecore import rd, refine, weights  # noqa: E402
from aecore.codecs import EFFORTS, classical_names, get_codec, learned_names, with_effort  # noqa: E402
from aecore.io import load_image_folder_named, sample_images  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "kodak"
LEARNED = ("hyperprior", "seed")
JPEG_QUALITIES = sorted(set(range(2, 31)) | set(range(35, 100, 5)))
CHECK_RATE = 0.25  # bpp: the rate at which the first weights had to beat JPEG in PSNR


def _key(image: str, codec: str, quality) -> tuple:
    return image, codec, float(quality)


def curve_codec(curve: str):
    """The codec a curve name stands for: "hyperprior", or "hyperprior@best" (that encode effort)."""
    name, _, effort = curve.partition("@")
    return with_effort(get_codec(name), effort or "fast")


def _identity(curve: str) -> str:
    """What a cached point was made by: a learned codec's weights hash (and refining preset), a
    classical codec's name."""
    c = curve_codec(curve)
    if c.kind != "learned":
        return c.name
    plan = refine.schedule(c.model, c.effort)
    return c.hash.hex() + ("" if plan is None else f"@{c.effort}:{plan}")


def _worker_start(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when a learned codec first imports torch


def _measure(task: tuple) -> dict:
    image_name, image, curve, quality = task
    return {**rd.point(curve_codec(curve), image_name, image, quality), "codec": curve}


def measure_points(images: dict, tasks: list[tuple], cache: Path, jobs: int = 1, progress=None) -> list[dict]:
    """One sweep row per (image, codec, quality) task, in task order: from the cache where it
    has the point for the same codec identity, else measured (by `jobs` processes) and
    appended to the cache at once."""
    identity = {codec: _identity(codec) for codec in dict.fromkeys(t[1] for t in tasks)}
    known = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut short when a run was killed mid-write
                continue
            row = entry["row"]
            if identity.get(row["codec"]) == entry["identity"]:
                known[_key(row["image"], row["codec"], row["quality"])] = row
    todo = [t for t in dict.fromkeys(tasks) if _key(*t) not in known]
    cache.parent.mkdir(parents=True, exist_ok=True)
    t0, done = time.time(), 0
    with open(cache, "a") as f:
        def record(row: dict) -> None:
            nonlocal done
            f.write(json.dumps({"identity": identity[row["codec"]], "row": row}) + "\n")
            f.flush()
            known[_key(row["image"], row["codec"], row["quality"])] = row
            done += 1
            if progress:
                eta = (time.time() - t0) / done * (len(todo) - done)
                progress(done, len(todo), f"{row['codec']} q={row['quality']:g} {row['image']} ({eta / 60:.0f} min left)")

        work = [(name, images[name], codec, quality) for name, codec, quality in todo]
        if jobs <= 1 or len(work) <= 1:
            for task in work:
                record(_measure(task))
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_worker_start, initargs=(threads,)) as pool:
                for future in as_completed([pool.submit(_measure, task) for task in work]):
                    record(future.result())
    return [known[_key(*t)] for t in tasks]


def add_ssimulacra2(rows: list[dict], images: dict, codecs, cache: Path, jobs: int,
                    progress=None) -> tuple[list[dict], list[str]]:
    """`rows` with SSIMULACRA 2 added where it is missing (for `codecs`, or all when None, on
    the images given; other rows stay as they are), and the points recoded.

    Each point is coded again. Where the file has the row's size and the decode its PSNR and
    MS-SSIM, only the score is added; where the codec's output changed since the row was
    measured (retrained weights, a new library), the whole row is the new measurement, and
    the second list names it.
    """
    def missing(row):
        return (row["image"] in images and (codecs is None or row["codec"] in codecs)
                and not math.isfinite(row.get("ssimulacra2", math.nan)))

    tasks = [(r["image"], r["codec"], r["quality"]) for r in rows if missing(r)]
    fresh = iter(measure_points(images, tasks, cache, jobs, progress))
    order = ["image", "codec", "quality", "effort", *rd.METRICS]  # the sweep's column order
    out, recoded = [], []
    for row in rows:
        if missing(row):
            new = next(fresh)
            if new["bytes"] == row["bytes"] and all(math.isclose(new[k], row[k], rel_tol=1e-12, abs_tol=1e-12)
                                                    for k in ("psnr", "ms_ssim")):
                row = {**row, "ssimulacra2": new["ssimulacra2"]}
            else:
                recoded.append(f"{row['image']} {row['codec']} q={row['quality']}: {row['bytes']} B, "
                               f"{row['psnr']:.5f} dB before, {new['bytes']} B, {new['psnr']:.5f} dB now")
                row = new
        row = {"effort": "fast", **row}  # rows measured before encode effort existed: the plain encoder
        out.append({**{k: row[k] for k in order if k in row}, **row})
    return out, recoded


def scored_images(rows: list[dict], metric: str) -> list[str]:
    """The images every one of whose rows has `metric` (a metric added to part of a sweep)."""
    names = dict.fromkeys(r["image"] for r in rows)
    for r in rows:
        if not math.isfinite(r.get(metric, math.nan)):
            names.pop(r["image"], None)
    return list(names)


def chart(averages: list[dict], path: Path, title: str) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("PSNR (RGB)", "MS-SSIM (dB)", "SSIMULACRA 2"))
    for codec in dict.fromkeys(r["codec"] for r in averages):
        pts = [r for r in averages if r["codec"] == codec]
        for col, metric, unit in ((1, "psnr", " dB"), (2, "ms_ssim_db", " dB"), (3, "ssimulacra2", "")):
            fig.add_trace(go.Scatter(x=[p["bpp"] for p in pts], y=[p.get(metric) for p in pts],
                                     mode="lines+markers", name=codec, legendgroup=codec, showlegend=col == 1,
                                     customdata=[p["quality"] for p in pts],
                                     hovertemplate=f"{codec} q=%{{customdata}}<br>%{{x:.3f}} bpp<br>%{{y:.2f}}{unit}"),
                          row=1, col=col)
    fig.update_xaxes(title_text="bits per pixel")
    fig.update_yaxes(title_text="dB", col=1)
    fig.update_yaxes(title_text="dB", col=2)
    fig.update_yaxes(title_text="score (100 = identical)", col=3)
    fig.update_layout(title=f"{title} ({averages[0]['images']} images), mean over images per quality",
                      template="plotly_white", height=500)
    fig.write_html(path, include_plotlyjs=True, full_html=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(DEFAULT_DIR))
    ap.add_argument("--codecs", help="comma-separated names (default: shipped learned models + classical)")
    ap.add_argument("--limit", type=int, help="use only the first N images")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--update-cards", action="store_true", help="write the results into the models' cards")
    ap.add_argument("--samples", action="store_true",
                    help="sweep the built-in scikit-image photos instead of a folder (neither Kodak nor training data)")
    ap.add_argument("--add", action="store_true",
                    help="sweep only --codecs and keep every other codec's rows from the CSV already in --out")
    ap.add_argument("--add-ssimulacra2", action="store_true",
                    help="score the CSV's points that have no SSIMULACRA 2 (of --codecs, default all); keep the rest")
    ap.add_argument("--effort", default="fast",
                    help="comma-separated encode efforts of the learned codecs (fast, balanced, best; default fast): "
                         "each effort but fast is a curve of its own, named like hyperprior@best")
    ap.add_argument("--jobs", type=int, default=1, help="points measured at a time, in worker processes")
    args = ap.parse_args()
    if args.add and not args.codecs:
        ap.error("--add needs --codecs")
    if args.add and args.add_ssimulacra2:
        ap.error("--add sweeps codecs, --add-ssimulacra2 scores a CSV's points: one at a time")
    if args.samples and args.update_cards:
        ap.error("--update-cards records Kodak results only")

    images = sample_images() if args.samples else load_image_folder_named(args.folder)
    prefix = "samples" if args.samples else "kodak"
    if args.limit:
        images = dict(list(images.items())[:args.limit])
    names = args.codecs.split(",") if args.codecs else [n for n in LEARNED if n in learned_names()] + classical_names()
    plan = rd.default_plan(names)
    if "jpeg" in plan:
        plan["jpeg"] = JPEG_QUALITIES
    efforts = args.effort.split(",")
    if not set(efforts) <= set(EFFORTS):
        ap.error(f"--effort {args.effort}: use {', '.join(EFFORTS)}")
    for name in [n for n in plan if get_codec(n).kind == "learned"]:
        qualities = plan.pop(name)
        plan.update({name if e == "fast" else f"{name}@{e}": qualities for e in efforts})
    t0 = time.time()

    def progress(done, total, label):
        print(f"\r{done}/{total} {label:<50}", end="", file=sys.stderr, flush=True)

    out = Path(args.out)
    cache = out / "cache" / f"{prefix}_points.jsonl"
    if args.add_ssimulacra2:  # every row stays, of the images not given too (they stay unscored)
        rows = rd.read_csv(out / f"{prefix}_rd.csv")
        plan = dict.fromkeys(r["codec"] for r in rows)
        rows, recoded = add_ssimulacra2(rows, images, args.codecs.split(",") if args.codecs else None, cache,
                                        args.jobs, progress)
        if recoded:
            print(f"\n{len(recoded)} points code differently now and were measured again:\n  "
                  + "\n  ".join(recoded), file=sys.stderr)
    else:
        kept = []
        if args.add:
            swept = rd.read_csv(out / f"{prefix}_rd.csv")
            kept = [r for r in swept if r["codec"] not in plan and r["image"] in images]
            plan = {c: plan.get(c) for c in dict.fromkeys([*(r["codec"] for r in swept), *plan])}
        tasks = [(name, codec, q) for name in images for codec, qs in plan.items() if qs is not None for q in qs]
        rows = kept + measure_points(images, tasks, cache, args.jobs, progress)
        order = list(plan)  # the CSV keeps its codecs' order, swept again or not
        rows.sort(key=lambda r: (list(images).index(r["image"]), order.index(r["codec"])))
    print(f"\nswept in {time.time() - t0:.0f} s", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    rd.write_csv(rows, out / f"{prefix}_rd.csv")
    averages = rd.average(rows)
    # SSIMULACRA 2 costs more than the coding: where only some images have it yet, its
    # curves and BD-rates are those images' (named in the JSON), the other metrics all images'.
    every = list(dict.fromkeys(r["image"] for r in rows))
    scored = scored_images(rows, "ssimulacra2")
    if scored and len(scored) < len(every):
        partial = {(a["codec"], a["quality"]): a["ssimulacra2"]
                   for a in rd.average([r for r in rows if r["image"] in scored])}
        averages = [{**a, "ssimulacra2": partial[a["codec"], a["quality"]]} for a in averages]
    result = {"images": len(every), "anchor": "jpeg",
              "bd_rate_psnr": rd.bd_table(averages, "jpeg", "psnr"),
              "bd_rate_ms_ssim": rd.bd_table(averages, "jpeg", "ms_ssim_db"),
              "bd_rate_ssimulacra2": rd.bd_table(averages, "jpeg", "ssimulacra2"),
              "ssimulacra2_images": scored}
    result["encode_seconds_per_image"] = {  # the mean over the curve's points
        c: round(float(np.mean([r["encode_ms"] for r in rows if r["codec"] == c])) / 1000, 3)
        for c in dict.fromkeys(r["codec"] for r in rows)}
    at_rate = f"psnr_at_{CHECK_RATE}_bpp"
    result[at_rate] = {k: round(v, 3) for k, v in rd.at_rate_table(averages, CHECK_RATE).items()
                       if v == v}  # NaN: the curve does not reach that rate
    if "webp" in plan:
        result["vs_webp_psnr"] = {k: v for k, v in rd.bd_table(averages, "webp", "psnr").items() if k in LEARNED}
    result["curves"] = {c: [{k: round(r[k], 4) if r.get(k, math.nan) == r.get(k, math.nan) else None  # NaN or absent
                             for k in ("quality", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "ssimulacra2")}
                            for r in averages if r["codec"] == c] for c in plan}
    (out / f"{prefix}_bdrate.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(averages, out / f"{prefix}_rd.html", "Built-in sample photos" if args.samples else "Kodak")
    for codec in plan:
        print(f"{codec:12s} BD-rate vs JPEG: PSNR {result['bd_rate_psnr'].get(codec, 0):+7.1f}%  "
              f"MS-SSIM {result['bd_rate_ms_ssim'].get(codec, 0):+7.1f}%  "
              f"SSIMULACRA 2 {result['bd_rate_ssimulacra2'].get(codec, 0):+7.1f}%  "
              f"PSNR at {CHECK_RATE} bpp {result[at_rate].get(codec, float('nan')):6.2f} dB")
    if args.update_cards:
        for name in plan:
            if name in LEARNED and name in weights.available():
                weights.update_card(name, {"kodak": {
                    "images": len(every),
                    "bd_rate_vs_jpeg_psnr": round(result["bd_rate_psnr"][name], 2),
                    "bd_rate_vs_jpeg_ms_ssim": round(result["bd_rate_ms_ssim"][name], 2),
                    at_rate: result[at_rate].get(name),
                    "jpeg_" + at_rate: result[at_rate].get("jpeg"),
                    "curve": result["curves"][name]}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
