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
    assert data[:4] == MAGIC and data[4] == 1  # no metadata: the version 1 layout
    assert len(data) == 4 + 3 + len("tiny-hyper") + 8 + 13 + 4 * len(SECTIONS) + sum(map(len, SECTIONS)) + 4


# --- the metadata block (version 2) ----------------------------------------------------

from dataclasses import replace  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from aecore.bitstream import metadata_block  # noqa: E402
from aecore.metadata import Metadata  # noqa: E402


def icc_profile(body: bytes = b"") -> bytes:
    """The smallest well-formed ICC profile (header and tag count, 132 bytes: its own size first,
    'acsp' at 36) plus `body`."""
    size = 132 + len(body)
    return size.to_bytes(4, "big") + bytes(32) + b"acsp" + bytes(92) + body


EXIF = b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"
META = Metadata(exif=EXIF, icc=icc_profile(b"rgb profile"), name="holiday \u00e9t\u00e9.jpg")
WITH_META = replace(HEADER, metadata=META)


def forged(block: bytes, sections=SECTIONS, version: int = 2) -> bytes:
    """A stream whose metadata block is `block`, with a valid CRC (a forger recomputes it)."""
    body = pack(HEADER, sections)[:-4]
    body = body[:4] + bytes([version]) + body[5:] + block
    return body + struct.pack("<I", zlib.crc32(body))


def entry(kind: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack("<BI", kind, len(value) if length is None else length) + value


def test_metadata_round_trip_and_layout():
    data = pack(WITH_META, SECTIONS)
    header, sections = unpack(data)
    assert header.metadata == META and sections == SECTIONS and header.version == 2 == data[4]
    name = META.name.encode()
    block = b"\x03" + entry(1, EXIF) + entry(2, META.icc) + entry(3, name)
    assert metadata_block(META) == block
    assert data == forged(block)  # the block sits between the payloads and the CRC
    assert len(data) - len(pack(HEADER, SECTIONS)) == len(block) == 1 + 3 * 5 + len(EXIF) + len(META.icc) + len(name)
    assert header.to_dict()["metadata"] == {"exif_bytes": len(EXIF), "icc_bytes": len(META.icc),
                                            "name": META.name, "gps": False}


def test_each_value_alone_and_none():
    for one in (Metadata(exif=EXIF), Metadata(icc=META.icc), Metadata(name="a.png")):
        assert unpack(pack(replace(HEADER, metadata=one), SECTIONS))[0].metadata == one
    header, _ = unpack(pack(replace(HEADER, metadata=Metadata()), SECTIONS))
    assert header.version == 1 and not header.metadata


def test_every_truncation_and_flipped_byte_of_a_metadata_stream_is_refused():
    data = pack(WITH_META, SECTIONS)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:n])
    for i in range(len(data)):
        altered = bytearray(data)
        altered[i] ^= 0x40
        with pytest.raises(BitstreamError):
            unpack(bytes(altered))


LIMIT = Metadata.LIMITS


@pytest.mark.parametrize("block, words", [
    (b"", "truncated"),                                                   # version 2 without its block
    (b"\x00", "claims 0 entries"),
    (b"\x04" + entry(1, EXIF), "claims 4 entries"),
    (b"\x01" + entry(1, EXIF)[:3], "truncated"),                          # cut inside an entry's length
    (b"\x01" + entry(1, EXIF, len(EXIF) + 1), "truncated"),               # length past the end
    (b"\x01" + entry(1, EXIF, len(EXIF) - 1), "truncated|not a TIFF|do not match"),
    (b"\x01" + entry(1, EXIF) + b"\x00", "do not match the stream size"),  # bytes left over
    (b"\x01" + entry(9, b"x"), "unknown metadata type 9"),
    (b"\x01" + entry(0, b"x"), "unknown metadata type 0"),
    (b"\x02" + entry(3, b"a.png") + entry(1, EXIF), "out of order"),
    (b"\x02" + entry(1, EXIF) + entry(1, EXIF), "repeated"),
    (b"\x01" + struct.pack("<BI", 1, LIMIT["exif"] + 1), "above its 65527-byte limit"),
    (b"\x01" + struct.pack("<BI", 2, 2**32 - 1), "above its"),            # oversized: refused before reading
    (b"\x01" + entry(1, b"MZ" + EXIF[2:]), "EXIF is not a TIFF"),
    (b"\x01" + entry(1, b"II*\x00\xff\x00\x00\x00"), "EXIF is not a TIFF"),  # IFD offset past the end
    (b"\x01" + entry(2, icc_profile()[:-1]), "ICC profile is malformed"),
    (b"\x01" + entry(2, b"\x00" * 200), "ICC profile is malformed"),
    (b"\x01" + entry(3, b"\xff\xfe.png"), "not UTF-8"),
    (b"\x01" + entry(3, b"../../etc/passwd"), "not a plain file name"),
    (b"\x01" + entry(3, b"a\x00b"), "not a plain file name"),
    (b"\x01" + entry(3, b""), "empty"),
    (b"\x01" + entry(3, b"n" * 256), "above its 255-byte limit"),
])
def test_forged_metadata_is_refused_in_one_line(block, words):
    with pytest.raises(BitstreamError, match=words) as e:
        unpack(forged(block))
    assert "\n" not in str(e.value) and ("corrupt" in str(e.value) or "truncated" in str(e.value))


def test_a_version_1_stream_never_reads_a_block():
    block = metadata_block(META)
    with pytest.raises(BitstreamError, match="do not match the stream size"):
        unpack(forged(block, version=1))


@settings(max_examples=400, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_random_metadata_blocks_parse_or_are_refused(block):
    try:
        header, sections = unpack(forged(block))
    except BitstreamError as e:
        assert "\n" not in str(e)
    else:
        assert sections == SECTIONS and metadata_block(header.metadata) == block


NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1,
                max_size=60).filter(lambda n: n not in (".", ".."))


@settings(max_examples=200, deadline=None, database=None)
@given(exif_tail=st.binary(max_size=200), icc_body=st.binary(max_size=300), name=NAMES,
       present=st.tuples(st.booleans(), st.booleans(), st.booleans()), data=st.data())
def test_metadata_values_round_trip_and_forged_entries_fail_cleanly(exif_tail, icc_body, name, present, data):
    values = dict(zip(("exif", "icc", "name"), (EXIF + exif_tail, icc_profile(icc_body), name)))
    md = Metadata(**{k: v for k, v, keep in zip(values, values.values(), present) if keep})
    stream = pack(replace(HEADER, metadata=md), SECTIONS)
    assert unpack(stream)[0].metadata == md
    block = metadata_block(md)
    if block:  # rewrite one byte of the block (a forged count, type, length or value), CRC fixed
        i = data.draw(st.integers(0, len(block) - 1))
        altered = block[:i] + bytes([data.draw(st.integers(0, 255))]) + block[i + 1:]
        try:
            header, _ = unpack(forged(altered))
        except BitstreamError as e:
            assert "\n" not in str(e)
        else:
            assert metadata_block(header.metadata) == altered
