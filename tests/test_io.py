"""aecore.io on a corpus generated here: every mode, format and kind of broken file."""
import io
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from aecore.io import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    load_image,
    load_image_folder,
    load_image_folder_named,
    max_pixels_limit,
    sample_images,
    save_png,
    to_png_bytes,
    to_rgb,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_with_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims another size (CRC fixed, so only the size lies)."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# --- modes -----------------------------------------------------------------

def test_gray_stays_one_channel():
    gray = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    out = load_image(encode(Image.fromarray(gray), "PNG"))
    assert out.pixels.ndim == 2 and out.pixels.dtype == np.uint8
    np.testing.assert_array_equal(out.pixels, gray)
    assert (out.height, out.width, out.source_mode, out.notes) == (5, 6, "L", [])


def test_16bit_gray_is_rounded_not_clipped():
    values = np.array([[0, 128, 129, 257 * 100, 257 * 100 + 128, 65535]], dtype=np.uint16)
    out = load_image(encode(Image.fromarray(values), "PNG"))
    assert out.source_mode.startswith("I;16")
    np.testing.assert_array_equal(out.pixels, [[0, 0, 1, 100, 100, 255]])
    assert out.notes == ["16-bit image reduced to 8 bits"]


def test_palette_without_transparency():
    im = Image.fromarray(RGB).quantize(16)
    out = load_image(encode(im, "PNG"))
    assert out.source_mode == "P" and out.pixels.shape == (12, 10, 3)
    np.testing.assert_array_equal(out.pixels, np.asarray(im.convert("RGB")))
    assert out.notes == ["palette converted to RGB"]


def test_palette_transparency_becomes_white():
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    im.putpixel((0, 0), 0)
    out = load_image(encode(im, "PNG", transparency=0))
    assert out.pixels[0, 0].tolist() == [255, 255, 255]
    assert out.pixels[1, 1].tolist() == [200, 10, 10]
    assert out.notes == ["palette converted to RGB", "alpha channel composited on white"]


def test_rgba_composited_on_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 128)  # half-transparent red
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    out = load_image(encode(Image.fromarray(rgba), "PNG"))
    assert out.pixels[0, 0].tolist() == [255, 127, 127]
    assert out.pixels[0, 1].tolist() == [0, 0, 255]
    assert out.pixels[1, 2].tolist() == [255, 255, 255]  # fully transparent
    assert out.notes == ["alpha channel composited on white"]


def test_opaque_alpha_dropped_silently():
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])
    out = load_image(encode(Image.fromarray(rgba), "PNG"))
    np.testing.assert_array_equal(out.pixels, RGB)
    assert out.notes == []


def test_gray_alpha_stays_gray():
    la = Image.fromarray(np.array([[[0, 0], [100, 255]]], np.uint8), "LA")
    out = load_image(encode(la, "PNG"))
    assert out.pixels.ndim == 2 and out.pixels.tolist() == [[255, 100]]


def test_cmyk_jpeg():
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red
    out = load_image(encode(im, "JPEG", quality=95), name="cmyk.jpg")
    assert out.source_mode == "CMYK" and out.pixels.shape == (16, 16, 3)
    assert np.abs(out.pixels[8, 8].astype(int) - [255, 0, 0]).max() < 8
    assert "CMYK converted to RGB" in out.notes


def test_exif_orientation_applied():
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:8, :8] = (255, 0, 0)  # red top-left corner, 8x8 so JPEG keeps it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = load_image(encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif))
    assert (out.height, out.width) == (40, 20)
    assert out.pixels[2, -3, 0] > 200 and out.pixels[2, 2, 0] < 50  # now top-right
    assert out.notes == ["EXIF orientation applied (rotated 90 degrees clockwise)"]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF"])
def test_multi_frame_keeps_first(fmt):
    frames = [Image.new("RGB", (8, 8), color) for color in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **({"lossless": True} if fmt == "WEBP" else {}))
    out = load_image(data)
    assert out.pixels[4, 4].tolist() == [255, 0, 0]
    assert "first frame of 3 used" in out.notes


@pytest.mark.parametrize("fmt, params", [("TIFF", {}), ("WEBP", {"lossless": True}), ("BMP", {}), ("PNG", {})])
def test_lossless_formats_round_trip(fmt, params):
    out = load_image(encode(Image.fromarray(RGB), fmt, **params))
    assert out.source_format == fmt
    np.testing.assert_array_equal(out.pixels, RGB)


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 7, 3), (1, 1), (7, 3)])
def test_tiny_images(shape):
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(load_image(to_png_bytes(pixels)).pixels, pixels)


# --- sources ---------------------------------------------------------------

def test_path_file_object_and_names(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(to_png_bytes(RGB))
    assert load_image(path).name == "photo.png"
    assert load_image(str(path)).name == "photo.png"
    with path.open("rb") as f:
        assert load_image(f).name == "photo.png"
    assert load_image(path.read_bytes()).name == "image"
    assert load_image(io.BytesIO(path.read_bytes()), name="upload.png").name == "upload.png"


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="nope.png: no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


# --- refusals --------------------------------------------------------------

VALID_PNG = to_png_bytes(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))


def corrupt_idat(data: bytes) -> bytes:
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8:start - 4], "big")
    middle = start + length // 2
    return data[:middle] + bytes(64) + data[middle + 64:]


@pytest.mark.parametrize("data, problem", [
    (b"", "file is empty"),
    (b"just some notes\n", "not an image file (PNG, JPEG, WebP, TIFF, BMP, GIF expected)"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "is a web page (HTML)"),
    (RNG.bytes(2000), "not an image file"),
    (VALID_PNG[: len(VALID_PNG) // 2], "image is truncated or corrupt"),
    (VALID_PNG[:30], "image is truncated or corrupt"),
    (corrupt_idat(VALID_PNG), "image is truncated or corrupt"),
], ids=["empty", "text", "html", "random", "truncated", "truncated-header", "corrupt-idat"])
def test_bad_input_is_refused_with_a_named_reason(data, problem):
    with pytest.raises(ImageError) as err:
        load_image(data, name="x.png")
    assert str(err.value).startswith("x.png: ") and problem in str(err.value)


@pytest.mark.parametrize("width, height", [(40000, 40000), (8000, 8000)])  # above and below Pillow's own guard
def test_decompression_bomb_refused_from_the_header(width, height):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ImageError, match="above the 50.0 megapixel limit") as err:
            load_image(png_with_size(width, height), name="bomb.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1
    assert peak < 5_000_000  # the pixels would take gigabytes
    assert str(err.value).startswith("bomb.png: ")
    assert f"{width * height / 1e6:.1f} megapixels" in str(err.value)


def test_max_pixels_argument_and_env(monkeypatch):
    data = to_png_bytes(np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageError, match="100x100 is 0.01 megapixels, above the 0.005 megapixel limit"):
        load_image(data, max_pixels=5000)
    assert load_image(data, max_pixels=10_000).pixels.shape == (100, 100)
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS
    monkeypatch.setenv("AECORE_MAX_PIXELS", "9999")
    with pytest.raises(ImageError, match="AECORE_MAX_PIXELS"):
        load_image(data)
    monkeypatch.setenv("AECORE_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="positive whole number"):
        max_pixels_limit()


# --- writing and helpers -----------------------------------------------------

@pytest.mark.parametrize("pixels", [RGB, RGB[..., 0]], ids=["rgb", "gray"])
def test_png_round_trip_is_lossless(pixels, tmp_path):
    out = load_image(to_png_bytes(pixels))
    np.testing.assert_array_equal(out.pixels, pixels)
    path = save_png(pixels, tmp_path / "out.png")
    np.testing.assert_array_equal(load_image(path).pixels, pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left behind


def test_to_png_bytes_rejects_other_arrays():
    with pytest.raises(ValueError, match="uint8"):
        to_png_bytes(RGB.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        to_png_bytes(np.zeros((4, 4, 4), np.uint8))


def test_to_rgb():
    assert to_rgb(RGB) is RGB
    np.testing.assert_array_equal(to_rgb(RGB[..., 0]), np.repeat(RGB[..., :1], 3, axis=2))


def test_sample_images_offline_and_read_only():
    images = sample_images()
    assert images["Astronaut"] is sample_images()["Astronaut"]  # loaded once
    assert {"Astronaut", "Coffee", "Camera"} <= set(images)
    for pixels in images.values():
        assert pixels.dtype == np.uint8 and pixels.ndim in (2, 3) and not pixels.flags.writeable
    assert images["Camera"].ndim == 2 and images["Astronaut"].shape == (512, 512, 3)


def test_load_image_folder(tmp_path):
    (tmp_path / "b.png").write_bytes(to_png_bytes(RGB[..., 0]))
    (tmp_path / "a.jpg").write_bytes(encode(Image.fromarray(RGB), "JPEG"))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._a.jpg").write_bytes(b"macOS metadata")
    images = load_image_folder(tmp_path)
    assert [im.shape for im in images] == [(12, 10, 3), (12, 10, 3)]
    np.testing.assert_array_equal(images[1], to_rgb(RGB[..., 0]))
    (tmp_path / "b.bmp").write_bytes(encode(Image.fromarray(RGB), "BMP"))
    named = load_image_folder_named(tmp_path)
    assert list(named) == ["a", "b.bmp", "b.png"]  # stems unless two files share one
    np.testing.assert_array_equal(named["b.bmp"], RGB)


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(ImageError, match="no such folder"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ImageError, match="no images found"):
        load_image_folder(tmp_path)
