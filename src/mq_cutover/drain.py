"""Has the on-prem broker drained? Readings of its queue metrics, folded into a small summary.

Drained means, for K consecutive *new* readings (re-reading the same datapoint counts once):
- every watched queue at 0 messages and 0 in flight;
- every watched queue reporting: a queue with no datapoint is *missing*, one whose newest
  datapoint is older than the stale limit is *stale*, and neither is ever zero;
- when `drain.requireProducersQuiet` is on (the default), no watched queue's cumulative enqueue
  counter moved in its newest period: a producer that never reconnected and still trickles
  messages to the old broker keeps a consumed-at-once queue at 0, but not its enqueue counter.
Ignored queues (DLQs by default) are reported with their counts, never waited for.

One Lambda call takes several readings, `pollIntervalSeconds` apart, for up to
`maxSecondsPerCheck` (that keeps a 12-hour drain to a few hundred state transitions). The state
machine keeps only the summary this returns, never the per-queue series (256 KB payload limit).
The drain's deadline is a time, not a count: an approver may extend it at the drainTimeout gate.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import DrainCheckFailed
from mq_cutover.plan import MigrationPlan, QueueMetrics

MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit
REPORT_LIMIT = 20  # queues listed by name in the summary; the rest are counted
CALL_RESERVE_SECONDS = 30  # left of a Lambda call's time after its last reading


def _align(moment: datetime, period: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % period, tz=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def is_ignored(queue: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(queue, pattern) for pattern in patterns)


def _dimensions(metrics: QueueMetrics, queue: str | None) -> list[dict[str, str]]:
    dims = [{"Name": k, "Value": v} for k, v in sorted(metrics.dimensions.items())]
    if queue is not None:
        dims.append({"Name": metrics.queue_dimension, "Value": queue})
    return dims


def discover_queues(cloudwatch: Any, metrics: QueueMetrics) -> list[str]:
    """Queue names that have the messages metric in the plan's namespace and dimensions."""
    queues: set[str] = set()
    kwargs: dict[str, Any] = {
        "Namespace": metrics.namespace,
        "MetricName": metrics.messages_metric,
        # A queue deleted on-prem stops reporting; it must not hold the drain for 14 days.
        "RecentlyActive": "PT3H",
        "Dimensions": [{"Name": metrics.queue_dimension}]
        + [{"Name": k, "Value": v} for k, v in sorted(metrics.dimensions.items())],
    }
    try:
        for page in cloudwatch.get_paginator("list_metrics").paginate(**kwargs):
            for metric in page.get("Metrics", []):
                for dim in metric.get("Dimensions", []):
                    if dim["Name"] == metrics.queue_dimension:
                        queues.add(dim["Value"])
    except ClientError as exc:
        raise_if_throttled(exc)
        raise DrainCheckFailed(f"ListMetrics failed: {exc}") from exc
    return sorted(queues)


def _is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def watched_queues(listed: list[str], cloudwatch: Any, metrics: QueueMetrics) -> list[str]:
    """The plan's queue names, plus every discovered queue matching one of its glob patterns
    (an empty list watches every discovered queue). A listed name with no metrics is kept: it
    shows as missing, never as empty."""
    names = [q for q in listed if not _is_pattern(q)]
    patterns = [q for q in listed if _is_pattern(q)] if listed else ["*"]
    if patterns:
        found = discover_queues(cloudwatch, metrics)
        names += [q for q in found if q not in names and is_ignored(q, patterns)]
    return names


Series = dict[str, list[tuple[datetime, float]]]  # query id -> datapoints, newest first


def _series(
    cloudwatch: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> Series:
    """Every query's datapoints in the window, newest first; batched and paginated."""
    found: Series = {}
    for offset in range(0, len(queries), MAX_QUERIES_PER_CALL):
        batch = queries[offset : offset + MAX_QUERIES_PER_CALL]
        token = None
        while True:
            kwargs: dict[str, Any] = {
                "MetricDataQueries": batch,
                "StartTime": start,
                "EndTime": end,
                "ScanBy": "TimestampDescending",
            }
            if token:
                kwargs["NextToken"] = token
            try:
                page = cloudwatch.get_metric_data(**kwargs)
            except ClientError as exc:
                raise_if_throttled(exc)
                raise DrainCheckFailed(f"GetMetricData failed: {exc}") from exc
            for result in page.get("MetricDataResults", []):
                points = found.setdefault(result["Id"], [])
                points.extend(
                    (stamp, float(value))
                    for stamp, value in zip(
                        result.get("Timestamps", []), result.get("Values", []), strict=False
                    )
                )
            token = page.get("NextToken")
            if not token:
                break
    for points in found.values():
        points.sort(key=lambda point: point[0], reverse=True)
    return found


@dataclass
class Reading:
    """One look at every queue's newest datapoints."""

    at: datetime
    watched: int = 0
    with_messages: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)
    receiving: list[dict[str, Any]] = field(default_factory=list)  # enqueues in newest period
    ignored: list[dict[str, Any]] = field(default_factory=list)
    messages_left: int = 0
    newest_at: datetime | None = None  # the oldest of the queues' newest datapoints
    enqueue_total: float | None = None  # sum of the queues' newest enqueue counters

    @property
    def empty(self) -> bool:
        return bool(self.watched) and not (
            self.missing or self.stale or self.with_messages or self.receiving
        )


def stale_after_seconds(plan: MigrationPlan) -> int:
    metrics = plan.on_prem.metrics
    return metrics.stale_after_seconds or max(3 * metrics.period_seconds, 30)


def read_queues(
    plan: MigrationPlan, cloudwatch: Any, now: datetime, queues: list[str] | None = None
) -> Reading:
    """One reading of every queue (listed in the plan, or discovered in CloudWatch; pass
    `queues` to reuse a discovery)."""
    on_prem = plan.on_prem
    metrics = on_prem.metrics
    if queues is None:
        queues = watched_queues(on_prem.queues, cloudwatch, metrics)
    quiet_needed = plan.drain.require_producers_quiet and metrics.enqueue_metric is not None
    kinds = {"m": metrics.messages_metric, "f": metrics.in_flight_metric}
    if quiet_needed:
        kinds["e"] = metrics.enqueue_metric
    period = metrics.period_seconds
    stat: dict[str, Any] = {"Period": period, "Stat": "Maximum"}
    queries: list[dict[str, Any]] = []
    for index, queue in enumerate(queues):
        for kind, metric_name in kinds.items():
            if metric_name is None or (kind != "m" and is_ignored(queue, on_prem.ignore_queues)):
                continue
            metric = {
                "Namespace": metrics.namespace,
                "MetricName": metric_name,
                "Dimensions": _dimensions(metrics, queue),
            }
            queries.append({"Id": f"{kind}{index}", "MetricStat": {"Metric": metric, **stat}})
    # Windows aligned to the period, as CloudWatch aligns its buckets: the same bucket read twice
    # has the same timestamp and so is not a new reading. The window ends after the current,
    # partial period and looks back twice the stale limit (older than that is missing).
    stale_after = stale_after_seconds(plan)
    end = _align(now, period) + timedelta(seconds=period)
    periods = -(-2 * stale_after // period) + 1
    start = end - timedelta(seconds=periods * period)
    series = _series(cloudwatch, queries, start, end)

    reading = Reading(at=now)
    newest: list[datetime] = []
    enqueued: list[float] = []
    for index, queue in enumerate(queues):
        messages = series.get(f"m{index}") or []
        if is_ignored(queue, on_prem.ignore_queues):
            count = int(messages[0][1]) if messages else None
            reading.ignored.append({"queue": queue, "messages": count})
            continue
        reading.watched += 1
        points = {kind: series.get(f"{kind}{index}") or [] for kind in kinds if kinds[kind]}
        if any(not found for found in points.values()):
            reading.missing.append(queue)
            continue
        stamp = min(found[0][0] for found in points.values())
        age = (now - stamp).total_seconds()
        if age > stale_after:
            reading.stale.append({"queue": queue, "ageSeconds": int(age)})
            continue
        newest.append(stamp)
        left = int(points["m"][0][1])
        in_flight = int(points["f"][0][1]) if "f" in points else 0
        # ActiveMQ's QueueSize and RabbitMQ's messages already include unacknowledged ones.
        reading.messages_left += max(left, in_flight)
        if left or in_flight:
            reading.with_messages.append({"queue": queue, "messages": left, "inFlight": in_flight})
        if "e" in points:
            enqueues = points["e"]
            enqueued.append(enqueues[0][1])
            # Quiet = the counter did not move over its newest period. A single datapoint proves
            # nothing yet; a counter that went down was reset (the broker restarted): not quiet.
            moved = None if len(enqueues) < 2 else enqueues[0][1] - enqueues[1][1]
            if moved is None or moved != 0:
                reading.receiving.append({"queue": queue, "enqueued": moved})
    reading.newest_at = min(newest) if newest else None
    if quiet_needed and enqueued and len(enqueued) == reading.watched:
        reading.enqueue_total = sum(enqueued)
    return reading


def fold(plan: MigrationPlan, previous: dict[str, Any] | None, reading: Reading) -> dict[str, Any]:
    """The drain summary after one more reading (small: the state machine carries it)."""
    previous = previous or {}
    now = reading.at
    started = previous.get("startedAt") or _iso(now)
    deadline = previous.get("deadlineAt") or _iso(
        datetime.fromisoformat(started) + timedelta(minutes=plan.drain.timeout_minutes)
    )
    extensions = int(previous.get("extensions", 0))
    extend = previous.get("extendMinutes")
    if extend and extensions < plan.drain.max_extensions:  # an approver chose to wait longer
        deadline = _iso(now + timedelta(minutes=int(extend)))
        extensions += 1
    reading_at = _iso(reading.newest_at) if reading.newest_at else None
    # Producers quiet also *between* readings: the sum of the enqueue counters must not have
    # moved since the previous reading (a bucket still filling hides late enqueues from the
    # newest-two-buckets check; the sum does not). The first reading has nothing to compare.
    quiet_needed = plan.drain.require_producers_quiet and reading.enqueue_total is not None
    before = previous.get("enqueueTotal")
    moved_since = quiet_needed and (before is None or before != reading.enqueue_total)
    consecutive = int(previous.get("consecutiveEmpty", 0))
    if not reading.empty or moved_since:
        consecutive = 0
    elif reading_at is not None and reading_at != previous.get("lastReadingAt"):
        consecutive += 1
    required = plan.drain.consecutive_empty_readings
    drained = consecutive >= required
    timed_out = (not drained) and now >= datetime.fromisoformat(deadline)
    with_messages = sorted(reading.with_messages, key=lambda q: -(q["messages"] + q["inFlight"]))
    return {
        "drained": drained,
        "timedOut": timed_out,
        "consecutiveEmpty": consecutive,
        "requiredEmpty": required,
        "polls": int(previous.get("polls", 0)),
        "readings": int(previous.get("readings", 0)) + 1,
        "messagesLeft": reading.messages_left,
        "watchedQueues": reading.watched,
        "queuesWithMessages": with_messages[:REPORT_LIMIT],
        "queuesWithMessagesCount": len(with_messages),
        "missing": reading.missing[:REPORT_LIMIT],
        "missingCount": len(reading.missing),
        "stale": reading.stale[:REPORT_LIMIT],
        "staleCount": len(reading.stale),
        "producersQuiet": not reading.receiving and not moved_since,
        "enqueueTotal": reading.enqueue_total,
        "stillReceiving": reading.receiving[:REPORT_LIMIT],
        "stillReceivingCount": len(reading.receiving),
        "ignored": reading.ignored[:REPORT_LIMIT],
        "ignoredCount": len(reading.ignored),
        "lastReadingAt": reading_at,
        "checkedAt": _iso(now),
        "startedAt": started,
        "deadlineAt": deadline,
        "extensions": extensions,
        "extensionsLeft": max(0, plan.drain.max_extensions - extensions),
    }


def check_drain(
    plan: MigrationPlan, cloudwatch: Any, previous: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """One reading, folded into the previous summary (a call with no time for a second)."""
    return watch_drain(
        plan, cloudwatch, previous, budget_seconds=0, now=lambda: now, sleep=lambda _: None
    )


def watch_drain(
    plan: MigrationPlan,
    cloudwatch: Any,
    previous: dict[str, Any] | None,
    *,
    budget_seconds: float,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Readings every `pollIntervalSeconds` for up to `budget_seconds`, stopping as soon as the
    queues are drained or the deadline passes. One state machine poll, many readings."""
    interval = plan.drain.poll_interval_seconds
    began = now()
    queues = watched_queues(plan.on_prem.queues, cloudwatch, plan.on_prem.metrics)
    summary = fold(plan, previous, read_queues(plan, cloudwatch, began, queues))
    took = (now() - began).total_seconds()
    readings = 1
    while not (summary["drained"] or summary["timedOut"]):
        due = began + timedelta(seconds=readings * interval)
        # Budget by the clock: the next reading must end within the budget, however long the
        # last one took (1,000 queues can take seconds), or the Lambda would time out.
        if max((due - began).total_seconds(), (now() - began).total_seconds()) + took > (
            budget_seconds
        ):
            break
        if progress is not None:
            progress(summary)
        pause = (due - now()).total_seconds()
        if pause > 0:
            sleep(pause)
        started = now()
        summary = fold(plan, summary, read_queues(plan, cloudwatch, started, queues))
        took = (now() - started).total_seconds()
        readings += 1
    summary["polls"] += 1
    return summary
