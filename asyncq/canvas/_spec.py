"""How workflow steps travel: specs in a message header, deterministic ids.

A workflow's later steps are not kept by the producer. They ride in the header
``asyncq.wf`` of the message that runs before them, as *specs*: a task name, its
arguments and options, and the id the step will have. The worker that finishes a step
sends the next one with that id, so a redelivery after a crash sends the same id again
and a duplicate is recognised (its result is already recorded) instead of run twice.

The header (a msgpack map) may hold:

``chain``       the remaining steps of a chain, in order (list of specs)
``pos``         ``[k, n]``: this is step ``k`` of a chain of ``n`` (for error messages)
``link``        specs called with this task's result when it succeeds
``link_error``  specs called with this task's id when it fails for good
``chord``       ``[chord_id, n, index]``: this task is member ``index`` of a chord of ``n``
``root``        the id of the workflow this step belongs to (for revoke)
``resent``      sent by a worker, so possibly twice: run only if no result is recorded
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from asyncq.errors import ConfigurationError, DecodeError, TaskNotRegistered
from asyncq.task import WORKFLOW_HEADER

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.task import CallOptions, Signature

__all__ = ["WF", "GroupStep", "Node", "Spec", "derive_id", "final_id", "link_header",
           "spec_of", "stopped_ids", "unpack_nodes", "unpack_specs"]

#: The message header that carries a workflow's state.
WF: Final = WORKFLOW_HEADER
#: Per-call options a step may carry (the rest are refused inside workflows).
_CARRIED: Final = ("queue", "routing_key", "exchange", "priority", "countdown")


def derive_id(parent: str, label: str) -> str:
    """A task id that depends only on ``parent`` and ``label`` (so a resend repeats it)."""
    return hashlib.sha256(f"{parent}/{label}".encode()).hexdigest()[:32]


@dataclass(slots=True)
class Spec:
    """One step to send later, by task name (see the module docstring)."""

    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    id: str
    immutable: bool = False
    wf: dict[str, Any] = field(default_factory=dict)

    def pack(self) -> list[Any]:
        return [self.task, self.args, self.kwargs, self.options, self.id, self.immutable,
                self.wf]

    @classmethod
    def unpack(cls, raw: object) -> Spec:
        if not isinstance(raw, list) or len(raw) != 7:
            raise DecodeError("workflow step has an unknown shape")
        task, args, kwargs, options, step_id, immutable, wf = raw
        if not (isinstance(task, str) and isinstance(args, list) and isinstance(kwargs, dict)
                and isinstance(options, dict) and isinstance(step_id, str)
                and isinstance(immutable, bool) and isinstance(wf, dict)):
            raise DecodeError("workflow step has bad fields")
        return cls(task, args, kwargs, options, step_id, immutable, wf)

    def signature(self, app: App, parent_value: Any = None, *, with_parent: bool = False,
                  extra: Mapping[str, Any] | None = None) -> Signature[Any]:
        """The call to send: ``parent_value`` goes first unless the step is immutable;
        ``extra`` entries are added to the step's workflow header."""
        from asyncq.task import CallOptions, Signature

        task = app.tasks.get(self.task)
        if task is None:
            raise TaskNotRegistered(f"workflow step {self.task!r} is not registered on app "
                                    f"{app.name!r}")
        args = self.args if self.immutable or not with_parent else [parent_value, *self.args]
        opts = dict(self.options)
        headers = dict(opts.pop("headers", None) or {})
        wf = {**self.wf, **(extra or {})}
        if wf:
            headers[WF] = wf
        return Signature(task, tuple(args), dict(self.kwargs),
                         CallOptions(task_id=self.id, headers=headers, **opts))


@dataclass(slots=True)
class GroupStep:
    """A group inside a chain (Celery's implicit chord): its members get the previous
    step's result, and the rest of the chain (``body``) gets the list of theirs. With
    no body, the list is the result of ``result_id``."""

    chord_id: str
    members: list[Spec]
    body: list[Spec | GroupStep]

    @property
    def result_id(self) -> str:
        return derive_id(self.chord_id, "result")

    def pack(self) -> dict[str, Any]:
        return {"g": self.chord_id, "m": [m.pack() for m in self.members],
                "b": [n.pack() for n in self.body]}

    @classmethod
    def unpack(cls, raw: dict[Any, Any]) -> GroupStep:
        chord_id = raw.get("g")
        if not isinstance(chord_id, str):
            raise DecodeError("workflow group step has no id")
        return cls(chord_id, unpack_specs(raw.get("m")), unpack_nodes(raw.get("b")))


Node = Spec | GroupStep


def unpack_nodes(raw: object) -> list[Node]:
    """Steps of a chain: specs, and group steps (maps)."""
    if not isinstance(raw, list):
        raise DecodeError("workflow steps are not a list")
    return [GroupStep.unpack(item) if isinstance(item, dict) else Spec.unpack(item)
            for item in raw]


def final_id(nodes: Sequence[Node], default: str | None = None) -> str:
    """The id whose result is the result of the chain ``nodes``."""
    if not nodes:
        if default is None:
            raise DecodeError("an empty chain has no result")
        return default
    last = nodes[-1]
    return last.id if isinstance(last, Spec) else final_id(last.body, last.result_id)


def stopped_ids(nodes: Sequence[Node]) -> list[tuple[str, str]]:
    """``(id, task name)`` of every result a stopped chain ``nodes`` will never have."""
    found: list[tuple[str, str]] = []
    for node in nodes:
        if isinstance(node, Spec):
            found.append((node.id, node.task))
        else:
            found.extend(stopped_ids(node.body) or [(node.result_id, "group")])
    return found


def unpack_specs(raw: object) -> list[Spec]:
    if not isinstance(raw, list):
        raise DecodeError("workflow steps are not a list")
    return [Spec.unpack(item) for item in raw]


def spec_of(sig: Signature[Any], step_id: str, **wf: Any) -> Spec:
    """The spec of ``sig`` as a step with id ``step_id``; ``wf`` adds header entries."""
    opts = sig.options
    _refuse_unsupported(sig.task.name, opts)
    carried: dict[str, Any] = {}
    for name in _CARRIED:
        value = getattr(opts, name)
        if value is not None:
            carried[name] = value
    headers = dict(opts.headers)
    own = dict(headers.pop(WF, None) or {})
    if headers:
        carried["headers"] = headers
    return Spec(sig.task.name, list(sig.args), dict(sig.kwargs), carried, step_id,
                bool(getattr(sig, "immutable", False)), {**own, **wf})


def _refuse_unsupported(name: str, opts: CallOptions) -> None:
    for option in ("eta", "expires", "task_id"):
        if getattr(opts, option) is not None:
            raise ConfigurationError(
                f"{name}: the option {option!r} is not supported on a step of a chain, "
                "group or chord (step ids are derived from the workflow's id; use "
                "countdown for a delay)")


def link_header(link: Sequence[Signature[Any]] | None,
                link_error: Sequence[Signature[Any]] | None) -> dict[str, Any]:
    """The header entries for ``options(link=..., link_error=...)``; ids are derived
    from the linked task's id by the worker, so they are placeholders here."""
    wf: dict[str, Any] = {}
    if link:
        wf["link"] = [spec_of(sig, "").pack() for sig in _signatures("link", link)]
    if link_error:
        wf["link_error"] = [spec_of(sig, "").pack()
                            for sig in _signatures("link_error", link_error)]
    return wf


def _signatures(option: str, value: object) -> list[Signature[Any]]:
    from asyncq.task import Signature

    items = [value] if isinstance(value, Signature) else value
    if not isinstance(items, list | tuple) or not all(isinstance(s, Signature) for s in items):
        raise ConfigurationError(f"{option} takes a signature or a list of signatures "
                                 "(task.s(...))")
    return list(items)
