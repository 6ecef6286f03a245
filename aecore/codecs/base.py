"""The one interface every codec implements, and the registry that names them."""
from __future__ import annotations

from abc import ABC, abstractmethod
import contextlib

import numpy as np

from .. import registry
from ..errors import CodecError

# Encode efforts: "fast" is the plain encoder (every codec's only one); learned codecs refine
# their latents at "balanced" and "best" (`aecore.refine`), the decoder unchanged.
EFFORTS = ("fast", "balanced", "best")


def check_effort(effort: str) -> str:
    if effort not in EFFORTS:
        raise CodecError(f"unknown effort {effort!r}; use one of {', '.join(EFFORTS)}")
    return effort

class Codec(ABC):
    """encode(image, quality) -> bytes and decode(bytes) -> image.

    Images are uint8 arrays, (H, W, 3) RGB or (H, W) grayscale; a grayscale image
    decodes to grayscale. Quality runs from `quality_range[0]` (smallest file) to
    `quality_range[1]` (best); `continuous` codecs accept any float in that range.
    """

    name: str = ""
    label: str = ""
    kind: str = "classical"          # "classical" or "learned"
    extension: str = ""              # file suffix without the dot
    mime: str = "application/octet-stream"
    quality_range: tuple[float, float] = (1, 100)
    default_quality: float = 75
    continuous: bool = False

    @abstractmethod
    def encode(self, image: np.ndarray, quality: float) -> bytes: ...

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray: ...

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind, "extension": self.extension,
                "quality_range": list(self.quality_range), "default_quality": self.default_quality,
                "continuous": self.continuous}

    def check_quality(self, quality: float) -> float:
        lo, hi = self.quality_range
        if not lo <= quality <= hi:
            raise CodecError(f"{self.name}: quality {quality} is outside {lo:g}..{hi:g}")
        return float(quality) if self.continuous else int(round(quality))

    def encode_seconds(self, data: bytes) -> float | None:
        """How long this codec took to make `data`, where it remembers (a refined learned encode:
        a size search must not refine the chosen file once more just to time it); else None."""
        return None

    def exclusive(self):
        """A context inside which this codec's calls wait on no other thread: a call timed inside
        it times its own work, not a queue (learned codecs share one coding lock per process,
        so in the app one session's encode would otherwise include another's)."""
        return contextlib.nullcontext()

    @classmethod
    def is_supported(cls) -> bool:
        """Whether the installed libraries can encode this format (checked once)."""
        return True


def check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise CodecError("codecs take uint8 numpy arrays")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise CodecError(f"expected an (H, W, 3) or (H, W) image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise CodecError("image is empty")
    return image


CLASSICAL: dict[str, type[Codec]] = {}


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Class decorator: adds a classical codec to the registry under the name `aecore.registry` gives it."""
    cls.name = registry.name_of(cls, registry.CLASSICAL_CODECS)
    CLASSICAL[cls.name] = cls
    return cls
