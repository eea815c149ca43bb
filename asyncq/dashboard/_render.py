"""Server-rendered HTML for the dashboard: every value from the broker is escaped."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import quote

__all__ = ["e", "page", "sections", "table"]

MAX_CELL: Final = 200

STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:center}
header a{color:#9cc3ff}main{padding:12px 20px}h2{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e6eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}.SUCCESS,.online{color:#11813a}.FAILURE,.lost{color:#c62828}
.RETRY,.STARTED{color:#a66300}.offline{color:#777}code{font-size:12px}
.note{color:#666;font-size:12px}form{display:inline}
"""

SCRIPT: Final = """
(function(){
  const main=document.getElementById('live'); if(!main) return;
  async function refresh(){
    try{const r=await fetch(main.dataset.src,{cache:'no-store'});
        if(r.ok){main.innerHTML=await r.text();
          document.getElementById('updated').textContent=new Date().toLocaleTimeString();}}
    catch(err){document.getElementById('updated').textContent='(offline)';}
  }
  setInterval(refresh, 2000);
})();
"""


def e(value: Any, limit: int = MAX_CELL) -> str:
    """HTML-escaped text, control characters shown as ``\\xNN``, bounded."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return html.escape("".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text))


def link(base: str, path: str, *parts: str) -> str:
    return html.escape(base + path + "/".join(quote(p, safe="") for p in parts))


def when(ts: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return ""


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """``rows`` hold HTML already escaped by the caller."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            if body else f'<p class="note">{html.escape(empty)}</p>')


def _num(value: Any) -> str:
    return "-" if value is None else e(value)


def workers_table(rows: list[dict[str, Any]]) -> str:
    return table(["worker", "state", "queues", "concurrency", "running", "processed",
                  "uptime", "last heartbeat (UTC)"], (
        [e(r.get("worker")), f'<span class="{e(r.get("state"))}">{e(r.get("state"))}</span>',
         e(",".join(map(str, r.get("queues") or []))), _num(r.get("concurrency")),
         _num(r.get("running")), _num(r.get("processed")),
         e(f"{float(r.get('uptime') or 0):.0f}s"), e(when(r.get("ts")))]
        for r in rows), "No worker has announced itself (start workers with --events).")


def queues_table(rows: list[dict[str, Any]], base: str) -> str:
    return table(["queue", "waiting", "scheduled", "in flight", "dead letters", "consumers",
                  "done/min"], (
        [e(q["queue"]), _num(q["waiting"]), _num(q["scheduled"]), _num(q["in_flight"]),
         f'<a href="{link(base, "/dead/", q["queue"])}">{_num(q["dead"])}</a>',
         _num(q["consumers"]), e(f"{q['rate'] * 60:.0f}")] for q in rows), "No queues.")


def tasks_table(rows: list[dict[str, Any]], base: str) -> str:
    return table(["when (UTC)", "task", "id", "queue", "state", "runtime", "worker", "error"], (
        [e(when(t.get("ts"))), e(t.get("task")),
         f'<a href="{link(base, "/task/", str(t["id"]))}"><code>{e(t["id"], 40)}</code></a>',
         e(t.get("queue")), f'<span class="{e(t.get("state"))}">{e(t.get("state"))}</span>',
         e(f"{t['runtime']:.3f}s" if isinstance(t.get("runtime"), float) else ""),
         e(t.get("worker")), e(t.get("error"), 120)] for t in rows[:100]),
        "No task events yet.")


def sections(snapshot: dict[str, Any], base: str) -> str:
    return (f"<h2>Workers</h2>{workers_table(snapshot['workers'])}"
            f"<h2>Queues</h2>{queues_table(snapshot['queues'], base)}"
            f"<h2>Recent tasks</h2>{tasks_table(snapshot['tasks'], base)}")


def page(title: str, body: str, base: str, *, live: bool = False) -> str:
    main = (f'<main id="live" data-src="{link(base, "/fragment")}">{body}</main>'
            if live else f"<main>{body}</main>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{e(title)}</title><style>{STYLE}</style></head><body>"
            f'<header><strong>asyncq</strong><span>{e(title)}</span>'
            f'<a href="{link(base, "/")}">overview</a>'
            f'<span class="note">updated <span id="updated">now</span></span></header>'
            f"{main}<script>{SCRIPT}</script></body></html>")
