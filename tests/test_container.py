"""Tests for jaxcodec.codecs.container: the .jxc layouts, round trips, and corrupt streams."""

import dataclasses
import hashlib
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxcodec.codecs import container
from jaxcodec.codecs.container import Header, pack, peek_header, unpack
from jaxcodec.errors import BitstreamError


def crc32_reference(data: bytes) -> int:
    """Bitwise CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), independent of zlib."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


HEADER = Header(
    model="factorized",
    table_hash=bytes(range(8)),
    height=512,
    width=768,
    channels=3,
    latent_shape=(32, 48, 192),
    quality=4,
    extra=b"\x01\x02",
    layout=1,
)
PAYLOAD = bytes(range(200)) * 3
STREAM = pack(HEADER, PAYLOAD)


def test_layout_matches_documented_table():
    body = (
        b"JXC"
        + bytes([1, len(b"factorized")])
        + b"factorized"
        + bytes(range(8))
        + struct.pack("<IIBH", 512, 768, 3, 4)
        + bytes([3])
        + struct.pack("<3I", 32, 48, 192)
        + struct.pack("<H", 2)
        + b"\x01\x02"
        + struct.pack("<I", len(PAYLOAD))
        + PAYLOAD
    )
    assert crc32_reference(b"123456789") == 0xCBF43926  # the standard check value
    assert STREAM == body + struct.pack("<I", crc32_reference(body))
    assert unpack(STREAM) == (HEADER, PAYLOAD)
    assert peek_header(STREAM) == HEADER


TILED = dataclasses.replace(HEADER, tile=64, check=b"\xa1\xb2\xc3\xd4")
TILED_STREAM = pack(TILED, PAYLOAD)


def test_version_2_layout_adds_tile_side_and_content_check():
    """A header with a content check is written as version 2: the version-1 layout with
    the tile side (u16) and the 4-byte check after the extra field."""
    v1_body = STREAM[:-4 - len(PAYLOAD) - 4]  # up to the payload length
    body = (b"JXC\x02" + v1_body[4:] + struct.pack("<H", 64) + b"\xa1\xb2\xc3\xd4"
            + struct.pack("<I", len(PAYLOAD)) + PAYLOAD)
    assert TILED_STREAM == body + struct.pack("<I", crc32_reference(body))
    assert unpack(TILED_STREAM) == (TILED, PAYLOAD)
    assert container.version(TILED) == 2 and container.version(HEADER) == 1
    assert STREAM[3] == 1  # no check: exactly the version-1 bytes
    assert peek_header(TILED_STREAM) == TILED


@pytest.mark.parametrize("shape", [(0,), (5,), (7, 3, 2), (64, 9, 4)])
def test_content_check_feeds_symbols_as_little_endian_int32_in_bands(monkeypatch, shape):
    """content_check(header, a, b) is the digest of the header and then the arrays' C-order
    little-endian int32 bytes (built here with struct), whether the arrays are fed whole or,
    past the feed limit, a band of rows at a time."""
    rng = np.random.default_rng(3)
    a = rng.integers(-(2**31), 2**31, shape, dtype=np.int64).astype(np.int32)
    b = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    raw = b"".join(struct.pack("<i", int(v)) for v in list(a.reshape(-1)) + list(b.reshape(-1).astype(int)))
    expected = container.content_digest(TILED)
    expected.update(raw)
    assert container.content_check(TILED, a, b) == expected.digest()
    monkeypatch.setattr(container, "_FEED_ELEMENTS", 13)  # bands of one or two rows, the last one short
    assert container.content_check(TILED, a, b) == expected.digest()
    if a.size:
        assert container.content_check(TILED, b, a) != expected.digest()


def test_content_digest_covers_every_header_field_but_the_check():
    """The check is BLAKE2b (4-byte digest) over the header's bytes up to the check and
    then what the codec feeds it; changing any field changes it, the check itself does not."""
    def check(header, symbols=b"\x01\x00\x00\x00"):
        digest = container.content_digest(header)
        digest.update(symbols)
        return digest.digest()

    base = check(TILED)
    assert len(base) == 4 and check(dataclasses.replace(TILED, check=b"zzzz")) == base
    expected = hashlib.blake2b(TILED_STREAM[: TILED_STREAM.index(b"\xa1\xb2\xc3\xd4")] + b"\x01\x00\x00\x00",
                               digest_size=4, person=b"jxc-content").digest()
    assert base == expected
    for change in (dict(height=511), dict(width=769), dict(channels=1), dict(quality=5), dict(tile=32),
                   dict(latent_shape=(32, 48, 191)), dict(extra=b"\x01\x03"), dict(model="factorizes"),
                   dict(table_hash=bytes(range(1, 9)))):
        assert check(dataclasses.replace(TILED, **change)) != base, change
    assert check(TILED, b"\x02\x00\x00\x00") != base


@pytest.mark.parametrize("changes, message", [
    (dict(check=b"abc"), "content check must be 4 bytes"),
    (dict(tile=65536, check=b"abcd"), "tile side must be in"),
    (dict(tile=64), "needs a content check"),
])
def test_version_2_fields_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(HEADER, **changes)


headers = st.builds(
    Header,
    model=st.text(min_size=1, max_size=60),
    table_hash=st.binary(min_size=8, max_size=8),
    height=st.integers(1, container.MAX_IMAGE_SIDE),
    width=st.integers(1, container.MAX_IMAGE_SIDE),
    channels=st.sampled_from([1, 3]),
    latent_shape=st.lists(st.integers(1, 64), max_size=4).map(tuple)
    | st.lists(st.integers(1, container.MAX_LATENT_DIM), max_size=1).map(tuple),
    quality=st.integers(0, 0xFFFF),
    extra=st.binary(max_size=300),
    tile=st.integers(0, container.MAX_TILE),
    check=st.binary(min_size=4, max_size=4),
    layout=st.sampled_from([1, 3]),
) | st.builds(
    Header,
    model=st.text(min_size=1, max_size=60),
    table_hash=st.binary(min_size=8, max_size=8),
    height=st.integers(1, 64),
    width=st.integers(1, 64),
    channels=st.sampled_from([1, 3]),
    latent_shape=st.lists(st.integers(1, 64), max_size=4).map(tuple),
    layout=st.sampled_from([1, 3]),
)


@settings(max_examples=200, deadline=None)
@given(header=headers, payload=st.binary(max_size=2000))
def test_pack_unpack_round_trip(header, payload):
    data = pack(header, payload)
    got_header, got_payload = unpack(data)
    assert got_header == header and got_payload == payload
    assert isinstance(got_header.latent_shape, tuple)
    assert peek_header(data) == header


def _mutate(data: bytes, kind: str, position: int, blob: bytes) -> bytes:
    out = bytearray(data)
    i = position % len(out)
    if kind == "truncate":
        return bytes(out[:i])
    if kind == "extend":
        return bytes(out) + (blob or b"\x00")
    if kind == "flip":
        out[i] ^= 1 << (position // len(out) % 8)
        return bytes(out)
    if kind == "set":
        out[i] = blob[0] if blob else 0
        return bytes(out)
    if kind == "insert":
        return bytes(out[:i]) + (blob or b"\x00") + bytes(out[i:])
    if kind == "delete":
        return bytes(out[:i]) + bytes(out[i + 1 :])
    if kind == "magic_then_random":
        return b"JXC" + bytes([1 + position % 3]) + blob
    return blob  # random bytes


# Deterministic examples: a short version-3 stream ends with a 16-bit check, which a random
# edit passes with probability 2**-16 (the module docstring); the examples here do not.
@settings(
    max_examples=2000,
    deadline=2000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    source=st.sampled_from(
        [
            STREAM,
            pack(Header("m", b"\0" * 8, 1, 1, 1, (), layout=1), b""),
            pack(Header("ae-ü", b"\xff" * 8, 28, 28, 1, (8,), 7, layout=1), b"\x00\x01\x02"),
            TILED_STREAM,
            pack(dataclasses.replace(HEADER, layout=3), PAYLOAD),
            pack(dataclasses.replace(TILED, layout=3), PAYLOAD),
            pack(Header("mnist_conv_ae", b"\xff" * 8, 28, 28, 1, (28,), 2), b"\x00\x01\x02\x03"),
            pack(Header("ae-ü", b"\x01" * 8, 1, 1, 1, ()), b""),
        ]
    ),
    kind=st.sampled_from(
        ["truncate", "extend", "flip", "set", "insert", "delete", "magic_then_random", "random"]
    ),
    position=st.integers(0, 10**6),
    blob=st.binary(max_size=64),
)
def test_mutated_streams_raise_only_bitstream_error(source, kind, position, blob):
    mutated = _mutate(source, kind, position, blob)
    if mutated == source:
        assert unpack(mutated)[0] == unpack(source)[0]
        return
    with pytest.raises(BitstreamError) as info:
        unpack(mutated)
    assert "\n" not in str(info.value) and str(info.value)
    try:  # peek_header may accept a damaged payload but never raises anything else
        peek_header(mutated)
    except BitstreamError:
        pass


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "bad magic"),
        (b"PNG\x01rest", "bad magic"),
        (b"JX", "truncated stream"),
        (b"JXC\x04" + STREAM[4:], "unsupported .jxc format version 4"),
        (b"JXC\x00" + STREAM[4:], "unsupported .jxc format version 0"),
        (STREAM[:20], "truncated stream"),
        (STREAM[:-10], f"header says {len(PAYLOAD)} payload bytes"),
        (STREAM + b"\x00", "trailing data: 1 bytes"),
        (STREAM[:-1] + bytes([STREAM[-1] ^ 0x80]), "CRC mismatch: stream is corrupted"),
        (STREAM[:100] + bytes([STREAM[100] ^ 1]) + STREAM[101:], "CRC mismatch"),
    ],
)
def test_error_messages_say_what_is_wrong(data, message):
    with pytest.raises(BitstreamError) as info:
        unpack(data)
    assert message in str(info.value)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", crc32_reference(body))


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(channels=2), "channels must be 1 or 3"),
        (dict(height=0), "height must be in"),
        (dict(width=container.MAX_IMAGE_SIDE + 1), "width must be in"),
        (dict(shape=(0, 4)), "latent dimensions"),
        (dict(shape=(2**14, 2**14, 2)), "more than"),
        (dict(name=b"\xff\xfe"), "not UTF-8"),
        (dict(name=b""), "non-empty"),
        (dict(shape=(1,) * 9), "latent rank 9"),
    ],
)
def test_insane_header_values_are_rejected_even_with_a_valid_crc(fields, message):
    name = fields.get("name", b"m")
    shape = fields.get("shape", (4,))
    body = (
        b"JXC\x01"
        + bytes([len(name)])
        + name
        + b"\0" * 8
        + struct.pack("<II", fields.get("height", 8), fields.get("width", 8))
        + struct.pack("<BHB", fields.get("channels", 1), 0, len(shape))
        + struct.pack(f"<{len(shape)}I", *shape)
        + struct.pack("<HI", 0, 0)
    )
    with pytest.raises(BitstreamError) as info:
        unpack(_with_crc(body))
    assert message in str(info.value)


def test_peek_header_reads_a_stream_with_a_damaged_payload():
    damaged = bytearray(STREAM)
    damaged[-20] ^= 0xFF
    assert peek_header(bytes(damaged)) == HEADER
    with pytest.raises(BitstreamError, match="CRC mismatch"):
        unpack(bytes(damaged))


@pytest.mark.parametrize(
    "changes",
    [
        dict(channels=2),
        dict(height=0),
        dict(width=2**16 + 1),
        dict(table_hash=b"short"),
        dict(model=""),
        dict(model="x" * 256),
        dict(latent_shape=(1,) * 9),
        dict(latent_shape=(0,)),
        dict(quality=-1),
        dict(quality=2**16),
        dict(extra=b"\0" * 65536),
    ],
)
def test_header_rejects_values_the_layout_cannot_hold(changes):
    fields = dict(
        model="m", table_hash=b"\0" * 8, height=1, width=1, channels=1, latent_shape=(), quality=0, extra=b"",
        layout=1,
    )
    fields.update(changes)
    with pytest.raises(ValueError):
        Header(**fields)


def test_header_is_frozen_and_normalises_types():
    header = Header("m", bytearray(8), np.int64(5), 6, 3, [np.int32(2), 3])
    assert header.latent_shape == (2, 3) and type(header.height) is int
    assert isinstance(header.table_hash, bytes)
    with pytest.raises(AttributeError):
        header.height = 7  # type: ignore[misc]


# ---------------------------------------------------------------------------- version 3

DIGIT = Header("mnist_conv_ae", bytes(range(8)), 28, 28, 1, (28,), quality=2)


def _varint_reference(value: int) -> bytes:
    """LEB128, written out independently of the codec's helper."""
    out = []
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + [value])


def test_version_3_is_what_pack_writes_and_matches_its_documented_table():
    assert DIGIT.layout == container.FORMAT_VERSION == 3
    payload = b"\x10\x20\x30\x40\x50\x60\x70\x80"
    body = (b"JXC\x03" + bytes([1 << 4])  # grey, no extra, not tiled, no check, rank 1
            + _varint_reference(container.MODEL_IDS["mnist_conv_ae"]) + bytes(range(4))
            + _varint_reference(28) * 2 + _varint_reference(2) + _varint_reference(28) + payload)
    stream = pack(DIGIT, payload)
    assert stream == body + struct.pack("<I", crc32_reference(body))[:2]
    assert len(stream) - len(payload) == 16  # the whole overhead of a digit's stream
    assert unpack(stream) == (DIGIT, payload)


def test_version_3_writes_every_optional_field_and_an_unknown_model_by_name():
    header = Header("my-model", bytes(range(8)), 512, 768, 3, (32, 48, 192), quality=3500,
                    extra=b"\x01\x02", tile=16, check=b"\xa1\xb2\xc3\xd4")
    payload = bytes(range(256)) * 5
    body = (b"JXC\x03" + bytes([1 | 2 | 4 | 8 | 3 << 4]) + b"\x00" + bytes([8]) + b"my-model" + bytes(range(4))
            + b"".join(_varint_reference(v) for v in (512, 768, 3500, 32, 48, 192, 2)) + b"\x01\x02"
            + _varint_reference(16) + b"\xa1\xb2\xc3\xd4" + payload)
    stream = pack(header, payload)
    assert len(stream) > container.SHORT_STREAM
    assert stream == body + struct.pack("<I", crc32_reference(body))  # a long stream: all 4 bytes
    assert unpack(stream) == (header, payload) and peek_header(stream) == header


@pytest.mark.parametrize("payload_size", range(990, 1010))
def test_version_3_check_is_two_bytes_up_to_the_short_stream_length(payload_size):
    stream = pack(DIGIT, bytes(payload_size))
    body_size = 14 + payload_size
    assert len(stream) == body_size + (2 if body_size + 2 <= container.SHORT_STREAM else 4)
    assert unpack(stream)[1] == bytes(payload_size)


def test_version_3_keeps_the_table_hash_prefix_and_matches_tables_by_it():
    assert DIGIT.table_hash == bytes(range(4))
    assert DIGIT.tables_match(bytes(range(8))) and not DIGIT.tables_match(bytes(range(1, 9)))
    assert not DIGIT.tables_match(bytes(range(4)))  # a full 8-byte hash is what it is matched against
    assert HEADER.tables_match(bytes(range(8))) and not HEADER.tables_match(bytes(range(7)) + b"x")


@pytest.mark.parametrize("data, message", [
    (b"JXC\x03\x10\x07" + bytes(8), "unknown model id 7"),
    (b"JXC\x03\x90\x01" + bytes(8), "latent rank 9"),
    (b"JXC\x03\x14\x05" + bytes(4) + b"\x1c\x1c\x02\x1c\x00" + bytes(6), "tile side 0"),
    (b"JXC\x03\x12\x05" + bytes(4) + b"\x1c\x1c\x02\x1c\x00" + bytes(6), "empty extra field"),
    (b"JXC\x03\x10\x05" + bytes(4) + b"\x1c\x1c\x02" + b"\xff" * 6, "malformed latent shape"),
    (b"JXC\x03\x10\x05\x00", "truncated stream"),
])
def test_version_3_header_errors(data, message):
    body = data
    with pytest.raises(BitstreamError, match=message):
        unpack(body + struct.pack("<I", crc32_reference(body))[:2])


def test_version_3_damaged_check_or_payload_is_an_error():
    stream = pack(DIGIT, b"\x01\x02\x03\x04")
    for i in range(len(stream)):
        damaged = bytearray(stream)
        damaged[i] ^= 0x10
        with pytest.raises(BitstreamError):
            unpack(bytes(damaged))
    with pytest.raises(BitstreamError, match="CRC mismatch"):
        unpack(stream + b"\x00")
