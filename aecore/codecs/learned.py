"""The learned codec: named weights behind the common Codec interface.

One instance per weights name (`hyperprior`, `seed`, or user fine-tuned weights).
Streams are .aec containers (see `aecore.bitstream`) recording the model name and the
weights hash, so a stream decodes only with the weights that made it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import bitstream, io, weights
from ..models.base import TILE
from .base import Codec, CodecError, check_image


class LearnedCodec(Codec):
    kind = "learned"
    extension = "aec"
    mime = "application/x-aec"
    continuous = True

    def __init__(self, name: str):
        self.name = name
        self.path = weights.available()[name]
        self._stamp = _stamp(self.path)
        self.model, self.card = weights.load(name)
        self.hash = bytes.fromhex(self.card["sha256"])[:8]
        self.label = self.card.get("label", f"{name} (learned)")
        self.quality_range = (1.0, float(self.model.levels))
        self.default_quality = (1.0 + self.model.levels) / 2

    def is_current(self) -> bool:
        """False once the weights file on disk has been replaced or another folder wins."""
        path = weights.available().get(self.name)
        return path == self.path and _stamp(path) == self._stamp

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        image = check_image(image)
        q = bitstream.quantize_quality(self.check_quality(quality))
        x = torch.tensor(io.to_rgb(image)).permute(2, 0, 1)[None].float().div(255)
        sections = self.model.compress(x, q)
        header = bitstream.Header(model=self.name, weights_hash=self.hash, height=image.shape[0],
                                  width=image.shape[1], quality=q, tile=TILE,
                                  grayscale=image.ndim == 2)
        return bitstream.pack(header, sections)

    def decode(self, data: bytes) -> np.ndarray:
        header, sections = bitstream.unpack(data, io.max_pixels_limit())
        if header.model != self.name or header.weights_hash != self.hash:
            raise CodecError(f"stream was made by weights {header.model!r} ({header.weights_hash.hex()}), "
                             f"not by {self.name!r} ({self.hash.hex()}): decode it with those weights")
        try:
            x_hat = self.model.decompress(sections, header.height, header.width, header.quality, header.tile)
        except (ValueError, KeyError) as e:
            raise bitstream.BitstreamError(f"corrupt payload ({e})") from None
        rgb = x_hat[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        if header.grayscale:
            return np.round(rgb.mean(axis=2)).astype(np.uint8)
        return np.ascontiguousarray(rgb)


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def decode_any(data: bytes) -> np.ndarray:
    """Decodes an .aec stream with the weights its header names."""
    from . import get_codec
    header, _ = bitstream.unpack(data, io.max_pixels_limit())
    if header.model not in weights.available():
        raise CodecError(f"stream needs weights {header.model!r}, which are not installed; "
                         f"available: {', '.join(weights.available())}")
    return get_codec(header.model).decode(data)
