"""Message compression in the wire codec: flagged, signed inside, bounded on decode."""

from __future__ import annotations

import zlib

import pytest

import asyncq
from asyncq import compression
from asyncq.compression import MARKER, Compressor
from asyncq.signing import Signer
from asyncq.wire import WireCodec

BIG = ["x" * 5000, list(range(500))]


def _encode(wire: WireCodec, args: list[object], msg_id: str = "id-1") -> bytes:
    return wire.encode(msg_id, "t", args, {}, {}, {})


@pytest.mark.parametrize("name", ["zlib", "zstd"])
def test_big_envelopes_are_compressed_flagged_and_decoded_by_any_codec(name: str) -> None:
    wire = WireCodec(compressor=Compressor(name))
    body = _encode(wire, BIG)
    plain = _encode(WireCodec(), BIG)
    assert body.startswith(MARKER)
    assert len(body) < len(plain) / 4
    for reader in (wire, WireCodec(), WireCodec(compressor=Compressor("zlib"))):
        message = reader.decode(body)
        assert (message.id, message.args) == ("id-1", BIG)


def test_small_envelopes_go_as_packed() -> None:
    wire = WireCodec(compressor=Compressor("zlib"))
    body = _encode(wire, [1, 2])
    assert body == _encode(WireCodec(), [1, 2])
    assert wire.fits_plain(b"x" * (compression.MIN_SIZE - 1))
    assert not wire.fits_plain(b"x" * compression.MIN_SIZE)


def test_compressed_bytes_are_what_is_signed() -> None:
    signer = Signer({"k1": b"s" * 32}, "k1")
    wire = WireCodec(signer=signer, compressor=Compressor("zstd"))
    body = _encode(wire, BIG)
    assert body.startswith(b"AQS2")
    assert len(body) < 2000
    assert WireCodec(signer=signer).decode(body).args == BIG
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(asyncq.SignatureError):
        WireCodec(signer=signer).decode(tampered)


@pytest.mark.parametrize("name", ["zlib", "zstd"])
def test_a_compression_bomb_is_refused_within_the_size_limit(name: str) -> None:
    bomb_body = b"\x00" * (50 * 1024 * 1024)
    if name == "zlib":
        bomb = MARKER + b"z" + zlib.compress(bomb_body, 9)
    else:
        import zstandard

        bomb = MARKER + b"s" + zstandard.ZstdCompressor(level=3).compress(bomb_body)
    assert len(bomb) < 100_000
    with pytest.raises(asyncq.MessageTooLarge, match="expands beyond"):
        WireCodec().decode(bomb)


def test_damaged_compressed_messages_are_decode_errors() -> None:
    body = _encode(WireCodec(compressor=Compressor("zlib")), BIG)
    for bad in (body[:40], MARKER + b"q" + body[2:], MARKER, body[:2] + b"junk" * 10):
        with pytest.raises(asyncq.DecodeError):
            WireCodec().decode(bad)


def test_the_id_of_a_refused_compressed_message_is_still_read() -> None:
    wire = WireCodec(compressor=Compressor("zlib"))
    body = _encode(wire, BIG, msg_id="the-id")
    small = WireCodec(max_size=1500)
    with pytest.raises(asyncq.MessageTooLarge):
        small.decode(body)
    assert small.trusted_id(body, asyncq.MessageTooLarge("x")) == "the-id"


def test_the_limit_holds_before_compression_too() -> None:
    wire = WireCodec(max_size=4096, compressor=Compressor("zlib"))
    with pytest.raises(asyncq.SerializationError, match="exceeds the 4096 byte limit"):
        _encode(wire, ["y" * 10_000])  # compresses to a few bytes, but no worker could open it


def test_unknown_algorithms_are_configuration_errors() -> None:
    with pytest.raises(asyncq.ConfigurationError, match="zlib' or 'zstd"):
        asyncq.App("c", compression="gzip")
    assert asyncq.App("c", compression="zlib").codec.compressor is not None
