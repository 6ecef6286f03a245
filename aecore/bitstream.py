"""The .aec container: a self-describing learned-codec stream.

Layout (all integers little-endian); version 1 has no metadata block, version 2 may have one,
version 3 is version 2 whose entropy parameters are computed in fixed point (below):

    offset  size  field
    0       4     magic b"\\x8bAEC" (a non-ASCII first byte catches text-mode transfers)
    4       1     format version (1, 2 or 3)
    5       1     flags: bit 0 = grayscale source; bit 1 = the synthesis runs in float32 (else bfloat16)
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
    ..      ...   version 2 and 3: the metadata block when there is one, to end-4 (below)
    end-4   4     CRC-32 of everything before it

Metadata block (version 2 and 3; see `aecore.metadata` for what each value may hold):

    1       m: number of entries (1 to 3)
    then m entries, types strictly ascending:
    1       type: 1 = EXIF (TIFF-structured, orientation 1), 2 = ICC profile, 3 = original file name (UTF-8)
    4       n: value length (u32), at most the type's limit
    n       value

A stream without metadata is written as version 1, byte for byte the layout every earlier
aecore wrote and reads; only a stream that carries metadata needs a reader of version 2.

Version 3: the hyper-synthesis that gives y's means and scales runs in fixed point
(`aecore.models.exact`), so every machine and library picks the encoder's scale tables; in
versions 1 and 2 it ran in float32, whose sums differ between CPUs' kernels in the last bits,
which can garble a stream decoded on another kind of CPU. Encoders of models with a
hyperprior write version 3; a reader of version 2 refuses it instead of decoding it wrongly.

The header is validated (and the image size checked against the pixel limit) before
any payload is decoded, so a hostile file cannot cause a large allocation.
"""
from __future__ import annotations

from dataclasses import dataclass
import re
import struct
import zlib

from .errors import BitstreamError
from .metadata import Metadata, MetadataError

MAGIC = b"\x8bAEC"
VERSION = 3                # the newest this reads and writes
METADATA_VERSION = 2       # the first version with a metadata block
EXACT_VERSION = 3          # the first version whose entropy parameters are fixed point
_TYPES = {1: "exif", 2: "icc", 3: "name"}
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
    version: int = 1
    float32_synthesis: bool = False  # flag bit 1: what the decoder computes (seed streams since it was added)
    exact_parameters: bool = False   # version 3: y's means and scales from the fixed-point h_s
    metadata: Metadata = Metadata()

    def to_dict(self) -> dict:
        return {"format": "aec", "version": self.version, "model": self.model,
                "weights_sha256_prefix": self.weights_hash.hex(), "height": self.height, "width": self.width,
                "quality": self.quality, "tile": self.tile, "grayscale": self.grayscale,
                "synthesis": "float32" if self.float32_synthesis else "bfloat16",
                "entropy_parameters": "fixed point" if self.exact_parameters else "float32",
                "metadata": self.metadata.to_dict()}


def quantize_quality(quality: float) -> float:
    """The quality as stored (1/1000 steps): encoder and decoder must use the same value."""
    return round(quality * 1000) / 1000


def metadata_block(metadata: Metadata) -> bytes:
    """The metadata block as stored (empty when there is nothing to carry): its length is
    exactly what carrying the metadata adds to a stream."""
    entries = [(t, getattr(metadata, field)) for t, field in _TYPES.items() if getattr(metadata, field)]
    if not entries:
        return b""
    values = [v.encode("utf-8") if isinstance(v, str) else v for _, v in entries]
    return struct.pack("<B", len(entries)) + b"".join(
        struct.pack("<BI", t, len(v)) + v for (t, _), v in zip(entries, values))


def pack(header: Header, sections: list[bytes]) -> bytes:
    """The stream; version 3 for fixed-point entropy parameters, else version 2 when
    `header.metadata` holds anything, else version 1."""
    name = header.model.encode("ascii")
    if not _NAME.match(name) or len(name) > 255:
        raise ValueError(f"invalid model name {header.model!r}")
    if len(sections) > MAX_SECTIONS:
        raise ValueError("too many sections")
    block = metadata_block(header.metadata)
    body = b"".join([
        MAGIC, struct.pack("<BBB", EXACT_VERSION if header.exact_parameters else METADATA_VERSION if block else 1,
                           int(header.grayscale) | int(header.float32_synthesis) << 1, len(name)), name,
        header.weights_hash[:8].ljust(8, b"\0"),
        struct.pack("<IIHHB", header.height, header.width, round(header.quality * 1000), header.tile,
                    len(sections)),
        struct.pack(f"<{len(sections)}I", *map(len, sections)), *sections, block,
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
    end = r.pos + sum(lengths)
    if end + 4 != len(data) and (version < METADATA_VERSION or end + 4 > len(data)):
        raise BitstreamError("section lengths do not match the stream size (corrupt stream)")
    if height < 1 or width < 1:
        raise BitstreamError(f"invalid image size {width}x{height}")
    if tile < 64 or tile % 64:
        raise BitstreamError(f"invalid tile size {tile}")
    if max_pixels is not None and height * width > max_pixels:
        raise BitstreamError(f"image size {width}x{height} is above the {max_pixels / 1e6:.1f} megapixel limit")
    sections = [r.take(n, "payload") for n in lengths]
    # version 2 always has the block; version 3 has one when bytes follow the sections
    has_block = version == METADATA_VERSION or (version > METADATA_VERSION and end + 4 < len(data))
    metadata = _read_metadata(_Reader(data[end:-4])) if has_block else Metadata()
    header = Header(model=name.decode("ascii"), weights_hash=weights_hash, height=height, width=width,
                    quality=quality / 1000, tile=tile, grayscale=bool(flags & 1), version=version,
                    float32_synthesis=bool(flags & 2), exact_parameters=version >= EXACT_VERSION,
                    metadata=metadata)
    return header, sections


def _read_metadata(r: _Reader) -> Metadata:
    """The metadata block, every length and value checked (a forged one is a corrupt stream)."""
    (count,) = struct.unpack("<B", r.take(1, "metadata"))
    if not 1 <= count <= len(_TYPES):
        raise BitstreamError(f"metadata block claims {count} entries (corrupt stream)")
    values, last = {}, 0
    for _ in range(count):
        kind, n = struct.unpack("<BI", r.take(5, "metadata"))
        if kind not in _TYPES:
            raise BitstreamError(f"unknown metadata type {kind} (corrupt stream, or made by a newer aecore)")
        if kind <= last:
            raise BitstreamError(f"metadata type {kind} out of order or repeated (corrupt stream)")
        last = kind
        field = _TYPES[kind]
        limit = Metadata.LIMITS[field]
        if n > limit:
            raise BitstreamError(f"metadata {field} of {n} bytes is above its {limit}-byte limit (corrupt stream)")
        value = r.take(n, "metadata")
        if field == "name":
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise BitstreamError("metadata file name is not UTF-8 (corrupt stream)") from None
        values[field] = value
    if r.pos != len(r.data):
        raise BitstreamError("metadata block lengths do not match the stream size (corrupt stream)")
    try:
        return Metadata(**values)
    except MetadataError as e:
        raise BitstreamError(f"invalid metadata ({e}; corrupt stream)") from None
