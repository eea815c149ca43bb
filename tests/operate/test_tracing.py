"""One trace across processes: a web request, its enqueue, and the run in a worker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

MODULE = '''
import json, os
from collections.abc import Sequence
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from asyncq import App
from asyncq.middleware.otel import Tracing


class FileExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as out:
            for span in spans:
                ctx, parent = span.context, span.parent
                out.write(json.dumps({"name": span.name, "trace": ctx.trace_id,
                                      "span": ctx.span_id, "kind": span.kind.name,
                                      "parent": parent.span_id if parent else None}) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
if os.environ.get("T_SPANS"):
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["T_SPANS"])))
app = App(os.environ["T_APP"], broker=os.environ["T_BROKER"],
          middleware=[Tracing(tracer_provider=provider)])


@app.task(name="signup", queue=os.environ["T_QUEUE"])
async def signup(email: str) -> str:
    return email.upper()
'''


@pytest.fixture
def traced(tmp_path: Path, redis_url: str, unique: Callable[[str], str],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, dict[str, str]]]:
    (tmp_path / "tmod.py").write_text(textwrap.dedent(MODULE))
    env = {"T_APP": unique("trace"), "T_BROKER": redis_url, "T_QUEUE": unique("tq")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tmod", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "asyncq", "worker", "tmod:app", "-l", "warning"], cwd=tmp_path,
        env={**os.environ, **env, "T_SPANS": str(tmp_path / "worker-spans.jsonl"),
             "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield tmp_path, env
    worker.terminate()
    worker.wait(20)
    sys.modules.pop("tmod", None)


async def test_one_trace_links_request_enqueue_and_run(
        traced: tuple[Path, dict[str, str]]) -> None:
    import tmod  # type: ignore[import-not-found]

    folder, env = traced
    spans_file = folder / "worker-spans.jsonl"
    exporter = InMemorySpanExporter()
    tmod.provider.add_span_processor(SimpleSpanProcessor(exporter))
    web = tmod.provider.get_tracer("web")
    async with tmod.app:
        with web.start_as_current_span("POST /signup", kind=SpanKind.SERVER) as request:
            handle = await tmod.signup.enqueue("a@b.c")
        assert await handle.get(timeout=20) == "A@B.C"
        await tmod.app.broker.delete_queue(env["T_QUEUE"])
    for _ in range(200):  # the span file is written when the run span ends
        if spans_file.exists():
            break
        await asyncio.sleep(0.05)
    (send,) = [s for s in exporter.get_finished_spans() if s.name == "send signup"]
    (run,) = [json.loads(line) for line in spans_file.read_text().splitlines()]
    trace_id = request.get_span_context().trace_id
    assert send.kind is SpanKind.PRODUCER
    assert send.context.trace_id == trace_id
    assert send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id
    assert send.attributes["messaging.message.id"] == handle.id
    assert run["name"] == "run signup"
    assert run["kind"] == "CONSUMER"
    assert run["trace"] == trace_id  # the run in the other process is in the same trace
    assert run["parent"] == send.context.span_id
