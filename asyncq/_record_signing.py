"""Signed result records: the App's signing keys vouch for what a backend returns.

With signing on, every record a worker writes is signed, bound to its task id::

    tag (1 byte) | 0xC1 | key-id length (1) | key id | HMAC-SHA256 (32) | msgpack body

The tag stays first, so the first-final-writer-wins rule (:mod:`asyncq.records`, and
its Lua) reads it as before. ``0xC1`` is a byte msgpack never uses, so a signed record
is told from an unsigned one (whose body starts with a msgpack array) at a glance. The
MAC covers a domain prefix (``AQR1``, so a message signature can never pass for a
record's), the key id, the tag, the task id and the body: a record cannot be forged,
altered, given another state or copied to another task's key.

A reader with signing on refuses unsigned and forged records
(:class:`~asyncq.errors.SignatureError`); a reader without keys ignores signatures.
"""

from __future__ import annotations

import logging
from typing import Final

from asyncq.errors import DecodeError, SignatureError
from asyncq.signing import Signer

__all__ = ["MARK", "genuine", "open_record", "sign_record", "strip_signature"]

#: The byte after the tag that marks a signed record (never valid msgpack).
MARK: Final = 0xC1
_DOMAIN: Final = b"AQR1"
_MAC_LEN: Final = 32


def _signed_part(kid: bytes, tag: bytes, task_id: str, body: bytes) -> bytes:
    name = task_id.encode()
    return b"".join((_DOMAIN, bytes((len(kid),)), kid, tag, bytes((len(name),)), name, body))


def sign_record(raw: bytes, task_id: str, signer: Signer) -> bytes:
    """An unsigned record (tag + body), signed for ``task_id``."""
    tag, body = raw[:1], raw[1:]
    kid, mac = signer.mac(_signed_part(signer.current, tag, task_id, body))
    return b"".join((tag, bytes((MARK, len(kid))), kid, mac, body))


def _split(raw: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """(tag, key id, mac, body) of a signed record; None for an unsigned one."""
    if len(raw) < 2 or raw[1] != MARK:
        return None
    kid_len = raw[2] if len(raw) > 2 else 0
    kid = raw[3 : 3 + kid_len]
    mac = raw[3 + kid_len : 3 + kid_len + _MAC_LEN]
    if len(kid) != kid_len or len(mac) != _MAC_LEN:
        raise SignatureError("truncated result-record signature")
    return raw[:1], kid, mac, raw[3 + kid_len + _MAC_LEN :]


def strip_signature(raw: bytes) -> bytes:
    """The record as tag + body, its signature (if any) not checked."""
    parts = _split(raw)
    return raw if parts is None else parts[0] + parts[3]


def open_record(raw: bytes, task_id: str, signer: Signer) -> bytes:
    """The verified record as tag + body, or :class:`SignatureError`."""
    parts = _split(raw)
    if parts is None:
        raise SignatureError(f"the result record of task {task_id} is not signed, and this "
                             "app signs its records: refused (forged, or written by an "
                             "app without signing keys)")
    tag, kid, mac, body = parts
    try:
        signer.check_mac(kid, mac, _signed_part(kid, tag, task_id, body))
    except SignatureError as exc:
        raise SignatureError(f"the result record of task {task_id} failed its signature "
                             f"check ({exc}): refused as forged") from None
    return tag + body


def genuine(raw: bytes, task_id: str, signer: Signer | None) -> bool:
    """May a notification carrying ``raw`` resolve ``task_id``'s wait? With signing on,
    only a genuine record: one published by anyone else is ignored (logged), and the
    waiter goes on waiting for the real one."""
    if signer is None:
        return True
    try:
        open_record(raw, task_id, signer)
    except DecodeError:
        logging.getLogger("asyncq.results.redis").warning(
            "ignored a forged result notification for task %s", task_id)
        return False
    return True
