"""Codecs by name: classical ones (OpenCV/Pillow) and one learned codec per named weights.

The learned codec (and with it torch, about a second to import) is imported only when a
learned codec is asked for: classical coding and reading .aec headers never need it.
"""
from __future__ import annotations

from .base import CLASSICAL, EFFORTS, Codec, CodecError, check_effort, check_image, register_codec
from . import classical  # noqa: F401  (registers the classical codecs)

__all__ = ["EFFORTS", "Codec", "CodecError", "LearnedCodec", "check_image", "codec_names", "get_codec",
           "register_codec", "with_effort"]

_cache: dict[str, Codec] = {}


def classical_names() -> list[str]:
    """Registered classical codecs that the installed libraries can encode."""
    return [n for n, cls in CLASSICAL.items() if cls.is_supported()]


def learned_names() -> list[str]:
    from .. import weights
    return list(weights.available())


def codec_names() -> list[str]:
    return learned_names() + classical_names()


def get_codec(name: str) -> Codec:
    """The codec called `name` (classical, or learned from weights of that name)."""
    if name in CLASSICAL and CLASSICAL[name].is_supported():
        if name not in _cache:
            _cache[name] = CLASSICAL[name]()
        return _cache[name]
    if name in learned_names():
        codec = _cache.get(name)
        if codec is None or not codec.is_current():
            from .learned import LearnedCodec
            codec = _cache[name] = LearnedCodec(name)
        return codec
    raise CodecError(f"unknown codec {name!r}; known: {', '.join(codec_names())}")


def with_effort(codec: Codec, effort: str, **options) -> Codec:
    """`codec` encoding at `effort`: a learned codec's `at_effort` copy (`options`: presets,
    progress, cancel), a classical codec itself at "fast". A classical codec at another effort
    is refused: it has one encoder, and a silently ignored effort would mislabel its results."""
    check_effort(effort)
    if codec.kind == "learned":
        return codec.at_effort(effort, **options) if options or effort != codec.effort else codec
    if effort != "fast":
        raise CodecError(f"{codec.name} has one encoder (effort fast); effort {effort!r} refines the latents "
                         f"of learned codecs only")
    return codec


def __getattr__(name: str):
    if name == "LearnedCodec":  # `from aecore.codecs import LearnedCodec` still works, lazily
        from .learned import LearnedCodec
        return LearnedCodec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
