"""Codec speed and memory: encode/decode times, transform vs entropy coding, peak RSS.

    python benchmarks/speed.py                 # writes benchmarks/results/speed.json
    python benchmarks/speed.py --quick         # 768x512 only

Each (codec, image size) case runs in its own process, so its peak RSS (ru_maxrss,
model and libraries included) is its own. Times are medians over repeats after a
warm-up. The 768x512 image is kodim23 when the Kodak folder is beside the checkout,
otherwise scikit-image's astronaut resized; the 12 MP photo (4000x3000) is that image
upscaled with Lanczos (content matters little for speed).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {"768x512": (768, 512), "12MP": (4000, 3000)}
LEARNED_QUALITIES = (1, 4, 8)
CLASSICAL = {"jpeg": 75, "webp": 75, "avif": 75}


def test_image(size: str):
    import numpy as np
    from PIL import Image
    kodak = ROOT.parent / "shared" / "data" / "kodak" / "kodim23.png"
    if kodak.exists():
        im = Image.open(kodak).convert("RGB")
    else:
        from skimage.data import astronaut
        im = Image.fromarray(astronaut())
    return np.asarray(im.resize(SIZES[size], Image.LANCZOS))


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def run_case(codec_name: str, size: str, repeats: int) -> dict:
    """Runs in a child process: times one codec on one image size."""
    import torch
    from aecore.codecs import get_codec
    from aecore.metrics import psnr

    image = test_image(size)
    codec = get_codec(codec_name)
    qualities = LEARNED_QUALITIES if codec.kind == "learned" else (CLASSICAL[codec_name],)
    results = []
    for q in qualities:
        data = codec.encode(image, q)  # warm-up (and tables)
        decoded = codec.decode(data)
        row = {"quality": q, "bytes": len(data), "bpp": round(8 * len(data) / image.shape[0] / image.shape[1], 4),
               "psnr": round(psnr(image, decoded), 3),
               "encode_ms": _median_ms(lambda: codec.encode(image, q), repeats),
               "decode_ms": _median_ms(lambda: codec.decode(data), repeats)}
        if codec.kind == "learned":
            model = codec.model
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)
            with torch.inference_mode():
                y = model.analysis(model.pad(x))
                row["analysis_ms"] = _median_ms(lambda: model.analysis(model.pad(x)), repeats)
                row["synthesis_ms"] = _median_ms(lambda: model.synthesis(y), repeats)
            row["encode_other_ms"] = round(row["encode_ms"] - row["analysis_ms"], 1)
            row["decode_other_ms"] = round(row["decode_ms"] - row["synthesis_ms"], 1)
            row["entropy_share"] = round((row["encode_other_ms"] + row["decode_other_ms"])
                                         / (row["encode_ms"] + row["decode_ms"]), 3)
        results.append(row)
    return {"codec": codec_name, "size": size, "threads": torch.get_num_threads(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "results": results}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--codecs", default="hyperprior,seed,jpeg,webp,avif")
    ap.add_argument("--case", nargs=2, metavar=("CODEC", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed.json"))
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(*args.case, args.repeats)))
        return 0
    from aecore.codecs import codec_names
    available = set(codec_names())
    cases = []
    for size in (["768x512"] if args.quick else SIZES):
        for name in args.codecs.split(","):
            if name not in available:
                continue
            repeats = args.repeats if size == "768x512" else 1
            out = subprocess.run([sys.executable, __file__, "--case", name, size, "--repeats", str(repeats)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return 1
            case = json.loads(out.stdout)
            cases.append(case)
            for r in case["results"]:
                print(f"{name:10s} {size:8s} q={r['quality']:<3} {r['bpp']:.3f} bpp  encode {r['encode_ms']:8.1f} ms  "
                      f"decode {r['decode_ms']:8.1f} ms  peak RSS {case['peak_rss_mb']} MB", file=sys.stderr)
    from aecore.models.precision import cpu_facts
    report = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores", "cpu": cpu_facts(),
              "cases": cases}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
