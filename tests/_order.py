"""The order of the parallel run: the slowest tests start first, one share per process.

pytest-xdist's ``--dist worksteal`` hands process *i* of *n* the *i*-th contiguous chunk of
the collection and lets idle processes steal the tail of a busy one's chunk. A test of a
minute collected near the end starts late and makes the run's tail. So, when the run is
split (``-n 2`` and up), the known slow tests below are dealt to the chunks (the slowest
to the least loaded chunk) and each chunk starts with them; every other test keeps its
place and its module's tests stay together (module fixtures are set up once). Tests run
and assert the same; only when they start changes. A single process keeps pytest's order.

The weights are seconds measured on the 2-vCPU CI machine (``--durations``), rounded:
refresh them when a test becomes slow or fast. A name without ``[`` covers every
parameter of that test. Tests with module-scoped fixtures (test_tls.py,
test_compose.py) are left out: moving one alone would set its module up twice.
"""

from __future__ import annotations

import pytest

SLOW: dict[str, float] = {
    # its first run on a machine without chromium installs it (apt-get): over a minute
    "tests/operate/test_dashboard_browser.py::test_dashboard_in_chromium": 90,
    "tests/test_docs_examples.py::test_examples_pass_mypy_strict": 50,
    "tests/cli/test_properties.py::test_dlq_commands": 34,
    "tests/cli/test_hardening.py::test_wrong_password_in_the_query_is_never_printed": 32,
    "tests/ecosystem/test_reload.py::test_an_edit_restarts_the_worker_gracefully": 29,
    "tests/integration/test_amqp_publish.py::"
    "test_concurrent_and_batched_enqueues_arrive_in_order_with_large_bodies": 28,
    "tests/cli/test_hardening.py::test_supervisor_stops_when_its_workers_cannotstart_cli": 23,
    "tests/test_docs_examples.py::test_example_runs[writing_a_broker.py]": 21,
    "tests/integration/test_child_limits.py::test_a_child_is_replaced_after_max_tasks": 20,
    "tests/cli/test_hardening.py::test_dlq_prints_forged_dead_letters_literally": 20,
    "tests/operate/test_cli_ops.py::test_one_metrics_port_per_worker_process": 17,
    "tests/test_docs_examples.py::test_example_runs[dead_letters_cli_redis.py]": 17,
    "tests/operate/test_cli_ops.py::test_commands_against_a_running_worker": 15,
    "tests/integration/test_beat.py::"
    "test_three_schedulers_send_each_tick_once_through_a_leader_kill": 14,
    "tests/benchmarks/test_core_smoke.py::test_core_benchmark_smoke": 14,
    "tests/integration/test_child_limits.py::test_a_child_is_replaced_past_its_memory_limit": 14,
    "tests/cli/test_input.py::test_dlq_requeue_of_unknown_refs_fails_and_moves_nothing": 14,
    "tests/integration/test_rate_limit.py::test_two_worker_processes_share_one_limit": 13,
    "tests/cli/test_input.py::test_unexpected_errors_are_one_line_unless_a_traceback_is_asked_for":
        13,
    "tests/cli/test_hardening.py::test_supervisor_restarts_a_killed_worker": 13,
    "tests/cli/test_hardening.py::test_amqp_url_at_a_non_amqp_listener_fails_within_the_deadline":
        13,
    "tests/integration/test_child_limits.py::"
    "test_on_rabbitmq_the_blocked_task_is_recorded_and_its_message_acked": 12,
    "tests/ecosystem/test_fastapi_shop.py::test_shop_tests_pass_against_a_real_worker_on_redis": 12,
    "tests/cli/test_input.py::test_dlq_purge_asks_and_a_no_or_no_answer_purges_nothing": 12,
    "tests/security/test_flood.py::test_a_small_flood_is_survived": 11,
    "tests/integration/test_cli_worker.py::test_sigterm_drains_running_and_hands_back_queued": 11,
    "tests/integration/test_cli_worker.py::"
    "test_ctrl_c_on_a_supervisor_stops_its_workers_gracefully": 11,
    "tests/security/test_amqp_hostile.py::"
    "test_a_forged_negative_redelivery_count_still_dead_letters": 11,
    "tests/integration/test_child_limits.py::"
    "test_a_task_blocking_past_its_hard_limit_fails_and_its_child_is_replaced": 11,
}


def weight(nodeid: str) -> float:
    """Seconds expected of a test, 0 for one not known to be slow."""
    return SLOW.get(nodeid, SLOW.get(nodeid.split("[", 1)[0], 0.0))


def chunk_sizes(total: int, workers: int) -> list[int]:
    """The sizes of worksteal's first hand-out: each idle process gets an equal share
    of what is left (xdist/scheduler/worksteal.py, check_schedule)."""
    sizes = []
    for i in range(workers):
        size = total // (workers - i)
        sizes.append(size)
        total -= size
    return sizes


def deal(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """``items`` reordered so each of ``workers`` chunks starts with its slow tests."""
    slow = sorted((i for i in items if weight(i.nodeid)), key=lambda i: -weight(i.nodeid))
    if workers < 2 or not slow:
        return items
    hands: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for item in slow:  # the longest first, each to the least loaded chunk
        least = loads.index(min(loads))
        hands[least].append(item)
        loads[least] += weight(item.nodeid)
    chosen = {id(i) for i in slow}
    rest = iter([i for i in items if id(i) not in chosen])
    ordered: list[pytest.Item] = []
    for hand, size in zip(hands, chunk_sizes(len(items), workers), strict=True):
        ordered += hand
        ordered += [item for _, item in zip(range(size - len(hand)), rest, strict=False)]
    ordered += list(rest)
    return ordered


def workers_of(config: pytest.Config) -> int:
    """How many xdist processes share the run (1 without xdist or on the controller)."""
    workerinput = getattr(config, "workerinput", None)
    return int(workerinput.get("workercount", 1)) if workerinput else 1
