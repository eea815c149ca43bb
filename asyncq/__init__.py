"""asyncq: an asyncio-native task queue on Redis Streams and RabbitMQ."""

from __future__ import annotations

import logging

from asyncq.app import App
from asyncq.beat import Beat, BeatStats
from asyncq.blocking import BlockingClient, BlockingResult
from asyncq.canvas import (
    ChainResult,
    ChordResult,
    GroupResult,
    WorkflowResult,
    chain,
    chord,
    group,
)
from asyncq.context import Request, current_request
from asyncq.errors import (
    AsyncqError,
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    DecodeError,
    MessageTooLarge,
    NotReplicated,
    PublishError,
    ResultError,
    ResultTimeout,
    ResultUnavailable,
    Retry,
    SerializationError,
    SignatureError,
    TaskCancelled,
    TaskFailed,
    TaskNotRegistered,
    TaskRejected,
    TaskRevoked,
    TimeLimitExceeded,
)
from asyncq.events.monitor import Events, Heartbeats
from asyncq.message import Message
from asyncq.middleware import Middleware
from asyncq.records import Progress, ResultRecord
from asyncq.result import TaskResult
from asyncq.schedule import crontab
from asyncq.states import TaskState
from asyncq.task import BoundTask, CallOptions, Signature, Task
from asyncq.worker import Worker, WorkerStats

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncqError",
    "Beat",
    "BeatStats",
    "BlockingClient",
    "BlockingResult",
    "BoundTask",
    "BrokerError",
    "BrokerUnavailable",
    "CallOptions",
    "ChainResult",
    "ChordResult",
    "ConfigurationError",
    "DecodeError",
    "Events",
    "GroupResult",
    "Heartbeats",
    "Message",
    "MessageTooLarge",
    "Middleware",
    "NotReplicated",
    "Progress",
    "PublishError",
    "Request",
    "ResultError",
    "ResultRecord",
    "ResultTimeout",
    "ResultUnavailable",
    "Retry",
    "SerializationError",
    "Signature",
    "SignatureError",
    "Task",
    "TaskCancelled",
    "TaskFailed",
    "TaskNotRegistered",
    "TaskRejected",
    "TaskResult",
    "TaskRevoked",
    "TaskState",
    "TimeLimitExceeded",
    "Worker",
    "WorkerStats",
    "WorkflowResult",
    "__version__",
    "chain",
    "chord",
    "crontab",
    "current_request",
    "group",
]

logging.getLogger("asyncq").addHandler(logging.NullHandler())
