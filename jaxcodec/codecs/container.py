"""The ``.jxc`` stream: a small self-checking header around a codec's payload.

Every learned codec in jaxcodec writes its entropy-coded bytes inside this
container, so a decoder can tell which model and which entropy tables made a
stream, how large the image is, and whether the bytes arrived intact, before it
touches the payload.

Version 3, the layout :func:`pack` writes, costs 14 to 20 bytes for a small image
(a 28x28 digit: 16), where versions 1 and 2 cost about 50 (0.5 bpp of such a digit).
Numbers are unsigned LEB128 varints (:mod:`jaxcodec.codecs.byte_reader`):

==========  ===========  ==========================================================
Size        Type         Field
==========  ===========  ==========================================================
3           bytes        magic ``b"JXC"``
1           u8           format version 3
1           u8           flags: bit 0 RGB (else grey), bit 1 extra field present,
                         bit 2 tiled, bit 3 content check present, bits 4-7 latent rank
varint      uint         model id (:data:`MODEL_IDS`); 0: a u8 length and the UTF-8
                         name follow (a model the table does not know)
4           bytes        table hash, its first 4 bytes (:func:`jaxcodec.entropy.coder.table_hash`)
varint      uint         image height, then image width (1..65536 each)
varint      uint         quality (codec-specific operating point, 0..65535)
varint      uint each    latent shape (rank dimensions, 1..2**24 each, product <= 2**28)
varint + e  bytes        if flagged: extra (codec-specific side information), its length first
varint      uint         if tiled: tile side, in latent positions
4           bytes        if flagged: content check (:func:`content_digest`)
rest        bytes        payload
2 or 4      bytes        CRC-32 (zlib/IEEE 802.3) of every byte before it, little-endian;
                         its low 2 bytes alone when the whole stream is at most
                         :data:`SHORT_STREAM` bytes long (the decoder knows the length)
==========  ===========  ==========================================================

The model id names the architecture; the zoo resolves the shipped model that wrote the
stream from it and the table hash, as it did from the full name. Versions 1 and 2 (the
earlier layouts, every integer little-endian, ``struct`` format ``<``) still decode:

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

The **tile side** says that the codec coded its latent in square tiles of that many
latent positions, each on its own (how the payload is laid out is the codec's:
:mod:`jaxcodec.codecs.factorized`), so an image of any size is encoded and decoded with
memory for a few tiles. The **content check** is the first 4 bytes of a BLAKE2b digest
of every header field before it and of the symbols the payload decodes to (the codec
feeds them to :func:`content_digest`): the CRC-32 at the end catches damage in transit
but is recomputed by any tool that edits the bytes, whereas the content check holds only
when the payload really decodes to the symbols the encoder coded, for the image size the
encoder saw. A decoder that finds other symbols raises an error instead of showing a
different image (the FLAC format keeps an MD5 of the decoded audio for the same reason).
A header's ``layout`` says which version it is written in (3 unless asked otherwise).

:func:`unpack` checks, in order: magic, version, that every length fits in the
bytes present, that nothing follows the CRC (versions 1 and 2), the CRC, and finally that
the header values are sane. Each failure raises :class:`jaxcodec.errors.BitstreamError` with a
one-line message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import struct
import zlib
from typing import Iterator

import numpy as np

from jaxcodec.codecs.byte_reader import ByteReader, varint
from jaxcodec.errors import BitstreamError

__all__ = ["FORMAT_VERSION", "MAGIC", "MODEL_IDS", "Header", "content_check", "content_digest", "feed_symbols", "crc_bytes", "join_parts", "pack", "peek_header", "split_parts",
           "unpack"]

MAGIC = b"JXC"
FORMAT_VERSION = 3  # the layout pack writes; 1 and 2 are the earlier fixed-width layouts
VERSIONS = (1, 2, 3)
CHECK_SIZE = 4
HASH_SIZE = 8  # a table hash; version 3 writes its first SHORT_HASH_SIZE bytes
SHORT_HASH_SIZE = 4
SHORT_STREAM = 1024  # version-3 streams this long or shorter end with a 2-byte check
#: The architectures a version-3 header names by number (a format constant: never renumber).
MODEL_IDS = {"factorized": 1, "mbt2018_mean": 2, "comrec": 3, "gan": 4, "mnist_conv_ae": 5, "mnist_deep_ae": 6}
_MODEL_NAMES = {i: name for name, i in MODEL_IDS.items()}
_RGB, _EXTRA, _TILED, _CHECKED = 1, 2, 4, 8
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
      check: the 4-byte content check (:func:`content_digest`), or ``b""`` for none.
      layout: the format version the header is written in (3; 1 and 2 are the earlier
        layouts). A version-3 header keeps the first 4 bytes of the table hash: compare
        tables with :meth:`tables_match`.
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
    layout: int | None = None

    def __post_init__(self) -> None:
        if self.layout is None:
            object.__setattr__(self, "layout", FORMAT_VERSION)
        elif self.layout in (1, 2):  # the earlier layouts: version 2 when there is a check
            object.__setattr__(self, "layout", 2 if self.check else 1)
        for name in ("height", "width", "channels", "quality", "tile", "layout"):
            object.__setattr__(self, name, operator.index(getattr(self, name)))
        object.__setattr__(self, "latent_shape", tuple(operator.index(d) for d in self.latent_shape))
        table_hash = bytes(self.table_hash)
        if self.layout == 3 and len(table_hash) == HASH_SIZE:
            table_hash = table_hash[:SHORT_HASH_SIZE]
        object.__setattr__(self, "table_hash", table_hash)
        object.__setattr__(self, "extra", bytes(self.extra))
        object.__setattr__(self, "check", bytes(self.check))
        problem = _header_problem(self)
        if problem:
            raise ValueError(problem)

    def tables_match(self, table_hash: bytes) -> bool:
        """Whether the stream was coded with the tables whose 8-byte hash is ``table_hash``
        (a version-3 header holds its first 4 bytes)."""
        return len(table_hash) == HASH_SIZE and bytes(table_hash).startswith(self.table_hash)


def _header_problem(h: Header) -> str | None:
    """Returns why ``h`` cannot be stored, or None when it is valid."""
    if not isinstance(h.model, str) or not h.model:
        return "model name must be a non-empty string"
    if len(h.model.encode("utf-8")) > 255:
        return "model name is longer than 255 bytes in UTF-8"
    if h.layout not in VERSIONS:
        return f"layout must be one of {', '.join(map(str, VERSIONS))}, got {h.layout}"
    want = SHORT_HASH_SIZE if h.layout == 3 else HASH_SIZE
    if len(h.table_hash) != want:
        return f"table hash must be {want} bytes, got {len(h.table_hash)}"
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
        return "a tiled stream needs a content check"
    return None


def version(h: Header) -> int:
    """The format version :func:`pack` writes ``h`` in (its ``layout``)."""
    return h.layout


def _compact_header_bytes(h: Header, check: bytes | None = None) -> bytes:
    """Version 3's header bytes; ``check`` replaces the content check (``b""`` leaves it out)."""
    flags = (_RGB if h.channels == 3 else 0) | (_EXTRA if h.extra else 0) | (_TILED if h.tile else 0)
    flags |= (_CHECKED if h.check else 0) | len(h.latent_shape) << 4
    model_id = MODEL_IDS.get(h.model, 0)
    fields = [MAGIC, bytes([3, flags]), varint(model_id)]
    if not model_id:
        name = h.model.encode("utf-8")
        fields += [bytes([len(name)]), name]
    fields += [h.table_hash, varint(h.height), varint(h.width), varint(h.quality)]
    fields += [varint(d) for d in h.latent_shape]
    if h.extra:
        fields += [varint(len(h.extra)), h.extra]
    if h.tile:
        fields.append(varint(h.tile))
    fields.append(h.check if check is None else check)
    return b"".join(fields)


def _header_bytes(h: Header, check: bytes | None = None) -> bytes:
    """The header's bytes; ``check`` replaces the content check (``b""`` leaves it out)."""
    if h.layout == 3:
        return _compact_header_bytes(h, check)
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
    over the header's bytes up to the check (in the header's layout, with the flag or
    version that says a check is present) and then the symbols. ``header.check`` itself
    is not part of it.
    """
    digest = hashlib.blake2b(digest_size=CHECK_SIZE, person=b"jxc-content")
    digest.update(_header_bytes(dataclasses.replace(header, check=b"\0" * CHECK_SIZE), check=b""))
    return digest


#: Symbols fed to a content digest at a time (:func:`feed_symbols`): a bounded int32 copy.
_FEED_ELEMENTS = 1 << 22


def feed_symbols(digest: "hashlib._Hash", symbols: np.ndarray) -> None:
    """Feeds integer ``symbols`` to a running :func:`content_digest` as little-endian
    ``int32`` in C order, a band of the first axis at a time (the digest is that of the
    whole array's bytes; no int32 copy of a large array is made)."""
    symbols = np.asarray(symbols)
    if symbols.ndim == 0 or symbols.size <= _FEED_ELEMENTS:
        digest.update(np.ascontiguousarray(symbols).astype("<i4").tobytes())
        return
    band = max(1, _FEED_ELEMENTS // max(1, symbols.size // symbols.shape[0]))
    for start in range(0, symbols.shape[0], band):
        digest.update(np.ascontiguousarray(symbols[start : start + band]).astype("<i4").tobytes())


def content_check(header: Header, *symbols: np.ndarray) -> bytes:
    """The content check of ``header`` over the arrays ``symbols``, fed in order
    (:func:`content_digest`, :func:`feed_symbols`)."""
    digest = content_digest(header)
    for part in symbols:
        feed_symbols(digest, part)
    return digest.digest()


def join_parts(parts: list[bytes]) -> bytes:
    """Coded parts (a tiled stream's tiles) as one run of bytes: each but the last preceded by
    its length (u32, little-endian), the last running to the end."""
    return b"".join([len(part).to_bytes(4, "little") + part for part in parts[:-1]] + parts[-1:])


def split_parts(data: bytes, count: int, what: str) -> Iterator[bytes]:
    """Inverts :func:`join_parts` for ``count`` parts, one at a time (so a caller checks each
    part before the next length is read); :class:`BitstreamError` naming ``what`` when the
    lengths do not fit ``data``."""
    if len(data) < 4 * (count - 1):
        raise BitstreamError(f"{what}: truncated payload: {count} tiles need "
                             f"{4 * (count - 1)} bytes of lengths, the payload has {len(data)}")
    pos = 0
    for i in range(count - 1):
        size = int.from_bytes(data[pos : pos + 4], "little")
        if pos + 4 + size > len(data):
            raise BitstreamError(f"{what}: truncated payload: tile {i + 1} of {count} "
                                 f"says {size} bytes, {len(data) - pos - 4} are left")
        yield data[pos + 4 : pos + 4 + size]
        pos += 4 + size
    yield data[pos:]


def pack(header: Header, payload: bytes) -> bytes:
    """Serialises ``header`` and ``payload`` into one ``.jxc`` stream."""
    if not isinstance(header, Header):
        raise TypeError(f"header must be a Header, got {type(header).__name__}")
    payload = bytes(payload)
    if len(payload) > 0xFFFFFFFF:
        raise ValueError("payload is larger than 4 GiB")
    if header.layout == 3:
        body = _header_bytes(header) + payload
        return body + struct.pack("<I", zlib.crc32(body))[: _check_size(len(body) + 2)]
    body = _header_bytes(header) + struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _check_size(stream_length: int) -> int:
    """Bytes of CRC-32 that end a version-3 stream of ``stream_length`` bytes."""
    return 2 if stream_length <= SHORT_STREAM else 4


def crc_bytes(data: bytes) -> int:
    """How many bytes of CRC-32 end the stream ``data`` (its version byte and length say)."""
    return _check_size(len(data)) if len(data) > 3 and data[3] == 3 else _CRC_SIZE


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
    if v == 3:
        return _parse_compact_header(r)
    (name_len,) = r.unpack("B", "model name length")
    name_bytes = r.take(name_len, "model name")
    fields = {"name_bytes": name_bytes, "table_hash": r.take(HASH_SIZE, "table hash"), "layout": v}
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


def _parse_compact_header(r: ByteReader) -> tuple[dict, int]:
    """Version 3's fields, after the version byte."""
    (flags,) = r.unpack("B", "flags")
    rank = flags >> 4
    if rank > MAX_LATENT_RANK:
        raise BitstreamError(f"invalid header: latent rank {rank} exceeds {MAX_LATENT_RANK}")
    model_id = r.varint("model id")
    if model_id:
        if model_id not in _MODEL_NAMES:
            raise BitstreamError(f"invalid header: unknown model id {model_id}")
        name_bytes = _MODEL_NAMES[model_id].encode()
    else:
        (name_len,) = r.unpack("B", "model name length")
        name_bytes = r.take(name_len, "model name")
    fields = {"name_bytes": name_bytes, "table_hash": r.take(SHORT_HASH_SIZE, "table hash"), "layout": 3,
              "channels": 3 if flags & _RGB else 1}
    fields.update(height=r.varint("image height"), width=r.varint("image width"), quality=r.varint("quality"))
    fields["latent_shape"] = tuple(r.varint("latent shape") for _ in range(rank))
    fields["extra"] = r.take(r.varint("extra field length"), "extra field") if flags & _EXTRA else b""
    fields["tile"] = r.varint("tile side") if flags & _TILED else 0
    if flags & _TILED and not fields["tile"]:
        raise BitstreamError("invalid header: a tiled stream with tile side 0")
    fields["check"] = r.take(CHECK_SIZE, "content check") if flags & _CHECKED else b""
    if flags & _EXTRA and not fields["extra"]:
        raise BitstreamError("invalid header: an empty extra field that is flagged present")
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
            layout=fields["layout"],
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
    if fields["layout"] == 3:
        return _unpack_compact(fields, pos, data)
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


def _unpack_compact(fields: dict, pos: int, data: bytes) -> tuple[Header, bytes]:
    """A version-3 stream's header and payload: the payload runs to the CRC."""
    size = _check_size(len(data))
    if pos + size > len(data):
        raise BitstreamError(f"truncated stream: it ends after {len(data)} bytes, inside the header or its CRC")
    body_end = len(data) - size
    if struct.pack("<I", zlib.crc32(data[:body_end]))[:size] != data[body_end:]:
        raise BitstreamError("CRC mismatch: stream is corrupted or truncated")
    return _make_header(fields), data[pos:body_end]
