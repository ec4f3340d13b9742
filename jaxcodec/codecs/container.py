"""The ``.jxc`` stream: a small self-checking header around a codec's payload.

Every learned codec in jaxcodec writes its entropy-coded bytes inside this
container, so a decoder can tell which model and which entropy tables made a
stream, how large the image is, and whether the bytes arrived intact, before it
touches the payload. All integers are little-endian (``struct`` format ``<``).

==========  ===========  ==========================================================
Size        Type         Field
==========  ===========  ==========================================================
3           bytes        magic ``b"JXC"``
1           u8           format version (1 or 2)
1           u8           ``n``: length of the model name (1..255)
n           UTF-8        model name (e.g. ``"factorized"``)
8           bytes        table hash (:func:`jaxcodec.entropy.coder.table_hash`)
4           u32          image height (1..65536)
4           u32          image width (1..65536)
1           u8           channels (1 or 3)
2           u16          quality (codec-specific operating point)
1           u8           ``r``: latent rank (0..8)
4 * r       u32 each     latent shape, every dimension 1..2**24, product <= 2**28
2           u16          ``e``: length of the extra field
e           bytes        extra (codec-specific side information)
2           u16          version 2 only: tile side, in latent positions (0: one tile)
4           bytes        version 2 only: content check (:func:`content_digest`)
4           u32          ``p``: payload length
p           bytes        payload
4           u32          CRC-32 (zlib/IEEE 802.3) of every byte before it
==========  ===========  ==========================================================

Version 2 adds two fields. The **tile side** says that the codec coded its latent in
square tiles of that many latent positions, each on its own (how the payload is laid
out is the codec's: :mod:`jaxcodec.models.factorized`), so an image of any size is
encoded and decoded with memory for a few tiles. The **content check** is the first 4
bytes of a BLAKE2b digest of every header field before it and of the symbols the
payload decodes to (the codec feeds them to :func:`content_digest`): the CRC-32 at the
end catches damage in transit but is recomputed by any tool that edits the bytes,
whereas the content check holds only when the payload really decodes to the symbols
the encoder coded, for the image size the encoder saw. A decoder that finds other
symbols raises an error instead of showing a different image (the FLAC format keeps an
MD5 of the decoded audio for the same reason). :func:`pack` writes version 1 when the
header has no content check (``check=b""``), so the codecs that do not compute one
write exactly the streams they always wrote, and every version-1 stream still decodes.

:func:`unpack` checks, in order: magic, version, that every length fits in the
bytes present, that nothing follows the CRC, the CRC, and finally that the header
values are sane. Each failure raises :class:`jaxcodec.errors.BitstreamError` with a
one-line message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import struct
import zlib

from jaxcodec.codecs.byte_reader import ByteReader
from jaxcodec.errors import BitstreamError

__all__ = ["FORMAT_VERSION", "MAGIC", "Header", "content_digest", "pack", "peek_header", "unpack"]

MAGIC = b"JXC"
FORMAT_VERSION = 2  # the newest layout; version 1 is the same without tile side and content check
VERSIONS = (1, 2)
CHECK_SIZE = 4
MAX_TILE = 0xFFFF
MAX_IMAGE_SIDE = 1 << 16
MAX_LATENT_RANK = 8
MAX_LATENT_DIM = 1 << 24
MAX_LATENT_SIZE = 1 << 28
_CRC_SIZE = 4


@dataclasses.dataclass(frozen=True)
class Header:
    """What a decoder needs to know before it reads a payload.

    Attributes:
      model: registered model name that produced the stream.
      table_hash: 8-byte hash of the entropy tables the payload was coded with.
      height, width, channels: size of the decoded image (channels 1 or 3).
      latent_shape: shape of the coded latent tensor.
      quality: the codec's operating point (e.g. an index into a lambda ladder).
      extra: codec-specific side information (up to 65535 bytes).
      tile: side of the square tiles the latent was coded in, in latent positions (0:
        one tile; version 2).
      check: the 4-byte content check (:func:`content_digest`), or ``b""`` for a
        version-1 stream, which has none.
    """

    model: str
    table_hash: bytes
    height: int
    width: int
    channels: int
    latent_shape: tuple[int, ...]
    quality: int = 0
    extra: bytes = b""
    tile: int = 0
    check: bytes = b""

    def __post_init__(self) -> None:
        for name in ("height", "width", "channels", "quality", "tile"):
            object.__setattr__(self, name, operator.index(getattr(self, name)))
        object.__setattr__(self, "latent_shape", tuple(operator.index(d) for d in self.latent_shape))
        object.__setattr__(self, "table_hash", bytes(self.table_hash))
        object.__setattr__(self, "extra", bytes(self.extra))
        object.__setattr__(self, "check", bytes(self.check))
        problem = _header_problem(self)
        if problem:
            raise ValueError(problem)


def _header_problem(h: Header) -> str | None:
    """Returns why ``h`` cannot be stored, or None when it is valid."""
    if not isinstance(h.model, str) or not h.model:
        return "model name must be a non-empty string"
    if len(h.model.encode("utf-8")) > 255:
        return "model name is longer than 255 bytes in UTF-8"
    if len(h.table_hash) != 8:
        return f"table hash must be 8 bytes, got {len(h.table_hash)}"
    for name in ("height", "width"):
        value = getattr(h, name)
        if not 1 <= value <= MAX_IMAGE_SIDE:
            return f"image {name} must be in 1..{MAX_IMAGE_SIDE}, got {value}"
    if h.channels not in (1, 3):
        return f"channels must be 1 or 3, got {h.channels}"
    if not 0 <= h.quality <= 0xFFFF:
        return f"quality must be in 0..65535, got {h.quality}"
    if len(h.latent_shape) > MAX_LATENT_RANK:
        return f"latent rank must be at most {MAX_LATENT_RANK}, got {len(h.latent_shape)}"
    size = 1
    for dim in h.latent_shape:
        if not 1 <= dim <= MAX_LATENT_DIM:
            return f"latent dimensions must be in 1..{MAX_LATENT_DIM}, got {h.latent_shape}"
        size *= dim
    if size > MAX_LATENT_SIZE:
        return f"latent shape {h.latent_shape} has more than {MAX_LATENT_SIZE} elements"
    if len(h.extra) > 0xFFFF:
        return f"extra field must be at most 65535 bytes, got {len(h.extra)}"
    if len(h.check) not in (0, CHECK_SIZE):
        return f"content check must be {CHECK_SIZE} bytes (or none), got {len(h.check)}"
    if not 0 <= h.tile <= MAX_TILE:
        return f"tile side must be in 0..{MAX_TILE}, got {h.tile}"
    if h.tile and not h.check:
        return "a tiled stream (version 2) needs a content check"
    return None


def version(h: Header) -> int:
    """The layout :func:`pack` writes ``h`` in: 2 with a content check, else 1."""
    return 2 if h.check else 1


def _header_bytes(h: Header, check: bytes | None = None) -> bytes:
    """The header's bytes; ``check`` replaces the content check (``b""`` leaves it out)."""
    name = h.model.encode("utf-8")
    rank = len(h.latent_shape)
    v = version(h)
    fields = [
        MAGIC,
        struct.pack("<BB", v, len(name)),
        name,
        h.table_hash,
        struct.pack("<IIBHB", h.height, h.width, h.channels, h.quality, rank),
        struct.pack(f"<{rank}I", *h.latent_shape),
        struct.pack("<H", len(h.extra)),
        h.extra,
    ]
    if v == 2:
        fields += [struct.pack("<H", h.tile), h.check if check is None else check]
    return b"".join(fields)


def content_digest(header: Header) -> "hashlib._Hash":
    """The running digest of a version-2 content check, fed with ``header``'s fields.

    The codec then feeds it the symbols its payload codes, as little-endian ``int32`` in
    the order it codes them (each tile's, tile by tile), and the check is the first
    :data:`CHECK_SIZE` bytes of ``digest()``: BLAKE2b (RFC 7693) with a 4-byte digest,
    over the header's bytes up to the check (the version byte set to 2) and then the
    symbols. ``header.check`` itself is not part of it.
    """
    digest = hashlib.blake2b(digest_size=CHECK_SIZE, person=b"jxc-content")
    digest.update(_header_bytes(dataclasses.replace(header, check=b"\0" * CHECK_SIZE), check=b""))
    return digest


def pack(header: Header, payload: bytes) -> bytes:
    """Serialises ``header`` and ``payload`` into one ``.jxc`` stream."""
    if not isinstance(header, Header):
        raise TypeError(f"header must be a Header, got {type(header).__name__}")
    payload = bytes(payload)
    if len(payload) > 0xFFFFFFFF:
        raise ValueError("payload is larger than 4 GiB")
    body = _header_bytes(header) + struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _parse_header(data: bytes) -> tuple[dict, int]:
    """Parses the header fields (without judging their values) and their end offset."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a stream must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:3] != MAGIC[: len(data)] or not data:
        raise BitstreamError("not a jaxcodec stream (bad magic)")
    r = ByteReader(data)
    r.take(3, "magic")
    (v,) = r.unpack("B", "format version")
    if v not in VERSIONS:
        raise BitstreamError(
            f"unsupported .jxc format version {v} (this jaxcodec reads versions "
            f"{', '.join(map(str, VERSIONS))})"
        )
    (name_len,) = r.unpack("B", "model name length")
    name_bytes = r.take(name_len, "model name")
    fields = {"name_bytes": name_bytes, "table_hash": r.take(8, "table hash")}
    height, width, channels, quality, rank = r.unpack("IIBHB", "image size and latent rank")
    fields.update(height=height, width=width, channels=channels, quality=quality)
    if rank > MAX_LATENT_RANK:
        raise BitstreamError(f"invalid header: latent rank {rank} exceeds {MAX_LATENT_RANK}")
    fields["latent_shape"] = r.unpack(f"{rank}I", "latent shape")
    (extra_len,) = r.unpack("H", "extra field length")
    fields["extra"] = r.take(extra_len, "extra field")
    if v == 2:
        (fields["tile"],) = r.unpack("H", "tile side")
        fields["check"] = r.take(CHECK_SIZE, "content check")
    return fields, r.pos


def _make_header(fields: dict) -> Header:
    try:
        model = fields["name_bytes"].decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("invalid header: model name is not UTF-8") from None
    try:
        return Header(
            model=model,
            table_hash=fields["table_hash"],
            height=fields["height"],
            width=fields["width"],
            channels=fields["channels"],
            latent_shape=fields["latent_shape"],
            quality=fields["quality"],
            extra=fields["extra"],
            tile=fields.get("tile", 0),
            check=fields.get("check", b""),
        )
    except ValueError as error:
        raise BitstreamError(f"invalid header: {error}") from None


def peek_header(data: bytes) -> Header:
    """Reads and validates only the header (no CRC check); useful for ``info``."""
    fields, _ = _parse_header(data)
    return _make_header(fields)


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Splits a ``.jxc`` stream into its header and payload, validating everything.

    Raises:
      BitstreamError: bad magic, unknown version, truncated or extended stream, CRC
        mismatch, or insane header values.
    """
    fields, pos = _parse_header(data)
    data = bytes(data)
    if pos + 4 > len(data):
        raise BitstreamError(f"truncated stream: it ends after {len(data)} bytes, inside the payload length")
    (payload_len,) = struct.unpack_from("<I", data, pos)
    pos += 4
    present = len(data) - pos - _CRC_SIZE
    if present < payload_len:
        raise BitstreamError(
            f"truncated stream: header says {payload_len} payload bytes (+4 CRC bytes), "
            f"{max(len(data) - pos, 0)} bytes present"
        )
    if present > payload_len:
        raise BitstreamError(
            f"trailing data: {present - payload_len} bytes after the end of the stream"
        )
    body_end = pos + payload_len
    (crc,) = struct.unpack_from("<I", data, body_end)
    if zlib.crc32(data[:body_end]) != crc:
        raise BitstreamError("CRC mismatch: stream is corrupted")
    return _make_header(fields), data[pos:body_end]
