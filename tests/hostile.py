"""A corpus of awkward and hostile image files, generated in memory (no fixtures on disk).

    from tests.hostile import corpus, EXPECT, REFUSED, EITHER
    for name, data in corpus():
        ...  # EXPECT[name]: the pixel shape load_image must return, REFUSED or EITHER

What an upload box meets in practice, from the harmless to the malicious:
- not images at all: empty, text, HTML (a "Save link as" slip), SVG, EPS (Pillow would
  start Ghostscript), ZIP, ICO/PCX (real images in formats we do not accept), random bytes,
  random bytes behind each format's magic number;
- broken images: each format cut at several points, damaged in the middle;
- decompression bombs: headers claiming huge sizes (PNG, GIF, BMP, TIFF, WebP, JPEG), a
  real 52 MP PNG of zeros that is only a few kilobytes, zlib bombs in PNG metadata chunks,
  a GIF with a thousand frames;
- valid but awkward: 1x1, 3xN, Nx3, a 1x2,000,000 strip, 16-bit, float and 32-bit TIFF,
  CMYK, palette (with and without transparency), 1-bit, alpha, animated GIF/WebP/PNG,
  all eight EXIF orientations, a damaged EXIF block, grayscale, TIFF, WebP, BMP, a PNG
  named .gif.

`EXPECT[name]` is a shape tuple for files that must load (and to what shape), REFUSED for
files that must raise `ImageError`, and EITHER where a format's decoder is lenient by
design (libjpeg paints damaged blocks grey rather than failing): then both a picture and
an `ImageError` are fine, anything else is not.
"""
from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image

REFUSED = "refused"
EITHER = "either"
H, W = 48, 64  # the base picture: small, so the whole corpus codes in seconds
THIN = 2_000_000  # width of the 1-pixel strip: loads (2 MP), but pads to 128 MP for the codec

EXPECT: dict[str, object] = {}


def base_rgb() -> np.ndarray:
    """A deterministic picture with smooth areas, edges and texture (H, W, 3) uint8."""
    y, x = np.mgrid[0:H, 0:W]
    rng = np.random.default_rng(7)
    r = (x * 4) % 256
    g = (y * 5 + 40 * ((x // 8 + y // 8) % 2)) % 256
    b = (128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 8, (H, W))).clip(0, 255)
    return np.stack([r, g, b], axis=2).astype(np.uint8)


def _save(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, bit_depth: int, color_type: int, raw_rows, extra=()) -> bytes:
    """A PNG written by hand: `raw_rows` yields each row's filtered bytes (filter byte first)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for row in raw_rows) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + b"".join(extra) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims another size (CRC fixed, so only the size lies)."""
    data = bytearray(_save(Image.new("RGB", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _zlib_bomb(size: int) -> bytes:
    z = zlib.compressobj(9)
    block = bytes(1 << 20)
    return b"".join(z.compress(block) for _ in range(size >> 20)) + z.flush()


def _gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(_save(Image.new("P", (2, 2)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen size
    return bytes(data)


def _bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(_save(Image.new("RGB", (2, 2)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)  # BITMAPINFOHEADER biWidth, biHeight
    return bytes(data)


def _tiff_claiming(width: int, height: int) -> bytes:
    """A 2x2 TIFF whose ImageWidth/ImageLength tags claim another size."""
    data = bytearray(_save(Image.new("L", (2, 2)), "TIFF"))
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd:ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack("<HH", data[entry:entry + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            value = width if tag == 256 else height
            data[entry + 2:entry + 4] = struct.pack("<H", 4)  # LONG
            data[entry + 8:entry + 12] = struct.pack("<I", value)
    return bytes(data)


def _webp_claiming(width: int, height: int) -> bytes:
    """A lossless (VP8L) WebP whose bitstream header claims another size (14 bits each)."""
    data = bytearray(_save(Image.new("RGB", (2, 2)), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L" and data[20] == 0x2F, "Pillow writes lossless WebP as simple VP8L"
    (bits,) = struct.unpack("<I", data[21:25])
    bits = (bits & ~((1 << 28) - 1)) | (width - 1) | (height - 1) << 14
    data[21:25] = struct.pack("<I", bits)
    return bytes(data)


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(_save(Image.new("RGB", (8, 8)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _exif_jpeg(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(Image.fromarray(pixels), "JPEG", quality=90, exif=exif)


def _damaged_middle(data: bytes, length: int = 64, offset: float = 0.5) -> bytes:
    at = int(len(data) * offset)
    return data[:at] + bytes((v * 37 + 11) % 256 for v in range(length)) + data[at + length:]


def _add(items: list, name: str, data: bytes, expect) -> None:
    assert name not in EXPECT or EXPECT[name] == expect, name
    EXPECT[name] = expect
    items.append((name, data))


@functools.cache
def _build() -> tuple[tuple[str, bytes], ...]:
    items: list[tuple[str, bytes]] = []
    add = functools.partial(_add, items)
    rgb = base_rgb()
    im = Image.fromarray(rgb)
    gray = np.asarray(im.convert("L"))
    rng = np.random.default_rng(2024)
    shape, gshape = (H, W, 3), (H, W)

    # --- not images ---------------------------------------------------------------
    add("empty.png", b"", REFUSED)
    add("notes.png", b"These are my holiday notes, not a picture.\n" * 3, REFUSED)
    add("page.jpg", b"<!DOCTYPE html>\n<html><head><title>Photo</title></head><body><img src=x.jpg></body></html>",
        REFUSED)
    add("drawing.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9999999" '
        b'height="9999999"><rect width="100%" height="100%"/></svg>', REFUSED)
    add("figure.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n", REFUSED)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("photo.png", _save(im, "PNG"))
    add("photos.png", zipped.getvalue(), REFUSED)
    add("icon.png", _save(im.resize((32, 32)), "ICO"), REFUSED)
    add("scan.png", _save(im, "PCX"), REFUSED)
    add("zeros.png", bytes(4096), REFUSED)
    for i, n in enumerate((1, 3, 100, 10_000, 200_000)):
        add(f"random-{i}.png", rng.bytes(n), REFUSED)
    for magic, ext in ((b"\x89PNG\r\n\x1a\n", "png"), (b"GIF89a", "gif"), (b"II*\x00", "tif"),
                       (b"MM\x00*", "tif"), (b"BM", "bmp"), (b"RIFF\x00\x01\x00\x00WEBPVP8 ", "webp")):
        add(f"random-after-magic-{magic[:4].hex()}.{ext}", magic + rng.bytes(3000), REFUSED)
    add("random-after-magic-ffd8ff.jpg", b"\xff\xd8\xff\xe0" + rng.bytes(3000), EITHER)

    # --- broken images --------------------------------------------------------------
    valid = {
        "png": _save(im, "PNG"), "jpg": _save(im, "JPEG", quality=90), "gif": _save(im, "GIF"),
        "webp": _save(im, "WEBP", quality=80), "tif": _save(im, "TIFF", compression="tiff_lzw"),
        "bmp": _save(im, "BMP"),
    }
    for ext, data in valid.items():
        for cut in (0.1, 0.5, 0.9):
            # Lenient decoders: GIF and TIFF strips can end early and still give a picture.
            add(f"truncated-{int(cut * 100)}.{ext}", data[:int(len(data) * cut)],
                EITHER if ext in ("gif", "tif") and cut >= 0.5 else REFUSED)
        add(f"truncated-header.{ext}", data[:min(len(data) // 2, 20)], REFUSED)
        add(f"truncated-last-byte.{ext}", data[:-1], EITHER)
        add(f"damaged-middle.{ext}", _damaged_middle(data), EITHER)
        add(f"damaged-start.{ext}", _damaged_middle(data, 16, 0.02), EITHER)

    # --- decompression bombs --------------------------------------------------------
    add("bomb-40000x40000.png", _png_claiming(40000, 40000), REFUSED)
    add("bomb-9000x9000.png", _png_claiming(9000, 9000), REFUSED)  # above ours, below Pillow's limit
    width, height = 8000, 6500  # 52 MP of zeros: a few kilobytes of file, 52 MB of pixels
    add("bomb-real-52mp.png", _png(width, height, 8, 0, (bytes(width + 1) for _ in range(height))), REFUSED)
    add("bomb-65535x65535.gif", _gif_claiming(65535, 65535), REFUSED)
    add("bomb-100000x100000.bmp", _bmp_claiming(100000, 100000), REFUSED)
    add("bomb-100000x-100000.bmp", _bmp_claiming(100000, -100000), REFUSED)  # top-down rows
    add("bomb-100000x100000.tif", _tiff_claiming(100000, 100000), REFUSED)
    add("bomb-16384x16384.webp", _webp_claiming(16384, 16384), REFUSED)
    add("bomb-65500x65500.jpg", _jpeg_claiming(65500, 65500), REFUSED)
    add("bomb-0x0.png", _png_claiming(0, 0), REFUSED)
    rows = [b"\0" + gray[y].tobytes() for y in range(H)]
    bomb = _zlib_bomb(64 << 20)  # 64 MB of zeros in metadata
    add("bomb-iccp.png", _png(W, H, 8, 0, rows, [_chunk(b"iCCP", b"icc\0\0" + bomb)]), EITHER)
    add("bomb-ztxt.png", _png(W, H, 8, 0, rows, [_chunk(b"zTXt", b"Comment\0\0" + bomb)]), EITHER)
    add("bomb-itxt.png", _png(W, H, 8, 0, rows, [_chunk(b"iTXt", b"Comment\0\1\0\0\0" + bomb)]), EITHER)
    tiny = Image.fromarray(rgb[:8, :8])
    frames = [tiny.rotate(i * 90) for i in range(1000)]
    add("bomb-1000-frames.gif", _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10),
        (8, 8, 3))

    # --- valid but awkward ----------------------------------------------------------
    add("rgb.png", valid["png"], shape)
    add("rgb.jpg", valid["jpg"], shape)
    add("rgb-progressive.jpg", _save(im, "JPEG", quality=90, progressive=True), shape)
    add("rgb-444.jpg", _save(im, "JPEG", quality=95, subsampling=0), shape)
    add("rgb.webp", valid["webp"], shape)
    add("rgb-lossless.webp", _save(im, "WEBP", lossless=True), shape)
    add("rgb.tif", valid["tif"], shape)
    add("rgb-uncompressed.tif", _save(im, "TIFF"), shape)
    add("rgb.bmp", valid["bmp"], shape)
    add("rgb.gif", valid["gif"], shape)
    add("png-named.gif", valid["png"], shape)  # the content decides, not the name
    add("1x1.png", _save(Image.fromarray(rgb[:1, :1]), "PNG"), (1, 1, 3))
    add("1x1.jpg", _save(Image.fromarray(rgb[:1, :1]), "JPEG"), (1, 1, 3))
    add("3x500.png", _save(Image.fromarray(np.resize(rgb, (500, 3, 3))), "PNG"), (500, 3, 3))
    add("500x3.png", _save(Image.fromarray(np.resize(rgb, (3, 500, 3))), "PNG"), (3, 500, 3))
    add(f"strip-{THIN}x1.png", _png(THIN, 1, 8, 0, [b"\0" + bytes(range(250)) * (THIN // 250)]), (1, THIN))
    add("gray.png", _save(Image.fromarray(gray), "PNG"), gshape)
    add("gray.jpg", _save(Image.fromarray(gray), "JPEG"), gshape)
    add("gray.webp", _save(Image.fromarray(gray), "WEBP"), shape)  # WebP stores colour
    add("gray.tif", _save(Image.fromarray(gray), "TIFF"), gshape)
    gray16 = gray.astype(np.uint16) * 257 + np.uint16(3)
    add("gray16.png", _save(Image.fromarray(gray16), "PNG"), gshape)
    add("gray16.tif", _save(Image.fromarray(gray16), "TIFF"), gshape)
    rgb16 = (rgb.astype(">u2") * 257)
    add("rgb16.png", _png(W, H, 16, 2, (b"\0" + rgb16[y].tobytes() for y in range(H))), shape)
    add("rgba16.png", _png(W, H, 16, 6, (b"\0" + np.dstack([rgb16, np.full((H, W), 40000, ">u2")])[y].tobytes()
                                         for y in range(H))), shape)
    add("float.tif", _save(Image.fromarray(gray.astype(np.float32) / 255), "TIFF"), gshape)
    add("float-wild.tif", _save(Image.fromarray(np.array([[np.nan, np.inf], [-np.inf, -5.0]], np.float32)), "TIFF"),
        (2, 2))
    add("int32.tif", _save(Image.fromarray(gray.astype(np.int32) * 100), "TIFF"), gshape)
    add("cmyk.jpg", _save(im.convert("CMYK"), "JPEG"), shape)
    add("cmyk.tif", _save(im.convert("CMYK"), "TIFF"), shape)
    add("ycbcr.jpg", _save(im.convert("YCbCr"), "JPEG"), shape)
    add("lab.tif", _save(im.convert("LAB"), "TIFF"), shape)
    add("palette.png", _save(im.convert("P"), "PNG"), shape)
    add("palette.bmp", _save(im.convert("P"), "BMP"), shape)
    add("palette-transparent.png", _save(im.convert("P"), "PNG", transparency=0), shape)
    add("palette-transparent.gif", _save(im.convert("P"), "GIF", transparency=0), shape)
    add("1bit.png", _save(im.convert("1"), "PNG"), gshape)
    add("1bit.tif", _save(im.convert("1"), "TIFF", compression="group4"), gshape)
    add("1bit.bmp", _save(im.convert("1"), "BMP"), gshape)
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1)))
    rgba = im.convert("RGBA")
    rgba.putalpha(alpha)
    add("rgba.png", _save(rgba, "PNG"), shape)
    add("rgba.webp", _save(rgba, "WEBP", lossless=True), shape)
    add("rgba.tif", _save(rgba, "TIFF"), shape)
    la = Image.fromarray(gray).convert("LA")
    la.putalpha(alpha)
    add("la.png", _save(la, "PNG"), gshape)
    add("all-transparent.png", _save(Image.new("RGBA", (W, H), (255, 0, 0, 0)), "PNG"), shape)
    moving = [im, im.rotate(180), im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    add("animated.gif", _save(moving[0], "GIF", save_all=True, append_images=moving[1:], duration=100, loop=0), shape)
    add("animated.webp", _save(moving[0], "WEBP", save_all=True, append_images=moving[1:], duration=100), shape)
    add("animated.png", _save(moving[0], "PNG", save_all=True, append_images=moving[1:], duration=100), shape)
    add("multipage.tif", _save(moving[0], "TIFF", save_all=True, append_images=moving[1:]), shape)
    for orientation in range(1, 9):
        add(f"exif-orientation-{orientation}.jpg", _exif_jpeg(rgb, orientation),
            (W, H, 3) if orientation >= 5 else shape)
    add("exif-orientation-0.jpg", _exif_jpeg(rgb, 0), shape)     # out of range: ignored
    add("exif-orientation-99.jpg", _exif_jpeg(rgb, 99), shape)   # out of range: ignored
    exif = Image.Exif()
    exif[0x0112] = 6
    add("exif-orientation-6.png", _save(im, "PNG", exif=exif), (W, H, 3))
    add("exif-orientation-6.webp", _save(im, "WEBP", exif=exif), (W, H, 3))
    jpeg = valid["jpg"]  # an APP1 Exif segment full of garbage right after SOI
    garbage = b"Exif\0\0" + b"MM\0*" + rng.bytes(200)
    add("exif-garbage.jpg", jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage + jpeg[2:], shape)
    return tuple(items)


def corpus() -> list[tuple[str, bytes]]:
    """Every item as (file name, bytes); built once per process (about a second)."""
    return list(_build())


def names() -> list[str]:
    """The item names, without building the corpus twice (for test ids)."""
    return [name for name, _ in _build()]


def item(name: str) -> bytes:
    return dict(_build())[name]
