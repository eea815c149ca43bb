"""Seed 002: ``tasks.py`` with a chain of page tasks and ``CELERY_ROUTES`` as a tuple.

The Celery original routed with a tuple of dicts, which ``task_routes`` takes as is,
and piped ``fetch_page.s(url) | parse_page.s() | store_page_info.s(url)``.
``time.sleep`` in the tasks becomes ``await asyncio.sleep`` (shortened here).
"""

import asyncio
import os

from asyncq import App

CELERY_ROUTES = ({"tasks.image_compress": {"queue": "images", "routing_key": "media.image"}},
                 {"tasks.video_upload": {"queue": "videos", "routing_key": "media.video"}},
                 {"tasks.video_compress": {"queue": "videos", "routing_key": "media.video"}})

app = App("tasks", broker=os.environ.get("ASYNCQ_BROKER"), task_routes=CELERY_ROUTES,
          result_ttl=60 * 20)  # CELERY_TASK_RESULT_EXPIRES
PAGES: dict[str, str] = {}


@app.task(name="tasks.add")
async def add(x: int, y: int) -> int:
    await asyncio.sleep(0.1)
    return x + y


@app.task(name="tasks.fetch_page")
async def fetch_page(url: str) -> str:
    return f"<html><title>{url}</title></html>"  # myhttplib.get(url)


@app.task(name="tasks.parse_page")
async def parse_page(page: str) -> dict[str, int]:
    return {"length": len(page)}  # myparser.parse_document(page)


@app.task(name="tasks.store_page_info", ignore_result=True)
async def store_page_info(info: dict[str, int], url: str) -> None:
    PAGES[url] = f"{info['length']} characters"  # PageInfo.objects.create(...)
    print(f"stored {url}: {PAGES[url]}", flush=True)


@app.task(name="tasks.image_compress")
async def image_compress(image_name: str) -> str:
    print("Compressing the:", image_name, flush=True)
    return "success"
