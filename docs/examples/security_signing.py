"""HMAC signing with key ids, a key rotation, and what a signing worker refuses."""

import asyncio

from asyncq import App, ConfigurationError, Worker

# Keys come from your secret store; at least 16 bytes each. Ids travel in the clear.
OLD = {"2024-01": "old-secret-0123456789abcdef"}
NEW = {"2024-07": "new-secret-fedcba9876543210"}

# Rotation, step 1: workers accept both keys (producers still sign with the old one)
worker_app = App("signed", broker="memory://signed", signing_keys={**OLD, **NEW})
# step 2: producers sign with the new key; step 3: workers drop the old key
producer = App("signed", broker="memory://signed", signing_keys={**OLD, **NEW},
               signing_key_id="2024-07")
unsigned = App("signed", broker="memory://signed")
stranger = App("signed", broker="memory://signed",
               signing_keys={"2099-01": "a-key-the-workers-do-not-have"})


@worker_app.task(name="billing.refund")
async def refund(order_id: int) -> str:
    return f"refunded order {order_id}"


async def main() -> None:
    for app in (producer, unsigned, stranger):  # the same task, as each producer sees it
        app.task(name="billing.refund")(refund.fn)

    async with producer, unsigned, stranger, Worker(worker_app):
        print(await (await producer.send_task("billing.refund", [1])).get(timeout=5))
        lone = await unsigned.send_task("billing.refund", [2])
        forged = await stranger.send_task("billing.refund", [3])
        await asyncio.sleep(0.2)
        # nothing in a message the workers cannot verify is trusted, not even its id:
        # both are dead-lettered, and no result record is written for them
        print("unsigned:", await lone.state())
        print("unknown key:", await forged.state())
        for letter in await worker_app.broker.dead_letters("default"):
            print("dead letter:", letter.reason)

    try:
        App("weak", broker="memory://weak", signing_keys={"k": "short"})
    except ConfigurationError as exc:
        print("refused:", exc)
    print(producer.signer)  # key ids only, never the keys


if __name__ == "__main__":
    asyncio.run(main())
