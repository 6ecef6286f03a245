"""The .aec container: a self-describing learned-codec stream.

Layout, version 1 (all integers little-endian):

    offset  size  field
    0       4     magic b"\\x8bAEC" (a non-ASCII first byte catches text-mode transfers)
    4       1     format version (1)
    5       1     flags: bit 0 = grayscale source
    6       1     n: length of the model name
    7       n     model name (ASCII: letters, digits, '-', '_')
    7+n     8     first 8 bytes of the weights' sha256
    ..      4     height (u32)
    ..      4     width (u32)
    ..      2     quality * 1000 (u16); the codec rounds quality to this grid
    ..      2     synthesis tile size in pixels (u16): the decoder tiles exactly as recorded
    ..      1     k: number of sections
    ..      4k    section lengths (u32 each)
    ..      ...   sections (entropy-coded payloads, in order)
    end-4   4     CRC-32 of everything before it

The header is validated (and the image size checked against the pixel limit) before
any payload is decoded, so a hostile file cannot cause a large allocation.
"""
from __future__ import annotations

from dataclasses import dataclass
import re
import struct
import zlib

from .errors import BitstreamError

MAGIC = b"\x8bAEC"
VERSION = 1
MAX_SECTIONS = 16
_NAME = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Header:
    model: str
    weights_hash: bytes     # 8 bytes
    height: int
    width: int
    quality: float
    tile: int = 1024
    grayscale: bool = False
    version: int = VERSION

    def to_dict(self) -> dict:
        return {"format": "aec", "version": self.version, "model": self.model,
                "weights_sha256_prefix": self.weights_hash.hex(), "height": self.height, "width": self.width,
                "quality": self.quality, "tile": self.tile, "grayscale": self.grayscale}


def quantize_quality(quality: float) -> float:
    """The quality as stored (1/1000 steps): encoder and decoder must use the same value."""
    return round(quality * 1000) / 1000


def pack(header: Header, sections: list[bytes]) -> bytes:
    name = header.model.encode("ascii")
    if not _NAME.match(name) or len(name) > 255:
        raise ValueError(f"invalid model name {header.model!r}")
    if len(sections) > MAX_SECTIONS:
        raise ValueError("too many sections")
    body = b"".join([
        MAGIC, struct.pack("<BBB", VERSION, int(header.grayscale), len(name)), name,
        header.weights_hash[:8].ljust(8, b"\0"),
        struct.pack("<IIHHB", header.height, header.width, round(header.quality * 1000), header.tile,
                    len(sections)),
        struct.pack(f"<{len(sections)}I", *map(len, sections)), *sections,
    ])
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(f"stream is truncated (ends inside the {what})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def unpack(data: bytes, max_pixels: int | None = None) -> tuple[Header, list[bytes]]:
    """Parses and checks a stream; raises BitstreamError saying what is wrong."""
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not an .aec stream (wrong magic bytes)")
    r = _Reader(data)
    r.take(4, "magic")
    version, flags, name_len = struct.unpack("<BBB", r.take(3, "header"))
    if version > VERSION:
        raise BitstreamError(f"stream has format version {version}; this aecore reads up to version {VERSION}: upgrade aecore")
    if version < 1:
        raise BitstreamError(f"invalid format version {version}")
    name = r.take(name_len, "header")
    if not _NAME.match(name):
        raise BitstreamError("invalid model name in header")
    weights_hash = r.take(8, "header")
    height, width, quality, tile, count = struct.unpack("<IIHHB", r.take(13, "header"))
    if count > MAX_SECTIONS:
        raise BitstreamError(f"header claims {count} sections (corrupt stream)")
    lengths = struct.unpack(f"<{count}I", r.take(4 * count, "header"))
    if len(data) < 4 or zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        expected = r.pos + sum(lengths) + 4
        if len(data) < expected:
            raise BitstreamError(f"stream is truncated ({len(data)} of {expected} bytes)")
        raise BitstreamError("checksum mismatch: the stream was altered or damaged")
    if r.pos + sum(lengths) + 4 != len(data):
        raise BitstreamError("section lengths do not match the stream size (corrupt stream)")
    if height < 1 or width < 1:
        raise BitstreamError(f"invalid image size {width}x{height}")
    if tile < 64 or tile % 64:
        raise BitstreamError(f"invalid tile size {tile}")
    if max_pixels is not None and height * width > max_pixels:
        raise BitstreamError(f"image size {width}x{height} is above the {max_pixels / 1e6:.1f} megapixel limit")
    sections = [r.take(n, "payload") for n in lengths]
    header = Header(model=name.decode("ascii"), weights_hash=weights_hash, height=height, width=width,
                    quality=quality / 1000, tile=tile, grayscale=bool(flags & 1), version=version)
    return header, sections
