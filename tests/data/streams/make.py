"""Writes the committed stream fixtures: tiny weights, .aec streams and their decoded pixels' hashes.

Run once, with the code whose byte format the fixtures pin (`python -m tests.data.streams.make`);
test_codecs_learned then checks that today's code decodes these streams to the same pixels and
encodes the same image to the same bytes. Rerunning it with later code must change no file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# name -> (tiny model of tests.conftest, qualities coded)
STREAMS = {"legacy-hyper": ("tiny-hyper", (1.0, 4.75, 8.0)), "legacy-seed": ("tiny-seed", (1.0, 6.5))}


def image() -> np.ndarray:
    """The photo the fixtures code: 70x100 (not a multiple of 16 or 64, so padding is exercised)."""
    from skimage.data import astronaut
    return np.ascontiguousarray(astronaut()[90:160, 150:250])


def louder(model):
    """Gains raised about 12x (inverse gains lowered alike), so the tiny model's streams carry
    thousands of symbols over many scale tables, not a few zeros."""
    import torch
    with torch.no_grad():
        for units in model.modules():
            if hasattr(units, "log_inverse_gain"):
                units.log_gain.add_(2.5)
                units.log_inverse_gain.sub_(2.5)
    return model


def main() -> None:
    os.environ["AECORE_USER_WEIGHTS"] = str(HERE)
    from aecore import weights
    from aecore.codecs import get_codec
    from tests.conftest import make_tiny
    expected = {}
    for name, (tiny, qualities) in STREAMS.items():
        weights.save(louder(make_tiny(tiny)), name, HERE, {"label": name})
        codec = get_codec(name)
        for q in qualities:
            data = codec.encode(image(), q)
            path = HERE / f"{name}-q{q:g}.aec"
            path.write_bytes(data)
            expected[path.name] = {"quality": q, "sha256": hashlib.sha256(data).hexdigest(),
                                   "pixels_sha256": hashlib.sha256(codec.decode(data).tobytes()).hexdigest()}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
