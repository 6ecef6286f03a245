"""Rate-distortion benchmark on Kodak: every codec's curve, BD-rates against JPEG, a chart.

    python benchmarks/rd_kodak.py                      # ../shared/data/kodak, all codecs
    python benchmarks/rd_kodak.py DIR --limit 6        # a quicker look at 6 images
    python benchmarks/rd_kodak.py DIR --update-cards   # also record the results in the model cards
    python benchmarks/rd_kodak.py --samples            # held-out check: the app's built-in photos
    python benchmarks/rd_kodak.py DIR --codecs jxl,heic --add   # sweep these, keep the others' rows

Writes benchmarks/results/kodak_rd.csv (one row per image, codec and quality),
kodak_bdrate.json (BD-rate by PSNR, by MS-SSIM in dB and by SSIMULACRA 2 of every codec
against OpenCV JPEG, over the overlapping range; each codec's PSNR at 0.25 bpp) and kodak_rd.html
(interactive Plotly chart); with --samples, samples_rd.csv, samples_bdrate.json and
samples_rd.html. JPEG is swept at every quality from 2 to 30, where the low-rate curves
meet, and in steps of 5 above.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aecore import rd, weights  # noqa: E402
from aecore.codecs import classical_names, learned_names  # noqa: E402
from aecore.io import load_image_folder_named, sample_images  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "kodak"
LEARNED = ("hyperprior", "seed")
JPEG_QUALITIES = sorted(set(range(2, 31)) | set(range(35, 100, 5)))
CHECK_RATE = 0.25  # bpp: the rate at which the first weights had to beat JPEG in PSNR


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
    args = ap.parse_args()
    if args.add and not args.codecs:
        ap.error("--add needs --codecs")
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
    t0 = time.time()

    def progress(done, total, label):
        print(f"\r{done}/{total} {label:<50}", end="", file=sys.stderr, flush=True)

    out = Path(args.out)
    kept = []
    if args.add:
        kept = [r for r in rd.read_csv(out / f"{prefix}_rd.csv") if r["codec"] not in plan and r["image"] in images]
        plan = {**{c: None for c in dict.fromkeys(r["codec"] for r in kept)}, **plan}  # keeps their order first
    rows = kept + rd.sweep(images, {c: q for c, q in plan.items() if q is not None}, progress=progress)
    print(f"\nswept in {time.time() - t0:.0f} s", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    rd.write_csv(rows, out / f"{prefix}_rd.csv")
    averages = rd.average(rows)
    result = {"images": len(images), "anchor": "jpeg",
              "bd_rate_psnr": rd.bd_table(averages, "jpeg", "psnr"),
              "bd_rate_ms_ssim": rd.bd_table(averages, "jpeg", "ms_ssim_db"),
              "bd_rate_ssimulacra2": rd.bd_table(averages, "jpeg", "ssimulacra2")}
    at_rate = f"psnr_at_{CHECK_RATE}_bpp"
    result[at_rate] = {k: round(v, 3) for k, v in rd.at_rate_table(averages, CHECK_RATE).items()
                       if v == v}  # NaN: the curve does not reach that rate
    if "webp" in plan:
        result["vs_webp_psnr"] = {k: v for k, v in rd.bd_table(averages, "webp", "psnr").items() if k in LEARNED}
    result["curves"] = {c: [{k: round(r[k], 4) if r.get(k) == r.get(k) else None  # NaN or absent: not scored
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
                    "images": len(images),
                    "bd_rate_vs_jpeg_psnr": round(result["bd_rate_psnr"][name], 2),
                    "bd_rate_vs_jpeg_ms_ssim": round(result["bd_rate_ms_ssim"][name], 2),
                    at_rate: result[at_rate].get(name),
                    "jpeg_" + at_rate: result[at_rate].get("jpeg"),
                    "curve": result["curves"][name]}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
