"""One measurement: a codec's file for an image, timed encode and decode, and its metrics.

    m = measure(get_codec("jpeg"), image, 75)
    m.data, m.decoded, m.encode_s, m.decode_s, m.bpp, m.psnr, m.ms_ssim, m.blockiness

The Compare page, rate-distortion sweeps and the command line all report what this
returns, so a number means the same thing wherever it is shown.
"""
from __future__ import annotations

from dataclasses import dataclass
import time

import numpy as np

from .codecs import Codec
from .metrics import evaluate


@dataclass
class Measurement:
    """What one encode/decode of one image at one quality gave."""

    codec: str           # registry name
    quality: float
    data: bytes          # the whole file, header included
    decoded: np.ndarray  # what `data` decodes to
    encode_s: float      # wall time of one encode
    decode_s: float      # wall time of decoding `data`
    metrics: dict        # aecore.metrics.evaluate(original, decoded, len(data))

    @property
    def num_bytes(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        return self.metrics["bpp"]

    @property
    def psnr(self) -> float:
        return self.metrics["psnr"]

    @property
    def ms_ssim(self) -> float:
        return self.metrics["ms_ssim"]

    @property
    def blockiness(self) -> float:
        return self.metrics["blockiness"]

    @property
    def encode_ms(self) -> float:
        return self.encode_s * 1000

    @property
    def decode_ms(self) -> float:
        return self.decode_s * 1000


def measure(codec: Codec, image: np.ndarray, quality: float, data: bytes | None = None,
            perceptual: bool = True, clock=None, structural: bool = True) -> Measurement:
    """Encodes `image` at `quality` (timed), decodes the file (timed) and scores the decode.

    `data` is a file already encoded at `quality` (by a size search): it is what gets decoded
    and scored, and the image is still encoded once, so the encode time is that of one plain
    encode and not of the search (unless the codec remembers how long `data` took: a refined
    encode is not repeated). `perceptual=False` leaves SSIMULACRA 2 out (NaN), the one
    metric that costs more than the coding; `structural=False` SSIM and MS-SSIM too
    (`aecore.metrics.evaluate`). `clock` returns seconds (default `time.perf_counter`). `quality` is reported
    as the codec takes it (a whole number for the classical codecs).
    """
    clock = clock or time.perf_counter
    known = None if data is None else codec.encode_seconds(data)
    with codec.exclusive():  # the clock starts once no other session's coding is ahead of this one
        t0 = clock()
        if known is None:
            fresh = codec.encode(image, quality)
            data = fresh if data is None else data
        t1 = clock()
        if known is None:  # a codec that reused part of an earlier encode knows what a whole one took
            known = codec.encode_seconds(fresh)
        decoded = codec.decode(data)
        t2 = clock()
    return Measurement(codec=codec.name, quality=codec.check_quality(quality), data=data, decoded=decoded,
                       encode_s=t1 - t0 if known is None else known, decode_s=t2 - t1,
                       metrics=evaluate(image, decoded, len(data), perceptual, structural))
