"""Workflows: ``chain``, ``group`` and ``chord``, and Celery's ``link`` / ``link_error``.

::

    h = await (fetch_page.s(url) | parse_page.s() | store_page.s(url)).enqueue()
    g = await group(add.s(i, i) for i in range(100)).enqueue()
    c = await chord(group(add.s(i, i) for i in range(100)), tsum.s()).enqueue()
    h = await chain(add.s(1, 1), group(add.s(10), add.s(20)), tsum.s()).enqueue()  # 34

State lives on the servers, never in the producer (which may exit right after
``enqueue``): a chain's remaining steps travel in the header of the step before them
and the worker that finishes a step sends the next one (:mod:`asyncq.canvas._middleware`);
a chord's members are counted on the result backend's server, and the callback is sent
once every member is final. Every step sent later has an id derived from the
workflow's id, so a resend after a crash is recognised. See docs/guides/workflows.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from asyncq.canvas._handles import ChainResult, ChordResult, GroupResult, WorkflowResult
from asyncq.canvas._middleware import deliver_chord
from asyncq.canvas._send import send_next
from asyncq.canvas._spec import WF, GroupStep, Node, Spec, derive_id, final_id, spec_of
from asyncq.canvas._store import store_for
from asyncq.errors import ConfigurationError
from asyncq.message import new_id
from asyncq.task import Signature

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["Chain", "ChainResult", "Chord", "ChordResult", "Group", "GroupResult",
           "WorkflowResult", "chain", "chord", "group", "link_id"]

R = TypeVar("R")


class Chain(Generic[R]):
    """Steps run one after the other; each result is the next call's first argument
    (unless the step is immutable: ``task.si(...)``)."""

    def __init__(self, *steps: Signature[Any] | Chain[Any] | Group) -> None:
        flat: list[Signature[Any] | Group] = []
        for step in steps:
            if isinstance(step, Chain):
                flat.extend(step.steps)
            elif isinstance(step, Signature | Group):
                flat.append(step)
            else:
                raise ConfigurationError(f"a chain takes signatures (task.s(...)), groups or "
                                         f"chains, not {type(step).__name__}")
        if not flat:
            raise ConfigurationError("a chain needs at least one step")
        self.steps: list[Signature[Any] | Group] = flat

    def __repr__(self) -> str:
        return " | ".join(repr(s) if isinstance(s, Group) else f"{s.task.name}(...)"
                          for s in self.steps)

    def __or__(self, other: Signature[Any] | Chain[Any] | Group) -> Chain[Any]:
        return Chain(self, other)

    async def enqueue(self) -> ChainResult[R]:
        """Send the first step; the rest travel with it. Returns the chain's handle.

        A group inside the chain gets the previous result in each member, and the rest
        of the chain gets the list of their results (Celery's implicit chord).
        """
        app = _app_of(_calls(self.steps))
        store = store_for(app.backend)
        chain_id = f"chain-{new_id()}"
        nodes = _chain_nodes(chain_id, self.steps, str)
        info = {"k": "chain", "n": len(nodes), "tail": final_id(nodes),
                "steps": [n.id for n in nodes if isinstance(n, Spec)],
                "ids": _all_ids(nodes), "ignored": _ignores(app, nodes)}
        await app.connect()
        await store.put_workflow(chain_id, info)
        await send_next(app, nodes, (), resent=False)
        return ChainResult(app, chain_id, info)


class Group:
    """Members run in parallel; awaiting the handle gives their results in order.

    ``group(add.s(i, i) for i in range(100))`` or ``group(a.s(), b.s())``.
    """

    def __init__(self, *members: Signature[Any] | Chain[Any]
                 | Iterable[Signature[Any] | Chain[Any]]) -> None:
        items: Iterable[Any] = members
        if len(members) == 1 and not isinstance(members[0], Signature | Chain):
            items = members[0]
        self.members: list[Signature[Any] | Chain[Any]] = list(items)
        for member in self.members:
            if not isinstance(member, Signature | Chain):
                raise ConfigurationError(f"a group takes signatures (task.s(...)) or chains, "
                                         f"not {type(member).__name__}")

    def __repr__(self) -> str:
        return f"group({len(self.members)} members)"

    def __or__(self, body: Signature[Any] | Chain[Any]) -> Chord[Any]:
        return Chord(self, body)

    async def enqueue(self) -> GroupResult:
        """Send every member in one batch (``app.enqueue_many``)."""
        if not self.members:
            raise ConfigurationError("a group needs at least one member")
        group_id = f"group-{new_id()}"
        app = _app_of(_calls(self.members))
        store = store_for(app.backend)
        sigs, tails = _members(app, group_id, self.members, None)
        info: dict[str, Any] = {"k": "group", "n": len(self.members)}
        if tails:
            info["tails"] = tails
        await app.connect()
        await store.put_workflow(group_id, info)
        await app.enqueue_many(sigs)
        return GroupResult(app, group_id, info)


class Chord(Generic[R]):
    """A group and a callback that gets the list of the members' results once every
    member is final; a failed member fails the chord and calls the callback's
    ``link_error`` instead (see :meth:`on_error`)."""

    def __init__(self, header: Group | Iterable[Signature[Any]],
                 body: Signature[Any] | Chain[Any]) -> None:
        self.header = header if isinstance(header, Group) else Group(header)
        self.body: Chain[Any] = Chain(body)

    def on_error(self, errback: Signature[Any]) -> Chord[R]:
        """A chord whose failure calls ``errback(callback_task_id, ...)``."""
        first, *rest = self.body.steps
        if not isinstance(first, Signature):
            raise ConfigurationError("on_error needs a chord whose callback starts with a "
                                     "task, not a group")
        headers = dict(first.options.headers)
        wf = dict(headers.get(WF) or {})
        wf["link_error"] = [*wf.get("link_error", []), spec_of(errback, "").pack()]
        headers[WF] = wf
        body: Chain[Any] = Chain(Signature(first.task, first.args, first.kwargs,
                                           first.options.with_headers(headers), first.immutable),
                                 *rest)
        return Chord(self.header, body)

    async def enqueue(self) -> ChordResult[R]:
        members = self.header.members
        app = _app_of([*_calls(members), *_calls(self.body.steps)])
        store = store_for(app.backend)
        chord_id = f"chord-{new_id()}"
        body = _chain_nodes(chord_id, self.body.steps, lambda i: f"body{i}")
        sigs, tails = _members(app, chord_id, members, len(members))
        info: dict[str, Any] = {"k": "chord", "n": len(members),
                                "body": [b.pack() for b in body],
                                "ignored": _ignores(app, body)}
        if tails:
            info["tails"] = tails
        await app.connect()
        await store.put_workflow(chord_id, info)
        if not members:  # nothing to wait for: the callback gets []
            await deliver_chord(app, chord_id, body, None, [])
        else:
            await app.enqueue_many(sigs)
        return ChordResult(app, chord_id, info)


def chain(*steps: Signature[Any] | Chain[Any] | Group) -> Chain[Any]:
    """``chain(a.s(1), b.s(), c.s())``, the same as ``a.s(1) | b.s() | c.s()``."""
    return Chain(*steps)


def group(*members: Signature[Any] | Chain[Any]
          | Iterable[Signature[Any] | Chain[Any]]) -> Group:
    """``group(add.s(i, i) for i in range(10))`` or ``group(a.s(), b.s())``; a member may
    be a chain (its result is its last step's)."""
    return Group(*members)


def chord(header: Group | Iterable[Signature[Any]], body: Signature[Any] | Chain[Any]
          ) -> Chord[Any]:
    """``chord(group(...), tsum.s())``: ``tsum([results...])`` once every member is done."""
    return Chord(header, body)


def link_id(task_id: str, index: int = 0, *, error: bool = False) -> str:
    """The id of the ``index``-th task in ``link`` (or ``link_error``) of ``task_id``:
    ``app.result(link_id(handle.id))`` is the linked call's handle."""
    return derive_id(task_id, f"{'err' if error else 'link'}{index}")


def _ignoring(app: App) -> set[str]:
    return {name for name, task in app.tasks.items() if task.config.ignore_result}


def _app_of(sigs: Iterable[Signature[Any]]) -> App:
    apps = {id(s.task.app): s.task.app for s in sigs}
    if len(apps) != 1:
        raise ConfigurationError("every task of a workflow must belong to the same App")
    return next(iter(apps.values()))


def _calls(items: Iterable[Signature[Any] | Chain[Any] | Group]) -> list[Signature[Any]]:
    """Every call in ``items``, groups and chains opened."""
    found: list[Signature[Any]] = []
    for item in items:
        if isinstance(item, Signature):
            found.append(item)
        else:
            found.extend(_calls(item.steps if isinstance(item, Chain) else item.members))
    return found


def _chain_nodes(workflow_id: str, steps: list[Signature[Any] | Group], label: Any
                 ) -> list[Node]:
    """A chain's steps as sent: specs, and a group (with the rest of the chain as its
    body) as the last node."""
    group_at = next((i for i, s in enumerate(steps) if isinstance(s, Group)), len(steps) - 1)
    nodes: list[Node] = []
    for i, step in enumerate(steps[: group_at + 1]):
        step_id = derive_id(workflow_id, label(i))
        if isinstance(step, Signature):
            nodes.append(spec_of(step, step_id, pos=[i + 1, group_at + 1], root=workflow_id))
            continue
        chord_id = f"chord-{step_id}"
        members = []
        for j, member in enumerate(step.members):
            if not isinstance(member, Signature):
                raise ConfigurationError("a group inside a chain takes single calls, not "
                                         "chains (not yet)")
            members.append(spec_of(member, derive_id(chord_id, str(j)), root=workflow_id))
        rest = steps[i + 1:]
        body = _chain_nodes(chord_id, rest, lambda j: f"body{j}") if rest else []
        nodes.append(GroupStep(chord_id, members, body))
    return nodes


def _all_ids(nodes: list[Node]) -> list[str]:
    found: list[str] = []
    for node in nodes:
        if isinstance(node, Spec):
            found.append(node.id)
        else:
            found += [m.id for m in node.members]
            found += _all_ids(node.body) if node.body else [node.result_id]
    return found


def _ignores(app: App, nodes: list[Node]) -> bool:
    """Whether the task whose result is the chain's ignores its results."""
    last = nodes[-1] if nodes else None
    while isinstance(last, GroupStep):
        if not last.body:
            return False
        last = last.body[-1]
    return last is not None and last.task in _ignoring(app)


def _members(app: App, group_id: str, members: list[Signature[Any] | Chain[Any]],
             chord_size: int | None) -> tuple[list[Signature[Any]], dict[str, int]]:
    """The first call of each member, and the length of each member that is a chain
    (its result is its last step's: see ``member_ids``)."""
    sigs: list[Signature[Any]] = []
    tails: dict[str, int] = {}
    for i, member in enumerate(members):
        member_id = derive_id(group_id, str(i))
        coords = None if chord_size is None else [group_id, chord_size, i]
        if isinstance(member, Signature):
            sigs.append(_member(member, member_id, coords))
            continue
        if any(isinstance(step, Group) for step in member.steps):
            raise ConfigurationError("a chain inside a group cannot contain a group (not yet)")
        specs = _chain_specs(member_id, [s for s in member.steps if isinstance(s, Signature)],
                             lambda j: str(j))
        if coords is not None:
            specs[-1].wf["chord"] = coords  # the chain's last step reports to the chord
        tails[str(i)] = len(specs)
        sigs.append(_first(app, specs))
    return sigs, tails


def _chain_specs(workflow_id: str, steps: list[Signature[Any]], label: Any) -> list[Spec]:
    n = len(steps)
    return [spec_of(sig, derive_id(workflow_id, label(i)), pos=[i + 1, n], root=workflow_id)
            for i, sig in enumerate(steps)]


def _first(app: App, specs: list[Spec], *parent: Any) -> Signature[Any]:
    """The first step's call, carrying the rest of the chain."""
    extra = {"chain": [s.pack() for s in specs[1:]]} if len(specs) > 1 else None
    return specs[0].signature(app, *parent, with_parent=bool(parent), extra=extra)


def _member(sig: Signature[Any], member_id: str, chord: list[Any] | None) -> Signature[Any]:
    """A group or chord member with its derived id (and its chord's coordinates)."""
    opts = sig.options
    if opts.task_id is not None:
        raise ConfigurationError(f"{sig.task.name}: a group member's task_id is derived from "
                                 "the group's id; do not set one")
    if chord is not None:
        headers = dict(opts.headers)
        headers[WF] = {**(headers.get(WF) or {}), "chord": chord}
        opts = opts.with_headers(headers)
    return Signature(sig.task, sig.args, sig.kwargs, replace(opts, task_id=member_id),
                     sig.immutable)
