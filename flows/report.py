"""``report.html`` of a backtest: per segment totals from the final revision of each window.

A segment's windows of one period under several config versions are merged first
(:func:`operators.window_merge.merge_versions`): the table counts periods, not versions.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import msgspec

from core.insights import Insight
from core.stats import StrayEvent, WindowStats
from operators.window_merge import merge_versions

__all__ = ["write_report"]


def _read(path: Path, kind: type[Any]) -> list[Any]:
    decoder = msgspec.json.Decoder(kind)
    with path.open("rb") as fh:
        return [decoder.decode(line) for line in fh if line.strip()]


def _final(windows: list[WindowStats]) -> list[WindowStats]:
    latest: dict[tuple[object, ...], WindowStats] = {}
    for w in windows:
        key = (w.kind, w.window_start, w.app, w.task, w.model, w.variant, w.config_version)
        if key not in latest or w.revision >= latest[key].revision:
            latest[key] = w
    return list(latest.values())


def _insights_table(insights: list[Insight]) -> str:
    """The warnings and critical insights, most severe and most recent first."""
    rank = {"critical": 0, "warning": 1, "info": 2}
    shown = sorted(insights, key=lambda i: (rank[i.severity], -i.window_start.timestamp()))
    by_severity = Counter(i.severity for i in insights)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c))}</td>"
            for c in (
                i.severity,
                i.window_start.strftime("%Y-%m-%d %H:%M"),
                i.app,
                i.task,
                i.analyzer,
                i.kind,
                i.message,
            )
        )
        + "</tr>"
        for i in shown[:200]
    )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(by_severity.items(), key=lambda x: rank[x[0]]))
    return (
        f"<h2>Insights ({len(insights)}: {counts or 'none'})</h2>"
        "<table><thead><tr><th>severity</th><th>window</th><th>app</th><th>task</th>"
        f"<th>analyzer</th><th>kind</th><th>message</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def write_report(out: Path, *, source: str, records: int) -> Path:
    """Summarise ``windows.jsonl``, ``late.jsonl`` and ``dlq.jsonl`` of ``out`` as HTML."""
    final = _final(_read(out / "windows.jsonl", WindowStats))
    windows = merge_versions(w for w in final if w.kind == "tumbling")
    strays = _read(out / "late.jsonl", StrayEvent)
    insights: list[Insight] = _read(out / "insights.jsonl", Insight)
    with (out / "dlq.jsonl").open("rb") as fh:
        dead = sum(1 for line in fh if line.strip())
    segments: dict[tuple[str, str, str, str], list[WindowStats]] = defaultdict(list)
    for w in windows:
        segments[(w.app, w.task, w.model, w.variant)].append(w)
    late = Counter((s.app, s.task, s.kind) for s in strays)
    rows = []
    for (app, task, model, variant), ws in sorted(segments.items()):
        calls = sum(w.count for w in ws)
        errors = sum(w.error_count for w in ws)
        cost = sum(w.cost_usd for w in ws)
        worst_p95 = max(w.latency_ms.p95 for w in ws)
        cells = [
            app,
            task,
            model,
            variant,
            str(len(ws)),
            str(calls),
            f"{errors / calls:.2%}",
            f"{worst_p95:.0f}",
            f"{cost:.4f}",
            str(late[(app, task, "late")]),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = [
        "app",
        "task",
        "model",
        "variant",
        "windows",
        "calls",
        "error rate",
        "worst window p95 ms",
        "cost USD",
        "late events (app, task)",
    ]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest of {html.escape(source)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:nth-child(-n+4){{text-align:left}}</style>
</head><body>
<h1>Backtest of {html.escape(source)}</h1>
<p>{records} records · {len(windows)} tumbling windows · {len(strays)} late events or unmatched
feedback · {dead} dead letters (see dlq.jsonl)</p>
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{_insights_table(insights)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
