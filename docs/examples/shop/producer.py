"""Send work to the shop's workers and wait for the results: python -m shop.producer"""

import asyncio

from shop.tasks import add, app, send_email


async def main() -> None:
    async with app:                                 # connects once; closes on exit
        total = await add.enqueue(2, 3)             # TaskResult[int]
        mail = await send_email.enqueue("ada@example.test", "Your order has shipped.")
        print("add:", await total.get(timeout=10))  # 5
        print("email:", await mail.get(timeout=10))


if __name__ == "__main__":
    asyncio.run(main())
