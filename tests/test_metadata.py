"""Metadata across coding: a phone JPEG's EXIF (GPS, orientation 6) and ICC profile into an .aec
file and back out into the decoded PNG (and into JPEG/WebP outputs), `--strip`, and the sizes."""
from __future__ import annotations

import io
import json

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps
import pytest

from aecore import bitstream
from aecore.__main__ import main
from aecore.codecs import get_codec
from aecore.codecs.learned import decode_any
from aecore.io import load_image, to_png_bytes
from aecore.metadata import PNG_NAME_KEY, Metadata, can_carry, carry
from tests.data.streams import make

GPS = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)}


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def phone_jpeg(icc) -> bytes:
    """A 80x48 JPEG stored sideways, as phones store it: orientation 6, a camera make, a GPS position."""
    y, x = np.mgrid[0:48, 0:80]
    stored = np.stack([x * 3, y * 5, (x + y) * 2], -1).astype(np.uint8)
    stored[:24] //= 4  # a dark top half: after the 90 degree turn it is the right half
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "PhoneMaker"
    exif.get_ifd(0x8825).update(GPS)
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=95, exif=exif.tobytes(), icc_profile=icc)
    return buf.getvalue()


def _upright(jpeg: bytes) -> np.ndarray:
    """The picture as a viewer shows it (Pillow's own transpose, not aecore's)."""
    return np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg))).convert("RGB"))


def _cli(capsys, *args) -> dict:
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _carried(path_or_bytes) -> tuple[Image.Image, dict]:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    im = Image.open(io.BytesIO(data))
    im.load()
    exif = im.getexif()
    return im, {"orientation": exif.get(0x0112), "make": exif.get(0x010F), "gps": dict(exif.get_ifd(0x8825)),
                "icc": im.info.get("icc_profile"), "name": im.info.get(PNG_NAME_KEY)}


def test_loading_applies_the_orientation_and_keeps_exif_and_icc(phone_jpeg, icc):
    loaded = load_image(phone_jpeg, name="holiday.jpg")
    np.testing.assert_array_equal(loaded.pixels, _upright(phone_jpeg))
    assert loaded.pixels.shape == (80, 48, 3)
    md = loaded.metadata
    assert md.icc == icc and md.name == "holiday.jpg" and md.has_gps
    exif = Image.Exif()
    exif.load(md.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "PhoneMaker" and dict(exif.get_ifd(0x8825)) == GPS
    # only the orientation's value changed: everything else is the camera's bytes
    original = Image.open(io.BytesIO(phone_jpeg)).info["exif"][6:]
    assert len(md.exif) == len(original) and sum(a != b for a, b in zip(md.exif, original)) == 1


def test_malformed_metadata_costs_a_note_not_the_picture(phone_jpeg):
    im = Image.open(io.BytesIO(phone_jpeg))
    buf = io.BytesIO()
    im.save(buf, "JPEG", icc_profile=b"\x00" * 200, exif=b"Exif\x00\x00junk that is no TIFF")
    loaded = load_image(buf.getvalue(), name="odd.jpg")
    assert loaded.metadata == Metadata(name="odd.jpg")
    assert "ICC profile left out: ICC profile is malformed" in loaded.notes
    assert "EXIF left out: EXIF is not a TIFF structure" in loaded.notes


@pytest.mark.shipped
def test_metadata_round_trip_through_aec_to_png(tmp_path, capsys, phone_jpeg, icc):
    src = tmp_path / "holiday.jpg"
    src.write_bytes(phone_jpeg)
    full = _cli(capsys, "compress", src, tmp_path / "h.aec", "--quality", 6)
    bare = _cli(capsys, "compress", src, tmp_path / "s.aec", "--quality", 6, "--strip")
    header, _ = bitstream.unpack((tmp_path / "h.aec").read_bytes())
    md = header.metadata
    assert (header.width, header.height, header.version) == (48, 80, bitstream.EXACT_VERSION)
    assert md.icc == icc and md.name == "holiday.jpg" and md.has_gps
    # sizes: the whole file, its coded image (the stripped file) and its metadata block
    assert full["bytes"] == (tmp_path / "h.aec").stat().st_size
    assert full["image_bytes"] == bare["bytes"] == (tmp_path / "s.aec").stat().st_size
    assert full["metadata_bytes"] == len(bitstream.metadata_block(md)) == full["bytes"] - bare["bytes"]
    assert full["bpp"] == pytest.approx(8 * full["bytes"] / (48 * 80))
    assert bare["metadata_bytes"] == 0 and bare["metadata"]["exif_bytes"] == 0
    assert full["psnr"] == bare["psnr"]
    stripped = bitstream.unpack((tmp_path / "s.aec").read_bytes())[0]
    assert stripped.version == bitstream.EXACT_VERSION and not stripped.metadata

    rec = _cli(capsys, "decompress", tmp_path / "h.aec", tmp_path / "h.png")
    assert rec["metadata"] == md.to_dict()
    im, got = _carried(tmp_path / "h.png")
    pixels = np.array(im)
    np.testing.assert_array_equal(pixels, decode_any((tmp_path / "h.aec").read_bytes()))
    upright = _upright(phone_jpeg).astype(float)
    assert np.abs(pixels - upright).mean() < 8 < np.abs(pixels - upright[::-1, ::-1]).mean()  # turned, not left sideways
    assert got == {"orientation": 1, "make": "PhoneMaker", "gps": GPS, "icc": icc, "name": "holiday.jpg"}

    for stripped in (tmp_path / "s.aec", tmp_path / "h.aec"):  # stripped at compress, or at decompress
        out = tmp_path / f"plain-{stripped.stem}.png"
        _cli(capsys, "decompress", stripped, out, *(["--strip"] if stripped.stem == "h" else []))
        im, got = _carried(out)
        assert not im.info.get("exif") and got["icc"] is None and got["name"] is None
        np.testing.assert_array_equal(np.array(im), pixels)

    rec = _cli(capsys, "decompress", tmp_path / "h.aec", tmp_path / "h.tif")  # TIFF holds EXIF and ICC
    im, got = _carried(tmp_path / "h.tif")
    np.testing.assert_array_equal(np.array(im), pixels)
    assert got == {"orientation": 1, "make": "PhoneMaker", "gps": GPS, "icc": icc, "name": None}
    assert rec["notes"] == ["metadata left out: TIFF files written here hold no file name"]
    rec = _cli(capsys, "decompress", tmp_path / "h.aec", tmp_path / "h.bmp")  # BMP holds none: said
    assert rec["notes"] == ["metadata left out: BMP files written here hold no EXIF, no ICC profile, no file name"]
    assert rec["metadata"]["exif_bytes"] == 0

    info = _cli(capsys, "info", tmp_path / "h.aec")
    assert info["metadata"] == md.to_dict() and info["metadata_bytes"] == full["metadata_bytes"]


@pytest.mark.parametrize("codec, suffix", [("jpeg", "jpg"), ("webp", "webp")])
def test_classical_outputs_carry_it_with_the_coded_image_untouched(tmp_path, capsys, phone_jpeg, icc,
                                                                   codec, suffix):
    src = tmp_path / "holiday.jpg"
    src.write_bytes(phone_jpeg)
    full = _cli(capsys, "compress", src, tmp_path / f"h.{suffix}", "--codec", codec, "--quality", 80)
    bare = _cli(capsys, "compress", src, tmp_path / f"s.{suffix}", "--codec", codec, "--quality", 80, "--strip")
    with_md, without = (tmp_path / f"h.{suffix}").read_bytes(), (tmp_path / f"s.{suffix}").read_bytes()
    assert full["image_bytes"] == len(without) and full["bytes"] == len(with_md)
    assert full["metadata_bytes"] == len(with_md) - len(without) > len(icc)
    # the same pixels by another decoder (OpenCV), and by Pillow
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(with_md, np.uint8), cv2.IMREAD_COLOR),
                                  cv2.imdecode(np.frombuffer(without, np.uint8), cv2.IMREAD_COLOR))
    assert full["metadata"] == {**load_image(src).metadata.to_dict(), "name": None}
    assert "metadata left out: " + get_codec(codec).label + " files written here hold no file name" in full["notes"]
    im, got = _carried(with_md)
    assert im.size == (48, 80) and got["orientation"] == 1 and got["gps"] == GPS and got["icc"] == icc
    assert np.abs(np.array(im.convert("RGB")).astype(float) - _upright(phone_jpeg)).mean() < 6
    assert carry(with_md, Metadata()) == without if codec == "jpeg" else carry(with_md, Metadata())[:4] == b"RIFF"


def test_formats_that_carry_none_say_so(tmp_path, capsys, phone_jpeg):
    src = tmp_path / "holiday.jpg"
    src.write_bytes(phone_jpeg)
    rec = _cli(capsys, "compress", src, tmp_path / "h.jp2", "--codec", "jpeg2000", "--quality", 30)
    assert rec["metadata_bytes"] == 0 and rec["bytes"] == rec["image_bytes"]
    assert "metadata left out: JPEG 2000 files written here hold no EXIF, no ICC profile, no file name" in rec["notes"]
    assert not can_carry((tmp_path / "h.jp2").read_bytes())


def test_a_target_size_counts_the_metadata(tmp_path, capsys, phone_jpeg, user_weights):
    src = tmp_path / "holiday.jpg"
    src.write_bytes(phone_jpeg)
    bare = _cli(capsys, "compress", src, tmp_path / "s.aec", "--codec", "tiny-hyper", "--quality", 1, "--strip")
    meta = len(bitstream.metadata_block(load_image(src).metadata))
    budget = bare["bytes"] + meta + 40
    rec = _cli(capsys, "compress", src, tmp_path / "t.aec", "--codec", "tiny-hyper", "--target-size", budget)
    assert rec["metadata_bytes"] == meta and rec["bytes"] == (tmp_path / "t.aec").stat().st_size <= budget
    assert main(["compress", str(src), str(tmp_path / "u.aec"), "--codec", "tiny-hyper",
                 "--target-size", str(bare["bytes"] + meta - 1)]) == 2
    err = capsys.readouterr().err
    assert f"the smallest is {bare['bytes'] + meta} bytes" in err and f"{meta} of them metadata" in err
    assert err.count("\n") == 1 and not (tmp_path / "u.aec").exists()


def test_streams_written_before_the_metadata_block_decode_and_take_one(monkeypatch):
    """The committed streams of an earlier aecore (version 1) read as carrying nothing; carrying
    metadata into one rewrites only the container: the same pixels come out."""
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(make.HERE))
    md = Metadata(name="old.png")
    for path in sorted(make.HERE.glob("*.aec")):
        data = path.read_bytes()
        header, sections = bitstream.unpack(data)
        assert header.version == 1 and not header.metadata
        carried = carry(data, md)
        assert bitstream.unpack(carried)[0].metadata == md and bitstream.unpack(carried)[1] == sections
        np.testing.assert_array_equal(decode_any(carried), decode_any(data))
        assert carry(carried, Metadata()) == data


def test_png_carry_replaces_rather_than_adds(icc):
    png = to_png_bytes(np.zeros((5, 7, 3), np.uint8))
    once = carry(png, Metadata(icc=icc, name="a.png"))
    twice = carry(once, Metadata(icc=icc, name="b.png"))
    assert len(twice) == len(once) and _carried(twice)[1]["name"] == "b.png"
    assert carry(twice, Metadata()) == png
    with pytest.raises(ValueError, match="cannot carry metadata"):
        carry(get_codec("jpeg2000").encode(np.zeros((8, 8, 3), np.uint8), 30), Metadata(name="a.png"))


def test_the_decoder_without_aecore_reads_past_the_metadata_block():
    """docs/decode_onnx.py parses a version 2 stream's header and sections as aecore does."""
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "docs" / "decode_onnx.py"
    spec = importlib.util.spec_from_file_location("decode_onnx", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = (make.HERE / "legacy-hyper-q4.75.aec").read_bytes()
    carried = carry(data, Metadata(name="old.png"))
    assert module.parse(carried)["sections"] == module.parse(data)["sections"] == bitstream.unpack(data)[1]
