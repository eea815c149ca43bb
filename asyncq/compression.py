"""Message compression: ``App(compression="zlib")`` or ``"zstd"``.

A compressed envelope is flagged by its first two bytes, ``0xC1`` (a byte msgpack
never uses, so no plain envelope starts with it) and the algorithm's id (``z`` zlib,
``s`` zstd), followed by the compressed msgpack body. With signing on the compressed
bytes are what is signed. Any worker decodes compressed messages, whether or not its
own App compresses; a ``zstd`` message needs the ``zstandard`` package
(``pip install 'asyncq[zstd]'``) where it is decoded.

Decompression stops one byte past the App's ``max_message_size``: a small message
that would expand beyond it (a compression bomb) is refused with
:class:`~asyncq.errors.MessageTooLarge`, which dead-letters it.

Envelopes under :data:`MIN_SIZE` bytes go uncompressed (compressing them costs more
than it saves), and so does any envelope that compression would not make smaller.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

from asyncq.errors import ConfigurationError, DecodeError, MessageTooLarge

__all__ = ["MARKER", "MIN_SIZE", "Compressor", "decompress", "head"]

#: The first byte of every compressed envelope (msgpack's "never used" byte).
MARKER: Final = b"\xc1"
#: Envelopes shorter than this are sent as they are.
MIN_SIZE: Final = 1024

_ZLIB: Final = b"z"
_ZSTD: Final = b"s"
_CHUNK: Final = 64 * 1024


class Compressor:
    """Compresses envelopes with one algorithm (``"zlib"`` or ``"zstd"``)."""

    def __init__(self, name: str, *, level: int | None = None) -> None:
        if name == "zlib":
            self._id, self._level = _ZLIB, 6 if level is None else level
        elif name == "zstd":
            _zstd()  # refuse now, not at the first message, when it is not installed
            self._id, self._level = _ZSTD, 3 if level is None else level
        else:
            raise ConfigurationError(
                f"compression must be 'zlib' or 'zstd', not {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"<Compressor {self.name} level={self._level}>"

    def compress(self, body: bytes) -> bytes:
        """The flagged, compressed envelope; ``body`` itself when that is not smaller."""
        if len(body) < MIN_SIZE:
            return body
        if self._id == _ZLIB:
            packed = zlib.compress(body, self._level)
        else:
            packed = _zstd().ZstdCompressor(level=self._level).compress(body)
        return MARKER + self._id + packed if len(packed) + 2 < len(body) else body


def decompress(data: bytes, limit: int) -> bytes:
    """The envelope inside a flagged message; :class:`MessageTooLarge` past ``limit``."""
    body = _inflate(data, limit + 1)
    if len(body) > limit:
        raise MessageTooLarge(f"compressed message expands beyond the {limit} byte limit")
    return body


def head(data: bytes, size: int) -> bytes:
    """At most the first ``size`` bytes inside a flagged message (to read its id);
    empty when it cannot be decompressed."""
    try:
        return _inflate(data, size)
    except DecodeError:
        return b""


def _inflate(data: bytes, most: int) -> bytes:
    """Up to ``most`` decompressed bytes; a truncated or corrupt stream is a DecodeError
    unless ``most`` bytes were produced before the damage."""
    if not data.startswith(MARKER) or len(data) < 2:
        raise DecodeError("not a compressed asyncq message")
    kind, payload = data[1:2], data[2:]
    if kind == _ZLIB:
        return _inflate_zlib(payload, most)
    if kind == _ZSTD:
        return _inflate_zstd(payload, most)
    raise DecodeError(f"unknown compression id {kind!r}")


def _inflate_zlib(payload: bytes, most: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, most)
    except zlib.error as exc:
        raise DecodeError(f"corrupt zlib message: {exc}") from None
    if len(out) < most and not inflater.eof:
        raise DecodeError("truncated zlib message")
    return out


def _inflate_zstd(payload: bytes, most: int) -> bytes:
    zstd = _zstd(decoding=True)
    chunks: list[bytes] = []
    got = 0
    try:
        with zstd.ZstdDecompressor().stream_reader(payload) as reader:
            while got < most:
                chunk = reader.read(min(_CHUNK, most - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
    except zstd.ZstdError as exc:
        raise DecodeError(f"corrupt zstd message: {exc}") from None
    return b"".join(chunks)


def _zstd(*, decoding: bool = False) -> Any:
    try:
        import zstandard
    except ImportError:
        hint = "install it with: pip install 'asyncq[zstd]'"
        if decoding:
            raise DecodeError(f"zstd-compressed message, but zstandard is missing; {hint}"
                              ) from None
        raise ConfigurationError(f"compression='zstd' needs the zstandard package; {hint}"
                                 ) from None
    return zstandard
