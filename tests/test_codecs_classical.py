"""Classical codecs: round trips, grayscale, quality ordering, errors, JPEG as the reference."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from aecore.codecs import CodecError, get_codec
from aecore.codecs.base import CLASSICAL
from aecore.metrics import psnr

SUPPORTED = [name for name, cls in CLASSICAL.items() if cls.is_supported()]


def test_jpeg_is_always_offered():
    assert "jpeg" in SUPPORTED


@pytest.mark.parametrize("name", SUPPORTED)
def test_rgb_round_trip(name, photo):
    codec = get_codec(name)
    data = codec.encode(photo, codec.default_quality)
    out = codec.decode(data)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert psnr(photo, out) > 25
    assert codec.encode(photo, codec.default_quality) == data  # deterministic


@pytest.mark.parametrize("name", SUPPORTED)
def test_grayscale_stays_grayscale(name, photo):
    codec = get_codec(name)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    out = codec.decode(codec.encode(gray, codec.default_quality))
    assert out.shape == gray.shape and out.dtype == np.uint8
    assert psnr(gray, out) > 25


@pytest.mark.parametrize("name", SUPPORTED)
def test_strided_view_is_accepted(name, photo):
    codec = get_codec(name)
    view = photo[::2, ::3]
    assert codec.decode(codec.encode(view, 50)).shape == view.shape


@pytest.mark.parametrize("name", SUPPORTED)
def test_higher_quality_means_larger_and_better(name, photo):
    codec = get_codec(name)
    low, high = codec.encode(photo, 20), codec.encode(photo, 80)
    assert len(high) > len(low)
    assert psnr(photo, codec.decode(high)) > psnr(photo, codec.decode(low))


@pytest.mark.parametrize("name", SUPPORTED)
def test_bad_streams_raise_codec_error(name, photo):
    codec = get_codec(name)
    data = codec.encode(photo, 50)
    for bad in (b"", b"not an image at all" * 4, data[: len(data) // 2]):
        with pytest.raises(CodecError, match=f"{name}: data is not a valid"):
            codec.decode(bad)


@pytest.mark.parametrize("name", SUPPORTED)
def test_bad_inputs_raise_codec_error(name, photo):
    codec = get_codec(name)
    for quality in (0, 101):
        with pytest.raises(CodecError, match="outside 1..100"):
            codec.encode(photo, quality)
    with pytest.raises(CodecError, match="uint8"):
        codec.encode(photo.astype(np.float32), 50)


@pytest.mark.parametrize("quality", [1, 50, 95])
def test_jpeg_bytes_are_opencvs(quality, photo):
    reference = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    assert get_codec("jpeg").encode(photo, quality) == reference.tobytes()


@pytest.mark.skipif("webp" not in SUPPORTED, reason="no WebP in this build")
def test_grayscale_webp_is_still_a_webp_file(photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    data = get_codec("webp").encode(gray, 75)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "WEBP" and im.size == (gray.shape[1], gray.shape[0])


@pytest.mark.skipif("jpeg2000" not in SUPPORTED, reason="no JPEG 2000 in this build")
def test_jpeg2000_size_grows_with_every_quality_step(photo):
    codec = get_codec("jpeg2000")
    sizes = [len(codec.encode(photo, q)) for q in range(40, 50)]  # above the header-bound floor
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


@pytest.mark.skipif("avif" not in SUPPORTED, reason="no AVIF in this build")
@pytest.mark.parametrize("backend", ["opencv", "pillow"])
def test_avif_backends_round_trip(backend, photo):
    from PIL import features
    if backend == "pillow" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF")
    codec = get_codec("avif")
    for image in (photo, cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)):
        out = codec._decode_with(backend, codec._encode_with(backend, image, 60))
        assert out.shape == image.shape and psnr(image, out) > 25


@pytest.mark.parametrize("name", [n for n in ("jxl", "heic") if n in SUPPORTED])
def test_size_grows_with_quality(name, photo):
    codec = get_codec(name)
    sizes = [len(codec.encode(photo, q)) for q in range(10, 100, 10)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_new_formats_are_offered():
    """requirements.txt pins both plugins; their wheels carry libjxl and libheif with x265."""
    assert {"jxl", "heic"} <= set(SUPPORTED)


def test_jxl_quality_100_is_lossless(photo):
    codec = get_codec("jxl")
    for image in (photo, cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)):
        assert np.array_equal(codec.decode(codec.encode(image, 100)), image)


def test_jxl_is_a_jpeg_xl_codestream_pillow_reads(photo):
    data = get_codec("jxl").encode(photo, 80)
    assert data[:2] == b"\xff\x0a"
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JXL" and im.size == (photo.shape[1], photo.shape[0])


def test_heic_is_a_heif_file_at_420(photo):
    import pillow_heif
    data = get_codec("heic").encode(photo, 60)
    assert data[4:12] == b"ftypheic"
    heif = pillow_heif.open_heif(io.BytesIO(data))
    assert heif.size == (photo.shape[1], photo.shape[0]) and heif.info.get("chroma") == 420
    assert np.array_equal(np.asarray(heif), get_codec("heic").decode(data))
