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

The same readings answer three more questions (`Purpose`), on either broker (`Side`):
- placement (unordered mode, before the first producer moves): every watched queue has at least
  one consumer on the on-prem broker *and* on Amazon MQ;
- fence (before the on-prem broker stops): drained, and no consumer left connected on-prem;
- a rollback's drains: the on-prem broker (ordered: the backlog before consumers move to Amazon
  MQ) and Amazon MQ (every message that reached it is consumed before consumers move back).
A queue with messages and no consumer on that broker is reported as *will never drain*.

How the on-prem broker is read (`onPrem.metrics.readings`): `aggregate` (the default) reads the
metrics bridge's aggregates of the plan's QueueSet on every reading (a handful of metrics,
whatever the number of queues) and each queue's own messages series only when needed
(`SetReadings`); the rules above hold on the aggregates: missing or stale aggregates, or fewer
(or more) queues reported than watched, are never empty; producers quiet is the set's enqueue
total; counts come from the aggregates and names from the per-queue detail (fewer names than
the count, never a wrong one). `perQueue` reads every queue's series on every reading, as the
Amazon MQ side always is.

A side may be read live instead of from CloudWatch (`Side.live`): the Amazon MQ broker's
RabbitMQ management API when `target.metrics.source` is `managementApi`
(`mq_cutover.api_readings`). Its figures fill the same per-queue structure, so the rules above
are the same; a read that fails makes every queue missing and the summary says why (`readError`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import DrainCheckFailed
from mq_cutover.plan import MigrationPlan, QueueMetrics
from mq_cutover.queue_set import Aggregate, QueueSet

MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit
REPORT_LIMIT = 20  # queues listed by name in the summary; the rest are counted
CALL_RESERVE_SECONDS = 30  # left of a Lambda call's time after its last reading
READ_ERROR_LIMIT = 500  # characters of a live source's failure kept in the summary


class Purpose(StrEnum):
    DRAIN = "drain"  # 0 messages, 0 in flight, producers quiet
    ROLLBACK_DRAIN = "rollbackDrain"  # the same rules, a rollback's own timeout
    FENCE = "fence"  # drained, and no consumer connected (on-prem, before the stop)
    PLACEMENT = "placement"  # a consumer on each broker for every queue (unordered mode)


class SideName(StrEnum):
    ON_PREM = "onPrem"
    AMAZON_MQ = "amazonMq"


@dataclass
class QueueNow:
    """One queue's newest figures on one broker (None: missing; `age`: stale)."""

    messages: int = 0
    in_flight: int = 0
    consumers: int | None = None
    enqueues: list[float] = field(default_factory=list)  # the counter, newest first
    stamp: datetime | None = None
    missing: bool = False
    stale_age: int | None = None


@dataclass
class SideFigures:
    """One reading of one broker: every queue's figures, and for a live source why it could not
    be read (every queue is then missing) and its enqueue counters' fingerprint."""

    queues: dict[str, QueueNow]
    error: str | None = None
    digest: str | None = None
    metrics_read: int = 0  # GetMetricData metrics requested for it


class LiveSource(Protocol):
    """A broker read directly rather than from CloudWatch (`mq_cutover.api_readings`)."""

    def queue_names(self) -> list[str]:
        """Every queue the broker lists (queue discovery for the plan's patterns)."""
        ...

    def resume(self, previous: dict[str, Any] | None) -> None:
        """Start a Lambda call's readings after the previous call's summary."""
        ...

    def read(self, side: Side, queues: list[str], now: datetime, quiet: bool) -> SideFigures:
        """One reading of `queues` (ignored ones: messages only)."""
        ...


@dataclass(frozen=True)
class Side:
    """One broker's queue metrics: where they are, which queues, which to ignore. Amazon MQ's
    own metrics carry one `Broker` dimension per instance (`<name>-1`, `-2`): each is read and
    the freshest instance counts (the active one publishes). `live`: read from the broker's own
    API instead of CloudWatch."""

    name: SideName
    metrics: QueueMetrics
    listed: list[str]
    ignore: list[str]
    instances: list[dict[str, str]] = field(default_factory=lambda: [{}])
    require_quiet: bool = True
    live: LiveSource | None = field(default=None, compare=False)

    @property
    def discovery_dimensions(self) -> dict[str, str]:
        return {**self.metrics.dimensions, **self.instances[0]}


def on_prem_side(plan: MigrationPlan) -> Side:
    return Side(
        SideName.ON_PREM,
        plan.on_prem.metrics,
        plan.on_prem.queues,
        plan.on_prem.ignore_queues,
        require_quiet=plan.drain.require_producers_quiet,
    )


def amazon_mq_side(
    plan: MigrationPlan, metric_brokers: list[str] | None, live: LiveSource | None = None
) -> Side:
    """The Amazon MQ broker, read through `target.metrics` (AWS/AmazonMQ by default) or `live`
    (its management API, `target.metrics.source: managementApi`); the same queues as on-prem.
    `metric_brokers` are its instances' `Broker` dimension values."""
    metrics = plan.target.metrics
    instances: list[dict[str, str]] = [{}]
    if "Broker" not in metrics.dimensions and metric_brokers:
        instances = [{"Broker": name} for name in metric_brokers]
    return Side(
        SideName.AMAZON_MQ,
        metrics,
        plan.on_prem.queues,
        plan.on_prem.ignore_queues,
        instances,
        require_quiet=plan.drain.require_producers_quiet,
        live=live,
    )


def side_of(
    plan: MigrationPlan,
    name: str,
    metric_brokers: list[str] | None = None,
    live: LiveSource | None = None,
) -> Side:
    """The side by name; `live` is the Amazon MQ broker's live source, if it has one."""
    if SideName(name) == SideName.AMAZON_MQ:
        return amazon_mq_side(plan, metric_brokers, live)
    return on_prem_side(plan)


def _align(moment: datetime, period: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % period, tz=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def is_ignored(queue: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(queue, pattern) for pattern in patterns)


def _dimensions(
    metrics: QueueMetrics, queue: str | None, instance: dict[str, str] | None = None
) -> list[dict[str, str]]:
    fixed = {**metrics.dimensions, **(instance or {})}
    dims = [{"Name": k, "Value": v} for k, v in sorted(fixed.items())]
    if queue is not None:
        dims.append({"Name": metrics.queue_dimension, "Value": queue})
    return dims


def discover_queues(
    cloudwatch: Any, metrics: QueueMetrics, dimensions: dict[str, str] | None = None
) -> list[str]:
    """Queue names that have the messages metric in the plan's namespace and dimensions."""
    fixed = metrics.dimensions if dimensions is None else dimensions
    queues: set[str] = set()
    kwargs: dict[str, Any] = {
        "Namespace": metrics.namespace,
        "MetricName": metrics.messages_metric,
        # A queue deleted on-prem stops reporting; it must not hold the drain for 14 days.
        "RecentlyActive": "PT3H",
        "Dimensions": [{"Name": metrics.queue_dimension}]
        + [{"Name": k, "Value": v} for k, v in sorted(fixed.items())],
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


def is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def watched_queues(
    listed: list[str],
    cloudwatch: Any,
    metrics: QueueMetrics,
    dimensions: dict[str, str] | None = None,
    *,
    discover: Callable[[], list[str]] | None = None,
) -> list[str]:
    """The plan's queue names, plus every discovered queue matching one of its glob patterns
    (an empty list watches every discovered queue). A listed name with no metrics is kept: it
    shows as missing, never as empty. Discovery lists CloudWatch's metrics, or calls `discover`
    (a live source's own queue list)."""
    names = [q for q in listed if not is_pattern(q)]
    patterns = [q for q in listed if is_pattern(q)] if listed else ["*"]
    if patterns:
        found = discover() if discover else discover_queues(cloudwatch, metrics, dimensions)
        names += [q for q in found if q not in names and is_ignored(q, patterns)]
    return names


def side_queues(side: Side, cloudwatch: Any) -> list[str]:
    """The queues one side watches, discovered where that side's figures come from."""
    return watched_queues(
        side.listed,
        cloudwatch,
        side.metrics,
        side.discovery_dimensions,
        discover=side.live.queue_names if side.live is not None else None,
    )


Series = dict[str, list[tuple[datetime, float]]]  # query id -> datapoints, newest first


def read_series(
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
    """One look at every queue's newest datapoints (on one broker, or both for placement).

    Aggregate readings (`readMode` aggregate) count from the bridge's aggregates and name from
    the latest per-queue detail: a count (`*_count`) may then exceed its list of names, never
    the other way round; `None` counts are the lists' lengths (per-queue readings)."""

    at: datetime
    purpose: Purpose = Purpose.DRAIN
    watched: int = 0
    with_messages: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)
    receiving: list[dict[str, Any]] = field(default_factory=list)  # enqueues in newest period
    ignored: list[dict[str, Any]] = field(default_factory=list)
    never_drain: list[dict[str, Any]] = field(default_factory=list)  # messages, no consumer
    connected: list[dict[str, Any]] = field(default_factory=list)  # consumers still there
    unplaced: list[dict[str, Any]] = field(default_factory=list)  # no consumer on a broker
    messages_left: int = 0
    newest_at: datetime | None = None  # the oldest of the queues' newest datapoints
    enqueue_total: float | None = None  # sum of the queues' newest enqueue counters
    read_error: str | None = None  # why the figures could not be read (never zero)
    enqueue_digest: str | None = None  # a live source's counters, for the next call's first
    metrics_read: int = 0  # GetMetricData metrics requested for this reading
    # Aggregate readings only:
    read_mode: str = "perQueue"
    queue_set: str | None = None  # the QueueSet digest read
    queues_reported: int | None = None  # SetQueuesReported
    ignored_messages: int | None = None  # SetIgnoredMessages
    set_receiving: bool = False  # SetEnqueued moved (or could not show it did not)
    enqueued_newest_period: float | None = None  # SetEnqueued's move over its newest period
    detail_read_at: datetime | None = None
    with_messages_count: int | None = None
    never_drain_count: int | None = None
    connected_count: int | None = None
    unplaced_count: int | None = None  # at least this many (aggregate placement)

    @staticmethod
    def _total(count: int | None, names: list[Any]) -> int:
        return len(names) if count is None else count

    @property
    def never_drain_total(self) -> int:
        return self._total(self.never_drain_count, self.never_drain)

    @property
    def connected_total(self) -> int:
        return self._total(self.connected_count, self.connected)

    @property
    def unplaced_total(self) -> int:
        return self._total(self.unplaced_count, self.unplaced)

    @property
    def with_messages_total(self) -> int:
        return self._total(self.with_messages_count, self.with_messages)

    @property
    def still_receiving(self) -> bool:
        return bool(self.receiving) or self.set_receiving

    @property
    def unknown(self) -> bool:
        """Something watched could not be read (missing, stale, a failed or short read)."""
        return bool(self.missing or self.stale or self.read_error)

    @property
    def empty(self) -> bool:
        return bool(self.watched) and not (
            self.unknown or self.with_messages or self.messages_left or self.still_receiving
        )

    @property
    def met(self) -> bool:
        """The purpose's condition holds in this reading."""
        if self.purpose == Purpose.PLACEMENT:
            return bool(self.watched) and not (self.unknown or self.unplaced_total)
        if self.purpose == Purpose.FENCE:
            # Nobody left: no consumer connected, nothing arriving. Messages still there are
            # counted and shown, not waited for: the drain (or a person at its timeout gate)
            # already decided about them.
            return bool(self.watched) and not (
                self.unknown or self.still_receiving or self.connected_total
            )
        return self.empty


def stale_after_seconds(plan: MigrationPlan, metrics: QueueMetrics | None = None) -> int:
    metrics = metrics or plan.on_prem.metrics
    return metrics.stale_after_seconds or max(3 * metrics.period_seconds, 30)


def side_queries(
    side: Side,
    queues: list[str],
    kinds: dict[str, str | None],
    period: int,
    skip: Callable[[str, str], bool] | None = None,
) -> list[dict[str, Any]]:
    """GetMetricData queries (Maximum over `period`) for every queue, metric kind and broker
    instance of one side, with ids `<kind><queue index>i<instance index>`."""
    queries: list[dict[str, Any]] = []
    for index, queue in enumerate(queues):
        for kind, metric_name in kinds.items():
            if metric_name is None or (skip is not None and skip(kind, queue)):
                continue
            for number, instance in enumerate(side.instances):
                metric = {
                    "Namespace": side.metrics.namespace,
                    "MetricName": metric_name,
                    "Dimensions": _dimensions(side.metrics, queue, instance),
                }
                stat = {"Metric": metric, "Period": period, "Stat": "Maximum"}
                queries.append({"Id": f"{kind}{index}i{number}", "MetricStat": stat})
    return queries


def by_size(queues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queues with messages, the fullest first."""
    return sorted(queues, key=lambda q: -(q["messages"] + (q["inFlight"] or 0)))


def _read_side(
    side: Side, cloudwatch: Any, now: datetime, queues: list[str], purpose: Purpose, quiet: bool
) -> SideFigures:
    """Every watched (not ignored) queue's newest figures on one broker; ignored queues get
    only their message count."""
    if side.live is not None:
        return side.live.read(side, queues, now, quiet)
    metrics = side.metrics
    kinds = {"m": metrics.messages_metric, "f": metrics.in_flight_metric}
    if quiet:
        kinds["e"] = metrics.enqueue_metric
    kinds["c"] = metrics.consumers_metric
    required = {"m", "f", "e"}
    if purpose not in (Purpose.DRAIN, Purpose.ROLLBACK_DRAIN):
        required.add("c")  # placement and the fence are about consumers
    period = metrics.period_seconds
    # An ignored queue (a DLQ) is only counted: its messages, nothing else.
    queries = side_queries(
        side,
        queues,
        kinds,
        period,
        skip=lambda kind, queue: kind != "m" and is_ignored(queue, side.ignore),
    )
    # Windows aligned to the period, as CloudWatch aligns its buckets: the same bucket read twice
    # has the same timestamp and so is not a new reading. The window ends after the current,
    # partial period and looks back twice the stale limit (older than that is missing).
    stale_after = metrics.stale_after_seconds or max(3 * period, 30)
    end = _align(now, period) + timedelta(seconds=period)
    periods = -(-2 * stale_after // period) + 1
    start = end - timedelta(seconds=periods * period)
    series = read_series(cloudwatch, queries, start, end)

    def freshest(kind: str, index: int) -> list[tuple[datetime, float]]:
        found = [series.get(f"{kind}{index}i{n}") or [] for n in range(len(side.instances))]
        return max(
            found, key=lambda points: points[0][0] if points else datetime.min.replace(tzinfo=UTC)
        )

    figures: dict[str, QueueNow] = {}
    for index, queue in enumerate(queues):
        points = {kind: freshest(kind, index) for kind in kinds if kinds[kind]}
        now_q = QueueNow()
        figures[queue] = now_q
        if is_ignored(queue, side.ignore):
            now_q.messages = int(points["m"][0][1]) if points["m"] else -1
            continue
        if any(not points[kind] for kind in points if kind in required):
            now_q.missing = True
            continue
        stamp = min(points[kind][0][0] for kind in points if kind in required)
        age = (now - stamp).total_seconds()
        if age > stale_after:
            now_q.stale_age = int(age)
            continue
        now_q.stamp = stamp
        now_q.messages = int(points["m"][0][1])
        now_q.in_flight = int(points["f"][0][1]) if "f" in points else 0
        if points.get("c"):
            now_q.consumers = int(points["c"][0][1])
        if "e" in points:
            now_q.enqueues = [value for _, value in points["e"][:2]]
    return SideFigures(figures, metrics_read=len(queries))


def needs_quiet(side: Side, purpose: Purpose) -> bool:
    """Whether producers quiet is read (not for placement; not when waived)."""
    return (
        purpose != Purpose.PLACEMENT
        and side.require_quiet
        # A live source reads the enqueue counter itself (RabbitMQ's message_stats.publish),
        # whatever the metric names (Amazon MQ for RabbitMQ publishes no such metric).
        and (side.live is not None or side.metrics.enqueue_metric is not None)
    )


def read_queues(
    plan: MigrationPlan,
    cloudwatch: Any,
    now: datetime,
    queues: list[str] | None = None,
    *,
    side: Side | None = None,
    purpose: Purpose = Purpose.DRAIN,
    other: Side | None = None,
) -> Reading:
    """One reading of every queue (listed in the plan, or discovered in CloudWatch or the live
    source; pass `queues` to reuse a discovery) on `side` (on-prem by default). Placement also
    reads `other` (the second broker) for its consumers."""
    side = side or on_prem_side(plan)
    if queues is None:
        queues = side_queues(side, cloudwatch)
    quiet_needed = needs_quiet(side, purpose)
    if reads_aggregates(side):
        reader = SetReadings(side, queues, stale_after_seconds(plan, side.metrics))
        return reader.read(cloudwatch, now, purpose, quiet_needed, other)
    read_here = _read_side(side, cloudwatch, now, queues, purpose, quiet_needed)
    read_there = _read_side(other, cloudwatch, now, queues, purpose, False) if other else None
    here = read_here.queues
    there = read_there.queues if read_there else {}

    reading = Reading(at=now, purpose=purpose)
    reading.metrics_read = read_here.metrics_read + (read_there.metrics_read if read_there else 0)
    errors = [read.error for read in (read_here, read_there) if read and read.error]
    reading.read_error = "; ".join(errors) or None
    reading.enqueue_digest = read_here.digest if quiet_needed else None
    newest: list[datetime] = []
    enqueued: list[float] = []
    for queue in queues:
        figures = here[queue]
        if is_ignored(queue, side.ignore):
            count = figures.messages if figures.messages >= 0 else None
            reading.ignored.append({"queue": queue, "messages": count})
            continue
        reading.watched += 1
        elsewhere = there.get(queue)
        if figures.missing or (elsewhere is not None and elsewhere.missing):
            reading.missing.append(queue)
            continue
        age = figures.stale_age or (elsewhere.stale_age if elsewhere is not None else None)
        if age is not None:
            reading.stale.append({"queue": queue, "ageSeconds": age})
            continue
        if figures.stamp is not None:
            newest.append(figures.stamp)
        if elsewhere is not None and elsewhere.stamp is not None:
            newest.append(elsewhere.stamp)
        left, in_flight = figures.messages, figures.in_flight
        # ActiveMQ's QueueSize and RabbitMQ's messages already include unacknowledged ones.
        reading.messages_left += max(left, in_flight)
        if left or in_flight:
            reading.with_messages.append({"queue": queue, "messages": left, "inFlight": in_flight})
            if figures.consumers == 0:
                reading.never_drain.append({"queue": queue, "messages": max(left, in_flight)})
        if figures.consumers:
            reading.connected.append({"queue": queue, "consumers": figures.consumers})
        if elsewhere is not None and not (figures.consumers and elsewhere.consumers):
            reading.unplaced.append(
                {
                    "queue": queue,
                    side.name.value: figures.consumers or 0,
                    other.name.value if other else "other": elsewhere.consumers or 0,
                }
            )
        if quiet_needed:
            enqueues = figures.enqueues
            enqueued.append(enqueues[0])
            # Quiet = the counter did not move over its newest period. A single datapoint proves
            # nothing yet; a counter that went down was reset (the broker restarted): not quiet.
            moved = None if len(enqueues) < 2 else enqueues[0] - enqueues[1]
            if moved is None or moved != 0:
                reading.receiving.append({"queue": queue, "enqueued": moved})
    reading.newest_at = min(newest) if newest else None
    if quiet_needed and enqueued and len(enqueued) == reading.watched:
        reading.enqueue_total = sum(enqueued)
    return reading


def reads_aggregates(side: Side) -> bool:
    """Whether a side is read from the bridge's QueueSet aggregates (`onPrem.metrics.readings`
    aggregate, the default); Amazon MQ's own metrics and live sources are read per queue."""
    return side.live is None and getattr(side.metrics, "readings", "perQueue") == "aggregate"


def detail_period_seconds(metrics: QueueMetrics) -> int:
    return int(getattr(metrics, "detail_period_seconds", metrics.period_seconds))


def _window(now: datetime, period: int, stale_after: int) -> tuple[datetime, datetime]:
    """A reading's window, aligned to the period as CloudWatch aligns its buckets (the same
    bucket read twice has the same timestamp: not a new reading); it ends after the current,
    partial period and looks back twice the stale limit (older than that is missing)."""
    end = _align(now, period) + timedelta(seconds=period)
    periods = -(-2 * stale_after // period) + 1
    return end - timedelta(seconds=periods * period), end


@dataclass
class Detail:
    """One read of every watched queue's own messages series (the bridge's per-queue detail)."""

    at: datetime
    messages: dict[str, int]  # fresh, not ignored queues: their newest value
    missing: list[str]
    stale: list[dict[str, Any]]
    ignored: list[dict[str, Any]]  # {"queue", "messages"} (None: no datapoint)


class SetReadings:
    """One Lambda call's aggregate readings of the on-prem broker (`readings: aggregate`).

    Every reading asks GetMetricData for the plan's QueueSet aggregates (`queue_set.Aggregate`,
    Maximum over `periodSeconds`): messages, in flight, the enqueue total's newest two buckets,
    queues reported, queues never draining, the ignored queues' messages; consumers and queues
    with consumers for the fence and placement. The per-queue detail (the messages metric, over
    `detailPeriodSeconds`) is read at the call's first reading and again when the aggregates
    first look empty and the last detail read is older than one detail period; it names queues
    (with messages, missing, stale, ignored). Met only when the aggregates are all there and
    fresh, report every watched queue, show nothing left and nothing arriving, and the latest
    detail shows every watched queue present and not stale. Counts come from the aggregates,
    names from the detail: fewer names than the count, never a wrong one."""

    def __init__(self, side: Side, queues: list[str], stale_after: int) -> None:
        self.side = side
        self.queues = queues
        self.queue_set = QueueSet.of(side.listed, side.ignore)
        self.watched = [q for q in queues if not is_ignored(q, side.ignore)]
        self.stale_after = stale_after
        self.detail: Detail | None = None
        self.looked_empty = False
        self._last: (
            tuple[Reading, dict[Aggregate, list[tuple[datetime, float]]], SideFigures | None] | None
        ) = None

    # --- CloudWatch reads -------------------------------------------------------------------

    def aggregates(
        self, cloudwatch: Any, now: datetime, wanted: list[Aggregate]
    ) -> tuple[dict[Aggregate, list[tuple[datetime, float]]], int]:
        metrics = self.side.metrics
        period = metrics.period_seconds
        dims = self.queue_set.dimensions(metrics.dimensions)
        queries = [
            {
                "Id": f"a{number}",
                "MetricStat": {
                    "Metric": {"Namespace": metrics.namespace, "MetricName": name.value,
                               "Dimensions": dims},
                    "Period": period,
                    "Stat": "Maximum",
                },
            }
            for number, name in enumerate(wanted)
        ]  # fmt: skip
        start, end = _window(now, period, self.stale_after)
        series = read_series(cloudwatch, queries, start, end)
        found = {name: series.get(f"a{number}") or [] for number, name in enumerate(wanted)}
        return found, len(queries)

    def read_detail(self, cloudwatch: Any, now: datetime) -> int:
        """Every watched queue's messages series; returns the metrics requested."""
        metrics = self.side.metrics
        period = detail_period_seconds(metrics)
        limit = max(self.stale_after, 3 * period)
        queries = side_queries(self.side, self.queues, {"m": metrics.messages_metric}, period)
        start, end = _window(now, period, limit)
        series = read_series(cloudwatch, queries, start, end)
        detail = Detail(now, {}, [], [], [])
        for index, queue in enumerate(self.queues):
            points = series.get(f"m{index}i0") or []
            if is_ignored(queue, self.side.ignore):
                count = int(points[0][1]) if points else None
                detail.ignored.append({"queue": queue, "messages": count})
            elif not points:
                detail.missing.append(queue)
            elif (age := int((now - points[0][0]).total_seconds())) > limit:
                detail.stale.append({"queue": queue, "ageSeconds": age})
            else:
                detail.messages[queue] = int(points[0][1])
        self.detail = detail
        return len(queries)

    def detail_older_than_a_period(self, now: datetime) -> bool:
        period = detail_period_seconds(self.side.metrics)
        return self.detail is None or (now - self.detail.at).total_seconds() >= period

    # --- readings ---------------------------------------------------------------------------

    def read(
        self,
        cloudwatch: Any,
        now: datetime,
        purpose: Purpose,
        quiet: bool,
        other: Side | None = None,
    ) -> Reading:
        wanted = [
            Aggregate.MESSAGES,
            Aggregate.IN_FLIGHT,
            Aggregate.QUEUES_REPORTED,
            Aggregate.QUEUES_NEVER_DRAINING,
            Aggregate.IGNORED_MESSAGES,
        ]
        if quiet:
            wanted.append(Aggregate.ENQUEUED)
        if purpose in (Purpose.FENCE, Purpose.PLACEMENT):
            wanted += [Aggregate.QUEUES_WITH_CONSUMERS, Aggregate.CONSUMERS]
        found, requested = self.aggregates(cloudwatch, now, wanted)
        there = _read_side(other, cloudwatch, now, self.queues, purpose, False) if other else None
        reading = Reading(at=now, purpose=purpose, read_mode="aggregate")
        reading.metrics_read = requested + (there.metrics_read if there else 0)
        self._set_figures(reading, found, quiet)
        if there is not None and there.error:  # the other broker's live source failed
            reading.read_error = "; ".join(filter(None, (reading.read_error, there.error)))
        looks_empty = reading.empty
        if self.detail is None or (
            looks_empty and not self.looked_empty and self.detail_older_than_a_period(now)
        ):
            reading.metrics_read += self.read_detail(cloudwatch, now)
        self.looked_empty = looks_empty
        self._last = (reading, found, there)
        return self._named(reading, found, there)

    def renamed(self, cloudwatch: Any, now: datetime) -> Reading | None:
        """The last reading again with a fresh detail (names for an email), when the detail is
        older than a detail period; None when it is not."""
        if self._last is None or not self.detail_older_than_a_period(now):
            return None
        reading, found, there = self._last
        reading.metrics_read += self.read_detail(cloudwatch, now)
        return self._named(reading, found, there)

    def _set_figures(
        self, reading: Reading, found: dict[Aggregate, list[tuple[datetime, float]]], quiet: bool
    ) -> None:
        """The aggregates' figures and, when they are missing, stale or short, why (never 0)."""
        reading.watched = len(self.watched)
        reading.queue_set = self.queue_set.digest
        ignored = found.get(Aggregate.IGNORED_MESSAGES) or []
        reading.ignored_messages = int(ignored[0][1]) if ignored else None
        required = [name for name in found if name != Aggregate.IGNORED_MESSAGES]
        absent = [name.value for name in required if not found[name]]
        metrics = self.side.metrics
        where = f"QueueSet {self.queue_set.digest} in {metrics.namespace}"
        if absent:
            reading.read_error = (
                f"no recent aggregates for {where} ({', '.join(absent)}): run the metrics "
                "bridge with this plan's onPrem.queues and onPrem.ignoreQueues (mq-cutover "
                "publish-metrics --plan, or the bridge Lambda's OnPremMetricsQueues and "
                "OnPremMetricsIgnoreQueues), or set onPrem.metrics.readings to perQueue for a "
                "publisher of per-queue series only"
            )
            return
        stamp = min(found[name][0][0] for name in required)
        age = int((reading.at - stamp).total_seconds())
        if age > self.stale_after:
            reading.read_error = (
                f"the aggregates for {where} are {age} s old (stale after {self.stale_after} "
                "s): is the metrics bridge running?"
            )
            return
        reading.newest_at = stamp

        def newest(name: Aggregate) -> int:
            return int(found[name][0][1])

        reported = newest(Aggregate.QUEUES_REPORTED)
        reading.queues_reported = reported
        if reported != reading.watched:
            reading.read_error = (
                f"the metrics bridge read {reported} of the {reading.watched} watched queues of "
                f"{where} (not counted as empty: see missing and stale for which)"
            )
        messages, in_flight = newest(Aggregate.MESSAGES), newest(Aggregate.IN_FLIGHT)
        # ActiveMQ's QueueSize and RabbitMQ's messages already include unacknowledged ones.
        reading.messages_left = max(messages, in_flight)
        reading.never_drain_count = newest(Aggregate.QUEUES_NEVER_DRAINING)
        if Aggregate.QUEUES_WITH_CONSUMERS in found:
            reading.connected_count = newest(Aggregate.QUEUES_WITH_CONSUMERS)
        if quiet:
            enqueues = [value for _, value in found[Aggregate.ENQUEUED][:2]]
            reading.enqueue_total = enqueues[0]
            # Quiet = the total did not move over its newest period. A single datapoint proves
            # nothing yet; a total that went down was reset (a broker restart): not quiet.
            moved = None if len(enqueues) < 2 else enqueues[0] - enqueues[1]
            reading.enqueued_newest_period = moved
            reading.set_receiving = moved is None or moved != 0

    def _named(
        self,
        reading: Reading,
        found: dict[Aggregate, list[tuple[datetime, float]]],
        there: SideFigures | None,
    ) -> Reading:
        """The names the latest detail (and, for placement, the other broker) gives."""
        detail = self.detail
        assert detail is not None  # read at the call's first reading
        reading.detail_read_at = detail.at
        reading.missing = list(detail.missing)
        reading.stale = list(detail.stale)
        reading.ignored = list(detail.ignored)
        fresh = reading.newest_at is not None
        full = {q: n for q, n in detail.messages.items() if n > 0}
        # The detail matches the aggregates: the same messages in total.
        matches = fresh and sum(full.values()) == reading.messages_left
        # Names of queues with messages only while the aggregates say some are left (or cannot
        # say): a detail older than the aggregates' empty reading would name drained queues.
        named = full if (reading.messages_left or not fresh) else {}
        if not fresh:
            reading.messages_left = sum(named.values())  # what is known (at least)
        # In flight per queue is not in the detail: known when none is in flight, or when one
        # queue holds every message (in flight are among a queue's messages).
        in_flight = found.get(Aggregate.IN_FLIGHT) or []
        set_in_flight = int(in_flight[0][1]) if fresh and in_flight else None
        if set_in_flight != 0 and not (matches and len(full) == 1):
            set_in_flight = None
        reading.with_messages = [
            {"queue": q, "messages": n, "inFlight": set_in_flight} for q, n in named.items()
        ]
        reading.with_messages_count = len(reading.with_messages)
        # Who has no consumer (never draining) is named when the detail matches the aggregates
        # (same total) and every queue with messages is never draining (same number).
        never = reading.never_drain_count or 0
        zero: set[str] = set()
        if never and len(full) == never and matches:
            zero = set(full)
            reading.never_drain = [{"queue": q, "messages": full[q]} for q in sorted(zero)]
        with_consumers = reading.connected_count
        if with_consumers is None:
            return reading
        if with_consumers == 0:
            zero = set(self.watched)
        # Every queue's consumers are known when the named queues without any are all of them.
        everyone_known = len(zero) == len(self.watched) - with_consumers
        consumers = found.get(Aggregate.CONSUMERS) or []
        each = 1 if consumers and int(consumers[0][1]) == with_consumers else None
        if reading.purpose != Purpose.DRAIN:  # the fence; placement (and the preflight's)
            reading.connected = (
                [{"queue": q, "consumers": each} for q in self.watched if q not in zero]
                if everyone_known
                else []
            )
        if reading.purpose == Purpose.PLACEMENT and there is not None:
            self._placement(reading, zero, everyone_known, each, there)
        return reading

    def _placement(
        self,
        reading: Reading,
        zero: set[str],
        everyone_known: bool,
        each: int | None,
        there: SideFigures,
    ) -> None:
        other = SideName.AMAZON_MQ.value
        here = self.side.name.value
        unplaced: list[dict[str, Any]] = []
        stale = {item["queue"] for item in reading.stale}
        for queue in self.watched:
            elsewhere = there.queues[queue]
            if elsewhere.missing:
                if queue not in reading.missing:
                    reading.missing.append(queue)
                continue
            if elsewhere.stale_age is not None:
                if queue not in stale:
                    reading.stale.append({"queue": queue, "ageSeconds": elsewhere.stale_age})
                continue
            on_prem: int | None = 0 if queue in zero else (each if everyone_known else None)
            if queue in zero or not elsewhere.consumers:
                unplaced.append({"queue": queue, here: on_prem, other: elsewhere.consumers or 0})
        without = reading.watched - (reading.connected_count or 0)
        reading.unplaced = unplaced
        reading.unplaced_count = len(unplaced) if everyone_known else max(len(unplaced), without)


def _timeout_minutes(plan: MigrationPlan, purpose: Purpose) -> int:
    if purpose == Purpose.PLACEMENT:
        return plan.drain.placement_timeout_minutes
    if purpose == Purpose.FENCE:
        return plan.drain.fence_timeout_minutes
    if purpose == Purpose.ROLLBACK_DRAIN:
        return plan.drain.rollback_timeout_minutes
    return plan.drain.timeout_minutes


def fold(plan: MigrationPlan, previous: dict[str, Any] | None, reading: Reading) -> dict[str, Any]:
    """The summary after one more reading (small: the state machine carries it)."""
    previous = previous or {}
    now = reading.at
    started = previous.get("startedAt") or _iso(now)
    deadline = previous.get("deadlineAt") or _iso(
        datetime.fromisoformat(started) + timedelta(minutes=_timeout_minutes(plan, reading.purpose))
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
    quiet_needed = reading.enqueue_total is not None
    before = previous.get("enqueueTotal")
    moved_since = quiet_needed and (before is None or before != reading.enqueue_total)
    consecutive = int(previous.get("consecutiveEmpty", 0))
    if not reading.met or moved_since:
        consecutive = 0
    elif reading_at is not None and reading_at != previous.get("lastReadingAt"):
        consecutive += 1
    required = plan.drain.consecutive_empty_readings
    done = consecutive >= required
    timed_out = (not done) and now >= datetime.fromisoformat(deadline)
    with_messages = by_size(reading.with_messages)
    summary: dict[str, Any] = {
        "purpose": reading.purpose.value,
        "done": done,
        "timedOut": timed_out,
        "consecutiveEmpty": consecutive,
        "requiredEmpty": required,
        "polls": int(previous.get("polls", 0)),
        "readings": int(previous.get("readings", 0)) + 1,
        "messagesLeft": reading.messages_left,
        # What the broker held at the first reading (e.g. the backlog when the cutover began).
        "initialMessagesLeft": previous.get("initialMessagesLeft", reading.messages_left),
        "initialQueuesWithMessages": previous.get(
            "initialQueuesWithMessages", with_messages[:REPORT_LIMIT]
        ),
        "watchedQueues": reading.watched,
        "queuesWithMessages": with_messages[:REPORT_LIMIT],
        "queuesWithMessagesCount": reading.with_messages_total,
        "neverDrain": reading.never_drain[:REPORT_LIMIT],
        "neverDrainCount": reading.never_drain_total,
        "missing": reading.missing[:REPORT_LIMIT],
        "missingCount": len(reading.missing),
        "stale": reading.stale[:REPORT_LIMIT],
        "staleCount": len(reading.stale),
        "producersQuiet": not reading.still_receiving and not moved_since,
        "enqueueTotal": reading.enqueue_total,
        "stillReceiving": reading.receiving[:REPORT_LIMIT],
        # Aggregate readings see the set's enqueue total move, not which queue's: unknown.
        "stillReceivingCount": None if reading.set_receiving else len(reading.receiving),
        "ignored": reading.ignored[:REPORT_LIMIT],
        "ignoredCount": len(reading.ignored),
        "lastReadingAt": reading_at,
        "checkedAt": _iso(now),
        "startedAt": started,
        "deadlineAt": deadline,
        "extensions": extensions,
        "extensionsLeft": max(0, plan.drain.max_extensions - extensions),
        "readMode": reading.read_mode,
        "metricsRead": int(previous.get("metricsRead", 0)) + reading.metrics_read,
    }
    if reading.read_mode == "aggregate":
        summary["queueSet"] = reading.queue_set
        summary["queuesReported"] = reading.queues_reported
        summary["ignoredMessages"] = reading.ignored_messages
        if reading.enqueue_total is not None:
            summary["enqueuedNewestPeriod"] = reading.enqueued_newest_period
        summary["detailReadAt"] = _iso(reading.detail_read_at) if reading.detail_read_at else None
    if reading.read_error:  # why the figures could not be read (never counted as empty)
        summary["readError"] = reading.read_error[:READ_ERROR_LIMIT]
    if reading.enqueue_digest:  # a live source's counters: the next call compares with them
        summary["enqueueDigest"] = reading.enqueue_digest
    if reading.purpose == Purpose.FENCE:
        summary["connected"] = reading.connected[:REPORT_LIMIT]
        summary["connectedCount"] = reading.connected_total
    if reading.purpose == Purpose.PLACEMENT:
        summary["unplaced"] = reading.unplaced[:REPORT_LIMIT]
        summary["unplacedCount"] = reading.unplaced_total
    else:
        summary["drained"] = done
    return summary


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
    purpose: Purpose = Purpose.DRAIN,
    side: Side | None = None,
    other: Side | None = None,
) -> dict[str, Any]:
    """Readings every `pollIntervalSeconds` for up to `budget_seconds`, stopping as soon as the
    purpose's condition held K times or the deadline passes. One state machine poll, many
    readings."""
    side = side or on_prem_side(plan)
    interval = plan.drain.poll_interval_seconds
    for read in (side, other):
        if read is not None and read.live is not None:
            read.live.resume(previous)
    began = now()
    queues = side_queues(side, cloudwatch)
    # Aggregate readings keep this call's per-queue detail between readings.
    reader = (
        SetReadings(side, queues, stale_after_seconds(plan, side.metrics))
        if reads_aggregates(side)
        else None
    )

    def one(previous: dict[str, Any] | None, at: datetime) -> dict[str, Any]:
        if reader is None:
            reading = read_queues(
                plan, cloudwatch, at, queues, side=side, purpose=purpose, other=other
            )
        else:
            reading = reader.read(cloudwatch, at, purpose, needs_quiet(side, purpose), other)
        summary = fold(plan, previous, reading)
        if reader is not None and summary["timedOut"]:
            # A person is asked next: the queues by name from a fresh detail.
            renamed = reader.renamed(cloudwatch, now())
            if renamed is not None:
                summary = fold(plan, previous, renamed)
        summary["side"] = side.name.value
        return summary

    summary = one(previous, began)
    took = (now() - began).total_seconds()
    readings = 1
    anchor, since_anchor = began, 1  # readings are due every interval from the anchor
    while not (summary["done"] or summary["timedOut"]):
        due = anchor + timedelta(seconds=since_anchor * interval)
        # Before the side's next period has closed there is no newer datapoint to read: a
        # reading would count once (see fold) and cost as much (AWS/AmazonMQ publishes once a
        # minute: 40,000 metrics a reading at 10,000 queues). Read from the next period on.
        newest = summary.get("lastReadingAt")
        if newest and side.live is None and side.metrics.period_seconds > interval:
            next_period = datetime.fromisoformat(newest) + timedelta(
                seconds=side.metrics.period_seconds
            )
            if next_period > due:  # from then on every interval again
                anchor, since_anchor, due = next_period, 0, next_period
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
        summary = one(summary, started)
        took = (now() - started).total_seconds()
        readings += 1
        since_anchor += 1
    summary["polls"] += 1
    return summary


def broker_counts(
    plan: MigrationPlan, cloudwatch: Any, now: datetime, side: Side
) -> dict[str, Any]:
    """One reading of one broker for a report: messages left per queue, and what could not be
    read (missing or stale: unknown, never zero)."""
    if reads_aggregates(side):
        return _detail_counts(plan, cloudwatch, now, side)
    reading = read_queues(plan, cloudwatch, now, side=side)
    with_messages = by_size(reading.with_messages)
    known = not (reading.missing or reading.stale)
    return {
        "side": side.name.value,
        "messagesLeft": reading.messages_left if known else None,
        "messagesLeftAtLeast": reading.messages_left,
        "queuesWithMessages": with_messages[:REPORT_LIMIT],
        "queuesWithMessagesCount": len(with_messages),
        "missing": reading.missing[:REPORT_LIMIT],
        "missingCount": len(reading.missing),
        "stale": reading.stale[:REPORT_LIMIT],
        "staleCount": len(reading.stale),
        "readAt": _iso(now),
    }


def _detail_counts(
    plan: MigrationPlan, cloudwatch: Any, now: datetime, side: Side
) -> dict[str, Any]:
    """`broker_counts` from the bridge's per-queue detail (aggregate readings): each queue's
    messages as of its newest detail period (in flight: not in the detail, so unknown)."""
    reader = SetReadings(
        side, side_queues(side, cloudwatch), stale_after_seconds(plan, side.metrics)
    )
    reader.read_detail(cloudwatch, now)
    detail = reader.detail
    assert detail is not None
    with_messages = [
        {"queue": q, "messages": n, "inFlight": None} for q, n in detail.messages.items() if n
    ]
    with_messages = by_size(with_messages)
    left = sum(detail.messages.values())
    known = not (detail.missing or detail.stale)
    return {
        "side": side.name.value,
        "messagesLeft": left if known else None,
        "messagesLeftAtLeast": left,
        "queuesWithMessages": with_messages[:REPORT_LIMIT],
        "queuesWithMessagesCount": len(with_messages),
        "missing": detail.missing[:REPORT_LIMIT],
        "missingCount": len(detail.missing),
        "stale": detail.stale[:REPORT_LIMIT],
        "staleCount": len(detail.stale),
        "readAt": _iso(now),
        "detailReadAt": _iso(detail.at),
    }
