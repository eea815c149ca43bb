"""A running worker's queues changed over the wire: cancel-consumer and add-consumer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from asyncq._names import check_queue
from asyncq.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncq.worker import Worker

logger = logging.getLogger("asyncq.worker")


async def cancel(worker: Worker, queue: str) -> int:
    """:meth:`Worker.cancel_queue`: the number of messages handed back."""
    if queue not in worker.queues:
        raise ConfigurationError(f"not consuming {queue[:200]!r} (consuming: "
                                 f"{', '.join(worker.queues)[:500]})")
    if len(worker.queues) == 1:
        raise ConfigurationError(f"{queue[:200]!r} is the worker's last queue: stop the "
                                 "worker instead")
    worker.queues.remove(queue)
    worker._cancelled.add(queue)
    if worker._consumer is not None:
        await worker._consumer.cancel_queue(queue)
    back = [job for job in worker._buffer if job.queue == queue]
    for job in back:
        worker._runners.remove(job)  # (a suspect may wait for the buffer to drain)
    back += worker._admission.take(queue)  # held back by a rate limit, say
    for job in back:
        worker._hand_back(job.delivery)
    logger.info("no longer consuming %s (%d message(s) handed back)", queue, len(back))
    return len(back)


async def add(worker: Worker, queue: str) -> None:
    """:meth:`Worker.add_queue`."""
    check_queue(queue, "add_consumer")
    if queue in worker.queues:
        return
    if worker._consumer is not None:
        await worker._consumer.add_queue(queue)
    worker.queues.append(queue)
    worker._cancelled.discard(queue)
    logger.info("consuming %s too", queue)
