"""Catching asyncq's errors: one tree rooted at AsyncqError."""

import asyncio

import asyncq
from asyncq import App, Worker

app = App("errors", broker="memory://errors")


@app.task(name="maths.divide")
async def divide(x: float, y: float) -> float:
    return x / y


async def main() -> None:
    async with app, Worker(app):
        try:
            await (await divide.enqueue(1, 0)).get(timeout=5)
        except asyncq.TaskFailed as exc:  # the remote exception, as strings
            print(type(exc).__name__, exc.exc_type, exc.exc_message, bool(exc.traceback))

        slow = await divide.options(countdown=10).enqueue(1, 2)
        try:
            await slow.get(timeout=0.1)
        except TimeoutError as exc:      # ResultTimeout is also a builtin TimeoutError
            print(type(exc).__name__, isinstance(exc, asyncq.ResultError))

        try:
            await app.send_task("maths.modulo", [1, 2])
        except LookupError as exc:       # TaskNotRegistered is also a LookupError
            print(type(exc).__name__, exc)

    unreachable = App("errors", broker="redis://:s3cret@127.0.0.1:1/0")
    try:
        async with unreachable:
            pass
    except asyncq.BrokerError as exc:    # BrokerUnavailable; the password is masked
        print(type(exc).__name__, exc)

    print(all(issubclass(error, asyncq.AsyncqError) for error in (
        asyncq.ConfigurationError, asyncq.SerializationError, asyncq.DecodeError,
        asyncq.BrokerError, asyncq.ResultError, asyncq.TaskNotRegistered)))
    print(issubclass(asyncq.Retry, asyncq.AsyncqError))  # control flow, not an error


if __name__ == "__main__":
    asyncio.run(main())
