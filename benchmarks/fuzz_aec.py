"""Long-running fuzzing of .aec decoding (tests/test_fuzz.py runs a bounded version in CI).

    python benchmarks/fuzz_aec.py --seconds 600                # tiny random models of both architectures
    python benchmarks/fuzz_aec.py --seconds 600 --weights hyperprior,seed   # installed weights
    python benchmarks/fuzz_aec.py --seconds 60 --seed 7 --out benchmarks/results/fuzz_aec.json

Cases are drawn at random from six kinds, each starting from real streams (two images,
four qualities, per model): random bytes, random bytes behind the magic number, a cut,
bit flips, a forged header with a valid CRC (sizes, tile, quality, name, hash, version,
flags, section count and lengths) and forged payloads behind a valid header (random or
word-aligned bytes, cut, flipped, zeroed, swapped, dropped or borrowed sections: these
reach the entropy decoder). Every case is decoded by `LearnedCodec.decode` and by
`decode_any`. A clean outcome is a picture of the header's size or a CodecError /
BitstreamError / WeightsError; anything else (a Rust panic included, which is a
BaseException) is a bug, and so is a decode slower than --slow seconds. Prints counts of
cases per kind and of outcomes, writes them as JSON with --out, exits 1 on any bug.
The pixel limit is lowered (AECORE_MAX_PIXELS=250000) so forged sizes stay cheap.
"""
from __future__ import annotations

import argparse
import atexit
import collections
import json
import os
from pathlib import Path
import re
import shutil
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_fuzz import raw_stream  # noqa: E402  (the .aec layout, any field value, valid CRC)
KINDS = ("random", "magic+random", "cut", "flip", "header", "payload")


def tiny_weights() -> list[str]:
    """Tiny random models of both architectures in a temporary user-weights folder."""
    import torch
    from aecore import weights
    from aecore.models import ModelConfig, build_model

    folder = Path(tempfile.mkdtemp(prefix="aecore-fuzz-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["AECORE_USER_WEIGHTS"] = str(folder)
    names = []
    for arch in ("hyperprior", "seed"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch=arch, channels=8, latent_channels=12)).eval()
        with torch.no_grad():  # larger latents than a fresh init, so streams carry real symbols
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        weights.save(model, f"fuzz-{arch}", folder, {"label": f"fuzz-{arch}"})
        names.append(f"fuzz-{arch}")
    return names


def images():
    import numpy as np
    from aecore.io import sample_images
    photo = sample_images()["Astronaut"]
    return [np.ascontiguousarray(photo[100:164, 160:248]), np.ascontiguousarray(photo[:37, :53, 1])]


class Cases:
    """Draws fuzz cases from real streams."""

    def __init__(self, streams: dict[str, list[bytes]], rng):
        from aecore import bitstream
        self.rng, self.streams = rng, streams
        self.parsed = {m: [bitstream.unpack(s) for s in ss] for m, ss in streams.items()}
        self.pool = [sec for ps in self.parsed.values() for _, secs in ps for sec in secs]

    def draw(self, kind: str, model: str) -> bytes:
        rng = self.rng
        data = self.streams[model][rng.integers(len(self.streams[model]))]
        header, sections = self.parsed[model][self.streams[model].index(data)]
        if kind == "random":
            return rng.bytes(int(rng.integers(0, 4096)))
        if kind == "magic+random":
            return data[:4] + rng.bytes(int(rng.integers(0, 4096)))
        if kind == "cut":
            return data[:int(rng.integers(0, len(data)))]
        if kind == "flip":
            out = bytearray(data)
            for i in rng.choice(len(data) * 8, size=int(rng.integers(1, 17)), replace=False):
                out[i // 8] ^= 1 << (i % 8)
            return bytes(out)
        if kind == "header":
            fields = {"name": model.encode(), "weights_hash": header.weights_hash, "height": header.height,
                      "width": header.width, "quality": round(header.quality * 1000), "tile": header.tile,
                      "flags": int(header.grayscale)}
            for key in rng.choice(list(self.FORGERIES), size=int(rng.integers(1, 4)), replace=False):
                fields[key] = self.FORGERIES[key](rng)
            return raw_stream(sections=sections, **fields)
        return self.payload(header, sections)

    FORGERIES = {
        "name": lambda rng: [b"fuzz-hyperprior", b"fuzz-seed", b"hyperprior", b"nope", b"", b"../x",
                             b"a" * 255][rng.integers(7)],
        "weights_hash": lambda rng: rng.bytes(8),
        "height": lambda rng: int(rng.choice([rng.integers(0, 600), rng.integers(0, 2**32), 60000, 2**32 - 1])),
        "width": lambda rng: int(rng.choice([rng.integers(0, 600), rng.integers(0, 2**32), 60000, 2**32 - 1])),
        "quality": lambda rng: int(rng.integers(0, 2**16)),
        "tile": lambda rng: int(rng.choice([0, 64, 1024, 1088, 65472, rng.integers(0, 2**16)])),
        "version": lambda rng: int(rng.integers(0, 256)),
        "flags": lambda rng: int(rng.integers(0, 256)),
        "count": lambda rng: int(rng.integers(0, 256)),
        "lengths": lambda rng: [int(v) for v in rng.integers(0, 2**32, int(rng.integers(0, 20)))],
    }

    def payload(self, header, sections) -> bytes:
        from aecore import bitstream
        rng = self.rng
        new = []
        for s in sections:
            how = rng.integers(8)
            if how == 0:
                s = rng.bytes(int(rng.integers(0, 600)))
            elif how == 1:
                s = rng.integers(0, 2**32, int(rng.integers(0, 150)), dtype="<u4").tobytes()
            elif how == 2:
                s = s[:int(rng.integers(0, len(s) + 1))]
            elif how == 3 and s:
                b = bytearray(s)
                for i in rng.integers(0, len(s) * 8, int(rng.integers(1, 9))):
                    b[i // 8] ^= 1 << (i % 8)
                s = bytes(b)
            elif how == 4:
                s = self.pool[rng.integers(len(self.pool))]
            elif how == 5:
                s = bytes(4 * int(rng.integers(0, 40)))
            new.append(s)
        shape = rng.integers(10)
        if shape == 0 and new:
            new.pop(int(rng.integers(len(new))))
        elif shape == 1:
            new.insert(int(rng.integers(len(new) + 1)), self.pool[rng.integers(len(self.pool))])
        elif shape == 2:
            new.reverse()
        return bitstream.pack(header, new)


def outcome(decode, data: bytes) -> str:
    """'decoded', the clean error's name and reason (digits as N), or 'BUG: ...'."""
    import numpy as np
    from aecore import bitstream
    from aecore.codecs import CodecError
    from aecore.weights import WeightsError
    try:
        pixels = decode(data)
    except (CodecError, WeightsError) as e:
        return f"{type(e).__name__}: " + re.sub(r"\d[\d.]*", "N", str(e).split(";")[0])[:70]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001  (a Rust panic is a BaseException)
        return f"BUG: {type(e).__module__}.{type(e).__name__}: {str(e)[:80]}"
    header, _ = bitstream.unpack(data)
    shape = (header.height, header.width) if header.grayscale else (header.height, header.width, 3)
    if pixels.dtype != np.uint8 or pixels.shape != shape:
        return f"BUG: decoded to {pixels.dtype} {pixels.shape}, header says {shape}"
    return "decoded"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="comma-separated installed weights (default: tiny random models)")
    parser.add_argument("--slow", type=float, default=5.0, help="a decode slower than this is a bug (seconds)")
    parser.add_argument("--out", help="write the counts as JSON here")
    args = parser.parse_args(argv)
    os.environ["AECORE_MAX_PIXELS"] = "250000"

    import numpy as np
    from aecore.codecs import get_codec
    from aecore.codecs.learned import decode_any

    models = args.weights.split(",") if args.weights else tiny_weights()
    streams = {m: [get_codec(m).encode(img, q) for img in images() for q in (1.0, 3.3, 5.5, 8.0)] for m in models}
    cases = Cases(streams, np.random.default_rng(args.seed))
    per_kind = collections.Counter()
    outcomes: dict[str, collections.Counter] = {k: collections.Counter() for k in KINDS}
    bugs, slowest = [], 0.0
    deadline = time.time() + args.seconds
    while time.time() < deadline:
        kind = KINDS[cases.rng.integers(len(KINDS))]
        model = models[cases.rng.integers(len(models))]
        data = cases.draw(kind, model)
        per_kind[kind] += 1
        for decode in (get_codec(model).decode, decode_any):
            start = time.perf_counter()
            result = outcome(decode, data)
            seconds = time.perf_counter() - start
            slowest = max(slowest, seconds)
            if seconds > args.slow:
                result = f"BUG: slow decode ({seconds:.1f} s)"
            outcomes[kind][result.split(":")[0] if not result.startswith("BUG") else result] += 1
            if result.startswith("BUG"):
                bugs.append({"kind": kind, "model": model, "outcome": result, "data_hex": data.hex()[:4000]})

    decodes = sum(sum(c.values()) for c in outcomes.values())
    print(f"{sum(per_kind.values())} cases ({decodes} decodes) in {args.seconds:g} s on {', '.join(models)}; "
          f"slowest decode {slowest * 1000:.0f} ms")
    for kind in KINDS:
        print(f"  {kind:<13} {per_kind[kind]:>7} cases: " +
              ", ".join(f"{name} {n}" for name, n in outcomes[kind].most_common()))
    print(f"bugs: {len(bugs)}")
    for bug in bugs[:10]:
        print(f"  {bug['kind']} on {bug['model']}: {bug['outcome']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "seconds": args.seconds, "seed": args.seed, "models": models, "cases": dict(per_kind),
            "decodes": decodes, "outcomes": {k: dict(v) for k, v in outcomes.items()},
            "slowest_decode_ms": round(slowest * 1000), "bugs": bugs[:50]}, indent=1) + "\n")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
