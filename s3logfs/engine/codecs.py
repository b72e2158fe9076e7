"""Codecs: turn stored bytes into log text, chunk by chunk.

Detection goes by magic bytes, never by the key's extension. gzip decoding loops over
every member: CloudWatch-Logs-via-Firehose objects are many gzip members back to back,
and a decoder that stops after the first one (s3tail's and httpx's bug) silently drops
most of the data.

Decoders are streaming: ``decode(chunk)`` returns what that chunk yields, ``flush()``
returns the rest and raises :class:`CodecError` on a truncated or corrupt input.

:func:`object_decoder` builds the whole chain for one object: decompression, then, with
``--records``, the record decoder of :mod:`s3logfs.engine.records` on the decompressed text.
"""

from __future__ import annotations

import types
import zlib
from collections.abc import Iterable, Iterator
from typing import Protocol

from ..errors import CodecError
from .records import NONE, record_decoder

_zlib: types.ModuleType
try:  # isal (a dependency on x86_64 and aarch64) inflates AWS logs about 2.7x faster than zlib
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - other machines
    _zlib = zlib

GZIP_MAGIC = b"\x1f\x8b"
GZIP = "gzip"
PLAIN = "plain"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _zlib.error)
"""isal raises its own ``IsalError``, which is not a ``zlib.error``."""


class Decoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def detect(head: bytes) -> str:
    """The encoding that the first bytes of an object show."""
    return GZIP if head[:2] == GZIP_MAGIC else PLAIN


class PlainDecoder:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class GzipDecoder:
    """Decode every member of a (possibly multi-member) gzip stream."""

    def __init__(self) -> None:
        self._inflater = _zlib.decompressobj(_GZIP_WBITS)
        self._in_member = False
        self._members_done = 0
        self._in_padding = False
        self._pending = b""

    def decode(self, data: bytes) -> bytes:
        out: list[bytes] = []
        data = self._pending + data
        self._pending = b""
        while data:
            if self._in_padding:
                if data.strip(b"\0"):
                    raise CodecError("corrupt gzip: unexpected bytes after the zero padding")
                break
            if not self._in_member:
                if self._members_done and data[:1] == b"\0":
                    self._in_padding = True  # zero padding after the last member, as some writers leave
                    continue
                if len(data) < 2:
                    self._pending = data
                    break
                if data[:2] != GZIP_MAGIC:
                    raise CodecError("corrupt gzip: unexpected bytes after a member")
                self._in_member = True
            try:
                out.append(self._inflater.decompress(data))
            except _INFLATE_ERRORS as error:
                raise CodecError(f"corrupt gzip: {error}") from error
            if not self._inflater.eof:
                break
            data = self._inflater.unused_data
            self._inflater = _zlib.decompressobj(_GZIP_WBITS)
            self._in_member = False
            self._members_done += 1
        return b"".join(out)

    def flush(self) -> bytes:
        if self._in_member or self._pending:
            raise CodecError("corrupt gzip: the data ends inside a member")
        return b""


class AutoDecoder:
    """Pick the decoder from the first bytes it sees."""

    def __init__(self) -> None:
        self._head = b""
        self._decoder: Decoder | None = None
        self.encoding: str | None = None

    def decode(self, data: bytes) -> bytes:
        if self._decoder is None:
            self._head += data
            if len(self._head) < len(GZIP_MAGIC):
                return b""
            data, self._head = self._head, b""
            self._choose(data)
        assert self._decoder is not None
        return self._decoder.decode(data)

    def flush(self) -> bytes:
        if self._decoder is None:
            head, self._head = self._head, b""
            self._choose(head)
            assert self._decoder is not None
            return self._decoder.decode(head) + self._decoder.flush()
        return self._decoder.flush()

    def _choose(self, head: bytes) -> None:
        self.encoding = detect(head)
        self._decoder = GzipDecoder() if self.encoding == GZIP else PlainDecoder()


class RecordChain:
    """Decompress, then turn the text into records (``--records``)."""

    def __init__(self, decompress: AutoDecoder, records: Decoder) -> None:
        self._decompress = decompress
        self._records = records

    @property
    def encoding(self) -> str | None:
        """The stored encoding (gzip or plain), as the cache records it."""
        return self._decompress.encoding

    @property
    def unparsed(self) -> int:
        """Records passed through because they could not be parsed."""
        return int(getattr(self._records, "unparsed", 0))

    def decode(self, data: bytes) -> bytes:
        return self._records.decode(self._decompress.decode(data))

    def flush(self) -> bytes:
        return self._records.decode(self._decompress.flush()) + self._records.flush()


def object_decoder(decode: bool = True, records: str = NONE) -> Decoder:
    """A fresh decoder for one object: stored bytes as they are, decompressed, or as records."""
    if not decode:
        return PlainDecoder()
    if records == NONE:
        return AutoDecoder()
    return RecordChain(AutoDecoder(), record_decoder(records))


def decode_chunks(chunks: Iterable[bytes], decoder: Decoder | None = None) -> Iterator[bytes]:
    """Decode a stream of stored chunks into a stream of text chunks."""
    decoder = decoder or AutoDecoder()
    for chunk in chunks:
        out = decoder.decode(chunk)
        if out:
            yield out
    tail = decoder.flush()
    if tail:
        yield tail


def gzip_isize(trailer: bytes) -> int:
    """The size that a gzip trailer's last 4 bytes (ISIZE) give, little-endian."""
    if len(trailer) < 4:
        raise CodecError("gzip trailer shorter than 4 bytes")
    return int.from_bytes(trailer[-4:], "little")
