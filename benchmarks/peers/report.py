"""Rows, ratios and the printed / markdown table of ``suite.py`` (project interpreter)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Metric = Callable[[dict[str, Any]], float | None]


def empty_row(broker: str) -> dict[str, Any]:
    return {"broker": broker, "config": None, "versions": {}, "figures": {}, "errors": {}}


def record(row: dict[str, Any], step: str, out: dict[str, Any]) -> None:
    if "error" in out:
        row["errors"][step], row["figures"][step] = out["error"], None
        return
    row["figures"][step] = out["figures"]
    row["versions"].update(out["versions"])
    if step == "drain" or row["config"] is None:
        row["config"] = out["config"]


def say_step(name: str, step: str, out: dict[str, Any]) -> None:
    text = out.get("error") or ", ".join(
        f"{k}={v}" for k, v in flat(out["figures"]).items() if k.endswith(
            ("per_s", "seconds", "_ms", "rss_mb")))
    took = f" [{out['elapsed_s']} s]" if "elapsed_s" in out else ""
    print(f"suite: {name:16} {step:10} {text}{took}", file=sys.stderr, flush=True)


def flat(figures: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def get(row: dict[str, Any], step: str, *path: str) -> Any:
    value = row["figures"].get(step)
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


METRICS: dict[str, Metric] = {
    "w1_each_per_s": lambda r: get(r, "enqueue", "each", "per_s"),
    "w1_batch_per_s": lambda r: get(r, "enqueue", "batch", "per_s"),
    "w2_drain_per_s": lambda r: get(r, "drain", "per_s"),
    "w3_p50_ms": lambda r: get(r, "round_trip", "p50_ms"),
    "w6_fan_in_per_s": lambda r: get(r, "fan_in", "per_s"),
}


def ratio(rows: dict[str, Any], mine: str, peers: list[str], metric: str) -> dict[str, Any]:
    """asyncq ÷ the best peer (for latency: best peer ÷ asyncq, so > 1 favours asyncq)."""
    fn, lower_better = METRICS[metric], metric.endswith("_ms")
    values = {p: fn(rows[p]) for p in peers if p in rows and fn(rows[p])}
    own = fn(rows[mine]) if mine in rows else None
    if not values or not own:
        return {"value": None, "asyncq": own, "peer": None, "peer_value": None}
    best = (min if lower_better else max)(values, key=lambda p: values[p])
    value = values[best] / own if lower_better else own / values[best]
    return {"value": round(value, 2), "asyncq": own, "peer": best, "peer_value": values[best]}


def ratios(rows: dict[str, Any]) -> dict[str, Any]:
    redis_peers = [n for n, r in rows.items() if r["broker"] == "redis" and n != "asyncq"]
    out = {f"redis_{m}": ratio(rows, "asyncq", redis_peers, m) for m in METRICS}
    out.update({f"amqp_{m}_vs_taskiq_aio_pika": ratio(rows, "asyncq-amqp", ["taskiq-aio-pika"], m)
                for m in METRICS})
    return out


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def cells(row: dict[str, Any]) -> list[str]:
    err = row["errors"]
    def c(step: str, text: str) -> str:
        return "**error**" if step in err else text
    scale = " / ".join(c(s, fmt(get(row, s, "per_s"))) for s in ("drain", "scale_2", "scale_4")
                       if s in row["figures"])
    return [c("enqueue", fmt(get(row, "enqueue", "each", "per_s"))),
            c("enqueue", fmt(get(row, "enqueue", "batch", "per_s"))),
            c("drain", fmt(get(row, "drain", "per_s"))),
            c("round_trip", f"{fmt(get(row, 'round_trip', 'p50_ms'), 2)} / "
                            f"{fmt(get(row, 'round_trip', 'p99_ms'), 2)}"),
            c("sleep", fmt(get(row, "sleep", "seconds"), 2)), scale,
            c("memory", fmt(get(row, "memory", "peak_rss_mb"), 1)),
            c("fan_in", f"{fmt(get(row, 'fan_in', 'per_s'))} ({fan_in_share(row)})")]


def fan_in_share(row: dict[str, Any]) -> str:
    """W6 as a share of the same library's W2 drain in the same run."""
    fan_in, drain = get(row, "fan_in", "per_s"), get(row, "drain", "per_s")
    return f"{fan_in / drain:.2f}x W2" if fan_in and drain else "n/a"


HEADER = ["library", "broker", "W1 enqueue one-at-a-time /s", "W1 batch /s", "W2 drain /s",
          "W3 round trip p50 / p99 ms", "W4 sleep wall s", "W5 1 / 2 / 4 procs /s",
          "peak worker RSS MB", "W6 fan-in /s (÷ own W2)"]


def markdown(doc: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for name, row in doc["rows"].items():
        broker = "RabbitMQ" if row["broker"] == "amqp" else "Redis"
        lines.append("| " + " | ".join([name, broker, *cells(row)]) + " |")
    lines += ["", "Ratios (asyncq ÷ fastest peer; for p50, peer ÷ asyncq; > 1 favours asyncq):", ""]
    for key, r in doc["ratios"].items():
        if r["value"] is not None:
            lines.append(f"- {key}: **{r['value']}** ({r['asyncq']} vs {r['peer']} "
                         f"{r['peer_value']})")
    lines += ["", "CPU during the drains (machine busy, all cores / cores used by Redis):", "",
              cpu_table(doc)]
    return "\n".join(lines)


def cpu_cell(row: dict[str, Any], step: str) -> str:
    cpu = get(row, step, "cpu")
    if not isinstance(cpu, dict):
        return "—"
    return f"{cpu['machine_busy']:.0%} / {cpu['redis_cores']:.2f}"


def redis_cost_cell(row: dict[str, Any]) -> str:
    """Redis CPU per task in the 1-process drain, and what one Redis core could serve
    (Redis brokers only: on RabbitMQ rows Redis holds results, and RabbitMQ is not sampled)."""
    cpu, per_s = get(row, "drain", "cpu"), get(row, "drain", "per_s")
    if row["broker"] != "redis" or not isinstance(cpu, dict) or not per_s or not cpu["redis_cores"]:
        return "—"
    micros = cpu["redis_cores"] / per_s * 1e6
    return f"{micros:.0f} µs → {1e6 / micros:,.0f}/s"


def cpu_table(doc: dict[str, Any]) -> str:
    """How busy the machine and Redis were during the drains (W2 = 1 process, W5)."""
    lines = ["| library | 1 proc | 2 procs | 4 procs | Redis CPU per task → tasks/s per "
             "Redis core |", "|---|---|---|---|---|"]
    for name, row in doc["rows"].items():
        lines.append(f"| {name} | " + " | ".join(
            cpu_cell(row, step) for step in ("drain", "scale_2", "scale_4"))
            + f" | {redis_cost_cell(row)} |")
    return "\n".join(lines)


def errors(doc: dict[str, Any]) -> list[str]:
    return [f"{name} {step}: {msg}" for name, row in doc["rows"].items()
            for step, msg in row["errors"].items()]


def chart(doc: dict[str, Any], json_path: Path, png: Path, python: Path | None) -> list[str]:
    """Draw the PNG with matplotlib from the peers venv; returns errors (empty: fine)."""
    if python is None:
        return ["chart: the peers venv (matplotlib) is not available"]
    here = Path(__file__).resolve().parents[1]
    # the chart runs from benchmarks/: paths given relative to the caller's directory
    # are made absolute first
    done = subprocess.run([str(python), "-m", "peers.chart", str(json_path.resolve()),
                           str(png.resolve())],
                          cwd=here, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        return [f"chart: {(done.stderr.strip().splitlines() or ['failed'])[-1]}"]
    print(f"suite: chart written to {png}", file=sys.stderr)
    return []
