"""Decoding without aecore, measured: docs/decode_onnx.py against `decompress`, pixel by pixel.

    python benchmarks/onnx_decode.py [KODAK_DIR] [--model hyperprior] [--qualities 1,4,8]
                                     # writes benchmarks/results/onnx_decode.json

Exports the model once (python -m aecore export-onnx), codes every image at each quality
with aecore, decodes each stream with aecore and with the script (its own process, run
from a folder where aecore cannot be imported), and records the largest pixel difference,
how many pixels differ and whether the script had to resolve a scale index.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--model", default="hyperprior")
    parser.add_argument("--qualities", default="1,4,8")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "onnx_decode.json"))
    args = parser.parse_args()

    import numpy as np
    from PIL import Image
    from aecore.codecs import get_codec
    from aecore.io import load_image

    codec = get_codec(args.model)
    paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "aecore", "export-onnx", args.model, str(tmp / "onnx")],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        for quality in map(float, args.qualities.split(",")):
            for path in paths:
                data = codec.encode(load_image(path).pixels, quality)
                (tmp / "a.aec").write_bytes(data)
                ours = codec.decode(data).astype(int)
                t0 = time.perf_counter()
                run = subprocess.run([sys.executable, str(ROOT / "docs" / "decode_onnx.py"), str(tmp / "onnx"),
                                      "a.aec", "a.png"], cwd=tmp, capture_output=True, text=True)
                seconds = time.perf_counter() - t0
                row = {"image": path.name, "quality": quality, "bytes": len(data), "script_seconds": round(seconds, 2),
                       "script_stderr": run.stderr.strip(), "exit_code": run.returncode}
                if run.returncode == 0:
                    diff = np.abs(np.asarray(Image.open(tmp / "a.png")).astype(int) - ours)
                    row.update(max_abs_diff=int(diff.max()), pixels_differing=int((diff > 0).sum()),
                               values=int(diff.size))
                rows.append(row)
                print(json.dumps(row), flush=True)
    ok = [r for r in rows if r["exit_code"] == 0]
    summary = {"model": args.model, "images": len(paths), "streams": len(rows), "decoded": len(ok),
               "max_abs_diff": max((r["max_abs_diff"] for r in ok), default=None),
               "share_of_values_differing": sum(r["pixels_differing"] for r in ok) / max(1, sum(r["values"] for r in ok)),
               "streams_with_a_resolved_scale_index": sum("moved" in r["script_stderr"] for r in ok)}
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
