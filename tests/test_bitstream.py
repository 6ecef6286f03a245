import struct
import zlib

import pytest

from aecore.bitstream import MAGIC, VERSION, BitstreamError, Header, pack, quantize_quality, unpack

HEADER = Header(model="tiny-hyper", weights_hash=bytes(range(8)), height=37, width=53, quality=4.25)
SECTIONS = [b"\x01\x02\x03\x04", b"", bytes(range(256)) * 3]


def test_round_trip():
    header, sections = unpack(pack(HEADER, SECTIONS))
    assert header == HEADER
    assert sections == SECTIONS


def test_quality_is_stored_on_a_grid():
    assert quantize_quality(3.14159) == 3.142
    header, _ = unpack(pack(Header(**{**HEADER.__dict__, "quality": 3.142}), []))
    assert header.quality == 3.142


def test_every_truncation_is_refused():
    data = pack(HEADER, SECTIONS)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:n])


def test_every_flipped_byte_is_refused():
    data = pack(HEADER, SECTIONS)
    for i in range(len(data)):
        altered = bytearray(data)
        altered[i] ^= 0x40
        with pytest.raises(BitstreamError):
            unpack(bytes(altered))


def test_messages_say_what_is_wrong():
    data = pack(HEADER, SECTIONS)
    with pytest.raises(BitstreamError, match="magic"):
        unpack(b"\x89PNG" + data[4:])
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(data[:-10])
    with pytest.raises(BitstreamError, match="altered|checksum"):
        unpack(data[:-20] + bytes([data[-20] ^ 1]) + data[-19:])


def test_newer_version_asks_for_upgrade():
    body = bytearray(pack(HEADER, SECTIONS)[:-4])
    body[4] = VERSION + 1
    data = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(BitstreamError, match="upgrade"):
        unpack(data)


def test_size_limit_checked_before_decoding():
    big = Header(model="m", weights_hash=b"\0" * 8, height=40000, width=40000, quality=1.0)
    data = pack(big, [b"x"])
    with pytest.raises(BitstreamError, match="megapixel"):
        unpack(data, max_pixels=50_000_000)
    assert unpack(data)[0].height == 40000


def test_magic_and_layout():
    data = pack(HEADER, SECTIONS)
    assert data[:4] == MAGIC and data[4] == VERSION
    assert len(data) == 4 + 3 + len("tiny-hyper") + 8 + 13 + 4 * len(SECTIONS) + sum(map(len, SECTIONS)) + 4
