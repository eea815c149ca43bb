"""Optional HMAC-SHA256 message signing with key ids, checked before decoding.

Wire form of a signed message::

    b"AQS1" | key-id length (1 byte) | key id (ASCII) | HMAC-SHA256 (32 bytes) | payload

The MAC covers the key id and the payload. Keys rotate by id: producers sign with
``current``; workers accept any id they hold, so a new key is rolled out to workers
first, then to producers, and the old one retired last.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from asyncq.errors import ConfigurationError, SignatureError

__all__ = ["MAGIC", "Signer"]

MAGIC: Final = b"AQS1"
_MAC_LEN: Final = 32
_MIN_KEY: Final = 16


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

    def sign(self, payload: bytes) -> bytes:
        kid = self.current
        mac = hmac.new(self._keys[kid], kid + payload, hashlib.sha256).digest()
        return b"".join((MAGIC, bytes((len(kid),)), kid, mac, payload))

    def verify(self, data: bytes) -> bytes:
        """The payload, or :class:`SignatureError` (missing, unknown key id, or bad MAC)."""
        if not data.startswith(MAGIC):
            raise SignatureError("message is not signed")
        if len(data) < len(MAGIC) + 1:
            raise SignatureError("truncated signature header")
        kid_len = data[len(MAGIC)]
        start = len(MAGIC) + 1
        kid = data[start : start + kid_len]
        mac = data[start + kid_len : start + kid_len + _MAC_LEN]
        payload = data[start + kid_len + _MAC_LEN :]
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(f"unknown signing key id {kid.decode(errors='replace')!r}")
        expected = hmac.new(key, kid + payload, hashlib.sha256).digest()
        if len(mac) != _MAC_LEN or not hmac.compare_digest(mac, expected):
            raise SignatureError("bad signature")
        return payload
