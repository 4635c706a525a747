"""Count reconciliation: per watched queue and broker, what was there when the run began, what
was enqueued, consumed and expired since, and what is left; a queue whose numbers do not add
up is flagged, never hidden.

    at start + enqueued - dequeued - expired - left = difference   (0 when every message is
                                                                   accounted for)

Read from the same CloudWatch metrics as the drain (the bridge's on-prem series, Amazon MQ's
own), over the run's window: QueueSize at the start and at the end; EnqueueCount, DequeueCount
and ExpiredCount as the *increase* of each cumulative counter (a counter that goes down was
reset by a broker restart: counting continues from the new value). Messages moved to a DLQ show
as dead-lettered: the increase of the ignored queues' enqueue counters. A counter the source does
not publish (RabbitMQ has no expired count) is `null`, and a queue whose figures are missing is
`unknown`: neither is ever read as 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mq_cutover.drain import (
    REPORT_LIMIT,
    Side,
    is_ignored,
    read_series,
    side_queries,
    watched_queues,
)
from mq_cutover.plan import MigrationPlan

MAX_POINTS = 1440  # datapoints per series over the window (a day at one a minute)
EXPIRED_METRIC = "ExpiredCount"
DEQUEUE_METRIC = "DequeueCount"

Points = list[tuple[datetime, float]]


def _period(side: Side, seconds: float) -> int:
    """The coarsest period that keeps a series under MAX_POINTS (a multiple of 60 above 60)."""
    period: int = side.metrics.period_seconds
    while seconds / period > MAX_POINTS:
        period = 60 if period < 60 else period + 60
    return period


def increase(points: Points, began: datetime, period: int) -> float | None:
    """How much a cumulative counter grew over the window (oldest point first). A series that
    starts after the window began was created since: it grew from 0."""
    if not points:
        return None
    first_at, first = points[0]
    grown = first if first_at > began + timedelta(seconds=period) else 0.0
    previous = first
    for _, value in points[1:]:
        grown += value - previous if value >= previous else value  # reset: counts from 0 again
        previous = value
    return grown


def _at_start(points: Points, began: datetime, period: int) -> float | None:
    if not points:
        return None
    stamp, value = points[0]
    return value if stamp <= began + timedelta(seconds=period) else 0.0


def reconcile_side(
    plan: MigrationPlan, cloudwatch: Any, side: Side, began: datetime, now: datetime
) -> dict[str, Any]:
    """One broker's reconciliation over [began, now]."""
    metrics = side.metrics
    period = _period(side, (now - began).total_seconds())
    names = {
        "m": metrics.messages_metric,
        "e": metrics.enqueue_metric,
        "d": DEQUEUE_METRIC,
        "x": EXPIRED_METRIC,
    }
    queues = watched_queues(side.listed, cloudwatch, metrics, side.discovery_dimensions)
    ignored_found = [
        q
        for q in watched_queues(["*"], cloudwatch, metrics, side.discovery_dimensions)
        if is_ignored(q, side.ignore) and q not in queues
    ]
    everything = queues + ignored_found
    queries = side_queries(side, everything, names, period)
    start = began - timedelta(seconds=2 * period)
    series = read_series(cloudwatch, queries, start, now + timedelta(seconds=period))

    def points(kind: str, index: int) -> Points:
        found = [series.get(f"{kind}{index}i{n}") or [] for n in range(len(side.instances))]
        best = max(found, key=len)
        return sorted(best)  # oldest first

    totals: dict[str, float | None] = dict.fromkeys(
        ("atStart", "enqueued", "dequeued", "expired", "left")
    )
    flagged: list[dict[str, Any]] = []
    unknown: list[str] = []
    dead_lettered = 0.0
    for index, queue in enumerate(everything):
        if is_ignored(queue, side.ignore):
            grown = increase(points("e", index), began, period)
            dead_lettered += grown or 0.0
            continue
        messages = points("m", index)
        row: dict[str, Any] = {
            "queue": queue,
            "atStart": _at_start(messages, began, period),
            "enqueued": increase(points("e", index), began, period),
            "dequeued": increase(points("d", index), began, period),
            "expired": increase(points("x", index), began, period),
            "left": messages[-1][1] if messages else None,
        }
        needed = ("atStart", "enqueued", "dequeued", "left")
        if any(row[key] is None for key in needed):
            unknown.append(queue)
            continue
        for key in totals:
            if row[key] is not None:  # a counter nobody publishes stays null, never 0
                totals[key] = (totals[key] or 0.0) + float(row[key])
        difference = (
            row["atStart"] + row["enqueued"] - row["dequeued"] - (row["expired"] or 0) - row["left"]
        )
        if round(difference) != 0:
            flagged.append({**row, "difference": round(difference)})
    flagged.sort(key=lambda row: -abs(row["difference"]))
    rounded = {key: None if value is None else round(value) for key, value in totals.items()}
    return {
        "side": side.name.value,
        "from": began.isoformat(),
        "to": now.isoformat(),
        "queues": len(queues),
        **rounded,
        "deadLettered": round(dead_lettered),
        "flagged": [
            {k: (round(v) if isinstance(v, float) else v) for k, v in row.items()}
            for row in flagged[:REPORT_LIMIT]
        ],
        "flaggedCount": len(flagged),
        "unknown": unknown[:REPORT_LIMIT],
        "unknownCount": len(unknown),
    }


def reconcile(
    plan: MigrationPlan, cloudwatch: Any, sides: list[Side], began: datetime, now: datetime
) -> dict[str, Any]:
    """Every broker's reconciliation, by side name."""
    return {side.name.value: reconcile_side(plan, cloudwatch, side, began, now) for side in sides}
