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

A bridge publishing its aggregates (`onPrem.metrics.readings: aggregate`) with the default
per-queue detail (the messages metric only) publishes no per-queue counter: that side is then
reconciled as one set (`level: set`) from the aggregate series of the plan's QueueSet:
SetMessages at the start and at the end, the increases of SetEnqueued, SetDequeued and
SetExpired, and SetIgnoredEnqueued's as dead-lettered. A set that does not add up is flagged as
one row naming the set (which queue: not in the aggregates). With the per-queue counters
published (`--detail-figures all`) it is reconciled per queue as above (`level: queue`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mq_cutover.drain import (
    REPORT_LIMIT,
    Side,
    discover_queues,
    is_ignored,
    read_series,
    reads_aggregates,
    side_queries,
    watched_queues,
)
from mq_cutover.plan import MigrationPlan
from mq_cutover.queue_set import Aggregate, QueueSet

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


def _has_queue_counters(cloudwatch: Any, side: Side, queues: list[str]) -> bool:
    """Whether every watched queue publishes its own enqueue counter (a bridge's detail `all`)."""
    metrics = side.metrics
    if metrics.enqueue_metric is None:
        return False
    counters = metrics.model_copy(update={"messages_metric": metrics.enqueue_metric})
    found = set(discover_queues(cloudwatch, counters, side.discovery_dimensions))
    return all(q in found for q in queues if not is_ignored(q, side.ignore))


def reconcile_set(
    cloudwatch: Any, side: Side, began: datetime, now: datetime, queues: list[str]
) -> dict[str, Any]:
    """One broker's reconciliation as one set, from the bridge's QueueSet aggregates."""
    metrics = side.metrics
    queue_set = QueueSet.of(side.listed, side.ignore)
    period = _period(side, (now - began).total_seconds())
    names = {
        "m": Aggregate.MESSAGES,
        "e": Aggregate.ENQUEUED,
        "d": Aggregate.DEQUEUED,
        "x": Aggregate.EXPIRED,
        "i": Aggregate.IGNORED_ENQUEUED,
    }
    dims = queue_set.dimensions(metrics.dimensions)
    queries = [
        {
            "Id": kind,
            "MetricStat": {
                "Metric": {"Namespace": metrics.namespace, "MetricName": name.value,
                           "Dimensions": dims},
                "Period": period,
                "Stat": "Maximum",
            },
        }
        for kind, name in names.items()
    ]  # fmt: skip
    start = began - timedelta(seconds=2 * period)
    series = read_series(cloudwatch, queries, start, now + timedelta(seconds=period))
    points = {kind: sorted(series.get(kind) or []) for kind in names}  # oldest first
    watched = [q for q in queues if not is_ignored(q, side.ignore)]
    row: dict[str, Any] = {
        "atStart": _at_start(points["m"], began, period),
        "enqueued": increase(points["e"], began, period),
        "dequeued": increase(points["d"], began, period),
        "expired": increase(points["x"], began, period),  # RabbitMQ: never published, null
        "left": points["m"][-1][1] if points["m"] else None,
    }
    known = all(row[key] is not None for key in ("atStart", "enqueued", "dequeued", "left"))
    flagged: list[dict[str, Any]] = []
    if known:
        difference = round(
            row["atStart"] + row["enqueued"] - row["dequeued"] - (row["expired"] or 0) - row["left"]
        )
        if difference:
            whole = f"all {len(watched)} watched queues (QueueSet {queue_set.digest})"
            rounded = {k: None if v is None else round(v) for k, v in row.items()}
            flagged.append({"queue": whole, **rounded, "difference": difference})
    return {
        "side": side.name.value,
        "from": began.isoformat(),
        "to": now.isoformat(),
        "queues": len(watched),
        "level": "set",
        "queueSet": queue_set.digest,
        **{key: None if v is None or not known else round(v) for key, v in row.items()},
        "deadLettered": round(increase(points["i"], began, period) or 0.0),
        "flagged": flagged,
        "flaggedCount": len(flagged),
        # No aggregates over the window: every watched queue's figures are unknown (never 0).
        "unknown": [] if known else watched[:REPORT_LIMIT],
        "unknownCount": 0 if known else len(watched),
    }


def reconcile_side(
    plan: MigrationPlan, cloudwatch: Any, side: Side, began: datetime, now: datetime
) -> dict[str, Any]:
    """One broker's reconciliation over [began, now]: per queue, or as one set when the side
    is read from the bridge's aggregates and the queues' own counters are not published."""
    metrics = side.metrics
    if reads_aggregates(side):
        queues = watched_queues(side.listed, cloudwatch, metrics, side.discovery_dimensions)
        if not _has_queue_counters(cloudwatch, side, queues):
            return reconcile_set(cloudwatch, side, began, now, queues)
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
        "level": "queue",
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
