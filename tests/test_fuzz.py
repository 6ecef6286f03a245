"""Property tests of .aec decoding: whatever the bytes, a clean aecore error or a picture.

A decoder meets files that are random, cut short, damaged, forged (the header rewritten
with a valid CRC) or that carry forged payloads behind a valid header. For all of them
`LearnedCodec.decode` and `decode_any` must either return an image of the size the header
states or raise CodecError/BitstreamError/WeightsError: never another exception (constriction
signals a Rust panic with `pyo3_runtime.PanicException`, a BaseException that `except
Exception` misses), never a hang, never a large allocation. The header is validated before
anything is decoded, so a forged size costs nothing.

Round trips: for random small images (odd sizes, grayscale) and random qualities,
decode(encode(x)) has x's shape and the same pixels on every decode, whatever the torch
thread count. Example counts are bounded so this file runs in about a minute; for longer
runs: `python benchmarks/fuzz_aec.py --seconds 600`.
"""
from __future__ import annotations

import re
import struct
import time
import zlib

from hypothesis import HealthCheck, currently_in_test_context, event, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
import numpy as np
import pytest
import torch

from aecore import bitstream, weights
from aecore.bitstream import MAGIC, Header
from aecore.codecs import CodecError, get_codec
from aecore.codecs.learned import MAX_TILE, decode_any
from aecore.weights import WeightsError
from tests.conftest import TINY, make_tiny
from tests.hostile import base_rgb

ARCHS = sorted(TINY)  # tiny-hyper, tiny-seed
CLEAN = (CodecError, WeightsError)  # BitstreamError is a CodecError
DECODE_SECONDS = 5.0  # one decode of a forged stream; the fuzz pixel limit keeps real work small
FUZZ_MAX_PIXELS = 250_000  # forged sizes under this decode for real; above, refused from the header


def fuzz_settings(n: int):
    # No example database: nothing is written into the checkout.
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def streams(tmp_path_factory) -> dict[str, list[bytes]]:
    """Real streams of both tiny models: an RGB picture at three qualities, an odd-sized gray one."""
    folder = tmp_path_factory.mktemp("user_weights")
    for name in TINY:
        weights.save(make_tiny(name), name, folder, {"label": name})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AECORE_USER_WEIGHTS", str(folder))
        mp.setenv("AECORE_MAX_PIXELS", str(FUZZ_MAX_PIXELS))
        mp.setattr(weights, "SHIPPED_DIR", folder / "no_shipped_weights")
        rgb = base_rgb()
        gray = np.ascontiguousarray(rgb[:37, :53, 1])
        yield {arch: [get_codec(arch).encode(rgb, q) for q in (1.0, 4.5, 8.0)] + [get_codec(arch).encode(gray, 3.0)]
               for arch in ARCHS}


def decode_outcome(data: bytes, codec_name: str | None) -> str:
    """'decoded' (with the shape checked against the header) or the clean error's class name.

    Anything else fails the test, panics included.
    """
    start = time.perf_counter()
    try:
        pixels = get_codec(codec_name).decode(data) if codec_name else decode_any(data)
    except CLEAN as e:
        outcome = type(e).__name__
        reason = re.sub(r"\d[\d.]*", "N", str(e))[:70]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001  (PanicException derives from BaseException)
        pytest.fail(f"{type(e).__module__}.{type(e).__name__} escaped the decoder: {e}")
    else:
        header, _ = bitstream.unpack(data)
        assert pixels.dtype == np.uint8
        assert pixels.shape == ((header.height, header.width) if header.grayscale
                                else (header.height, header.width, 3))
        outcome = reason = "decoded"
    seconds = time.perf_counter() - start
    if currently_in_test_context():  # pytest --hypothesis-show-statistics counts the reasons
        event(reason)
    assert seconds < DECODE_SECONDS, f"decode took {seconds:.1f} s"
    return outcome


def raw_stream(name: bytes, weights_hash: bytes, height: int, width: int, quality: int, tile: int,
               sections: list[bytes], *, version: int = 1, flags: int = 0, count: int | None = None,
               lengths: list[int] | None = None) -> bytes:
    """The .aec layout written field by field (see aecore.bitstream), any value allowed, valid CRC."""
    lengths = [len(s) for s in sections] if lengths is None else lengths
    body = b"".join([
        MAGIC, struct.pack("<BBB", version, flags, len(name)), name, weights_hash,
        struct.pack("<IIHHB", height, width, quality, tile, len(lengths) if count is None else count),
        struct.pack(f"<{len(lengths)}I", *lengths), *sections])
    return body + struct.pack("<I", zlib.crc32(body))


def fields(data: bytes) -> tuple[Header, list[bytes]]:
    return bitstream.unpack(data)


# --- random, cut and damaged files ------------------------------------------------------

@fuzz_settings(300)
@given(data=st.binary(max_size=4096), magic=st.booleans(), arch=st.sampled_from(ARCHS + [None]))
def test_random_bytes_are_refused(streams, data, magic, arch):
    assert decode_outcome(MAGIC + data if magic else data, arch) != "decoded"


def test_every_truncation_is_refused(streams):
    for arch in ARCHS:
        for data in streams[arch]:
            for cut in range(len(data)):
                assert decode_outcome(data[:cut], arch) == "BitstreamError"


def test_every_single_bit_flip_is_refused(streams):
    for arch in ARCHS:
        data = streams[arch][1]
        for i in range(len(data) * 8):
            altered = bytearray(data)
            altered[i // 8] ^= 1 << (i % 8)
            assert decode_outcome(bytes(altered), arch) != "decoded", i


@fuzz_settings(300)
@given(st.data())
def test_multiple_bit_flips_are_refused(streams, data):
    arch = data.draw(st.sampled_from(ARCHS))
    stream = data.draw(st.sampled_from(streams[arch]))
    altered = bytearray(stream)
    for i in data.draw(st.lists(st.integers(0, len(stream) * 8 - 1), min_size=1, max_size=16, unique=True)):
        altered[i // 8] ^= 1 << (i % 8)
    assert decode_outcome(bytes(altered), data.draw(st.sampled_from([arch, None]))) != "decoded"


# --- forged headers (valid CRC) ---------------------------------------------------------

SIZES = st.one_of(st.integers(0, 600), st.sampled_from([2**16 - 1, 2**16, 60000, 2**31, 2**32 - 1]),
                  st.integers(0, 2**32 - 1))
TILES = st.one_of(st.sampled_from([0, 1, 63, 64, 65, 128, 1024, MAX_TILE + 64, 65472, 65535]),
                  st.integers(0, 2**16 - 1))
NAMES = st.sampled_from([b"tiny-hyper", b"tiny-seed", b"hyperprior", b"seed", b"not-installed", b"", b"../x",
                         b"a" * 255, "t\u00efny".encode()])


FORGERIES = {
    "name": NAMES, "weights_hash": st.binary(min_size=8, max_size=8), "height": SIZES, "width": SIZES,
    "quality": st.integers(0, 2**16 - 1), "tile": TILES, "version": st.integers(0, 255),
    "flags": st.integers(0, 255), "count": st.integers(0, 255),
    "lengths": st.lists(st.integers(0, 2**32 - 1), max_size=20),
}


@fuzz_settings(500)
@given(st.data())
def test_forged_header_fields(streams, data):
    arch = data.draw(st.sampled_from(ARCHS))
    header, sections = fields(data.draw(st.sampled_from(streams[arch])))
    real = {"name": arch.encode(), "weights_hash": header.weights_hash, "height": header.height,
            "width": header.width, "quality": round(header.quality * 1000), "tile": header.tile,
            "flags": int(header.grayscale)}
    forged = {k: data.draw(FORGERIES[k]) for k in data.draw(st.sets(st.sampled_from(sorted(FORGERIES)),
                                                                     min_size=1, max_size=3))}
    decode_outcome(raw_stream(sections=sections, **{**real, **forged}), data.draw(st.sampled_from([arch, None])))


# --- forged payloads behind a valid header: the entropy decoder itself -------------------

def _mutate(data, section: bytes, other: list[bytes]) -> bytes:
    kind = data.draw(st.sampled_from(["random", "words", "cut", "flip", "other", "zero-words", "repeat"]))
    if kind == "random":
        return data.draw(st.binary(max_size=600))
    if kind == "words":  # whole 32-bit words: gets past the length check into the ANS decoder
        words = data.draw(st.lists(st.integers(0, 2**32 - 1), max_size=150))
        return struct.pack(f"<{len(words)}I", *words)
    if kind == "cut":
        return section[:data.draw(st.integers(0, len(section)))]
    if kind == "flip":
        out = bytearray(section)
        for i in data.draw(st.lists(st.integers(0, max(0, len(section) * 8 - 1)), max_size=8)):
            if out:
                out[i // 8] ^= 1 << (i % 8)
        return bytes(out)
    if kind == "other":
        return data.draw(st.sampled_from(other))
    if kind == "zero-words":
        return bytes(4 * data.draw(st.integers(0, 40)))
    return section * data.draw(st.integers(2, 4))


@fuzz_settings(500)
@given(st.data())
def test_forged_payloads_fail_cleanly(streams, data):
    arch = data.draw(st.sampled_from(ARCHS))
    header, sections = fields(data.draw(st.sampled_from(streams[arch])))
    pool = [s for a in ARCHS for stream in streams[a] for s in fields(stream)[1]]
    new = [_mutate(data, s, pool) if data.draw(st.booleans()) else s for s in sections]
    # Mostly the same number of sections, so most examples reach the entropy decoder.
    shape = data.draw(st.sampled_from(["same"] * 5 + ["dropped", "added", "swapped"]))
    if shape == "dropped" and new:
        new.pop(data.draw(st.integers(0, len(new) - 1)))
    elif shape == "added":
        new.insert(data.draw(st.integers(0, len(new))), data.draw(st.sampled_from(pool)))
    elif shape == "swapped":
        new.reverse()
    forged = bitstream.pack(header, new)
    assert decode_outcome(forged, data.draw(st.sampled_from([arch, None]))) in (
        "decoded", "BitstreamError", "CodecError")


# --- the header is checked before anything large is allocated ---------------------------

@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("height, width, tile, empty, words", [
    (60000, 60000, 1024, False, "megapixel limit"),    # 3.6 GP: above the pixel limit
    (1, 50_000_000, 1024, False, "padded"),            # within the limit, but 64x that once padded
    (480, 640, 65472, False, "tiles of 65472"),        # one synthesis tile for the whole picture
    (7000, 7000, 1024, True, "empty payload"),         # 49 MP from a header alone
])
def test_forged_sizes_fail_fast_without_decoding(streams, monkeypatch, arch, height, width, tile, empty, words):
    monkeypatch.delenv("AECORE_MAX_PIXELS")  # the default limit, 50 MP
    header, sections = fields(streams[arch][1])
    forged = bitstream.pack(Header(**{**header.__dict__, "height": height, "width": width, "tile": tile}),
                            [b""] * len(sections) if empty else sections)
    codec = get_codec(arch)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the payload was decoded")

    monkeypatch.setattr(codec.model, "decompress", no_decoding)
    start = time.perf_counter()
    with pytest.raises(CodecError, match=words):
        codec.decode(forged)
    with pytest.raises(CodecError, match=words):
        decode_any(forged)
    assert time.perf_counter() - start < 0.5


# --- round trips ------------------------------------------------------------------------

IMAGES = st.tuples(st.integers(1, 40), st.integers(1, 40), st.booleans()).flatmap(
    lambda s: hnp.arrays(np.uint8, s[:2] if s[2] else (*s[:2], 3), elements=st.integers(0, 255)))


@fuzz_settings(24)
@given(arch=st.sampled_from(ARCHS), image=IMAGES, quality=st.floats(1.0, 8.0))
def test_round_trip_shape_and_determinism(streams, arch, image, quality):
    codec = get_codec(arch)
    before = torch.get_num_threads()
    try:
        encoded, decoded = set(), []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            data = codec.encode(image, quality)
            encoded.add(data)
            decoded.append(codec.decode(data))
        decoded.append(codec.decode(data))
    finally:
        torch.set_num_threads(before)
    assert len(encoded) == 1, "the stream depends on the thread count"
    assert decoded[0].shape == image.shape and decoded[0].dtype == np.uint8
    for other in decoded[1:]:
        np.testing.assert_array_equal(other, decoded[0])


# --- a forged metadata block behind real payloads ---------------------------------------

@fuzz_settings(150)
@given(st.data())
def test_forged_metadata_blocks_fail_cleanly_or_decode_the_same(streams, data):
    """Version 2 streams with any metadata block (CRC fixed): refused as corrupt, or decoded to
    exactly the pixels of the stream without it: metadata never reaches the decoder's maths."""
    arch = data.draw(st.sampled_from(ARCHS))
    stream = data.draw(st.sampled_from(streams[arch]))
    block = data.draw(st.one_of(
        st.binary(max_size=80),
        st.builds(lambda n, kind, length, value: bytes([n]) + struct.pack("<BI", kind, length) + value,
                  st.integers(0, 4), st.integers(0, 4), st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)),
                  st.binary(max_size=64))))
    body = stream[:4] + b"\x02" + stream[5:-4] + block
    forged = body + struct.pack("<I", zlib.crc32(body))
    outcome = decode_outcome(forged, data.draw(st.sampled_from([arch, None])))
    assert outcome in ("decoded", "BitstreamError")
    if outcome == "decoded":
        np.testing.assert_array_equal(get_codec(arch).decode(forged), get_codec(arch).decode(stream))
