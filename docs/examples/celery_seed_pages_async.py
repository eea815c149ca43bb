"""Seed 002 in async code. Needs Redis ($ASYNCQ_TEST_REDIS_URL)."""

import asyncio

from seeds.worker import running_worker

from asyncq.canvas import link_id


async def index() -> None:
    from seeds.pages import add, app, fetch_page, image_compress, parse_page, store_page_info

    async with app:
        result = await add.enqueue(4, 4)
        by_id = app.result(result.id)
        print(await by_id.get(timeout=10), "执行成功", await by_id.state())

        url = "https://example.test/page"
        chain = await (fetch_page.s(url) | parse_page.s() | store_page_info.s(url)).enqueue()
        steps = await chain.steps()
        print("parsed:", await steps[1].get(timeout=10))

        fetched = await fetch_page.options(link=[parse_page.s()]).enqueue(url)
        print("linked:", await app.result(link_id(fetched.id)).get(timeout=10))
        print("routed:", await (await image_compress.enqueue("cat.png")).get(timeout=10))


if __name__ == "__main__":
    with running_worker("seeds.pages:app", "default,images,videos"):
        asyncio.run(index())
