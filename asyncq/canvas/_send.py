"""Sending the next part of a chain: a step, or a group (Celery's implicit chord).

Used by the producer for a chain's first part and by the worker for every later one
(:mod:`asyncq.canvas._middleware`); what a worker sends is marked ``resent``, since a
crash may make it send the same ids again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from asyncq.canvas._spec import GroupStep, Node
from asyncq.canvas._store import store_for

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["RESENT", "launch_group", "send_next"]

#: Header entry of the messages a worker sends (they may be sent twice after a crash).
RESENT: Final = "resent"


async def send_next(app: App, nodes: list[Node], parent: tuple[Any, ...], *,
                    resent: bool) -> None:
    """Send ``nodes[0]`` (with ``parent`` = ``(value,)`` as its first argument, or
    ``()``), the rest of the chain travelling with it."""
    first, later = nodes[0], nodes[1:]
    if isinstance(first, GroupStep):  # a group is always the last node: the rest is its body
        await launch_group(app, first, parent, resent=resent)
        return
    extra: dict[str, Any] = {"chain": [n.pack() for n in later]} if later else {}
    if resent:
        extra[RESENT] = True
    await app.send_signature(first.signature(app, *parent, with_parent=bool(parent),
                                             extra=extra))


async def launch_group(app: App, step: GroupStep, parent: tuple[Any, ...], *,
                       resent: bool) -> None:
    """Record the group's chord and send its members (the same ids when sent again)."""
    n = len(step.members)
    info: dict[str, Any] = {"k": "chord", "n": n, "body": [b.pack() for b in step.body],
                            "result": step.result_id}
    await store_for(app.backend).put_workflow(step.chord_id, info)
    if not step.members:
        from asyncq.canvas._middleware import deliver_chord

        await deliver_chord(app, step.chord_id, step.body, step.result_id, [])
        return
    extra: dict[str, Any] = {RESENT: True} if resent else {}
    await app.enqueue_many([
        member.signature(app, *parent, with_parent=bool(parent),
                         extra={**extra, "chord": [step.chord_id, n, index]})
        for index, member in enumerate(step.members)])
