"""Docs are runnable (house style 14).

- every ``docs/examples/*.py`` runs in a subprocess, exits 0 and prints what the docs say;
- every fenced ``python`` block in ``docs/**/*.md`` is one of those files or a contiguous
  excerpt of one (compared line by line after removing common indentation), so a
  snippet cannot drift from code that runs;
- every example is shown or linked from some page, relative links resolve, and every
  page is in the mkdocs nav.

Examples that read ``ASYNCQ_TEST_REDIS_URL`` need Redis, and those that read
``ASYNCQ_TEST_AMQP_URL`` need RabbitMQ (the ``redis_url`` and ``amqp_url`` fixtures fail
with instructions when a server is not reachable); the others run on ``memory://``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
#: An example that takes longer than this has stopped being a quick example, or waits out
#: a timeout (30 s for most): they take 1-3 s, but up to 10 s were seen while the suite's
#: four processes loaded a 2-core machine, hence the slack.
MAX_SECONDS = 20.0
#: Examples that run a test suite of their own (the conformance kit), allowed longer.
SLOW_EXAMPLES = {"writing_a_broker.py": 40.0}

#: What each example must print (fragments of its stdout).
EXPECTED: dict[str, list[str]] = {
    "brokers_rabbitmq.py": [
        "results in Redis: 5",
        "results over AMQP: 42",
        "cat.png resized from queue images",
        "clip 7 transcoded from queue video",
        "refused: RabbitMQ returned the message (NO_ROUTE)",
    ],
    "celery_port.py": [": compressing cat.png", "success SUCCESS"],
    "writing_a_broker.py": ["add on toy://: 5", "published: 1", "kit: 14 passed"],
    "controlling_priority_rate_redis.py": [
        "ran: outage, security, billing, routine-1, routine-2",
        "never faster than the limit: True",  # (the span itself is timing: not checked)
    ],
    "controlling_progress.py": ["STARTED 50/100 50%", "imported 100 rows"],
    "controlling_revoke.py": [
        "queued: REVOKED",
        "delayed: SCHEDULED due within 0.2s: True",
        "report 3 built",
        "task report-1 was revoked: revoked",
        "task report-2 was revoked: revoked",
        "running: cancelled, state REVOKED",
    ],
    "celery_seed_pages_async.py": ["8 执行成功 SUCCESS", "parsed: {'length': 53}",
                                   "linked: {'length': 53}", "routed: success"],
    "celery_seed_pages_sync.py": ["32 character id\n8 执行成功", "parsed: {'length': 53}",
                                  "linked: {'length': 53}", "routed: success"],
    "celery_seed_pj_async.py": ["add: 4\nsubtract: 5\ngroup: [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]",
                                "again by id: 18"],
    "celery_seed_pj_sync.py": ["add: 4\nsubtract: 5\ngroup: [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]",
                               "again by id: 18"],
    "celery_seed_trigger_async.py": ["task done: 8\n32 character id, state SUCCESS"],
    "celery_seed_trigger_sync.py": ["task done: 8\n32 character id, state SUCCESS"],
    "dead_letters.py": [
        "rejected: unknown task 'shop.export'",
        "rejected: arguments do not match shop.resize(): got an unexpected keyword argument",
        "too big: FAILURE",
        "requeued: 1 -> report 7 exported",
        "purged: 2",
        "left: 0",
    ],
    "dead_letters_cli_redis.py": [
        "2 dead letter(s) in 'docs-dlq-",
        "'reason': \"unknown task 'reports.export'\"",
        "'kwargs': {'email': 'ada@example.test'}",
        "requeued 1 message(s) onto 'docs-dlq-",
        "waiting on the queue again: 1",
        "purged 1 dead letter(s) from 'docs-dlq-",
    ],
    "errors_handling.py": [
        "TaskFailed ZeroDivisionError division by zero True",
        "ResultTimeout True",
        "TaskNotRegistered no task named 'maths.modulo'",
        "BrokerUnavailable Redis broker at redis://:***@127.0.0.1:1/0 is unavailable",
        "True\nFalse",
    ],
    "idempotent_tasks.py": ["naive balance: 1000", "idempotent balance: 500"],
    "loop_lag.py": [
        "asyncq.worker: event loop blocked for",
        "by task pdf.render (",
        "asyncq.worker: event loop unblocked",
        "done",
    ],
    "operating.py": ["is running ['shop.resize', 'shop.resize', 'shop.resize']",
                     "pong: [{'ok': 'pong'}]", "'task-succeeded'",
                     'asyncq_tasks_total{outcome="succeeded",queue="images",'
                     'task="shop.resize"} 3.0'],
    "periodic_tasks.py": [
        "__main__.heartbeat         every 0:00:01",
        "__main__.weekly_report     cron 30 19 * * thu (Asia/Shanghai)           next "
        "2026-12-10T19:30:00+08:00",
        "sweep                      cron */15 * * * * (Europe/Berlin)            next "
        "2026-12-03T13:15:00+01:00",
        "__main__.refresh_prices    every 0:05:00",
        "add-every-minute           every 0:01:00                                next "
        "2026-12-03T13:01:00+01:00",
        "heartbeats: True beat:shop:__main__.heartbeat",
    ],
    "periodic_time.py": [
        "spring forward: ['2026-03-28T02:30:00+01:00', '2026-03-29T03:00:00+02:00', "
        "'2026-03-30T02:30:00+02:00']",
        "fall back: ['2026-10-24T02:30:00+02:00', '2026-10-25T02:30:00+02:00', "
        "'2026-10-26T02:30:00+01:00']",
        "missed=latest: ['05:00']",
        "missed=all: ['01:00', '02:00', '03:00', '04:00', '05:00']",
        "missed=skip: []",
        "late ticks after a 4 s handover: 4",
    ],
    "quickstart.py": [
        "add: 5",
        "state: SUCCESS",
        "email: sent 2 characters to a@example.test",
        "failed: ValueError no such customer",
        "by id: 5",
    ],
    "quickstart_worker_process.py": [
        " app:          shop",
        " queues:       default, emails",
        "   . shop.tasks.send_email  [emails]",
        "add: 5",
        "email: sent 23 characters to ada@example.test",
        "worker exit code: 0",
        "asyncq.worker: SIGTERM received: finishing running tasks",
        "asyncq.worker: worker stopped",
    ],
    "results_handles.py": [
        "{'month': '2024-05', 'rows': 1200}",
        "SUCCESS True True",
        "by id: SUCCESS {'month': '2024-05', 'rows': 1200} reports.build 0",
        "forgotten: PENDING",
        "unknown id: PENDING",
        "not yet: no result for task",
        "later: {'month': '2024-06', 'rows': 1200}",
        "failed: ValueError no month 13",
        "traceback ends with: ValueError: no month 13",
        "True Traceback (most recent call last):",
        "expired: PENDING",
    ],
    "results_waiting_redis.py": [
        "300 handles waiting on 1 pub/sub connection(s), 2 channel(s)",
        "300 results; image 0 resized",
        "from another app: image 7 resized",
    ],
    "retries.py": [
        "order 7 confirmed on attempt 2 (3 runs)",
        "sku-1 in stock after 2 retries",
        "gave up: ConnectionError - SMTP refused (attempt 2, last: True)",
        "gave up: OSError - cannot reach https://example.test/feed",
    ],
    "routing.py": [
        "shop.mail.welcome        -> emails",
        "shop.images.resize       -> images",
        "shop.images.thumbnail    -> media",
        "shop.reports.daily       -> reports",
        "shop.add                 -> main",
        "emails 1\nimages 1\nmedia 1\nreports 1\nmain 1\nurgent 1",
        "worker queues: ['emails', 'images', 'main', 'media', 'reports']",
    ],
    "security_limits.py": [
        "Decimal('19.99')",
        "UUID('12345678-1234-5678-1234-567812345678')",
        "[1, 2]",
        "refused: task 'wire.echo': positional argument 0 (set): cannot serialize",
        "refused: task 'wire.echo': message of 100056 bytes exceeds the 65536 byte limit",
        "failed: asyncq.SerializationError - the return value cannot be serialized",
        "refused: invalid task id '../../etc/passwd'",
        "broker=redis://:***@redis.internal:6379/0",
    ],
    "security_signing.py": [
        "refunded order 1",
        "unsigned: PENDING",
        "unknown key: PENDING",
        "dead letter: undecodable message: unknown signing key id '2099-01'",
        "refused: signing key 'k' is shorter than 16 bytes",
        "<Signer keys=[2024-01, 2024-07] current=2024-07>",
    ],
    "tasks_call_options.py": [
        "reminded 1 on default (trace None) after 0.",
        "reminded 2 on default (trace None)",
        "remind-3 -> reminded 3 on urgent (trace abc123)",
        "was cancelled: the task expired before it ran",
        "100 reminders",
        "reminded 5 on default (trace None)",
    ],
    "tasks_defining.py": [
        "__main__.add default",
        "billing.charge billing",
        "['__main__.add', 'billing.charge']",
        "refused: task '__main__.main.<locals>.numbers': a generator cannot be a task",
        "refused: a task named 'billing.charge' is already registered",
        "refused: @app.task: TaskConfig.__init__() got an unexpected keyword argument",
    ],
    "tasks_hooks.py": [
        "on_retry shop.sync_stock: ConnectionError('warehouse API down'), next attempt in",
        "attempt 1: 42",
        "result: 42",
        "on_failure shop.sync_stock after 2 attempt(s): ConnectionError('warehouse API down')",
        "failed: ConnectionError warehouse API down",
        "no result: task shop.track_click ignores its results",
        "tracked /pricing",
        "state while running: STARTED",
        "rebuilt SUCCESS",
        "outside a task: current_request() called outside a running asyncq task",
    ],
    "tasks_app_defaults.py": [
        "sync: 2 30",
        "ping: 0 30",
        "pong",
        "ALERT shop.sync('sku-9',) failed after 2 retries (max 2): ConnectionError(",
        "failed: ConnectionError",
    ],
    "tasks_sync.py": [
        "img0.png at 640px (attempt 0)",
        "8 resizes on 4 threads in",
        "threads used: 4",
    ],
    "testing_your_tasks.py": ["4 passed"],
    "time_limits.py": [
        "transcode(intro.mov): cancelled, removing the partial file",
        "transcode(intro.mov): finally ran",
        "-> TimeoutError: the task exceeded its soft time limit of 0.2 s",
        "render(q3): finally ran",
        "-> TimeoutError: the task exceeded its time limit of 0.2 s",
        "-> TimeoutError: the task exceeded its hard time limit of 0.3 s",
        "stubborn: still running after the hard limit",
    ],
    "workers_crash_recovery_redis.py": [
        "taken by the doomed worker: 1",
        "order 42 shipped (delivery 2)",
        "recovered after",
    ],
    "workflows.py": [
        "stored https://example.test/: 49 characters",
        "chain: 10",
        "group: [0, 2, 4, 6, 8] ...",
        "chord: 9900\ngroup in a chain: 34\nby id: 9900",
        "linked: <html>",
        "caught: TaskFailed True True",
        "failed with ZeroDivisionError",
        "chain failed at step 2 of 3 - division by zero",
        "chord failed: ZeroDivisionError",
    ],
    "workers_shutdown.py": [
        "running: WorkerStats(running=1, buffered=2, held=3, settled=0, stopping=False)",
        "after stop: SUCCESS | waiting: 3",
        "cancelled at shutdown; its message goes back to the queue",
        "after a 0.1 s grace: 3 waiting",
        "results: [0, 1, 2, 3]",
    ],
}


def _needs_redis(path: Path) -> bool:
    return "ASYNCQ_TEST_REDIS_URL" in path.read_text()


def _needs_amqp(path: Path) -> bool:
    return "ASYNCQ_TEST_AMQP_URL" in path.read_text()


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, request: pytest.FixtureRequest) -> None:
    path = EXAMPLES / name
    env = {k: v for k, v in os.environ.items() if k != "ASYNCQ_BROKER"}
    if _needs_redis(path):
        env["ASYNCQ_TEST_REDIS_URL"] = request.getfixturevalue("redis_url")
    if _needs_amqp(path):
        env["ASYNCQ_TEST_AMQP_URL"] = request.getfixturevalue("amqp_url")
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                            timeout=60, check=False, cwd=ROOT, env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stderr}"
    missing = [line for line in EXPECTED[name] if line not in result.stdout]
    assert not missing, f"{name} did not print {missing}; stdout:\n{result.stdout}"
    limit = SLOW_EXAMPLES.get(name, MAX_SECONDS)
    assert elapsed < limit, f"{name} took {elapsed:.1f}s"


# -- snippets --------------------------------------------------------------------------
def _pages() -> list[Path]:
    """The pages mkdocs builds: not those under dot-directories (e.g. the .pytest_cache
    that running the examples' tests leaves in docs/examples)."""
    return sorted(p for p in DOCS.rglob("*.md")
                  if not any(part.startswith(".") for part in p.relative_to(DOCS).parts))


def _python_blocks(page: Path) -> list[str]:
    """The fenced ```python blocks of a page, dedented to their fence."""
    blocks: list[str] = []
    lines: list[str] | None = None
    indent = 0
    for line in page.read_text().splitlines():
        stripped = line.strip()
        if lines is None:
            if stripped.startswith("```python"):
                lines, indent = [], len(line) - len(line.lstrip())
        elif stripped == "```":
            blocks.append("\n".join(lines))
            lines = None
        else:
            lines.append(line[indent:].rstrip())
    return blocks


def _is_excerpt(block: str, source: str) -> bool:
    want = textwrap.dedent(block).strip("\n")
    n = len(want.splitlines())
    lines = [line.rstrip() for line in source.splitlines()]
    return any(textwrap.dedent("\n".join(lines[i : i + n])) == want
               for i in range(len(lines) - n + 1))


#: Pages whose snippets are not runnable yet, with why (strict: fixing them fails the
#: xfail, so the entry is removed together with the fix).
NOT_YET_RUNNABLE: dict[str, str] = {}


@pytest.mark.parametrize("page", [
    pytest.param(p, id=str(p.relative_to(DOCS)), marks=[pytest.mark.xfail(
        strict=True, reason=NOT_YET_RUNNABLE[str(p.relative_to(DOCS))])]
        if str(p.relative_to(DOCS)) in NOT_YET_RUNNABLE else [])
    for p in _pages()])
def test_python_snippets_come_from_examples(page: Path) -> None:
    sources = [p.read_text() for p in sorted(EXAMPLES.rglob("*.py"))]
    stray = [block for block in _python_blocks(page)
             if not any(_is_excerpt(block, source) for source in sources)]
    assert not stray, (f"{page.relative_to(ROOT)}: these python blocks are not in any file "
                       "under docs/examples/:\n\n" + "\n\n---\n\n".join(stray))


def test_readme_python_snippets_come_from_examples() -> None:
    """README.md's snippets too: so they run, and pass mypy --strict (below)."""
    sources = [p.read_text() for p in sorted(EXAMPLES.rglob("*.py"))]
    blocks = _python_blocks(ROOT / "README.md")
    stray = [block for block in blocks if not any(_is_excerpt(block, s) for s in sources)]
    assert blocks, "README.md has no python blocks: was the check pointed at the wrong file?"
    assert not stray, ("README.md: these python blocks are not in any file under "
                       "docs/examples/:\n\n" + "\n\n---\n\n".join(stray))


def test_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """Every file under docs/examples, so every snippet of the docs and the README."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")  # the user's view: none of this project's settings
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(config),
         "--cache-dir", str(tmp_path / "cache"), "."], cwd=EXAMPLES, capture_output=True,
        text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_example_is_shown_or_linked() -> None:
    text = "\n".join(p.read_text() for p in _pages())
    orphans = [str(p.relative_to(EXAMPLES)) for p in sorted(EXAMPLES.rglob("*.py"))
               if p.stat().st_size and f"examples/{p.relative_to(EXAMPLES)}" not in text]
    assert not orphans, f"examples no page shows or links: {orphans}"


_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def test_relative_links_resolve() -> None:
    broken = []
    for page in _pages():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in _LINK.findall(text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(DOCS)} -> {target}")
    assert not broken, f"broken links: {broken}"


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [str(p.relative_to(DOCS)) for p in _pages()
               if str(p.relative_to(DOCS)) not in nav]
    assert not missing, f"pages missing from mkdocs.yml nav: {missing}"


# -- pytest examples, run as a user would --------------------------------------------
#: Test modules under docs/examples and the files a user copies with them.
PYTEST_EXAMPLES: dict[str, tuple[list[str], str]] = {
    "testing_your_tasks.py": (["testing_your_tasks.py"], "4 passed"),
    "shop/test_api.py": (["shop/__init__.py", "shop/tasks.py", "shop/api.py",
                          "shop/test_api.py"], "6 passed"),
}


@pytest.mark.parametrize("name", sorted(PYTEST_EXAMPLES))
def test_pytest_example_runs_as_a_user(name: str, tmp_path: Path) -> None:
    """Copied into an empty project, run by plain pytest with no settings (memory://).

    ``-c`` names an empty ini file, so nothing of this project's pytest settings
    (plugins, asyncio_mode, timeout, filterwarnings) helps the example pass.
    """
    files, expected = PYTEST_EXAMPLES[name]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((EXAMPLES / rel).read_text())
    (tmp_path / "empty.ini").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCQ_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", "empty.ini",
         "-q", name], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout, result.stdout


def test_pytest_examples_run_in_the_clone_without_the_projects_settings() -> None:
    """`pytest docs/examples/...` in a clone: docs/examples/pytest.ini is the config, not
    pyproject.toml (whose `timeout` needs pytest-timeout, absent here with -p no:timeout)."""
    paths = [f"docs/examples/{name}" for name in sorted(PYTEST_EXAMPLES)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCQ_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:timeout", *paths],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configfile: pytest.ini" in result.stdout, result.stdout
    assert "10 passed" in result.stdout, result.stdout
