"""Optional HMAC-SHA256 message signing with key ids, checked before decoding.

Wire form of a signed message (``AQS2``)::

    b"AQS2" | key-id length (1 byte) | key id (ASCII) | signed at (8 bytes, unix ms,
    big-endian) | queue length (1 byte) | queue (UTF-8) | HMAC-SHA256 (32 bytes) | payload

The MAC covers everything before it and the payload: the key id, the time it was
signed, the queue it was signed for and the envelope. So a captured message cannot be
moved to another queue, and it ages out (the worker's ``max_age``, see
:class:`~asyncq.wire.WireCodec`). An empty queue means "any queue": messages routed
through an exchange of their own, which one publish may deliver to several queues.

The first form, ``AQS1`` (key id, MAC, payload: no queue, no time), is refused: a
message signed that way could be replayed into any queue for ever. Upgrade producers
and workers together, after the queues drain (docs/guides/security.md).

Keys rotate by id: producers sign with ``current``; workers accept any id they hold, so
a new key is rolled out to workers first, then to producers, and the old one retired
last.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from asyncq.errors import ConfigurationError, SignatureError

__all__ = ["LEGACY_MAGIC", "MAGIC", "Signed", "Signer"]

MAGIC: Final = b"AQS2"
#: The first signed form (no queue, no time): refused.
LEGACY_MAGIC: Final = b"AQS1"
_MAC_LEN: Final = 32
_MIN_KEY: Final = 16
_TIME_LEN: Final = 8


@dataclass(frozen=True, slots=True)
class Signed:
    """A verified message: its payload, the queue and unix time it was signed for."""

    payload: bytes
    queue: str
    signed_at: float


class Signer:
    def __init__(self, keys: Mapping[str, bytes | str], current: str | None = None) -> None:
        if not keys:
            raise ConfigurationError("signing needs at least one key")
        self._keys: dict[bytes, bytes] = {}
        for key_id, key in keys.items():
            raw = key.encode() if isinstance(key, str) else bytes(key)
            if len(raw) < _MIN_KEY:
                raise ConfigurationError(f"signing key {key_id!r} is shorter than {_MIN_KEY} bytes")
            kid = key_id.encode("ascii")
            if not 0 < len(kid) < 256:
                raise ConfigurationError("signing key ids must be 1-255 ASCII characters")
            self._keys[kid] = raw
        self.current = (current or next(iter(keys))).encode("ascii")
        if self.current not in self._keys:
            raise ConfigurationError("the current signing key id is not among the keys")

    def __repr__(self) -> str:
        ids = ", ".join(k.decode() for k in self._keys)
        return f"<Signer keys=[{ids}] current={self.current.decode()}>"  # never the keys

    def sign(self, payload: bytes, queue: str = "", *, now: float | None = None) -> bytes:
        """``payload`` signed for ``queue`` ("" for any) at ``now`` (default: the clock)."""
        kid = self.current
        name = queue.encode()
        if len(name) > 255:
            raise ValueError(f"queue name of {len(name)} bytes is too long to sign")
        stamp = int((time.time() if now is None else now) * 1000).to_bytes(_TIME_LEN, "big")
        head = b"".join((MAGIC, bytes((len(kid),)), kid, stamp, bytes((len(name),)), name))
        mac = hmac.new(self._keys[kid], head + payload, hashlib.sha256).digest()
        return b"".join((head, mac, payload))

    def open(self, data: bytes) -> Signed:
        """The verified parts, or :class:`SignatureError` (missing, legacy form,
        truncated, unknown key id, or bad MAC)."""
        if not data.startswith(MAGIC):
            if data.startswith(LEGACY_MAGIC):
                raise SignatureError("message is signed in the old AQS1 form, which binds no "
                                     "queue or time: refused (re-send it from an upgraded "
                                     "producer)")
            raise SignatureError("message is not signed")
        at = len(MAGIC)
        kid_len = data[at] if len(data) > at else 0
        kid = data[at + 1 : at + 1 + kid_len]
        at += 1 + kid_len
        stamp = data[at : at + _TIME_LEN]
        at += _TIME_LEN
        name_len = data[at] if len(data) > at else 0
        name = data[at + 1 : at + 1 + name_len]
        at += 1 + name_len
        mac, payload = data[at : at + _MAC_LEN], data[at + _MAC_LEN :]
        if len(mac) != _MAC_LEN:
            raise SignatureError("truncated signature header")
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(f"unknown signing key id {kid.decode(errors='replace')!r}")
        expected = hmac.new(key, data[:at] + payload, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise SignatureError("bad signature")
        try:
            queue = name.decode()
        except UnicodeDecodeError:  # only a holder of a key could have signed it
            raise SignatureError("signed queue name is not UTF-8") from None
        return Signed(payload, queue, int.from_bytes(stamp, "big") / 1000)

    def mac(self, data: bytes) -> tuple[bytes, bytes]:
        """The current key id and its HMAC-SHA256 of ``data`` (for other signed forms,
        such as result records: :mod:`asyncq.records`)."""
        return self.current, hmac.new(self._keys[self.current], data, hashlib.sha256).digest()

    def check_mac(self, kid: bytes, mac: bytes, data: bytes) -> None:
        """Raise :class:`SignatureError` unless ``mac`` is key ``kid``'s MAC of ``data``."""
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(f"unknown signing key id {kid.decode(errors='replace')!r}")
        expected = hmac.new(key, data, hashlib.sha256).digest()
        if len(mac) != _MAC_LEN or not hmac.compare_digest(mac, expected):
            raise SignatureError("bad signature")

    def verify(self, data: bytes) -> bytes:
        """The payload, or :class:`SignatureError`; checks the MAC only (the queue and
        age are the codec's business: :meth:`asyncq.wire.WireCodec.decode`)."""
        return self.open(data).payload
