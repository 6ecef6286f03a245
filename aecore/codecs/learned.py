"""The learned codec: named weights behind the common Codec interface.

One instance per weights name (`hyperprior`, `seed`, or user fine-tuned weights).
Streams are .aec containers (see `aecore.bitstream`) recording the model name and the
weights hash, so a stream decodes only with the weights that made it.
"""
from __future__ import annotations

import contextlib
import copy
import time

import numpy as np
import torch

from .. import bitstream, io, refine, weights
from ..models.base import TILE
from ..models.entropy import fixed_threads
from .base import Codec, CodecError, check_image

# The largest synthesis tile a stream may ask for: a larger one runs the synthesis on more
# pixels at once (memory grows with the tile's square). Encoders record models.base.TILE;
# 1024 keeps every stream written so far decodable should TILE shrink.
MAX_TILE = max(TILE, 1024)
# Images are coded padded to the model's stride (64 px for the hyperprior), so a very thin
# image costs far more than its pixels: 1x1,000,000 is coded as 64x1,000,000. The padded
# area may be at most this many times the pixel limit (a square photo pads by under 2%).
PADDED_AREA_FACTOR = 2


class LearnedCodec(Codec):
    kind = "learned"
    extension = "aec"
    mime = "application/x-aec"
    continuous = True
    effort = "fast"       # what `encode` does by default (see `at_effort`)
    presets = None        # {effort: refine.Schedule} overriding refine.PRESETS, or None
    progress = None       # refinement callbacks of an `at_effort` copy
    cancel = None
    _seconds = None       # {file: seconds} of an `at_effort` copy's refined encodes (and a `reusing` copy's)
    _kept = None          # a `reusing` copy's store of analysis outputs (see `reusing`)

    def __init__(self, name: str):
        self.name = name
        self.path = weights.available()[name]
        self._stamp = weights.stamp(name)
        self.model, self.card = weights.load(name)
        self.hash = bytes.fromhex(self.card["sha256"])[:8]
        self.label = self.card.get("label", f"{name} (learned)")
        self.quality_range = (1.0, float(self.model.levels))
        self.default_quality = (1.0 + self.model.levels) / 2
        self.model.prepare_coding()  # so that a timed encode or decode is only the coding

    def is_current(self) -> bool:
        """False once the weights file on disk has been replaced or another folder wins."""
        return weights.stamp(self.name) == self._stamp

    def exclusive(self):
        if self.effort != "fast":  # seconds to minutes: the refinement takes the lock only to code
            return contextlib.nullcontext()
        return fixed_threads()  # the coding lock (re-entrant: compress and decompress take it again)

    def at_effort(self, effort: str, presets: dict | None = None, progress=None, cancel=None) -> "LearnedCodec":
        """A copy of this codec whose `encode` refines at `effort` (the cached codec and its model
        are left untouched), so the size search, `measure` and sweeps code at that effort through
        the plain Codec interface. `presets` overrides refine.PRESETS; `progress(done, total)` and
        `cancel` (anything with `is_set()`) go to every refinement it runs."""
        view = copy.copy(self)
        view.effort = refine.check_effort(effort)
        view.presets, view.progress, view.cancel = presets, progress, cancel
        view._seconds = {}
        base = self.card.get("label", f"{self.name} (learned)")
        view.label = base if effort == "fast" else f"{base}, {effort} effort"
        return view

    def reusing(self, kept) -> "LearnedCodec":
        """A copy of this codec whose fast encodes keep each image's analysis transform output in
        `kept` (anything with `analysis(image, codec) -> dict`, such as a session's
        `compare.ResultCache`) and start from it at any other quality: a quality slider then
        re-runs only the entropy coding, and the bytes are those of a plain encode. The encode time
        it reports (`encode_seconds`) is that of a whole encode: the analysis's own measured time
        plus the rest. The cached codec and its model hold nothing of it."""
        view = copy.copy(self)
        view._kept, view._seconds = kept, {}
        return view

    def describe(self) -> dict:
        return {**super().describe(), "effort": self.effort}

    def encode(self, image: np.ndarray, quality: float, effort: str | None = None, progress=None,
               cancel=None) -> bytes:
        """`effort` (default: this codec's, "fast" unless made by `at_effort`) "balanced" or "best"
        refines the latents first (`aecore.refine`: slower encode, smaller file at the same quality,
        same decoder); `progress`/`cancel` go to it."""
        t0 = time.perf_counter()
        image = check_image(image)
        self._check_coded_size(image.shape[0], image.shape[1])
        q = self.model.codable_quality(bitstream.quantize_quality(self.check_quality(quality)))
        rgb = io.to_rgb(image)  # not copied first: float() makes the one copy the model reads
        rgb = torch.from_numpy(rgb) if rgb.flags.writeable else torch.tensor(rgb)
        x = rgb.permute(2, 0, 1)[None].float().div_(255)
        plan = refine.schedule(self.model, self.effort if effort is None else effort, self.presets)
        kept = self._kept.analysis(image, self) if plan is None and self._kept is not None else None
        earlier = (kept or {}).get("seconds", 0.0)  # an analysis reused, not run now: its own time
        sections = self.model.compress(x, q, kept=kept) if plan is None else \
            refine.refine(self.model, x, q, plan, progress=progress or self.progress,
                          cancel=cancel or self.cancel).sections
        data = self.stream(sections, image.shape[0], image.shape[1], q, image.ndim == 2)
        if (plan is not None or kept is not None) and self._seconds is not None:
            self._seconds[data] = time.perf_counter() - t0 + earlier
        return data

    def encode_seconds(self, data: bytes) -> float | None:
        return None if self._seconds is None else self._seconds.get(data)

    def stream(self, sections: list[bytes], height: int, width: int, quality: float, grayscale: bool) -> bytes:
        """The .aec file of coded `sections` (as `model.compress` writes them) for this codec."""
        header = bitstream.Header(model=self.name, weights_hash=self.hash, height=height, width=width,
                                  quality=quality, tile=TILE, grayscale=grayscale,
                                  float32_synthesis=self.model.decode_dtype == torch.float32,
                                  exact_parameters=self.model.exact_parameters)
        return bitstream.pack(header, sections)

    def decode(self, data: bytes) -> np.ndarray:
        header, sections = bitstream.unpack(data, io.max_pixels_limit())
        if header.model != self.name or header.weights_hash != self.hash:
            raise CodecError(f"stream was made by weights {header.model!r} ({header.weights_hash.hex()}), "
                             f"not by {self.name!r} ({self.hash.hex()}): decode it with those weights")
        # Checked before any payload is decoded: a few forged bytes must not buy a large allocation.
        if header.tile > MAX_TILE:
            raise bitstream.BitstreamError(f"stream asks for synthesis tiles of {header.tile} pixels, above "
                                           f"{MAX_TILE} (corrupt stream, or made by a newer aecore)")
        self._check_coded_size(header.height, header.width)
        if not all(sections):  # every latent has symbols, and one coded symbol is 4 bytes at least
            raise bitstream.BitstreamError("stream has an empty payload section (corrupt stream)")
        try:
            x_hat = self.model.decompress(sections, header.height, header.width, header.quality, header.tile,
                                          torch.float32 if header.float32_synthesis else torch.bfloat16,
                                          exact_parameters=header.exact_parameters)
        except (ValueError, KeyError) as e:
            raise bitstream.BitstreamError(f"corrupt payload ({e})") from None
        # In place, straight into an (H, W, 3) array: at 12 MP each whole-image float copy is 145 MB.
        with torch.inference_mode():  # x_hat was made in inference mode, which in-place updates need
            rgb = torch.empty((header.height, header.width, 3), dtype=torch.uint8)
            rgb.copy_(x_hat[0].clamp_(0, 1).mul_(255).round_().permute(1, 2, 0))
        if header.grayscale:
            return np.round(rgb.numpy().mean(axis=2)).astype(np.uint8)
        return rgb.numpy()

    def _check_coded_size(self, height: int, width: int) -> None:
        """Refuses shapes whose padded area is far above the pixel limit (see PADDED_AREA_FACTOR)."""
        s = self.model.stride
        padded = -(-height // s) * s * (-(-width // s) * s)
        limit = io.max_pixels_limit()
        if padded > PADDED_AREA_FACTOR * limit:
            raise CodecError(f"a {width}x{height} image is coded padded to multiples of {s} pixels, "
                             f"{padded / 1e6:.1f} megapixels, above {PADDED_AREA_FACTOR}x the "
                             f"{limit / 1e6:.1f} megapixel limit; crop it to a less extreme shape "
                             f"or raise {io.MAX_PIXELS_ENV}")


def decode_any(data: bytes) -> np.ndarray:
    """Decodes an .aec stream with the weights its header names."""
    from . import get_codec
    header, _ = bitstream.unpack(data, io.max_pixels_limit())
    if header.model not in weights.available():
        raise CodecError(f"stream needs weights {header.model!r}, which are not installed; "
                         f"available: {', '.join(weights.available())}")
    return get_codec(header.model).decode(data)
