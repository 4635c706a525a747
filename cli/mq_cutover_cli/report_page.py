"""The record of a migration as one HTML file (`mq-cutover report --html`): inline CSS, an inline
SVG chart of the messages left on each broker over time, and the tables of the JSON report.

No script, no external resource (the page can be mailed or archived as it is), and every value
from the run is escaped: queue names come from a broker and comments from people."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

SIDES = {"onPrem": ("On-prem", "#c2410c"), "amazonMq": ("Amazon MQ", "#1d4ed8")}
WIDTH, HEIGHT = 860, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#111;
max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#444;margin:0 0 12px}.status{font-weight:600}
.SUCCEEDED{color:#15803d}.FAILED,.TIMED_OUT,.ABORTED{color:#b91c1c}.RUNNING{color:#a16207}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg{border:1px solid #ddd;background:#fff}.legend span{margin-right:18px}
.swatch{display:inline-block;width:14px;height:4px;vertical-align:middle;margin-right:6px}
code{font-size:12px;word-break:break-all}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def chart_points(series: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[datetime, int]]]:
    """Each broker's drawable readings (a time and a known count), in time order."""
    points: dict[str, list[tuple[datetime, int]]] = {}
    for side, readings in series.items():
        found = []
        for reading in readings:
            moment, left = _when(reading.get("at")), reading.get("messagesLeft")
            if moment is not None and isinstance(left, int) and not isinstance(left, bool):
                found.append((moment, left))
        points[side] = sorted(found, key=lambda p: p[0])
    return points


def chart(series: dict[str, list[dict[str, Any]]]) -> str:
    points = chart_points(series)
    drawn = {side: found for side, found in points.items() if found}
    if not drawn:
        return '<p class="meta">No queue reading was made during this run.</p>'
    moments = [m for found in drawn.values() for m, _ in found]
    first, last = min(moments), max(moments)
    span = max((last - first).total_seconds(), 60.0)
    top = max(max(v for found in drawn.values() for _, v in found), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        return LEFT + plot_w * (moment - first).total_seconds() / span

    def y(value: int) -> float:
        return TOP + plot_h * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-label="Messages left on each broker over time">',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#555"/>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="#555"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = round(top * fraction)
        parts.append(
            f'<line x1="{LEFT}" y1="{y(value):.1f}" x2="{LEFT + plot_w}" y2="{y(value):.1f}" '
            'stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 8}" y="{y(value) + 4:.1f}" font-size="12" text-anchor="end">'
            f"{value:,}</text>"
        )
    for moment, anchor in ((first, "start"), (last, "end")):
        parts.append(
            f'<text x="{x(moment):.1f}" y="{TOP + plot_h + 18}" font-size="12" '
            f'text-anchor="{anchor}">{_e(moment.strftime("%Y-%m-%d %H:%M:%SZ"))}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" font-size="12" '
        'text-anchor="middle">time of the reading (UTC)</text>'
    )
    for side, found in drawn.items():
        _, colour = SIDES.get(side, (side, "#555"))
        coordinates = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in found)
        parts.append(
            f'<polyline class="series" data-side="{_e(side)}" fill="none" stroke="{colour}" '
            f'stroke-width="3" points="{coordinates}"/>'
        )
        for moment, value in found:
            parts.append(
                f'<circle cx="{x(moment):.1f}" cy="{y(value):.1f}" r="4" fill="{colour}">'
                f"<title>{_e(SIDES.get(side, (side,))[0])}: {value:,} at "
                f"{_e(moment.isoformat())}</title></circle>"
            )
    parts.append("</svg>")
    legend = []
    for side, found in points.items():
        name, colour = SIDES.get(side, (side, "#555"))
        skipped = len(series.get(side, [])) - len(found)
        note = f", {skipped} unknown (not drawn)" if skipped else ""
        legend.append(
            f'<span><i class="swatch" style="background:{colour}"></i>{_e(name)} '
            f"({len(found)} readings{note})</span>"
        )
    return "".join(parts) + f'<p class="legend">{"".join(legend)}</p>'


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    if not rows:
        return '<p class="meta">None.</p>'
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_e(cell)}</td>' if index in numeric else f"<td>{_e(cell)}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(report: dict[str, Any]) -> str:
    execution = report.get("execution") or {}
    status = str(execution.get("status") or "?")
    approvals = [
        [
            a.get("gate"),
            a.get("outcome"),
            a.get("by") or "",
            a.get("openedAt"),
            a.get("decidedAt") or "",
            a.get("comment") or a.get("detail") or "",
        ]
        for a in report.get("approvals") or []
    ]
    changes = [
        [
            c.get("parameter"),
            c.get("step") or "",
            c.get("from"),
            c.get("to"),
            c.get("at"),
            c.get("by"),
        ]
        for c in report.get("parameterChanges") or []
    ]
    timeline = [
        [
            t.get("state"),
            t.get("enteredAt"),
            t.get("exitedAt") or "(running)",
            t.get("seconds"),
            t.get("failed") or "",
        ]
        for t in report.get("timeline") or []
    ]
    counts_rows = []
    for side, figures in (report.get("counts") or {}).items():
        if isinstance(figures, dict):
            counts_rows.append(
                [
                    SIDES.get(side, (side,))[0],
                    figures.get("atStart"),
                    figures.get("enqueued"),
                    figures.get("dequeued"),
                    figures.get("expired"),
                    figures.get("deadLettered"),
                    figures.get("left"),
                    figures.get("flaggedCount"),
                ]
            )
    left_rows = []
    for side, reading in (report.get("messagesLeft") or {}).items():
        for queue in reading.get("queues") or []:
            if isinstance(queue, dict):
                left_rows.append(
                    [
                        SIDES.get(side, (side,))[0],
                        queue.get("queue"),
                        queue.get("messages"),
                        queue.get("inFlight"),
                        reading.get("at"),
                    ]
                )
    cause = execution.get("cause")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>Migration {_e(report.get('migrationId'))}: {_e(status)}</title>"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Migration {_e(report.get('migrationId'))}</h1>"
        f'<p class="meta">Mode {_e(report.get("mode"))} &middot; '
        f'<span class="status {_e(status)}">{_e(status)}</span> &middot; '
        f"started {_e(execution.get('startedAt'))} &middot; ended "
        f"{_e(execution.get('stoppedAt') or '(running)')} &middot; "
        f"{_e(execution.get('seconds'))} s</p>"
        + (f'<p class="meta">{_e(execution.get("error"))}: {_e(cause)}</p>' if cause else "")
        + f'<p class="meta">Execution <code>{_e(execution.get("arn"))}</code></p>'
        "<h2>Messages left on each broker</h2>"
        + chart(report.get("drainReadings") or {})
        + "<h2>Approvals</h2>"
        + _table(["Gate", "Outcome", "By", "Opened", "Decided", "Comment"], approvals)
        + "<h2>Parameter changes</h2>"
        + f'<p class="meta">{_e((report.get("parameters") or {}).get("moved"))} of '
        f"{_e((report.get('parameters') or {}).get('total'))} parameters on Amazon MQ at the "
        "end.</p>"
        + _table(["Parameter", "Step", "From", "To", "When", "By"], changes)
        + "<h2>Message counts since the run began</h2>"
        + _table(
            [
                "Broker",
                "At start",
                "Enqueued",
                "Consumed",
                "Expired",
                "Dead-lettered",
                "Left",
                "Queues not adding up",
            ],
            counts_rows,
            numeric={1, 2, 3, 4, 5, 6, 7},
        )
        + "<h2>Messages left per queue at the last reading</h2>"
        + _table(["Broker", "Queue", "Messages", "In flight", "Reading"], left_rows, {2, 3})
        + "<h2>Timeline</h2>"
        + _table(["Step", "Entered", "Exited", "Seconds", "Failed"], timeline, {3})
        + "</body></html>\n"
    )
