"""The wire codec: everything about a message's bytes, one instance per App.

It owns the envelope layout, the size limit, signing and the check that a call's
arguments bind to its task. The producer, the worker, retries and the ``dlq``
commands all go through the App's :class:`WireCodec`, so no two of them can disagree.

The envelope is a msgpack array, version 1::

    [1, id, task_name, args, kwargs, options, headers, attempt]

With compression on, the envelope is compressed and flagged (:mod:`asyncq.compression`);
with signing on, the bytes (compressed or not) are wrapped (:mod:`asyncq.signing`),
bound to the queue they are sent to and the time they were signed. Decoding checks, in
order: size, signature, msgpack (a compressed envelope, which msgpack refuses at its
first byte, is decompressed within the size limit and unpacked then), the envelope's
shape and version, the id's syntax, and (with signing on, for a delivery) the signed
queue and the signature's age; every failure is a :class:`~asyncq.errors.DecodeError`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgpack

from asyncq import codec, compression
from asyncq._decoded import (
    DECODED_RATIO,
    WORST_RATIO,
    decoded_over,
    gc_paused,
    needs_measure,
    rough_bound,
)
from asyncq.compression import Compressor
from asyncq.errors import (
    ConfigurationError,
    DecodeError,
    MessageTooLarge,
    SerializationError,
    SignatureError,
)
from asyncq.message import Message, valid_id
from asyncq.signing import Signer

if TYPE_CHECKING:
    from asyncq.task import Task

__all__ = ["DEFAULT_MAX_AGE", "ENVELOPE_VERSION", "WireCodec", "check_binding",
           "encode_fields", "from_wire", "peek_id"]

ENVELOPE_VERSION: Final = 1
_FIELDS: Final = 8
#: peek_id reads no further than this: the version and a valid id fit well within it.
_PEEK: Final = 512
#: Bodies up to this size are joined for one pass (a batch's copy stays a few MiB); a
#: larger one costs far more to unpack than the calls saved, and goes one by one.
_JOINED_MAX: Final = 16 * 1024
#: How a plain version-1 envelope starts (an array of 8): neither signed nor compressed.
_PLAIN_HEAD: Final = b"\x98"
#: Both signed forms (AQS2, and the refused AQS1) start so.
_SIGNED_PREFIX: Final = b"AQS"
#: How long a signed message stays valid after it was signed or fell due (7 days).
DEFAULT_MAX_AGE: Final = 7 * 24 * 3600.0


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
                 signer: Signer | None = None, max_age: float = DEFAULT_MAX_AGE,
                 compressor: Compressor | None = None) -> None:
        self.max_size = max_size  # fixed once built (``_unmeasured`` follows from it)
        #: messages up to this size are never measured (:func:`asyncq._decoded.needs_measure`)
        self._unmeasured = max_size * DECODED_RATIO // WORST_RATIO
        self.signer = signer
        #: seconds a signed message may wait past its signing (or due) time
        if not max_age > 0:
            raise ConfigurationError(f"signing_max_age must be positive, not {max_age!r}")
        self.max_age = max_age
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
               headers: Mapping[str, Any], attempt: int = 0, *, queue: str = "") -> bytes:
        """Envelope, signature (bound to ``queue``; "" for any), then the size check
        (:class:`SerializationError`)."""
        body = encode_fields(msg_id, task, args, kwargs, options, headers, attempt)
        return self.seal(task, body, queue)

    def encode_message(self, message: Message, queue: str = "") -> bytes:
        return self.encode(message.id, message.task, message.args, message.kwargs,
                           message.options, message.headers, message.attempt, queue=queue)

    def seal(self, task: str, body: bytes, queue: str = "") -> bytes:
        """Compress and sign an envelope for ``queue`` (when those are on) and check its
        size. The limit holds for the envelope as packed and for the bytes sent, so
        whatever a producer sends, a worker with the same limit decompresses."""
        if self.compressor is not None:
            self._check_size(task, body)
            body = self.compressor.compress(body)
        if self.signer is not None:
            body = self.signer.sign(body, queue)
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
    def decode(self, data: bytes, queue: str | None = None) -> Message:
        """Verify (when signing is on) before decoding; every failure is a DecodeError.

        ``queue`` is where the message was delivered: with signing on, it must be the
        queue the message was signed for, and the signature at most ``max_age`` old
        (counted from when it fell due). Without ``queue`` (inspecting a dead letter)
        only the MAC is checked.
        """
        size = len(data)
        if size > self.max_size:
            raise MessageTooLarge(f"message of {size} bytes exceeds the "
                                        f"{self.max_size} byte limit")
        if self.signer is not None:
            return self._decode_signed(self.signer, data, queue)
        if data.startswith(_SIGNED_PREFIX):
            raise SignatureError("message is signed but this app has no signing keys")
        if size <= self._unmeasured:  # not needs_measure(): the hot path, inline
            try:
                return from_wire(codec.loads(data, max_size=self.max_size))
            except DecodeError:
                if not data.startswith(compression.MARKER):
                    raise
        return self._unpack(data)

    def decode_batch(self, bodies: Sequence[bytes]) -> list[Message | None]:
        """The messages of a fetched batch that take :meth:`decode`'s hot path (no signing,
        uncompressed, at most 16 KiB), unpacked in one pass over their joined bytes:
        ``None`` for every other body, and for one that is not a well-formed envelope of
        exactly its own bytes (and those after it in the pass). :meth:`decode` of a
        ``None`` gives its message or its :class:`DecodeError`: what is decoded here is
        what it would give."""
        if self.signer is not None:
            return [None] * len(bodies)
        limit = min(self._unmeasured, _JOINED_MAX)
        hot = [b for b in bodies if len(b) <= limit and b[:1] == _PLAIN_HEAD]
        if not hot:
            return [None] * len(bodies)
        decoded = _unpack_joined(hot)
        if len(hot) == len(bodies):
            return decoded
        found = iter(decoded)
        return [next(found) if len(b) <= limit and b[:1] == _PLAIN_HEAD else None
                for b in bodies]

    def _unpack(self, payload: bytes) -> Message:
        """The envelope (decompressed if it is compressed); a large one is measured once
        decoded (:mod:`asyncq._decoded`)."""
        if payload.startswith(compression.MARKER):
            payload = compression.decompress(payload, self.max_size)
        if not needs_measure(len(payload), self.max_size):
            return from_wire(codec.loads(payload, max_size=self.max_size))
        limit = self.max_size * DECODED_RATIO
        if rough_bound(payload) <= limit:
            return from_wire(codec.loads(payload, max_size=self.max_size))
        with gc_paused():  # a million containers would trigger collection after collection
            message = from_wire(codec.loads(payload, max_size=self.max_size))
        over = decoded_over(message, limit)
        if over is not None:
            raise DecodeError(f"message decodes to over {over} bytes of objects, more than "
                              f"{DECODED_RATIO} x the {self.max_size} byte limit "
                              "(a decode bomb?)")
        return message

    def _decode_signed(self, signer: Signer, data: bytes, queue: str | None) -> Message:
        signed = signer.open(data)
        message = self._unpack(signed.payload)
        if queue is not None:
            check_binding(signed.queue, signed.signed_at, message, queue, self.max_age)
        return message

    def trusted_id(self, data: bytes, error: DecodeError, queue: str | None = None
                   ) -> str | None:
        """The id a rejection record may be stored under, if the message can be trusted.

        With signing on, only a verified message's id is used: an id read from a
        message nobody can vouch for could be a forgery aimed at another task's result.
        A genuine message replayed onto another queue (``queue``, where it was
        delivered) leaves no record either: it would tell the genuine one's waiters it
        was rejected. One refused for its age does (its own queue: it is the genuine).
        """
        if self.signer is not None:
            try:
                signed = self.signer.open(data)
            except SignatureError:
                return None
            if queue is not None and signed.queue and signed.queue != queue:
                return None
            return _peek(signed.payload)
        if isinstance(error, SignatureError):
            return None
        return _peek(data)


def _unpack_joined(bodies: list[bytes]) -> list[Message | None]:
    """:func:`from_wire` of each body's envelope, from one msgpack pass over the joined
    bodies (a Python call chain per message was most of a fetch's decoding); each must
    end where its body does. ``None`` for a body that is not a plain envelope (left to
    the general path, which gives its error) and for all after a misaligned one."""
    joined = b"".join(bodies)
    unpacker = codec.unpacker(len(joined))
    unpacker.feed(joined)
    out: list[Message | None] = []
    end = 0
    for body in bodies:
        end += len(body)
        try:
            wire = unpacker.unpack()
        except Exception:  # msgpack raises many types on bad input: the rest go one by one
            break
        if unpacker.tell() != end:  # trailing bytes, or an object running on past its body
            break
        # from_wire's checks of an envelope as msgpack makes it (exact types, one test
        # each, inline: no call per message); anything else goes the general way
        if type(wire) is not list or len(wire) != _FIELDS:
            out.append(None)
            continue
        version, msg_id, task, args, kwargs, options, headers, attempt = wire
        out.append(Message(msg_id, task, args, kwargs, options, headers, attempt)
                   if (version == ENVELOPE_VERSION and type(version) is int
                       and type(task) is str and task and type(args) is list
                       and type(kwargs) is dict and type(options) is dict
                       and type(headers) is dict and type(attempt) is int and attempt >= 0
                       and valid_id(msg_id)) else None)
    out += [None] * (len(bodies) - len(out))
    return out


def _peek(data: bytes) -> str | None:
    """:func:`peek_id` of an envelope, compressed or not."""
    if data.startswith(compression.MARKER):
        data = compression.head(data, _PEEK)
    return peek_id(data)


def check_binding(signed_queue: str, signed_at: float, message: Message, queue: str,
                  max_age: float, now: float | None = None) -> None:
    """Refuse (:class:`SignatureError`) a signed message delivered on another queue than
    the one it was signed for, or older than ``max_age`` seconds past the later of its
    signing time and its ``eta``."""
    if signed_queue and signed_queue != queue:
        raise SignatureError(f"signed for queue {signed_queue[:200]!r}, delivered on "
                             f"{queue[:200]!r} (a replay?)")
    eta = message.options.get("eta")
    due = max(signed_at, eta) if isinstance(eta, int | float) else signed_at
    age = (time.time() if now is None else now) - due
    if age > max_age:
        raise SignatureError(f"signature is {age:.0f} s old, over the {max_age:g} s "
                             "maximum age (a replay?)")
