"""Streams made on one kind of CPU, decoded on another: float32 against fixed-point entropy parameters.

    python benchmarks/portability.py [KODAK_DIR] [--qualities 1,4,8]
                                     # writes benchmarks/results/portability.json

Codes every image at each quality twice with this machine's kernels: as format version 3 writes
it (y's means and scales from the fixed-point hyper synthesis) and as versions 1 and 2 did
(float32 hyper synthesis). Then a second process decodes every stream with oneDNN and ATen
held to their AVX2 kernels (`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`, what a machine
without AVX-512 runs) and compares with this process's decode. Meaningful on an AVX-512 machine:
on one without it both processes run the same kernels.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FORMATS = ("fixed_point", "float32")
OTHER_CPU = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def encode(images: str, qualities: list[float], model_name: str, folder: Path) -> list[dict]:
    """Writes each stream and this process's decode of it into `folder`; returns their rows."""
    import numpy as np
    import torch
    from aecore import bitstream, io
    from aecore.codecs import get_codec
    from aecore.io import load_image
    codec = get_codec(model_name)
    rows = []
    for path in sorted(p for p in Path(images).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}):
        pixels = load_image(path).pixels
        for quality in qualities:
            data = codec.encode(pixels, quality)
            header = bitstream.unpack(data)[0]
            x = torch.from_numpy(np.ascontiguousarray(io.to_rgb(pixels))).permute(2, 0, 1)[None].float().div(255)
            legacy = bitstream.pack(bitstream.Header(**{**header.__dict__, "exact_parameters": False}),
                                    codec.model.compress(x, header.quality, exact_parameters=False))
            for fmt, stream in zip(FORMATS, (data, legacy)):
                stem = f"{path.stem}-q{quality}-{fmt}"
                (folder / f"{stem}.aec").write_bytes(stream)
                np.save(folder / f"{stem}.npy", codec.decode(stream))
                rows.append({"image": path.name, "quality": quality, "format": fmt, "bytes": len(stream), "stem": stem})
    return rows


def decode(model_name: str, folder: Path) -> None:
    """In the other-CPU process: decodes every stream, writes {stem: outcome} as JSON lines."""
    import numpy as np
    from aecore.codecs import get_codec
    codec = get_codec(model_name)
    for stream in sorted(folder.glob("*.aec")):
        try:
            diff = np.abs(codec.decode(stream.read_bytes()).astype(int) - np.load(stream.with_suffix(".npy")))
            outcome = {"max_abs_diff": int(diff.max())}
        except Exception as e:  # noqa: BLE001 - the failure is the measurement
            outcome = {"error": str(e)}
        print(json.dumps({"stem": stream.stem, **outcome}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--model", default="hyperprior")
    parser.add_argument("--qualities", default="1,4,8")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "portability.json"))
    parser.add_argument("--decode-folder", help=argparse.SUPPRESS)  # the second process
    args = parser.parse_args()
    if args.decode_folder:
        return decode(args.model, Path(args.decode_folder))
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        rows = encode(args.images, [float(q) for q in args.qualities.split(",")], args.model, Path(tmp))
        run = subprocess.run([sys.executable, __file__, "--model", args.model, "--decode-folder", tmp],
                             env={**os.environ, **OTHER_CPU}, capture_output=True, text=True, check=True)
    outcomes = {o.pop("stem"): o for o in map(json.loads, run.stdout.splitlines())}
    summary = {}
    for fmt in FORMATS:
        mine = [r for r in rows if r["format"] == fmt]
        for r in mine:
            r.update(outcomes[r.pop("stem")])
        summary[fmt] = {"streams": len(mine), "failed": sum("error" in r for r in mine),
                        "decoded_within_1": sum(r.get("max_abs_diff", 99) <= 1 for r in mine),
                        "bytes": sum(r["bytes"] for r in mine)}
    doc = {"command": "python benchmarks/portability.py " + " ".join(sys.argv[1:]), "model": args.model,
           "encoder_cpu_avx512": "avx512f" in flags, "decoder_env": OTHER_CPU, "summary": summary,
           "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    for fmt, s in summary.items():
        print(f"{fmt:12s} {s['streams']} streams: {s['failed']} failed to decode on the other CPU, "
              f"{s['decoded_within_1']} within 1 grey level; {s['bytes']} bytes")


if __name__ == "__main__":
    main()
