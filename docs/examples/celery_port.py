'''A Celery task module, ported to asyncq. The Celery original:

```python
from celery import Celery

app = Celery("tasks", broker="redis://localhost:6379/6", backend="redis://localhost:6379/7")
app.conf.task_routes = {"tasks.image_compress": {"queue": "images"}}
app.conf.result_expires = 20 * 60


@app.task(bind=True, autoretry_for=(ConnectionError,), max_retries=3, retry_backoff=True,
          soft_time_limit=30, time_limit=60)
def image_compress(self, image_name):
    print(f"{self.request.id}: compressing {image_name}")
    return "success"


result = image_compress.apply_async(("cat.png",), countdown=1, expires=120)
print(result.get(timeout=30), result.state)
```

Run this file as is (memory broker), or pass a Redis URL: `python celery_port.py redis://...`.
'''

import asyncio
import sys

import asyncq
from asyncq import App, Worker

BROKER = sys.argv[1] if len(sys.argv) > 1 else "memory://celery-port"

app = App("tasks", broker=BROKER,  # results go to the same Redis unless backend= says otherwise
          task_routes={"tasks.image_compress": {"queue": "images"}},
          result_ttl=20 * 60)


@app.task(name="tasks.image_compress", retries=3, retry_on=(ConnectionError,),
          retry_backoff=1.0, soft_timeout=30, timeout=60)
async def image_compress(image_name: str) -> str:
    print(f"{asyncq.current_request().id}: compressing {image_name}")
    return "success"


async def main() -> None:
    async with app, Worker(app):  # in production: asyncq worker tasks:app -Q images
        result = await image_compress.options(countdown=1, expires=120).enqueue("cat.png")
        print(await result.get(timeout=30), await result.state())


if __name__ == "__main__":
    asyncio.run(main())
