"""Classical codecs (JPEG, WebP, AVIF, JPEG 2000, JPEG XL, HEIC) behind the `Codec` interface.

Each format is one class; a format the installed OpenCV/Pillow wheels cannot round-trip
reports `is_supported() == False` and is simply not offered. JPEG through OpenCV is the
reference codec of the project: its bytes are exactly `cv2.imencode('.jpg', bgr,
[cv2.IMWRITE_JPEG_QUALITY, q])` (libjpeg-turbo, 4:2:0).
"""
from __future__ import annotations

import functools
import io
import struct

import cv2
import numpy as np
from PIL import Image

from .base import Codec, CodecError, check_image, register_codec

try:  # JPEG XL (libjxl): importing the plugin registers the "JXL" format with Pillow
    import pillow_jxl  # noqa: F401
except ImportError:  # then the codec reports is_supported() == False
    pass
try:  # HEIC (libheif with x265), used through its own API: no global Pillow opener
    import pillow_heif
except ImportError:
    pillow_heif = None

# A small colour gradient: enough to exercise every encoder without costing time.
_PROBE = np.dstack([*np.mgrid[0:256:16, 0:256:16], np.full((16, 16), 128)]).astype(np.uint8)


def _round_trips(encode, decode) -> bool:
    try:
        return decode(encode(_PROBE)).shape == _PROBE.shape
    except Exception:  # any failure means "this build cannot do it"
        return False


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def _invalid(codec: Codec) -> CodecError:
    return CodecError(f"{codec.name}: data is not a valid {codec.label} stream")


def _cv_encode(codec: Codec, ext: str, image: np.ndarray, params: list[int]) -> bytes:
    """OpenCV encode of an RGB or grayscale uint8 image."""
    image = np.ascontiguousarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    why = ""
    try:
        ok, buf = cv2.imencode(ext, image, params)
    except cv2.error as e:
        ok, why = False, f" ({e.err})"
    if not ok:
        raise CodecError(f"{codec.name}: OpenCV cannot encode this {_size(image)} image{why}; try another codec")
    return buf.tobytes()


def _cv_decode(codec: Codec, data: bytes) -> np.ndarray:
    """OpenCV decode to 8-bit RGB, or grayscale when the stream is grayscale."""
    try:
        out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR) if data else None
    except cv2.error:
        out = None
    if out is None:
        raise _invalid(codec)
    return out if out.ndim == 2 else cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def _pil_encode(codec: Codec, image: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    try:
        Image.fromarray(np.ascontiguousarray(image)).save(buf, fmt, **options)
    except (OSError, ValueError) as e:
        raise CodecError(f"{codec.name}: Pillow cannot encode this {_size(image)} image ({e}); try another codec") from None
    return buf.getvalue()


def _pil_decode(codec: Codec, data: bytes, fmt: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            im.load()
            return np.array(im if im.mode in ("L", "RGB") else im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, RuntimeError):  # RuntimeError: libjxl's decoder
        raise _invalid(codec) from None


class _Classical(Codec):
    """What the formats below share: offered only when a tiny round trip works."""

    @classmethod
    @functools.cache
    def is_supported(cls) -> bool:
        codec = cls()
        return _round_trips(lambda im: codec.encode(im, codec.default_quality), codec.decode)


@register_codec
class JPEG(_Classical):
    """Baseline JPEG by libjpeg-turbo through OpenCV, 4:2:0 chroma (OpenCV's default)."""

    label = "JPEG"
    extension = "jpg"
    mime = "image/jpeg"
    quality_range = (1, 100)
    default_quality = 75  # the IJG library's (cjpeg's and Pillow's) default

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        q = self.check_quality(quality)
        return _cv_encode(self, ".jpg", check_image(image), [cv2.IMWRITE_JPEG_QUALITY, q])

    def decode(self, data: bytes) -> np.ndarray:
        if not data.startswith(b"\xff\xd8\xff"):
            raise _invalid(self)
        return _cv_decode(self, data)


@register_codec
class WebP(_Classical):
    """Lossy WebP (libwebp through OpenCV).

    WebP has no grayscale mode, so a grayscale image is coded as colour and the file is
    tagged with an empty 'GRAY' chunk (the container allows unknown chunks; decoders skip
    them); decode returns (H, W) only for tagged files. The tag costs 26 bytes.
    """

    label = "WebP"
    extension = "webp"
    mime = "image/webp"
    quality_range = (1, 100)  # OpenCV treats quality > 100 as lossless; kept lossy here
    default_quality = 75  # cwebp's default -q

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        q = self.check_quality(quality)
        data = _cv_encode(self, ".webp", check_image(image), [cv2.IMWRITE_WEBP_QUALITY, q])
        return _tag_gray(data, *image.shape) if image.ndim == 2 else data

    def decode(self, data: bytes) -> np.ndarray:
        if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise _invalid(self)
        out = _cv_decode(self, data)
        return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) if b"GRAY" in _riff_chunks(data) else out


def _riff_chunks(data: bytes) -> list[bytes]:
    """FourCCs of the chunks of a RIFF file (WebP container spec: sizes are padded to even)."""
    names, pos = [], 12
    while pos + 8 <= len(data):
        size = struct.unpack_from("<I", data, pos + 4)[0]
        names.append(data[pos:pos + 4])
        pos += 8 + size + (size & 1)
    return names


def _tag_gray(data: bytes, height: int, width: int) -> bytes:
    """WebP -> extended format (VP8X header, unknown chunks allowed) ending in an empty 'GRAY' chunk."""
    if data[12:16] != b"VP8X":
        data = (data[:12] + b"VP8X" + struct.pack("<I", 10) + bytes(4)
                + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little") + data[12:])
    body = data[8:] + b"GRAY" + struct.pack("<I", 0)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@register_codec
class AVIF(_Classical):
    """AVIF (libavif) through OpenCV when its build has it, else through Pillow.

    Quality follows libavif: higher is better, and 100 is lossless. OpenCV's encoder
    speed is left at its default (9, fastest).
    """

    label = "AVIF"
    extension = "avif"
    mime = "image/avif"
    quality_range = (1, 100)
    default_quality = 75  # Pillow's AVIF default (OpenCV's is 95)

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        return self._encode_with(self.backend(), check_image(image), self.check_quality(quality))

    def decode(self, data: bytes) -> np.ndarray:
        if data[4:8] != b"ftyp":
            raise _invalid(self)
        return self._decode_with(self.backend(), data)

    def _encode_with(self, backend: str | None, image: np.ndarray, q: int) -> bytes:
        if backend == "opencv":
            return _cv_encode(self, ".avif", image, [cv2.IMWRITE_AVIF_QUALITY, q])
        if backend == "pillow":
            return _pil_encode(self, image, "AVIF", quality=q)
        raise CodecError("avif: neither OpenCV nor Pillow in this environment can write AVIF; choose another codec")

    def _decode_with(self, backend: str | None, data: bytes) -> np.ndarray:
        return _pil_decode(self, data, "AVIF") if backend == "pillow" else _cv_decode(self, data)

    @classmethod
    @functools.cache
    def backend(cls) -> str | None:
        """"opencv" (faster) or "pillow", whichever round-trips first; None if neither does."""
        codec = cls()
        for name in ("opencv", "pillow"):
            if _round_trips(lambda im: codec._encode_with(name, im, 50), lambda d: codec._decode_with(name, d)):
                return name
        return None

    @classmethod
    def is_supported(cls) -> bool:
        return cls.backend() is not None


# JP2 file signature box, and the start of a bare codestream (SOC + SIZ markers).
_JP2_MAGIC = (b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")


@register_codec
class JPEG2000(_Classical):
    """JPEG 2000 (OpenJPEG through Pillow): 9/7 wavelet, colour transform on RGB.

    OpenJPEG is driven by a compression ratio (raw size / coded size); quality q maps to
    ratio 2 ** ((109 - q) / 12): 512:1 at q=1, halving every 12 steps, about 1.7:1 at
    q=100, so the file size grows monotonically (geometrically) with q. Pillow rather
    than OpenCV because OpenCV's writer takes only an integer ratio (coarse at low rates)
    and measured about 4 dB lower PSNR at 1 bpp on RGB photos.
    """

    label = "JPEG 2000"
    extension = "jp2"
    mime = "image/jp2"
    quality_range = (1, 100)
    default_quality = 60  # ratio ~17:1, ~1.4 bpp on RGB: near JPEG's size at its default 75 on photos

    @staticmethod
    def ratio(quality: float) -> float:
        return 2.0 ** ((109 - quality) / 12)

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        q = self.check_quality(quality)
        image = check_image(image)
        return _pil_encode(self, image, "JPEG2000", quality_mode="rates", quality_layers=[self.ratio(q)],
                           irreversible=True, mct=int(image.ndim == 3))

    def decode(self, data: bytes) -> np.ndarray:
        if not data.startswith(_JP2_MAGIC):
            raise _invalid(self)
        return _pil_decode(self, data, "JPEG2000")


# A bare JPEG XL codestream, and the ISO BMFF container's signature box.
_JXL_MAGIC = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")


@register_codec
class JPEGXL(_Classical):
    """JPEG XL (libjxl through `pillow-jxl-plugin`) at libjxl's default effort 7.

    Quality follows cjxl's -q (libjxl maps it to a Butteraugli distance: 90 is distance 1,
    "visually lossless"); 100 is mathematically lossless, as in cjxl.
    """

    label = "JPEG XL"
    extension = "jxl"
    mime = "image/jxl"
    quality_range = (1, 100)
    default_quality = 90  # cjxl's default (distance 1.0)

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        q = self.check_quality(quality)
        # libjxl refuses quality 100 unless told it is lossless
        return _pil_encode(self, check_image(image), "JXL", quality=q, lossless=q == 100, effort=7)

    def decode(self, data: bytes) -> np.ndarray:
        if not data.startswith(_JXL_MAGIC):
            raise _invalid(self)
        return _pil_decode(self, data, "JXL")


@register_codec
class HEIC(_Classical):
    """HEIC: HEVC intra frames in a HEIF file (libheif with x265, through `pillow-heif`).

    What phones save photos as. 4:2:0 chroma (x265's default, as phones use); grayscale is
    coded as HEVC monochrome. Quality is libheif's 1..100; its top is still lossy.
    """

    label = "HEIC"
    extension = "heic"
    mime = "image/heic"
    quality_range = (1, 100)
    default_quality = 50  # libheif's default

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        q = self.check_quality(quality)
        image = np.ascontiguousarray(check_image(image))
        buf = io.BytesIO()
        try:
            pillow_heif.encode("L" if image.ndim == 2 else "RGB", (image.shape[1], image.shape[0]), image.tobytes(),
                               buf, quality=q, chroma=420)
        except (OSError, ValueError, RuntimeError) as e:
            raise CodecError(f"{self.name}: libheif cannot encode this {_size(image)} image ({e}); "
                             "try another codec") from None
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        if data[4:8] != b"ftyp":
            raise _invalid(self)
        try:
            heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
            out = np.asarray(heif)
        except (OSError, ValueError, RuntimeError, SyntaxError):
            raise _invalid(self) from None
        if out.ndim == 3 and out.shape[2] == 1:
            out = out[:, :, 0]
        return np.ascontiguousarray(out if out.ndim == 2 or out.shape[2] == 3 else out[:, :, :3])
