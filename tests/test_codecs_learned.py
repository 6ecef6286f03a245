import numpy as np
import pytest
import torch

from aecore import bitstream, weights
from aecore.codecs import CodecError, codec_names, get_codec
from aecore.codecs.learned import decode_any
from aecore.metrics import bpp
from tests.conftest import make_tiny


@pytest.mark.parametrize("name", ["tiny-hyper", "tiny-seed"])
def test_round_trip_rgb_is_exact_and_repeatable(user_weights, photo, name):
    codec = get_codec(name)
    data = codec.encode(photo, 6.0)
    first, second = codec.decode(data), codec.decode(data)
    assert first.shape == photo.shape and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert np.array_equal(decode_any(data), first)
    assert codec.encode(photo, 6.0) == data  # encoding is deterministic too


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (7, 3, 3), (65, 129, 3)])
def test_any_size_and_grayscale(user_weights, shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    codec = get_codec("tiny-hyper")
    decoded = codec.decode(codec.encode(image, 1.0))
    assert decoded.shape == image.shape


def test_header_records_stream(user_weights, photo):
    codec = get_codec("tiny-seed")
    data = codec.encode(photo[..., 0], 2.3456)
    header, _ = bitstream.unpack(data)
    assert (header.model, header.height, header.width) == ("tiny-seed", 96, 128)
    assert header.grayscale and header.quality == 2.346
    assert header.weights_hash == bytes.fromhex(weights.read_card("tiny-seed")["sha256"])[:8]
    assert bpp(len(data), 96, 128) == 8 * len(data) / (96 * 128)


def test_stream_from_other_weights_is_refused(user_weights, photo):
    data = get_codec("tiny-hyper").encode(photo, 4.0)
    with pytest.raises(CodecError, match="tiny-hyper"):
        get_codec("tiny-seed").decode(data)
    # Same name, retrained weights: the hash no longer matches.
    weights.save(make_tiny("tiny-hyper", seed=1), "tiny-hyper", user_weights)
    with pytest.raises(CodecError, match="made by weights"):
        get_codec("tiny-hyper").decode(data)


def test_corrupt_streams_get_clean_errors(user_weights, photo):
    codec = get_codec("tiny-hyper")
    data = codec.encode(photo, 8.0)
    for bad in (b"", b"hello", data[:-1], data[:20], data[:30] + bytes([data[30] ^ 0xFF]) + data[31:]):
        with pytest.raises(CodecError):
            codec.decode(bad)


def test_quality_range_enforced(user_weights, photo):
    with pytest.raises(CodecError, match="outside"):
        get_codec("tiny-hyper").encode(photo, 9.0)


def test_unknown_codec_lists_known(user_weights):
    with pytest.raises(CodecError, match="jpeg"):
        get_codec("nope")
    assert {"tiny-hyper", "tiny-seed", "jpeg"} <= set(codec_names())


@pytest.mark.parametrize("name", ["tiny-hyper", "tiny-seed"])
def test_a_loaded_codec_has_its_coding_tables_before_the_first_timed_call(user_weights, photo, name):
    """The bfloat16 copies and entropy tables are built on load, so the first encode and decode
    time only the coding: coding reuses exactly the objects that loading built."""
    codec = get_codec(name)
    density = codec.model.z_density if name == "tiny-hyper" else codec.model.y_density
    copies = {k: v[1] for k, v in codec.model._copies.items()}
    tables = density._tables
    # g_a, g_s (and the fixed-point h_s for a hyperprior) and the factorized density's tables
    assert len(copies) == (3 if name == "tiny-hyper" else 2) and tables is not None
    codec.decode(codec.encode(photo, 4.0))
    assert set(codec.model._copies) == set(copies)
    assert all(codec.model._copies[k][1] is v for k, v in copies.items())
    assert density._tables is tables


def test_streams_written_by_earlier_code_decode_and_encode_identically(monkeypatch):
    """The .aec format is pinned: streams committed in tests/data/streams (made by the code of
    that commit, with their tiny weights) decode to the same pixels, and today's encoder writes
    the same bytes for the same image."""
    import hashlib
    import json
    from tests.data.streams import make
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(make.HERE))
    expected = json.loads((make.HERE / "expected.json").read_text())
    assert len(expected) == sum(len(q) for _, q in make.STREAMS.values())
    for file, want in expected.items():
        data = (make.HERE / file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == want["sha256"]
        decoded = decode_any(data)
        assert hashlib.sha256(decoded.tobytes()).hexdigest() == want["pixels_sha256"], file
        name = file.rsplit("-q", 1)[0]
        codec = get_codec(name)
        encoded = codec.encode(make.image(), want["quality"])
        if codec.model.exact_parameters:
            # Written before fixed-point entropy parameters: today's stream is version 3 and
            # decodes to nearly the same pixels; the float32 path that versions 1 and 2 define
            # still writes those streams byte for byte.
            header = bitstream.unpack(encoded)[0]
            assert header.version == bitstream.EXACT_VERSION and not bitstream.unpack(data)[0].exact_parameters
            assert np.abs(codec.decode(encoded).astype(int) - decoded).max() <= 2, file
            x = torch.from_numpy(make.image()).permute(2, 0, 1)[None].float().div(255)
            sections = codec.model.compress(x, header.quality, exact_parameters=False)
            encoded = bitstream.pack(bitstream.Header(**{**header.__dict__, "exact_parameters": False}), sections)
        if codec.model.decode_dtype == torch.float32:
            # Written before the flag for a float32 synthesis: today's stream sets it (flags
            # bit 1, then its CRC), all else byte for byte.
            header, sections = bitstream.unpack(encoded)
            assert header.float32_synthesis and not bitstream.unpack(data)[0].float32_synthesis
            encoded = bitstream.pack(bitstream.Header(**{**header.__dict__, "float32_synthesis": False}), sections)
        assert encoded == data, file
