"""The wire codec: everything about a message's bytes, one instance per App.

It owns the envelope layout, the size limit, signing and the check that a call's
arguments bind to its task. The producer, the worker, retries and the ``dlq``
commands all go through the App's :class:`WireCodec`, so no two of them can disagree.

The envelope is a msgpack array, version 1::

    [1, id, task_name, args, kwargs, options, headers, attempt]

With compression on, the envelope is compressed and flagged (:mod:`asyncq.compression`);
with signing on, the bytes (compressed or not) are wrapped (:mod:`asyncq.signing`).
Decoding checks, in order: size, signature, msgpack (a compressed envelope, which
msgpack refuses at its first byte, is decompressed within the size limit and
unpacked then), the envelope's shape and version, and the id's syntax; every failure
is a :class:`~asyncq.errors.DecodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgpack

from asyncq import codec, compression
from asyncq.compression import Compressor
from asyncq.errors import DecodeError, MessageTooLarge, SerializationError, SignatureError
from asyncq.message import Message, valid_id
from asyncq.signing import MAGIC as SIGNED_MAGIC
from asyncq.signing import Signer

if TYPE_CHECKING:
    from asyncq.task import Task

__all__ = ["ENVELOPE_VERSION", "WireCodec", "encode_fields", "from_wire", "peek_id"]

ENVELOPE_VERSION: Final = 1
_FIELDS: Final = 8
#: peek_id reads no further than this: the version and a valid id fit well within it.
_PEEK: Final = 512


def encode_fields(msg_id: str, task: str, args: tuple[Any, ...] | list[Any],
                  kwargs: Mapping[str, Any], options: Mapping[str, Any],
                  headers: Mapping[str, Any], attempt: int = 0) -> bytes:
    """The unsigned envelope bytes; :class:`SerializationError` names what cannot go."""
    try:
        for part in (args, kwargs, headers):
            if part:
                codec.check_keys(part)
        return codec.dumps([ENVELOPE_VERSION, msg_id, task, args, kwargs, options,
                            dict(headers) if headers else {}, attempt])
    except SerializationError as exc:
        where = codec.name_unpackable(args, kwargs) or "options or headers"
        raise SerializationError(f"task {task!r}: {where}: {exc}") from None


def from_wire(wire: object) -> Message:
    """A Message from an unpacked envelope, validated."""
    if not isinstance(wire, list) or len(wire) != _FIELDS:
        raise DecodeError("envelope is not an asyncq message")
    version, msg_id, task, args, kwargs, options, headers, attempt = wire
    if type(version) is not int or version != ENVELOPE_VERSION:
        raise DecodeError(f"unsupported envelope version {version!r}")
    if not valid_id(msg_id):
        raise DecodeError("envelope has an invalid task id")
    if not isinstance(task, str) or not task:
        raise DecodeError("envelope has no task name")
    _check_shapes(args, kwargs, options, headers, attempt)
    return Message(msg_id, task, args, kwargs, options, headers, attempt)


def _check_shapes(args: object, kwargs: object, options: object, headers: object,
                  attempt: object) -> None:
    if (type(args) is list and type(kwargs) is dict and type(options) is dict
            and type(headers) is dict and type(attempt) is int and attempt >= 0):
        return  # msgpack made these: exact types, so the common case is one test
    if not isinstance(args, list):
        raise DecodeError("envelope args is not an array")
    for name, value in (("kwargs", kwargs), ("options", options), ("headers", headers)):
        if not isinstance(value, dict):
            raise DecodeError(f"envelope {name} is not a map")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise DecodeError("envelope attempt is not a non-negative integer")


def peek_id(data: bytes) -> str | None:
    """Best effort: the task id of a message that failed to decode, if one can be read.

    Reads only the start of the envelope (its array header, version and id), so it
    also finds the id of an oversized message or one whose later fields are broken.
    """
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=_PEEK)
    unpacker.feed(data[:_PEEK])
    try:
        if unpacker.read_array_header() != _FIELDS:
            return None
        unpacker.skip()  # the version
        msg_id = unpacker.unpack()
    except Exception:  # msgpack raises many types on bad input; there is no id then
        return None
    return msg_id if valid_id(msg_id) else None


class WireCodec:
    """Message bytes for one App: envelope, size limit, signing, argument binding."""

    def __init__(self, *, max_size: int = codec.DEFAULT_MAX_SIZE,
                 signer: Signer | None = None, compressor: Compressor | None = None) -> None:
        self.max_size = max_size
        self.signer = signer
        self.compressor = compressor
        #: a plain body (unsigned, within the limit) can go as packed
        self.passthrough = signer is None
        #: the largest body that goes as packed (smaller than compression's threshold)
        self._plain_limit = (max_size if compressor is None
                             else min(max_size, compression.MIN_SIZE - 1))

    def __repr__(self) -> str:
        return (f"<WireCodec max_size={self.max_size} signer={self.signer!r} "
                f"compressor={self.compressor!r}>")

    # -- producing -----------------------------------------------------------------
    def encode(self, msg_id: str, task: str, args: tuple[Any, ...] | list[Any],
               kwargs: Mapping[str, Any], options: Mapping[str, Any],
               headers: Mapping[str, Any], attempt: int = 0) -> bytes:
        """Envelope, signature, then the size check (:class:`SerializationError`)."""
        body = encode_fields(msg_id, task, args, kwargs, options, headers, attempt)
        return self.seal(task, body)

    def encode_message(self, message: Message) -> bytes:
        return self.encode(message.id, message.task, message.args, message.kwargs,
                           message.options, message.headers, message.attempt)

    def seal(self, task: str, body: bytes) -> bytes:
        """Compress and sign an envelope (when those are on) and check its size.

        The limit holds for the envelope as packed and for the bytes sent, so whatever
        a producer sends, a worker with the same limit decompresses.
        """
        if self.compressor is not None:
            self._check_size(task, body)
            body = self.compressor.compress(body)
        if self.signer is not None:
            body = self.signer.sign(body)
        self._check_size(task, body)
        return body

    def _check_size(self, task: str, body: bytes) -> None:
        if len(body) > self.max_size:
            raise SerializationError(f"task {task!r}: message of {len(body)} bytes "
                                     f"exceeds the {self.max_size} byte limit")

    def fits_plain(self, body: bytes) -> bool:
        """Whether an unsigned envelope can be sent as it is (no signing, within size)."""
        return self.passthrough and len(body) <= self._plain_limit

    @staticmethod
    def bind_error(task: Task[..., Any], args: tuple[Any, ...] | list[Any],
                   kwargs: Mapping[str, Any]) -> str | None:
        """Why the arguments do not bind to the task's signature, or None if they do."""
        if kwargs or len(args) != task.plain_arity:
            try:
                task.signature.bind(*args, **kwargs)
            except TypeError as exc:
                return str(exc)
        return None

    def check_call(self, task: Task[..., Any], args: tuple[Any, ...] | list[Any],
                   kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` (naming the task) when the arguments do not bind."""
        error = self.bind_error(task, args, kwargs)
        if error is not None:
            raise TypeError(f"{task.name}: {error}")

    # -- consuming -----------------------------------------------------------------
    def decode(self, data: bytes) -> Message:
        """Verify (when signing is on) before decoding; every failure is a DecodeError."""
        if len(data) > self.max_size:
            raise MessageTooLarge(f"message of {len(data)} bytes exceeds the "
                                        f"{self.max_size} byte limit")
        if self.signer is not None:
            data = self.signer.verify(data)
        elif data.startswith(SIGNED_MAGIC):
            raise SignatureError("message is signed but this app has no signing keys")
        try:
            wire = codec.loads(data, max_size=self.max_size)
        except DecodeError:
            if not data.startswith(compression.MARKER):
                raise
            wire = codec.loads(compression.decompress(data, self.max_size),
                               max_size=self.max_size)
        return from_wire(wire)

    def trusted_id(self, data: bytes, error: DecodeError) -> str | None:
        """The id a rejection record may be stored under, if the message can be trusted.

        With signing on, only a verified message's id is used: an id read from a
        message nobody can vouch for could be a forgery aimed at another task's result.
        """
        if isinstance(error, SignatureError):
            return None
        if self.signer is not None:
            try:
                data = self.signer.verify(data)
            except SignatureError:
                return None
        if data.startswith(compression.MARKER):
            data = compression.head(data, _PEEK)
        return peek_id(data)
