"""Encode effort: seconds per 768x512 image against BD-rate over the fast encoder, per iteration count.

    python benchmarks/effort.py                                   # ../shared/data/kodak, 4 images
    python benchmarks/effort.py DIR --images 2 --qualities 1,3,5,8 --iterations 0,25,50,100,200,400
    python benchmarks/effort.py DIR --models hyperprior,seed
    python benchmarks/effort.py DIR --images 2 --crop 256x256 --iterations 0,25,50,100,200   # a busy machine

For each model, image and quality: one refinement per count, as `encode` runs it (each
schedule anneals over its own length, `refine.Schedule`), coded into a real .aec stream (the
refined latents or the analysis transform's, whichever the model estimates better), decoded
by the plain decoder and scored. Seconds for a count: its refinement and coding; count 0 is
the fast encode. BD-rate is against count 0 (the fast encoder) over the mean
curve per quality, by PSNR and MS-SSIM (dB). Writes benchmarks/results/effort.json (with the
load average before and after: on a busy machine the seconds are several times a quiet one's)
and prints a table and the presets the rule in `aecore.refine` picks.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from aecore import rd, refine  # noqa: E402
from aecore.codecs import get_codec  # noqa: E402
from aecore.io import load_image_folder_named, to_rgb  # noqa: E402
from aecore.metrics import evaluate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "kodak"
REFERENCE_PIXELS = 768 * 512


def numbers(text: str, kind=float) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def measure_image(codec, image: np.ndarray, quality: float, counts: list[int], ms_ssim_weight: float) -> list[dict]:
    """One row per iteration count: real bytes, the plain decoder's PSNR / MS-SSIM, seconds."""
    model = codec.model
    h, w = image.shape[:2]
    x = torch.tensor(to_rgb(image)).permute(2, 0, 1)[None].float().div(255)
    q = round(float(quality), 3)
    rows = []

    def row(n: int, data: bytes, seconds: float) -> dict:
        m = evaluate(image, codec.decode(data), len(data), perceptual=False)
        return {"iterations": n, "quality": q, "bytes": len(data), "bpp": m["bpp"], "psnr": m["psnr"],
                "ms_ssim_db": m["ms_ssim_db"], "seconds": seconds * REFERENCE_PIXELS / (h * w)}

    t0 = time.perf_counter()
    fast = codec.encode(image, q)
    rows.append(row(0, fast, time.perf_counter() - t0))
    for n in sorted(c for c in counts if c > 0):  # each count its own schedule: each anneals over its length
        t0 = time.perf_counter()
        refined = refine.refine(model, x, q, refine.Schedule(n, ms_ssim_weight=ms_ssim_weight))
        data = codec.stream(refined.sections, h, w, q, image.ndim == 2)
        rows.append(row(n, data, time.perf_counter() - t0))
    return rows


def summarize(rows: list[dict], counts: list[int], arch: str) -> list[dict]:
    """Per count: mean seconds per 768x512 image (measured, and on 2 free cores by
    refine.ITERATION_SECONDS), BD-rate against count 0 by PSNR and MS-SSIM."""
    curves = [{"image": r["image"], "codec": f"it{r['iterations']}", "quality": r["quality"], "bpp": r["bpp"],
               "psnr": r["psnr"], "ms_ssim_db": r["ms_ssim_db"]} for r in rows]
    by_psnr = rd.bd_table(curves, anchor="it0", metric="psnr")
    by_ms = rd.bd_table(curves, anchor="it0", metric="ms_ssim_db")
    out = []
    for n in counts:
        seconds = [r["seconds"] for r in rows if r["iterations"] == n]
        out.append({"iterations": n, "seconds_per_image": float(np.mean(seconds)),
                    # the refinement alone (the coding around it is a fraction of a second)
                    "seconds_quiet": n * refine.ITERATION_SECONDS[arch] * REFERENCE_PIXELS / 1e6,
                    "bd_rate_psnr": 0.0 if n == 0 else by_psnr[f"it{n}"],
                    "bd_rate_ms_ssim": 0.0 if n == 0 else by_ms[f"it{n}"]})
    return out


def per_iteration_seconds(curve: list[dict]) -> float:
    """Least-squares slope of seconds against iterations (per 768x512 image), through the measured counts."""
    n = np.array([c["iterations"] for c in curve], float)
    s = np.array([c["seconds_per_image"] for c in curve], float)
    return float(np.polyfit(n, s, 1)[0]) if len(n) > 1 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(DEFAULT_DIR), help="images (default ../shared/data/kodak)")
    ap.add_argument("--images", type=int, default=4, help="the first N images of the folder (default 4)")
    ap.add_argument("--qualities", default="1,3,5,8", help="comma-separated qualities (default 1,3,5,8)")
    ap.add_argument("--iterations", default="0,25,50,100,200,400", help="iteration counts (0 = fast)")
    ap.add_argument("--models", default="hyperprior", help="comma-separated learned weights (default hyperprior)")
    ap.add_argument("--crop", metavar="WxH",
                    help="code a centre crop of each image (a quick look on a busy machine); seconds are "
                         "still reported per 768x512 image, scaled by pixels")
    ap.add_argument("--ms-ssim-weight", type=float,
                    help="MS-SSIM's share of the refined distortion (default: the model's presets', "
                         "the blend its weights were trained on)")
    ap.add_argument("--out", default=str(RESULTS / "effort.json"))
    ap.add_argument("--rows-from", metavar="JSON",
                    help="summarize the rows of an earlier run's JSON again instead of measuring")
    args = ap.parse_args()
    if args.rows_from:
        return resummarize(Path(args.rows_from), Path(args.out))
    counts = sorted(set(numbers(args.iterations, int)) | {0})
    qualities = numbers(args.qualities)
    images = dict(list(load_image_folder_named(args.folder).items())[:args.images])
    if args.crop:
        cw, ch = numbers(args.crop.replace("x", ","), int)
        images = {k: np.ascontiguousarray(v[(v.shape[0] - ch) // 2:][:ch, (v.shape[1] - cw) // 2:][:, :cw])
                  for k, v in images.items()}
    load_before = os.getloadavg()
    t_all = time.time()
    result = {"images": list(images), "crop": args.crop, "qualities": qualities, "iterations": counts,
              "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "load_average_before": [round(v, 2) for v in load_before], "models": {}}
    for name in numbers(args.models, str):
        codec = get_codec(name)
        blend = args.ms_ssim_weight
        if blend is None:
            blend = refine.schedule(codec.model, "best").ms_ssim_weight
        warm = next(iter(images.values()))  # the first backward pass builds oneDNN's kernels: not timed
        refine.refine(codec.model, torch.tensor(to_rgb(warm)).permute(2, 0, 1)[None].float().div(255),
                      qualities[0], refine.Schedule(2))
        rows = []
        for image_name, image in images.items():
            for q in qualities:
                for r in measure_image(codec, image, q, counts, blend):
                    rows.append({"image": image_name, **r})
                print(f"{name} {image_name} q{q:g}: " + ", ".join(
                    f"{r['iterations']}: {r['seconds']:.1f} s {r['bpp']:.3f} bpp {r['psnr']:.2f} dB"
                    for r in rows[-len(counts):]), file=sys.stderr, flush=True)
        result["models"][name] = model_summary(rows, counts, codec.model.arch)
        result["models"][name]["arch"] = codec.model.arch
        result["models"][name]["ms_ssim_weight"] = blend
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    result["wall_seconds"] = round(time.time() - t_all, 1)
    return report(result, Path(args.out))


def model_summary(rows: list[dict], counts: list[int], arch: str) -> dict:
    curve = summarize(rows, counts, arch)
    per_it = per_iteration_seconds(curve)
    return {"curve": curve, "seconds_per_iteration": per_it,
            "seconds_per_iteration_per_megapixel": per_it / (REFERENCE_PIXELS / 1e6),
            "presets_by_measured_seconds": refine.choose_presets(curve, "seconds_per_image"),
            "presets_by_quiet_seconds": refine.choose_presets(curve, "seconds_quiet"), "rows": rows}


def report(result: dict, out: Path) -> int:
    """Prints each model's table and the presets the rule picks; writes the JSON."""
    for name, m in result["models"].items():
        print(f"\n{name}: seconds per 768x512 image against BD-rate vs the fast encoder "
              f"({len(result['images'])} images{', crops ' + result['crop'] if result.get('crop') else ''}, "
              f"qualities {', '.join(f'{q:g}' for q in result['qualities'])})")
        print(f"{'iterations':>10} {'measured s':>11} {'2 free cores s':>15} {'BD PSNR':>9} {'BD MS-SSIM':>11}")
        for c in m["curve"]:
            print(f"{c['iterations']:>10} {c['seconds_per_image']:>11.1f} {c['seconds_quiet']:>15.1f} "
                  f"{c['bd_rate_psnr']:>+8.1f}% {c['bd_rate_ms_ssim']:>+10.1f}%")
        print(f"measured {m['seconds_per_iteration']:.3f} s per iteration; presets by the rule on measured seconds "
              f"{m['presets_by_measured_seconds']}, on 2 free cores' {m['presets_by_quiet_seconds']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average before {result['load_average_before']}, after {result['load_average_after']}; wrote {out}")
    return 0


def resummarize(source: Path, out: Path) -> int:
    result = json.loads(source.read_text())
    for name, m in result["models"].items():
        arch = m.get("arch") or get_codec(name).model.arch
        kept = {k: m[k] for k in ("ms_ssim_weight",) if k in m}
        result["models"][name] = {**model_summary(m["rows"], result["iterations"], arch), "arch": arch, **kept}
    return report(result, out)


if __name__ == "__main__":
    sys.exit(main())
