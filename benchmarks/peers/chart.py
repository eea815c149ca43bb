"""Draw the suite's JSON as a PNG (peers venv: matplotlib).

    cd benchmarks && python -m peers.chart results/suite.json ../docs/benchmarks.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from peers.report import get

PANELS = [
    ("W1 enqueue, one at a time (tasks/s)", ("enqueue", "each", "per_s")),
    ("W1 enqueue, batch API (tasks/s)", ("enqueue", "batch", "per_s")),
    ("W2 drain, 1 process, c=100 (tasks/s)", ("drain", "per_s")),
    ("W3 round trip p50 (ms, lower is better)", ("round_trip", "p50_ms")),
    ("W4 {sleep:,} x sleep(0.1), c=200 (wall s)", ("sleep", "seconds")),
    ("W5 drain, {procs} processes (tasks/s)", ("scale_{procs}", "per_s")),
    ("peak worker RSS, draining {memory:,} queued (MB)", ("memory", "peak_rss_mb")),
    ("W6 fan-in: {fan_in:,} enqueued and awaited by one process (tasks/s)",
     ("fan_in", "per_s")),
]


def label(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def panel(ax: Any, rows: dict[str, Any], title: str, path: tuple[str, ...]) -> None:
    names = list(rows)
    values = [get(rows[n], *path) or 0 for n in names]
    texts = ["error" if path[0] in rows[n]["errors"] else label(v) if v else "n/a"
             for n, v in zip(names, values, strict=True)]
    colors = ["#d62728" if n.startswith("asyncq") else
              ("#ff9896" if rows[n]["broker"] == "amqp" else "#1f77b4") for n in names]
    ax.barh(names, values, color=colors)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=8)
    top = max(values) if any(values) else 1
    for y, (v, text) in enumerate(zip(values, texts, strict=True)):
        ax.text(v + top * 0.01, y, text, va="center", fontsize=7)
    ax.set_xlim(0, top * 1.25)


def main(source: Path, target: Path) -> None:
    doc = json.loads(source.read_text())
    fig, axes = plt.subplots(4 + len(PANELS) // 8, 2, figsize=(12, 16))
    rows = doc["rows"].values()
    procs = "4" if any("scale_4" in r["figures"] for r in rows) else "2"
    sizes = {s: max((get(r, s, "tasks") or 0) for r in rows)
             for s in ("sleep", "memory", "fan_in")}
    for ax, (title, path) in zip(axes.flat, PANELS, strict=False):
        path = tuple(p.format(procs=procs) for p in path)
        panel(ax, doc["rows"], title.format(procs=procs, **sizes), path)
    spare = list(axes.flat)[len(PANELS):]
    for ax in spare:
        ax.axis("off")
    note = spare[0]
    note.text(0, 0.5, f"asyncq vs peers, {doc['mode']} run {doc['started']}\n{doc['machine']}\n"
              "red: asyncq; blue: Redis peers; pink: RabbitMQ peers", fontsize=9, va="center")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
