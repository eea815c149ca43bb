"""Idempotent tasks: a second run of the same task id changes nothing.

A task runs twice when its worker dies mid-task (the message is redelivered) or when
a producer sends again with the same task_id after an enqueue it could not confirm.
Both runs see the same current_request().id.
"""

import asyncio

import asyncq
from asyncq import App, Worker

app = App("payments", broker="memory://payments")

balances = {"ada": 0}
ledger: dict[str, tuple[str, int]] = {}  # stands in for a table with a unique key


@app.task(name="payments.credit_naive")
async def credit_naive(account: str, cents: int) -> int:
    balances[account] += cents  # "add one": a second run adds again
    return balances[account]


@app.task(name="payments.credit")
async def credit(account: str, cents: int) -> int:
    key = asyncq.current_request().id  # the same on every delivery and retry
    if key not in ledger:  # INSERT ... ON CONFLICT (key) DO NOTHING, in one transaction
        ledger[key] = (account, cents)
    return sum(c for a, c in ledger.values() if a == account)  # derive, don't accumulate


async def main() -> None:
    async with app, Worker(app) as worker:
        for task in (credit_naive, credit):
            for _ in range(2):  # the same call, delivered twice
                await task.options(task_id="payment-42").enqueue("ada", 500)
                await worker.join()
            await app.result("payment-42").forget()
        print("naive balance:", balances["ada"])                       # 1000: credited twice
        print("idempotent balance:", sum(c for _, c in ledger.values()))  # 500


if __name__ == "__main__":
    asyncio.run(main())
