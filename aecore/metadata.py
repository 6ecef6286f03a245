"""A photo's metadata: its EXIF, its ICC colour profile and its file name, carried across coding.

    md = loaded.metadata                  # read by aecore.io.load_image, orientation already applied
    out = carry(codec.encode(pixels, q), md)   # into an .aec stream, a PNG, JPEG, WebP or TIFF file

The pixels arrive upright (EXIF orientation applied on reading), so the EXIF travels with its
orientation tag reset to 1: a viewer must not turn the picture a second time. The EXIF is kept
byte for byte otherwise (maker notes and their offsets stay valid), which includes GPS
positions and any thumbnail the camera stored: `--strip` (an empty `Metadata()`) leaves all of
it out. Values are checked on the way in and out of a stream (`Metadata(...)` raises
MetadataError), so a forged .aec metadata block is refused like any other corrupt stream.

The bytes metadata adds to a file are part of the file: bits per pixel counts them. The
command line reports them apart (`metadata_bytes`), and comparisons with other codecs code
without metadata, as those carry none there.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
import struct
import zlib

from .errors import CodecError


class MetadataError(ValueError):
    """A metadata value that is malformed or above its size limit."""


_TIFF = (b"II*\x00", b"MM\x00*")
_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION, _GPS = 0x0112, 0x8825
_ICC_CHUNK = 65519  # the ICC bytes one JPEG APP2 segment holds
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
PNG_NAME_KEY = "OriginalFileName"  # the PNG iTXt keyword the file name is restored under


@dataclass(frozen=True)
class Metadata:
    exif: bytes | None = None   # TIFF-structured EXIF ("II*\0" or "MM\0*"), no "Exif\0\0" prefix
    icc: bytes | None = None    # an ICC profile, as embedded in the source
    name: str | None = None     # the source's file name, without folders

    # EXIF fits one JPEG APP1 segment; an ICC profile several APP2 segments; a name one path part.
    LIMITS = {"exif": 65527, "icc": 4 * 1024 * 1024, "name": 255}

    def __post_init__(self):
        if self.exif is not None:
            _check_exif(self.exif)
        if self.icc is not None:
            _check_icc(self.icc)
        if self.name is not None:
            _check_name(self.name)

    def __bool__(self) -> bool:
        return bool(self.exif or self.icc or self.name)

    @property
    def has_gps(self) -> bool:
        return bool(self.exif) and _GPS in _ifd0(self.exif)

    def to_dict(self) -> dict:
        return {"exif_bytes": len(self.exif or b""), "icc_bytes": len(self.icc or b""), "name": self.name,
                "gps": self.has_gps}


STRIPPED = Metadata()


def _check_exif(exif: bytes) -> None:
    if len(exif) > Metadata.LIMITS["exif"]:
        raise MetadataError(f"EXIF of {len(exif)} bytes is above the {Metadata.LIMITS['exif']}-byte limit")
    if exif[:4] not in _TIFF or _ifd0(exif) is None:
        raise MetadataError("EXIF is not a TIFF structure")


def _check_icc(icc: bytes) -> None:
    if len(icc) > Metadata.LIMITS["icc"]:
        raise MetadataError(f"ICC profile of {len(icc)} bytes is above the {Metadata.LIMITS['icc']}-byte limit")
    if len(icc) < 132 or icc[36:40] != b"acsp" or int.from_bytes(icc[:4], "big") != len(icc):
        raise MetadataError("ICC profile is malformed")


def _check_name(name: str) -> None:
    if not 0 < len(name.encode("utf-8")) <= Metadata.LIMITS["name"]:
        raise MetadataError("file name is empty or longer than 255 bytes")
    if name in (".", "..") or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in name):
        raise MetadataError(f"{name!r} is not a plain file name")


def _ifd0(tiff: bytes) -> dict[int, int] | None:
    """{tag: offset of its 12-byte entry} of the first IFD, or None when the structure is broken."""
    order = "<" if tiff[:2] == b"II" else ">"
    if len(tiff) < 8:
        return None
    (first,) = struct.unpack(order + "I", tiff[4:8])
    if first < 8 or first + 2 > len(tiff):
        return None
    (count,) = struct.unpack(order + "H", tiff[first:first + 2])
    if first + 2 + 12 * count > len(tiff):
        return None
    return {struct.unpack(order + "H", tiff[p:p + 2])[0]: p for p in range(first + 2, first + 2 + 12 * count, 12)}


def _upright(tiff: bytes) -> bytes:
    """The EXIF with its orientation tag (if any) set to 1, in place: nothing else moves."""
    entry = (_ifd0(tiff) or {}).get(_ORIENTATION)
    if entry is None:
        return tiff
    order = "<" if tiff[:2] == b"II" else ">"
    kind, count = struct.unpack(order + "HI", tiff[entry + 2:entry + 8])
    if kind != 3 or count != 1:  # not the one SHORT EXIF defines: leave the tag out rather than guess
        raise MetadataError("EXIF orientation tag is malformed")
    return tiff[:entry + 8] + struct.pack(order + "HH", 1, 0) + tiff[entry + 12:]


def read(im, name: str | None, notes: list[str]) -> Metadata:
    """What a Pillow image's file carries (EXIF, ICC profile) plus its name; a malformed or
    oversized value is left out with a note in `notes`, never costing the picture."""
    values = {}
    exif = im.info.get("exif")
    if isinstance(exif, bytes) and exif:
        exif = exif[len(_EXIF_PREFIX):] if exif.startswith(_EXIF_PREFIX) else exif
        try:
            _check_exif(exif)
            values["exif"] = _upright(exif)
        except MetadataError as e:
            notes.append(f"EXIF left out: {e}")
    icc = im.info.get("icc_profile")
    if isinstance(icc, bytes) and icc:
        try:
            _check_icc(icc)
            values["icc"] = icc
        except MetadataError as e:
            notes.append(f"ICC profile left out: {e}")
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]  # a path's last part
    if name:
        try:
            _check_name(name)
            values["name"] = name
        except MetadataError:
            pass  # a display name such as "image" for bytes without one: nothing to keep
    return Metadata(**values)


# --- carrying metadata into a file ------------------------------------------------------

def can_carry(data: bytes) -> bool:
    """Whether `carry` can put metadata into this file's format (.aec, PNG, JPEG, WebP, TIFF)."""
    return _format(data) is not None


def carry(data: bytes, metadata: Metadata) -> bytes:
    """`data` (an .aec stream, PNG, JPEG, WebP or TIFF file) with `metadata` in it (what `held` says the
    format holds), replacing what it carried; the coded image is untouched, so this costs no
    re-encoding. An empty Metadata strips."""
    kind = _format(data)
    if kind is None:
        raise CodecError("this file format cannot carry metadata (.aec, PNG, JPEG, WebP and TIFF can)")
    carriers = {"aec": _carry_aec, "png": _carry_png, "jpeg": _carry_jpeg, "webp": _carry_webp, "tiff": _carry_tiff}
    return carriers[kind](data, held(data, metadata))


def carry_cost(codec, metadata: Metadata) -> tuple[int, Metadata]:
    """(bytes added, what is kept) when `metadata` goes into a file of `codec`: the same at
    every quality, so measured on a tiny file. JPEG, WebP and TIFF keep EXIF and ICC but not
    the name; formats `carry` does not know keep nothing (0 bytes, an empty Metadata)."""
    import numpy as np
    probe = codec.encode(np.zeros((16, 16, 3), np.uint8), codec.quality_range[0])
    kept = held(probe, metadata)
    return (len(carry(probe, kept)) - len(probe) if kept else 0), kept


def held(data: bytes, metadata: Metadata) -> Metadata:
    """The part of `metadata` a file of this format can hold (the name only .aec and PNG)."""
    kind = _format(data)
    if kind is None:
        return STRIPPED
    return metadata if kind in ("aec", "png") else replace(metadata, name=None)


def left_out(wanted: Metadata, kept: Metadata, label: str) -> list[str]:
    """A note naming what of `wanted` a `label` file could not keep (none when nothing was lost)."""
    lost = [what for what, field in (("EXIF", "exif"), ("ICC profile", "icc"), ("file name", "name"))
            if getattr(wanted, field) and not getattr(kept, field)]
    return [f"metadata left out: {label} files written here hold no {', no '.join(lost)}"] if lost else []


def _format(data: bytes) -> str | None:
    if data[:4] == b"\x8bAEC":
        return "aec"
    if data[:8] == _PNG_SIG:
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in _TIFF:
        return "tiff"
    return None


def _carry_aec(data: bytes, metadata: Metadata) -> bytes:
    from . import bitstream
    header, sections = bitstream.unpack(data)
    return bitstream.pack(replace(header, metadata=metadata), sections)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _carry_png(data: bytes, metadata: Metadata) -> bytes:
    """iCCP and eXIf right after IHDR (before any PLTE or IDAT), the name as an iTXt chunk."""
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append((data[pos + 4:pos + 8], data[pos:pos + 12 + n]))
        pos += 12 + n
    dropped = {b"iCCP", b"sRGB", b"eXIf"}
    kept = [raw for kind, raw in chunks if kind not in dropped
            and not (kind == b"iTXt" and raw[8:].startswith(PNG_NAME_KEY.encode() + b"\0"))]
    added = []
    if metadata.icc:
        added.append(_png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(metadata.icc, 9)))
    if metadata.exif:
        added.append(_png_chunk(b"eXIf", metadata.exif))
    if metadata.name:
        added.append(_png_chunk(b"iTXt", PNG_NAME_KEY.encode() + b"\0\0\0\0\0" + metadata.name.encode("utf-8")))
    return _PNG_SIG + kept[0] + b"".join(added) + b"".join(kept[1:])


def _carry_jpeg(data: bytes, metadata: Metadata) -> bytes:
    """APP1 (Exif) and APP2 (ICC_PROFILE) segments after SOI and any JFIF APP0; the old ones go."""
    head, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:
        (n,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segment = data[pos:pos + 2 + n]
        body = segment[4:]
        if not (segment[1] == 0xE1 and body.startswith(_EXIF_PREFIX)) and \
                not (segment[1] == 0xE2 and body.startswith(b"ICC_PROFILE\0")):
            head.append(segment)
        pos += 2 + n
    jfif = [s for s in head if s[1] == 0xE0]
    added = []
    if metadata.exif:
        body = _EXIF_PREFIX + metadata.exif
        added.append(b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body)
    if metadata.icc:
        parts = [metadata.icc[i:i + _ICC_CHUNK] for i in range(0, len(metadata.icc), _ICC_CHUNK)]
        for i, part in enumerate(parts, 1):
            body = b"ICC_PROFILE\0" + bytes([i, len(parts)]) + part
            added.append(b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body)
    return data[:2] + b"".join(jfif) + b"".join(added) + b"".join(s for s in head if s[1] != 0xE0) + data[pos:]


def _carry_tiff(data: bytes, metadata: Metadata) -> bytes:
    """Saved again by Pillow with the EXIF and profile: TIFF is lossless, the pixels stay."""
    import io
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        buf = io.BytesIO()
        extra = {"exif": _EXIF_PREFIX + metadata.exif} if metadata.exif else {}
        if metadata.icc:
            extra["icc_profile"] = metadata.icc
        im.save(buf, "TIFF", compression=im.info.get("compression", "raw"), **extra)
    return buf.getvalue()


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def _carry_webp(data: bytes, metadata: Metadata) -> bytes:
    """The extended layout (VP8X, then ICCP, the image, EXIF), built from a simple one if need be."""
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        kind, (n,) = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])
        chunks.append((kind, data[pos + 8:pos + 8 + n]))
        pos += 8 + n + (n & 1)
    if not metadata and not (chunks and chunks[0][0] == b"VP8X"):
        return data  # nothing to carry, nothing carried: the simple layout stays
    if chunks and chunks[0][0] == b"VP8X":
        flags, canvas = chunks[0][1][0], chunks[0][1][4:10]
        chunks = chunks[1:]
    else:
        flags, canvas = _webp_canvas(chunks)
    image = [(k, b) for k, b in chunks if k not in (b"VP8X", b"ICCP", b"EXIF")]
    flags = (flags & ~0x28) | (0x20 if metadata.icc else 0) | (0x08 if metadata.exif else 0)
    body = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)
    if metadata.icc:
        body += _riff_chunk(b"ICCP", metadata.icc)
    body += b"".join(_riff_chunk(k, b) for k, b in image)
    if metadata.exif:
        body += _riff_chunk(b"EXIF", metadata.exif)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _webp_canvas(chunks) -> tuple[int, bytes]:
    """A simple WebP's VP8X flags (alpha) and canvas field (width - 1, height - 1, 24 bits each)."""
    kind, body = chunks[0] if chunks else (b"", b"")
    alpha = 0
    if kind == b"VP8 " and len(body) >= 10:
        w, h = (v & 0x3FFF for v in struct.unpack("<HH", body[6:10]))
    elif kind == b"VP8L" and len(body) >= 5:
        bits = int.from_bytes(body[1:5], "little")
        w, h = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        alpha = 0x10 if bits >> 28 & 1 else 0
    else:
        raise CodecError("WebP file is malformed")
    return alpha, (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
