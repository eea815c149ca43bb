"""Seed 002: ``index.py`` (states by id) and ``update_page_info`` (a chain), synchronous.

The Celery original::

    result = add.delay(4, 4)
    async = AsyncResult(id=result.id, app=app)
    time.sleep(3)
    if async.successful(): print(async.get(), "执行成功")
    elif async.failed(): print('执行失败')
    elif async.status == 'PENDING': ...

    chain = fetch_page.s(url) | parse_page.s() | store_page_info.s(url)
    chain()
    fetch_page.apply_async((url), link=[parse_page.s()])

Needs Redis ($ASYNCQ_TEST_REDIS_URL); the worker is
``asyncq worker seeds.pages:app -Q default,images,videos``.
"""

import time

from seeds.worker import running_worker

from asyncq.canvas import link_id


def index() -> None:
    from seeds.pages import add, app, fetch_page, image_compress, parse_page, store_page_info

    with app.blocking() as client:
        result = client.enqueue(add, 4, 4)
        print(len(result.id), "character id")
        by_id = client.result(result.id)  # AsyncResult(id=result.id, app=app)
        while not by_id.ready():
            time.sleep(0.1)
        if by_id.successful():
            print(by_id.get(), "执行成功")
        elif by_id.failed():
            print("执行失败")
        else:
            print("state:", by_id.state())  # PENDING, STARTED, RETRY

        url = "https://example.test/page"
        chain = client.enqueue(fetch_page.s(url) | parse_page.s() | store_page_info.s(url))
        steps = client.run(chain.handle.steps())  # type: ignore[attr-defined]
        print("parsed:", client.result(steps[1].id).get(timeout=10))

        fetched = client.enqueue(fetch_page.options(link=[parse_page.s()]), url)
        print("linked:", client.result(link_id(fetched.id)).get(timeout=10))
        print("routed:", client.enqueue(image_compress, "cat.png").get(timeout=10))


if __name__ == "__main__":
    with running_worker("seeds.pages:app", "default,images,videos"):
        index()
