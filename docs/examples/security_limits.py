"""What travels on the wire: msgpack types, size limits, task ids, masked credentials."""

import asyncio
import datetime as dt
import decimal
import uuid

from asyncq import App, SerializationError, TaskFailed, Worker

app = App("wire", broker="memory://wire", max_message_size=64 * 1024)


@app.task(name="wire.echo")
async def echo(value: object) -> object:
    return value


@app.task(name="wire.connection")
async def connection() -> object:
    return asyncio.get_running_loop()  # not data: cannot be a result


async def main() -> None:
    async with app, Worker(app):
        values = [
            {"nested": [1, 2.5, True, None, "text", b"bytes"]},
            dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),
            dt.date(2024, 5, 1),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            decimal.Decimal("19.99"),
            (1, 2),                                       # tuples come back as lists
        ]
        for value in values:
            print(repr(await (await echo.enqueue(value)).get(timeout=5)))

        for bad in ({1, 2}, object(), b"x" * 100_000):
            try:
                await echo.enqueue(bad)                   # nothing is sent
            except SerializationError as exc:
                print("refused:", exc)

        try:
            await (await connection.enqueue()).get(timeout=5)
        except TaskFailed as exc:
            print("failed:", exc.exc_type, "-", exc.exc_message)

        # ids are checked before anything is sent (and again by the worker)
        try:
            await echo.options(task_id="../../etc/passwd").enqueue(1)
        except ValueError as exc:
            print("refused:", exc)

    print(App("masked", broker="redis://:hunter2@redis.internal:6379/0"))


if __name__ == "__main__":
    asyncio.run(main())
