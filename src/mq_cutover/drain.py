"""Has the on-prem broker drained? One reading of its queue metrics per call.

Drained means: every watched queue at 0 messages and 0 in flight, in K consecutive *new*
readings (re-reading the same datapoint does not count twice). A queue with no recent datapoint
is missing, and missing is never zero. Ignored queues (DLQs by default) are reported, not waited
for. The state machine keeps the small summary this returns between calls, never the series.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import DrainCheckFailed
from mq_cutover.plan import MigrationPlan, QueueMetrics

MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit
REPORT_LIMIT = 20  # queues listed by name in the summary; the rest are counted


def _align(moment: datetime, period: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % period, tz=UTC)


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


def _latest(
    cloudwatch: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> dict[str, tuple[datetime, float]]:
    """Newest datapoint of each query id, batched and paginated."""
    latest: dict[str, tuple[datetime, float]] = {}
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
                pairs = zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                for stamp, value in pairs:
                    known = latest.get(result["Id"])
                    if known is None or stamp > known[0]:
                        latest[result["Id"]] = (stamp, float(value))
            token = page.get("NextToken")
            if not token:
                break
    return latest


def check_drain(
    plan: MigrationPlan, cloudwatch: Any, previous: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """One drain reading, folded into the previous summary."""
    previous = previous or {}
    on_prem = plan.on_prem
    metrics = on_prem.metrics
    queues = list(on_prem.queues) or discover_queues(cloudwatch, metrics)
    ignored = [q for q in queues if is_ignored(q, on_prem.ignore_queues)]
    watched = [q for q in queues if q not in ignored]

    period = metrics.period_seconds
    stat: dict[str, Any] = {"Period": period, "Stat": "Maximum"}
    queries: list[dict[str, Any]] = []
    for index, queue in enumerate(queues):
        for kind, metric_name in (("m", metrics.messages_metric), ("f", metrics.in_flight_metric)):
            if metric_name is None:
                continue
            metric = {
                "Namespace": metrics.namespace,
                "MetricName": metric_name,
                "Dimensions": _dimensions(metrics, queue),
            }
            queries.append({"Id": f"{kind}{index}", "MetricStat": {"Metric": metric, **stat}})
    # Windows aligned to the period, as CloudWatch aligns its buckets: the same bucket read twice
    # has the same timestamp and so is not a new reading. The window ends after the current,
    # partial period and looks back a few periods (a queue silent for longer is missing).
    end = _align(now, period) + timedelta(seconds=period)
    lookback = max(5 * period, 2 * plan.drain.poll_interval_seconds)
    periods = -(-lookback // period) + 1  # whole periods, the current one included
    start = end - timedelta(seconds=periods * period)
    latest = _latest(cloudwatch, queries, start, end)

    with_messages: list[dict[str, Any]] = []
    missing: list[str] = []
    reading_times: list[datetime] = []
    messages_left = 0
    for index, queue in enumerate(queues):
        messages = latest.get(f"m{index}")
        in_flight = latest.get(f"f{index}") if metrics.in_flight_metric else None
        if queue in ignored:
            continue
        if messages is None or (metrics.in_flight_metric and in_flight is None):
            missing.append(queue)
            continue
        reading_times.append(min(messages[0], in_flight[0]) if in_flight else messages[0])
        count = int(messages[1]) + (int(in_flight[1]) if in_flight else 0)
        messages_left += count
        if count:
            with_messages.append(
                {
                    "queue": queue,
                    "messages": int(messages[1]),
                    "inFlight": int(in_flight[1]) if in_flight else 0,
                }
            )
    ignored_report = []
    for queue in ignored:
        index = queues.index(queue)
        point = latest.get(f"m{index}")
        ignored_report.append({"queue": queue, "messages": int(point[1]) if point else None})

    empty = bool(watched) and not missing and not with_messages
    reading_at = min(reading_times).isoformat() if reading_times else None
    consecutive = int(previous.get("consecutiveEmpty", 0))
    if not empty:
        consecutive = 0
    elif reading_at is not None and reading_at != previous.get("lastReadingAt"):
        consecutive += 1
    required = plan.drain.consecutive_empty_readings
    polls = int(previous.get("polls", 0)) + 1
    drained = consecutive >= required
    timed_out = (not drained) and (
        polls * plan.drain.poll_interval_seconds >= plan.drain.timeout_minutes * 60
    )
    with_messages.sort(key=lambda q: -(q["messages"] + q["inFlight"]))
    return {
        "drained": drained,
        "timedOut": timed_out,
        "consecutiveEmpty": consecutive,
        "requiredEmpty": required,
        "polls": polls,
        "messagesLeft": messages_left,
        "watchedQueues": len(watched),
        "queuesWithMessages": with_messages[:REPORT_LIMIT],
        "queuesWithMessagesCount": len(with_messages),
        "missing": missing[:REPORT_LIMIT],
        "missingCount": len(missing),
        "ignored": ignored_report[:REPORT_LIMIT],
        "ignoredCount": len(ignored_report),
        "lastReadingAt": reading_at,
    }
